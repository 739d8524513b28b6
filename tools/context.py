"""What one tool step sees: the app's resources it declared a need for, this turn's trusted paths,
and its progress hook (pydantic-ai's `RunContext`, kept low so that tools never import the app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.models.host import ModelHost, ProgressFn
from tools.paths import resolve_tool_path

if TYPE_CHECKING:
    from agent.core.settings import Settings
    from memory.image_index import ImageIndex


def _no_progress(message: str, fraction: float | None = None) -> None:
    return None


class ToolHost(ModelHost, Protocol):
    """The app as tools see it: the model resources plus the user's image library."""

    @property
    def image_index(self) -> ImageIndex: ...

    def library_roots(self) -> list[Path]: ...


@dataclass
class RunContext:
    """One step's context. `app` is the running `agent.context.AppContext`."""

    app: ToolHost
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
        roots = [*self.app.library_roots(), self.app.settings.artifacts_dir]
        return resolve_tool_path(raw, roots, self.trusted_paths)
