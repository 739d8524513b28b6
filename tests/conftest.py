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


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(data))
    monkeypatch.setenv("MODALGRAPH_CONFIG", str(tmp_path / "no-config.toml"))
    for key in list(os.environ):
        if key.startswith("MODALGRAPH_") and key not in ("MODALGRAPH_DATA_DIR", "MODALGRAPH_CONFIG"):
            if key.startswith("MODALGRAPH_TEST_"):
                continue
            monkeypatch.delenv(key)
    return data


@pytest.fixture
def real_planner(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the planner at the real GGUF, or skip when it has not been pulled."""
    if REAL_PLANNER is None:
        pytest.skip("planner GGUF not present: run `modalgraph models pull planner`")
    monkeypatch.setenv("MODALGRAPH_MODEL_PLANNER", str(REAL_PLANNER))
    return REAL_PLANNER
