"""transformers causal LMs as a chat model: the GPU path (fp16, device from settings).

No grammar is available here, so a plan is steered by opening the reply with `{"steps": [` and
checked by the same validator; an invalid plan is retried like any other backend's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from agent.core.errors import ModelLoadError
from agent.llm.messages import to_role_dicts
from agent.models.devices import resolve_dtype

if TYPE_CHECKING:
    from agent.models.host import ModelHost

JSON_PREFIX = '{"steps": ['


class TransformersChatModel(BaseChatModel):
    model_dir: str
    device: str = "cpu"
    dtype: str = "auto"
    temperature: float = 0.2
    max_tokens: int = 512
    _model: Any = PrivateAttr(None)
    _tokenizer: Any = PrivateAttr(None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_catalogue(cls, app: ModelHost) -> TransformersChatModel:
        s = app.settings
        return cls(
            model_dir=str(app.catalogue.resolve("planner-hf")),
            device=app.device,
            dtype=s.dtype,
            temperature=s.temperature,
            max_tokens=s.max_answer_tokens,
        )

    @property
    def _llm_type(self) -> str:
        return "transformers"

    def load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
                model = AutoModelForCausalLM.from_pretrained(
                    self.model_dir, dtype=resolve_dtype(self.dtype, self.device)
                )
            except (OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"cannot load the transformers planner from {self.model_dir}: {exc}"
                ) from None
            self._model = model.to(self.device).eval()
            self._tokenizer = tokenizer
        return self._model, self._tokenizer

    def _inputs(self, messages: list[BaseMessage], prefix: str) -> Any:
        _, tokenizer = self.load()
        prompt = tokenizer.apply_chat_template(
            to_role_dicts(messages), tokenize=False, add_generation_prompt=True
        )
        return tokenizer(prompt + prefix, return_tensors="pt").to(self.device)

    def _gen_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        temperature = kwargs.get("temperature", self.temperature)
        gen: dict[str, Any] = {"max_new_tokens": kwargs.get("max_tokens", self.max_tokens)}
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature)
        else:
            gen.update(do_sample=False)
        return gen

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        prefix = JSON_PREFIX if kwargs.get("json_schema") is not None else ""
        model, tokenizer = self.load()
        with self._lock, torch.inference_mode():
            inputs = self._inputs(messages, prefix)
            out = model.generate(**inputs, **self._gen_kwargs(kwargs), pad_token_id=tokenizer.eos_token_id)
        text = prefix + tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import TextIteratorStreamer

        model, tokenizer = self.load()
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._lock:
            inputs = self._inputs(messages, "")

            def work() -> None:
                with torch.inference_mode():
                    model.generate(
                        **inputs,
                        **self._gen_kwargs(kwargs),
                        streamer=streamer,
                        pad_token_id=tokenizer.eos_token_id,
                    )

            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            for text in streamer:
                if text:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text))
            worker.join()
