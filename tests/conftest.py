"""Shared fixtures: every test gets its own data dir and no user config; real models are opt-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests must never reach a hub, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _find_real_planner() -> Path | None:
    """The planner GGUF from the user's own data dir (read before each test isolates the env)."""
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings
    from agent.models.catalogue import Catalogue

    try:
        return Catalogue.load(load_settings()).resolve("planner")
    except ModalgraphError:
        return None


REAL_PLANNER = _find_real_planner()

pytest_plugins = [
    "tests.conftest_library",
    "tests.generation_fixtures",
    "tests.projector_fixtures",
    "tests.session_backends",
]


@pytest.fixture(scope="session")
def prompt_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of saved llama.cpp prompt states for the whole run: the planner's 2,500-token
    instructions cost about 50 s to evaluate on two cores, so a test whose process or app is new
    restores them instead (tests of the cache itself give their models a folder of their own)."""
    return tmp_path_factory.mktemp("llama-state")


@pytest.fixture(scope="session")
def tables_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the run: the place table is folded and written once (about 10 s), then
    opened by every test and test process, as a user's processes share it."""
    return tmp_path_factory.mktemp("tables-cache")


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prompt_cache_dir: Path, tables_cache_dir: Path
) -> Path:
    data = tmp_path / "data"
    kept = ("MODALGRAPH_DATA_DIR", "MODALGRAPH_CONFIG", "MODALGRAPH_PROMPT_CACHE_DIR", "MODALGRAPH_CACHE_DIR")
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(data))
    monkeypatch.setenv("MODALGRAPH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("MODALGRAPH_PROMPT_CACHE_DIR", str(prompt_cache_dir))
    monkeypatch.setenv("MODALGRAPH_CACHE_DIR", str(tables_cache_dir))
    for key in list(os.environ):
        if key.startswith("MODALGRAPH_") and key not in kept:
            if key.startswith("MODALGRAPH_TEST_"):
                continue
            monkeypatch.delenv(key)
    return data


@pytest.fixture(scope="session")
def shared_llm(prompt_cache_dir: Path) -> object:
    """One real planner model for every test that only plans and answers: each new model would
    evaluate the planner's instructions again (about 50 s), and its context holds them after the
    first use, whatever the request."""
    if REAL_PLANNER is None:
        pytest.skip("planner GGUF not present: run `modalgraph models pull planner`")
    from agent.llm.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel(
        model_path=str(REAL_PLANNER), max_tokens=256, state_cache_dir=str(prompt_cache_dir)
    )


@pytest.fixture
def real_planner(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the planner at the real GGUF, or skip when it has not been pulled."""
    if REAL_PLANNER is None:
        pytest.skip("planner GGUF not present: run `modalgraph models pull planner`")
    monkeypatch.setenv("MODALGRAPH_MODEL_PLANNER", str(REAL_PLANNER))
    return REAL_PLANNER
