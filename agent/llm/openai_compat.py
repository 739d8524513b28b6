"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama) through langchain-openai."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from agent.core.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

    from agent.core.settings import Settings

PLAN_MAX_TOKENS = 512


def create_openai_chat_model(settings: Settings) -> BaseChatModel:
    try:
        import httpx
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise ConfigError(
            "llm_backend=openai needs langchain-openai: pip install 'modalgraph[openai]'"
        ) from None
    if not settings.llm_base_url:
        raise ConfigError("llm_backend=openai needs MODALGRAPH_LLM_BASE_URL, e.g. http://localhost:8000/v1")
    api_key = settings.llm_api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    return ChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.llm_model or "default",
        api_key=api_key,
        temperature=settings.temperature,
        max_completion_tokens=settings.max_answer_tokens,
        # A dead server must fail in seconds, not after the client's default ten minutes.
        timeout=httpx.Timeout(settings.llm_timeout_s, connect=5.0),
        max_retries=1,
    )


def _server_error(llm: Any, exc: Exception) -> BackendError:
    url = getattr(llm, "openai_api_base", None) or "the server"
    return BackendError(
        f"cannot use the LLM server at {url}: {type(exc).__name__}: {exc}; check MODALGRAPH_LLM_BASE_URL "
        "and that the server is running"
    )


def invoke_with_schema(llm: BaseChatModel, messages: list[BaseMessage], schema: dict[str, Any]) -> str:
    """Ask for schema-constrained JSON; servers that reject json_schema get json_object, then nothing."""
    import openai

    formats: list[dict[str, Any] | None] = [
        {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": False}},
        {"type": "json_object"},
        None,
    ]
    last: Exception | None = None
    for response_format in formats:
        kwargs: dict[str, Any] = {"temperature": 0.0, "max_completion_tokens": PLAN_MAX_TOKENS}
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            reply = llm.invoke(messages, **kwargs)
        except openai.BadRequestError as exc:  # this server does not know that response_format
            last = exc
            continue
        except (openai.APIConnectionError, openai.APITimeoutError, openai.APIStatusError) as exc:
            raise _server_error(llm, exc) from None
        return reply.content if isinstance(reply.content, str) else str(reply.content)
    raise _server_error(llm, last or RuntimeError("no reply"))
