"""Loading a transformers model folder into the budgeted cache: what the ASR and vision loaders share.

Each loader keeps its own model classes and checks; the folder check, the one-line load error and the
cache key (kind, folder, device, dtype) are the same for all of them, so they live here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.core.errors import ModelLoadError, one_line
from agent.models.devices import resolve_dtype
from agent.models.loading_logs import quiet_transformers

if TYPE_CHECKING:
    from agent.models.host import ModelHost

Loaded = TypeVar("Loaded")

# What a broken or mismatched folder raises inside from_pretrained.
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError)


@contextlib.contextmanager
def loading_folder(model_dir: Path, what: str, fix: str) -> Iterator[None]:
    """Run the block's `from_pretrained` calls quietly; a folder that is not a transformers model, or
    one that fails to load, raises ModelLoadError as one line. `fix` says how to get a right one."""
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(f"{model_dir} is not a transformers model folder (no config.json); {fix}")
    try:
        with quiet_transformers():
            yield
    except _LOAD_ERRORS as exc:
        raise ModelLoadError(f"cannot load the {what} from {model_dir}: {one_line(exc)}") from None


def cached_on_device(
    app: ModelHost, kind: str, model_dir: Path, load: Callable[[Path, str, Any], Loaded]
) -> Loaded:
    """`load(model_dir, device, dtype)` once per folder, device and dtype, kept in the model cache."""
    device = app.device
    dtype = resolve_dtype(app.settings.dtype, device)
    key = f"{kind}:{model_dir}:{device}:{dtype}"
    return app.model_cache.get(key, lambda: load(model_dir, device, dtype), device)
