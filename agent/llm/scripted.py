"""A chat model that replies from a script: for tests and demos that must not need weights.

Each reply is a string, or `{"raise": "message"}` to simulate a backend failure. The prompts it was
given are recorded so tests can check what the planner showed the LLM (e.g. a validation error).
"""

from __future__ import annotations

import json
import threading
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
            return cls(replies=list(data.get("replies", [])), cycle=bool(data.get("cycle", False)))
        return cls(replies=list(data))

    @property
    def _llm_type(self) -> str:
        return "scripted"

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


def _words(text: str) -> Iterator[str]:
    start = 0
    for i, ch in enumerate(text):
        if ch == " ":
            yield text[start : i + 1]
            start = i + 1
    if start < len(text):
        yield text[start:]
