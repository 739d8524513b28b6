"""What model-loading code reads from the running app, as a Protocol.

The capability packages (vision, generation, llm, tts, projector) are handed the app's resources
but must not import the app object that wires them (`agent.context.AppContext`): that object
also builds the tool registry and the image index, which sit above them. `AppContext` satisfies
these Protocols structurally.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.core.settings import Settings
    from agent.models.cache import ModelCache
    from agent.models.catalogue import Catalogue
    from memory.artifacts import ArtifactStore

# progress(message, fraction or None): long work reports as it goes.
ProgressFn = Callable[[str, "float | None"], None]


class ModelHost(Protocol):
    """Settings, the model catalogue, the budgeted cache, the resolved device, the artifact store,
    and the flag a front end sets when the user cancels."""

    @property
    def settings(self) -> Settings: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def model_cache(self) -> ModelCache: ...

    @property
    def device(self) -> str: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def cancel(self) -> threading.Event: ...


class StepHooks(Protocol):
    """What a long model call sees of the step that runs it: the app, progress and cancellation."""

    @property
    def app(self) -> ModelHost: ...

    @property
    def progress(self) -> ProgressFn: ...

    @property
    def cancelled(self) -> bool: ...
