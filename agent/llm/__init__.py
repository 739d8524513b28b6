"""LLM backends, all as langchain-core chat models; `create_chat_model` picks one from settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ConfigError, ModelMissingError
from agent.llm.openai_compat import create_openai_chat_model

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agent.models.host import ModelHost


def _planner_path(app: ModelHost) -> Path:
    """The planner GGUF; on first use it is fetched (with a progress bar) rather than refused."""
    try:
        return app.catalogue.resolve("planner")
    except ModelMissingError:
        app.settings.ensure_data_dir()
        return app.catalogue.pull("planner", progress=True)


def create_chat_model(app: ModelHost) -> BaseChatModel:
    s = app.settings
    if s.llm_backend == "llamacpp":
        from agent.llm.llamacpp import LlamaCppChatModel  # deferred: imports langchain

        path = _planner_path(app)
        return LlamaCppChatModel(
            model_path=str(path),
            n_ctx=s.n_ctx,
            n_threads=s.n_threads,
            n_gpu_layers=s.n_gpu_layers,
            flash_attn=s.flash_attn,
            temperature=s.temperature,
            max_tokens=s.max_answer_tokens,
            state_cache_dir=str(s.prompt_cache_dir or s.data_dir / "cache" / "llama-state"),
        )
    if s.llm_backend == "openai":
        return create_openai_chat_model(s)
    if s.llm_backend == "transformers":
        from agent.llm.hf_transformers import TransformersChatModel  # deferred: imports langchain

        return TransformersChatModel.from_catalogue(app)
    if s.llm_backend == "scripted":
        from agent.llm.scripted import ScriptedChatModel  # deferred: imports langchain

        if s.llm_script is None:
            raise ConfigError("llm_backend=scripted needs MODALGRAPH_LLM_SCRIPT=/path/to/replies.json")
        return ScriptedChatModel.from_file(s.llm_script)
    raise ConfigError(f"unknown llm backend {s.llm_backend!r}")  # pragma: no cover - Literal guards it
