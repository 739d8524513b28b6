"""Local GGUF models through llama-cpp-python, as a langchain-core chat model.

`json_schema=` on a call constrains decoding with a grammar built from the schema, so a plan from
a small local model is at least well-formed JSON of the right shape.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from agent.core.errors import ModelLoadError, one_line
from agent.llm.messages import to_role_dicts


def load_llama(model_path: str, hint: str, purpose: str = "", **options: Any) -> Any:
    """A quiet `llama_cpp.Llama` over the GGUF at `model_path`; a file it cannot load raises
    `ModelLoadError` naming the file, what it was for (`purpose`, e.g. " for projector features"),
    the reason, and `hint` on how to fix it."""
    from llama_cpp import Llama

    try:
        return Llama(model_path=model_path, verbose=False, **options)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"cannot load GGUF {model_path}{purpose}: {one_line(exc)}; {hint}") from None


class LlamaCppChatModel(BaseChatModel):
    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = -1
    temperature: float = 0.2
    max_tokens: int = 512
    seed: int = 0
    state_cache_dir: str | None = None
    _llama: Any = PrivateAttr(None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def llama(self) -> Any:
        """The llama.cpp model, loaded on first use."""
        if self._llama is None:
            from agent.llm.prompt_cache import PromptStateCache  # deferred: imports llama.cpp

            llama = load_llama(
                self.model_path,
                "re-fetch it with `modalgraph models pull planner` or point MODALGRAPH_MODEL_PLANNER at a valid .gguf",
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or os.cpu_count() or 1,
                n_gpu_layers=self.n_gpu_layers,
                seed=self.seed,
            )
            cache_dir = (
                Path(self.state_cache_dir) / Path(self.model_path).stem if self.state_cache_dir else None
            )
            llama.set_cache(PromptStateCache(self.n_ctx, cache_dir))
            self._llama = llama
        return self._llama

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict:
        request: dict[str, Any] = {
            "messages": to_role_dicts(messages),
            "temperature": kwargs.get("temperature", self.temperature),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "stop": stop or [],
            "seed": self.seed,
        }
        schema = kwargs.get("json_schema")
        if schema is not None:
            request["response_format"] = {"type": "json_object", "schema": schema}
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama = self.llama()
        with self._lock:
            out = llama.create_chat_completion(**self._request(messages, stop, kwargs))
        choice = out["choices"][0]
        usage = out.get("usage", {})
        message = AIMessage(
            content=choice["message"].get("content") or "",
            response_metadata={"finish_reason": choice.get("finish_reason"), "usage": usage},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama = self.llama()
        with self._lock:
            for part in llama.create_chat_completion(stream=True, **self._request(messages, stop, kwargs)):
                text = part["choices"][0]["delta"].get("content")
                if not text:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
