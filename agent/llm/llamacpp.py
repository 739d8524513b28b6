"""Local GGUF models through llama-cpp-python, as a langchain-core chat model.

`json_schema=` on a call constrains decoding with a grammar built from the schema, so a plan from
a small local model is at least well-formed JSON of the right shape.

`plan_or_answer` is the one-call turn (see agent.llm.one_call): the model picks the first step's
tool, and either the plan is written under the schema's grammar or, for "no tool", the answer
follows without a grammar. A plain chat turn so costs one prompt evaluation and the answer's
tokens, close to a bare chat call, instead of a plan call followed by a second, differently
prompted call.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from agent.core.errors import ModelLoadError, one_line
from agent.llm.messages import to_role_dicts
from agent.llm.one_call import PlanFork


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
    flash_attn: bool = False
    temperature: float = 0.2
    max_tokens: int = 512
    seed: int = 0
    state_cache_dir: str | None = None
    _llama: Any = PrivateAttr(None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _formatter: Any = PrivateAttr(None)
    _states: Any = PrivateAttr(None)
    _grammars: dict[str, Any] = PrivateAttr(default_factory=dict)
    _forks: dict[PlanFork, _ForkTokens] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def supports_one_call(self) -> bool:
        """Planning and answering can share one generation (see `plan_or_answer`)."""
        return True

    def llama(self) -> Any:
        """The llama.cpp model, loaded on first use (once, even when a background warm-up and the
        first turn ask for it at the same time)."""
        with self._load_lock:
            return self._load()

    def _load(self) -> Any:
        if self._llama is None:
            from agent.llm.prompt_cache import PromptStateCache  # deferred: imports llama.cpp

            llama = load_llama(
                self.model_path,
                "re-fetch it with `modalgraph models pull planner` or point MODALGRAPH_MODEL_PLANNER at a valid .gguf",
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or os.cpu_count() or 1,
                n_gpu_layers=self.n_gpu_layers,
                flash_attn=self.flash_attn,
                seed=self.seed,
            )
            cache_dir = Path(self.state_cache_dir) / _state_key(self) if self.state_cache_dir else None
            # Not llama.set_cache: llama-cpp-python would then save the whole state after every call
            # (0.8 s here for a planner prompt, most of it a copy of a 300 MB logits buffer). States
            # are kept by `_keep` instead, only when no kept state already covers the prompt.
            self._states = PromptStateCache(self.n_ctx, cache_dir)
            self._llama = llama
        return self._llama

    def warm_up(self, messages: list[BaseMessage]) -> None:
        """Load the model and bring `messages` (the planner's fixed instructions) into its context,
        from the saved prompt state when there is one: what a first turn would otherwise wait for."""
        llama = self.llama()
        prompt = self._prompt_tokens(llama, messages)
        if prompt is None:
            return
        with self._lock:
            self._restore(llama, prompt)
            if _held_prefix(llama, prompt) < len(prompt):
                _next_logits(llama, prompt)
            self._keep(llama)

    def plan_or_answer(
        self, messages: list[BaseMessage], schema: dict[str, Any], plan_max_tokens: int, fork: PlanFork
    ) -> Iterator[tuple[str, str]]:
        """One generation that is either a plan or an answer: yields ("plan", the plan's JSON) once,
        or ("answer", text) pieces as they are decoded. Raises NotImplementedError, before yielding,
        where this model cannot branch (no chat template; a tokenizer that merges across the fork)
        and the caller makes two calls instead.

        The part of the prompt the context does not hold yet (the request, once the instructions'
        state is restored) and `fork.prefix` are evaluated as one batch; the logits there pick
        between the first tokens of the choices. An answer then has the no-tool suffix appended
        (one more batch) and is sampled on from there."""
        llama = self.llama()
        prompt = self._prompt_tokens(llama, messages)
        if prompt is None:
            raise NotImplementedError("this GGUF has no chat template to format a one-call prompt")
        cut = self._forks.get(fork)
        if cut is None:
            cut = self._forks[fork] = _fork_tokens(llama, fork)
        with self._lock:
            self._restore(llama, prompt)
            logits = _next_logits(llama, [*prompt, *cut.prefix])
            self._keep(llama)
            others = [logits[t] for t in cut.tool_firsts]
            if others and logits[cut.answer_first] <= max(others):
                done = llama.create_completion(
                    prompt=prompt,
                    grammar=self._grammar(schema),
                    temperature=0.0,
                    max_tokens=plan_max_tokens,
                    seed=self.seed,
                )
                yield "plan", done["choices"][0]["text"]
                return
            answered = False
            for part in llama.create_completion(
                prompt=[*prompt, *cut.prefix, *cut.answer],
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=self.seed,
                stream=True,
            ):
                text = part["choices"][0]["text"]
                if not answered and not text.strip():
                    continue  # blank lines between the plan and the answer
                answered = True
                yield "answer", text
            if not answered:  # the model chose "no tool" but wrote nothing: let a responder answer
                yield "plan", '{"steps": []}'

    def _prompt_tokens(self, llama: Any, messages: list[BaseMessage]) -> list[int] | None:
        """`messages` formatted with the GGUF's own chat template and tokenized, as
        create_chat_completion does; None without a template."""
        formatted = self._format(llama, messages)
        return None if formatted is None else _tokens(llama, formatted)

    def _format(self, llama: Any, messages: list[BaseMessage]) -> Any:
        """`messages` through the GGUF's own chat template (a ChatFormatterResponse: the prompt
        text, its stop strings and tokens); None when the GGUF has no template."""
        if self._formatter is None:
            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                return None
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # deferred: imports jinja2

            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        return self._formatter(messages=to_role_dicts(messages))

    def _grammar(self, schema: dict[str, Any]) -> Any:
        # Not sort_keys: the grammar writes properties in the schema's order, which is the order the
        # model decides in (the tool before its arguments; see agent.planning.plan).
        key = json.dumps(schema)
        if key not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar  # deferred: imports llama.cpp

            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _restore(self, llama: Any, prompt: list[int] | None) -> None:
        """Load the kept state sharing the longest prefix with `prompt`, when it beats what the
        context already holds (a responder call in between, or a new process)."""
        if self._states is None or prompt is None:
            return
        try:
            state = self._states[prompt]
        except KeyError:
            return
        from llama_cpp import Llama

        if Llama.longest_token_prefix(state.input_ids.tolist(), prompt) > _held_prefix(llama, prompt):
            llama.load_state(state)

    def _keep(self, llama: Any) -> None:
        """Keep the context's state (in RAM and on disk) unless a kept one already covers most of
        it: once per kind of prompt (the planner's, the responder's), not once per call."""
        if self._states is None:
            return
        held = llama.input_ids[: llama.n_tokens].tolist()
        if held and not self._states.covers(held):
            self._states[held] = llama.save_state()

    def _complete(
        self,
        llama: Any,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        stream: bool,
    ) -> Any:
        """A completion of `messages`: from the prompt's tokens, so they are formatted and tokenized
        once and the plan grammar is built once per schema (create_chat_completion would redo both
        on every call); through create_chat_completion's own format guess for a GGUF without a
        chat template."""
        options: dict[str, Any] = {
            "temperature": kwargs.get("temperature", self.temperature),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "seed": self.seed,
            "stream": stream,
        }
        schema = kwargs.get("json_schema")
        formatted = self._format(llama, messages)
        if formatted is None:
            if schema is not None:
                options["response_format"] = {"type": "json_object", "schema": schema}
            return llama.create_chat_completion(messages=to_role_dicts(messages), stop=stop or [], **options)
        prompt = _tokens(llama, formatted)
        self._restore(llama, prompt)
        ends = (
            formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if formatted.stop else []
        )
        return llama.create_completion(
            prompt=prompt,
            stop=[*(stop or []), *ends],
            stopping_criteria=formatted.stopping_criteria,
            grammar=self._grammar(schema) if schema is not None else None,
            **options,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama = self.llama()
        with self._lock:
            out = self._complete(llama, messages, stop, kwargs, stream=False)
            self._keep(llama)
        choice = out["choices"][0]
        text = choice["message"].get("content") if "message" in choice else choice["text"]
        message = AIMessage(
            content=text or "",
            response_metadata={"finish_reason": choice.get("finish_reason"), "usage": out.get("usage", {})},
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
            for part in self._complete(llama, messages, stop, kwargs, stream=True):
                choice = part["choices"][0]
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                if not text:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
            self._keep(llama)


def _state_key(model: LlamaCppChatModel) -> str:
    """The folder of a model's saved prompt states: fused attention lays the context's values out
    differently (not transposed), so a state saved with it on cannot be restored with it off."""
    return Path(model.model_path).stem + ("-fa" if model.flash_attn else "")


def _tokens(llama: Any, formatted: Any) -> list[int]:
    """A formatted chat prompt's tokens (its special tokens parsed, BOS added unless the template did)."""
    return list(
        llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
    )


def _held_prefix(llama: Any, prompt: list[int]) -> int:
    """How many leading tokens of `prompt` the context already holds."""
    return int(llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), prompt))


@dataclass(frozen=True)
class _ForkTokens:
    prefix: list[int]  # fork.prefix
    answer_first: int  # the first token of the no-tool choice
    tool_firsts: list[int]  # the first tokens of the other choices (never the no-tool one's)
    answer: list[int]  # the rest of the no-tool choice and its suffix


def _fork_tokens(llama: Any, fork: PlanFork) -> _ForkTokens:
    """`fork` in this model's tokens; NotImplementedError where a choice's tokens would not start
    exactly where the prefix's end (a merge across the boundary makes the fork unreadable), or where
    the no-tool choice shares its first token with another (one token's logit cannot tell them)."""

    def tokens(text: str) -> list[int]:
        return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    prefix = tokens(fork.prefix)
    rests: dict[str, list[int]] = {}
    for choice in fork.choices:
        whole = tokens(fork.prefix + choice + (fork.answer_suffix if choice == fork.answer_choice else ""))
        if whole[: len(prefix)] != prefix or len(whole) == len(prefix):
            raise NotImplementedError(f"this tokenizer merges {choice!r} into the plan's opening")
        rests[choice] = whole[len(prefix) :]
    answer = rests[fork.answer_choice]
    firsts = {rest[0] for choice, rest in rests.items() if choice != fork.answer_choice}
    if answer[0] in firsts:
        raise NotImplementedError(
            "this tokenizer starts the no-tool choice and another alike: one token cannot tell them"
        )
    return _ForkTokens(prefix, answer[0], sorted(firsts), answer)


def _next_logits(llama: Any, tokens: list[int]) -> Any:
    """The logits for the token after `tokens`, with `tokens` left evaluated in the context.

    Through `generate`, closed after its first sample: what is evaluated is the part of `tokens`
    the context does not already hold, in one batch, and nothing after it."""
    import numpy as np
    from llama_cpp import llama_get_logits_ith

    steps = llama.generate(tokens, temp=0.0)
    try:
        next(steps)
    finally:
        steps.close()
    # llama-cpp-python keeps no logits without logits_all; the context's last row is still there.
    return np.ctypeslib.as_array(llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),))
