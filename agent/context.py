"""One typed context object carries the resources (settings, models, stores) to the code that needs them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from agent.settings import Settings

if TYPE_CHECKING:
    from agent.catalogue import Catalogue
    from agent.model_cache import ModelCache
    from memory.artifacts import ArtifactStore
    from memory.image_index import ImageIndex
    from tools.registry import ToolRegistry

ProgressFn = Callable[[str, "float | None"], None]


def _no_progress(message: str, fraction: float | None = None) -> None:
    return None


@dataclass
class AppContext:
    """Process-wide resources, each built on first use so that start-up stays cheap."""

    settings: Settings
    # Set by a front end when the user cancels a turn (Ctrl-C); tools and the graph check it.
    cancel: threading.Event = field(default_factory=threading.Event)

    @cached_property
    def registry(self) -> ToolRegistry:
        from tools.registry import ToolRegistry

        return ToolRegistry.default(self.settings.extra_tools)

    @cached_property
    def catalogue(self) -> Catalogue:
        from agent.catalogue import Catalogue

        return Catalogue.load(self.settings)

    @cached_property
    def model_cache(self) -> ModelCache:
        from agent.model_cache import ModelCache

        budget = int(self.settings.memory_budget_gb * 2**30) or None
        return ModelCache(budget)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from memory.artifacts import ArtifactStore

        return ArtifactStore(self.settings.artifacts_dir)

    @cached_property
    def image_index(self) -> ImageIndex:
        from memory.image_index import ImageIndex

        return ImageIndex(self)

    @cached_property
    def device(self) -> str:
        from agent.devices import resolve_device

        return resolve_device(self.settings.device)

    def library_roots(self) -> list[Path]:
        """Folders the user indexed: tools may read files under them when an LLM names a path."""
        from memory.library_roots import load_library_roots

        return load_library_roots(self.settings)


@dataclass
class RunContext:
    """What one tool step sees: the app's resources plus this turn's trusted paths and progress hook."""

    app: AppContext
    step_id: int = 0
    trusted_paths: list[Path] = field(default_factory=list)
    progress: ProgressFn = _no_progress

    @property
    def cancelled(self) -> bool:
        """Long-running tools poll this between chunks of work and stop early when it is set."""
        return self.app.cancel.is_set()

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def resolve_path(self, raw: str | Path) -> Path:
        """A file path chosen by the LLM, checked by the shared path guard (`tools.paths`)."""
        from tools.paths import resolve_tool_path

        roots = [*self.app.library_roots(), self.app.settings.artifacts_dir]
        return resolve_tool_path(raw, roots, self.trusted_paths)
