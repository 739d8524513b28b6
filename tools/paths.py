"""The one place that decides which files a tool may read.

Paths the user gives (command line, attachments) are trusted. A path that comes from the LLM is
accepted only when, fully resolved (symlinks and `..` followed), it lies inside a library root or
the artifact store: a planner talked into `/etc/passwd` gets a refusal, not the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.core.errors import ToolInputError


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    for root in roots:
        try:
            if path.is_relative_to(root.resolve()):
                return True
        except OSError:
            continue
    return False


def check_readable_file(path: Path) -> Path:
    if not path.exists():
        raise ToolInputError(f"file not found: {path}")
    if not path.is_file():
        raise ToolInputError(f"not a file: {path}")
    return path


def resolve_tool_path(raw: str | Path, allowed_roots: Iterable[Path], trusted: Iterable[Path] = ()) -> Path:
    """Resolve `raw` and return it when it may be read; raise ToolInputError otherwise."""
    text = str(raw).strip()
    if not text:
        raise ToolInputError("empty file path")
    try:
        path = Path(text).expanduser().resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise ToolInputError(f"cannot resolve path {text}: {exc}") from None
    trusted_resolved = {Path(p).expanduser().resolve() for p in trusted}
    if path not in trusted_resolved and not _inside(path, allowed_roots):
        raise ToolInputError(
            f"refused to read {text}: it is outside the image library and the artifact store "
            "(index its folder with `modalgraph index FOLDER`, or attach the file yourself)"
        )
    return check_readable_file(path)
