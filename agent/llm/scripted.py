"""A chat model that replies from a script: for tests and demos that must not need weights.

Each reply is a string (or a JSON object, sent as its JSON text), `{"raise": "message"}` to simulate a
backend failure, or `{"delay_s": 2.0, "content": reply}` to answer `reply` after that many seconds, as
a slow model would (so a test can watch the page while the planner "thinks"). The prompts it was
given are recorded so tests can check what the planner showed the LLM (e.g. a validation error).

With `one_call` (`{"one_call": true, "replies": [...]}` in a script file) the model also plays a
backend that plans or answers in one generation: a reply that is not a JSON object is the answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from agent.core.errors import BackendError, ConfigError


class ScriptExhaustedError(BackendError):
    pass


class ScriptedChatModel(BaseChatModel):
    replies: list[Any] = Field(default_factory=list)
    cycle: bool = False
    one_call: bool = False
    _position: int = PrivateAttr(0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def from_file(cls, path: Path) -> ScriptedChatModel:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read LLM script {path}: {exc}") from None
        if isinstance(data, dict):
            return cls(
                replies=list(data.get("replies", [])),
                cycle=bool(data.get("cycle", False)),
                one_call=bool(data.get("one_call", False)),
            )
        return cls(replies=list(data))

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def supports_one_call(self) -> bool:
        return self.one_call

    def _next(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        with self._lock:
            self.prompts.append(list(messages))
            self.call_kwargs.append(dict(kwargs))
            if self._position >= len(self.replies):
                if not (self.cycle and self.replies):
                    raise ScriptExhaustedError("the scripted LLM has no reply left")
                self._position = 0
            reply = self.replies[self._position]
            self._position += 1
        if isinstance(reply, dict) and "delay_s" in reply:
            time.sleep(float(reply["delay_s"]))  # outside the lock: other callers are not held up
            reply = reply.get("content", "")
        if isinstance(reply, dict) and "raise" in reply:
            raise BackendError(str(reply["raise"]))
        return reply if isinstance(reply, str) else json.dumps(reply)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self._next(messages, kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._next(messages, kwargs)
        for piece in _words(text):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def plan_or_answer(
        self, messages: list[BaseMessage], schema: dict[str, Any], plan_max_tokens: int, fork: Any = None
    ) -> Iterator[tuple[str, str]]:
        """The one-call turn (see agent.llm.llamacpp): the next reply as a plan or as answer pieces."""
        if not self.one_call:
            raise NotImplementedError("this scripted model plays a two-call backend")
        text = self._next(messages, {"json_schema": schema, "max_tokens": plan_max_tokens})
        if text.lstrip().startswith("{"):
            yield "plan", text
            return
        for piece in _words(text):
            yield "answer", piece


def _words(text: str) -> Iterator[str]:
    start = 0
    for i, ch in enumerate(text):
        if ch == " ":
            yield text[start : i + 1]
            start = i + 1
    if start < len(text):
        yield text[start:]
