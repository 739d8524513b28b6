"""Where the web page listens, and which files it may send to a browser.

The page has no login and can run every tool, so it binds to loopback unless the user says
otherwise, loudly. It sends files only from the artifact store and the indexed library folders,
plus Gradio's own cache (uploads, and the copies Gradio makes of what a handler returns), which
lives in the data dir rather than the shared /tmp/gradio. Gradio's allowed_paths/blocked_paths
say so; `FileRouteGuard` says it again, stricter, in front of Gradio's file route, so that a
change in Gradio's rules cannot widen what is served.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.asgi import ASGIApp, Receive, Scope, Send, refuse
from agent.core.errors import ConfigError
from agent.core.hosts import is_loopback
from agent.core.settings import config_file_path
from memory.artifacts import guess_mime
from memory.image_files import is_image_name
from memory.library_roots import load_library_roots
from memory.thumbnails import PhotoRefusedError, ThumbnailCache, ThumbnailUnavailableError

if TYPE_CHECKING:
    from agent.core.settings import Settings


SAFE_KINDS = frozenset({"image", "audio", "video"})
UNSAFE_MIMES = frozenset({"image/svg+xml"})
SAFE_TEXT = frozenset({"text/plain"})
# Gradio's routes that read a local file named in the URL (the second one is its deprecated alias).
FILE_ROUTE_MARKERS = ("/gradio_api/file=", "/gradio_api/file/")


def check_host(host: str, allow_remote: bool) -> str | None:
    """None for a loopback host; the warning to print when a remote one is allowed; else a ConfigError."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ConfigError(
            f"refusing to listen on {host}: the page has no login, and anyone who reaches it can run "
            "the tools and see your library and generated files; keep the default --host 127.0.0.1, "
            "or add --allow-remote if you mean it"
        )
    return (
        f"warning: listening on {host}, not only on this machine: anyone who can reach it can use the "
        "assistant, see the indexed photos and the generated files, with no login"
    )


def resolved_path(raw: str | Path) -> Path | None:
    """`raw` made absolute with `~`, `..` and symlinks followed; None when it cannot be (a loop, a NUL)."""
    try:
        return Path(os.path.abspath(os.path.expanduser(str(raw)))).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None


def is_inside(path: Path, folder: Path) -> bool:
    """Whether the resolved `path` lies in `folder` (resolved here)."""
    resolved = resolved_path(folder)
    return resolved is not None and path.is_relative_to(resolved)


class ServedFiles:
    """The policy for files the page sends.

    Library folders are read on every check (a cheap SQLite query), so a folder indexed while the
    page runs, from the page or the CLI, is served at once, and a forgotten one no longer is.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._blocks: Any = None
        self.thumbnails = ThumbnailCache(
            settings.thumbnails_dir,
            lambda: [settings.artifacts_dir, *self.library_roots()],
            max_bytes=int(settings.thumbnail_cache_mb * 2**20),
            max_pixels=int(settings.index_max_megapixels * 10**6),
        )

    @property
    def cache_dir(self) -> Path:
        return self.settings.web_cache_dir

    def library_roots(self) -> list[Path]:
        return load_library_roots(self.settings)

    def allowed_paths(self) -> list[str]:
        """What handlers may return (and Gradio may copy to its cache): the artifact store and library."""
        return [
            str(self.settings.artifacts_dir),
            str(self.settings.thumbnails_dir),
            *(str(root) for root in self.library_roots()),
        ]

    def blocked_paths(self) -> list[str]:
        """Never sent, even when a library folder holds them (say, someone indexed their home folder)."""
        db = self.settings.sessions_db
        return [
            str(db),
            f"{db}-wal",
            f"{db}-shm",
            str(self.settings.index_dir),
            str(self.settings.models_dir),
            str(self.settings.data_dir / "cache"),
            str(config_file_path()),
        ]

    def shows(self, raw: str | Path) -> bool:
        """May a handler put this file on the page? An artifact, or an image file in a library folder."""
        path = resolved_path(raw)
        if path is None or not path.is_file():
            return False
        if any(is_inside(path, Path(blocked)) for blocked in self.blocked_paths()):
            return False
        if is_inside(path, self.settings.thumbnails_dir):
            return path.suffix == ".jpg"  # only what ThumbnailCache writes
        if is_inside(path, self.settings.artifacts_dir):
            # Media and plain text only: an HTML or SVG file served from this origin could run
            # script in the page.
            mime = guess_mime(path)
            return mime in SAFE_TEXT or (mime.split("/", 1)[0] in SAFE_KINDS and mime not in UNSAFE_MIMES)
        for root in self.library_roots():
            resolved_root = resolved_path(root)
            if resolved_root is None or not path.is_relative_to(resolved_root):
                continue
            # The index only reads image files and skips hidden ones: serve no more than that.
            hidden = any(part.startswith(".") for part in path.relative_to(resolved_root).parts)
            return is_image_name(path.name) and not hidden
        return False

    def serves(self, raw: str) -> bool:
        """May the file route send this? What `shows` allows, or a file in the page's own cache."""
        if "://" in raw:
            return False  # Gradio would fetch remote URLs for the browser; this page never needs to
        path = resolved_path(raw)
        if path is None:
            return False
        if is_inside(path, self.cache_dir):
            return path.is_file()
        return self.shows(path)

    def thumbnail(self, raw: str | Path, digest: str | None = None) -> str | None:
        """The thumbnail to show for a photo: its own, a grey placeholder when the photo is gone or
        broken, None when it may not be shown at all."""
        if not self.shows(raw) and not self._vanished_in_library(raw):
            return None
        try:
            return str(self.thumbnails.thumbnail(raw, digest))
        except PhotoRefusedError:
            return None
        except ThumbnailUnavailableError:
            return str(self.thumbnails.placeholder())

    def _vanished_in_library(self, raw: str | Path) -> bool:
        """A photo the index still lists but whose file is gone: its place in a grid stays, greyed."""
        path = resolved_path(raw)
        return (
            path is not None
            and not path.exists()
            and is_image_name(path.name)
            and any(is_inside(path, root) for root in self.library_roots())
        )

    def bind(self, blocks: Any) -> None:
        """Keep this Blocks' allowed_paths in step with the library folders (see `refresh`)."""
        self._blocks = blocks

    def refresh(self) -> None:
        """Gradio refuses to copy a file outside allowed_paths; call before returning library files."""
        if self._blocks is not None:
            self._blocks.allowed_paths = self.allowed_paths()


def file_route_target(path: str) -> str | None:
    """The local path a request to Gradio's file route names, or None for any other route."""
    for marker in FILE_ROUTE_MARKERS:
        at = path.find(marker)
        if at != -1:
            return path[at + len(marker) :]
    return None


class FileRouteGuard:
    """ASGI middleware: answer 403 to a file-route request for anything `ServedFiles.serves` refuses.

    It sees the path after percent-decoding (as the route does), and resolves `..` and symlinks
    before deciding, so `%2e%2e`, `..` and a symlink out of an allowed folder all end here.
    """

    def __init__(self, app: ASGIApp, files: ServedFiles) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = file_route_target(scope.get("path", ""))
            if target is not None and not self.files.serves(target):
                await refuse(send, 403, b"File not allowed.")
                return
        await self.app(scope, receive, send)


def prepare_gradio_env(settings: Settings) -> None:
    """Environment Gradio reads at import: no telemetry or update checks, and its cache in the data dir.

    Must run before `import gradio`: some of its modules read GRADIO_TEMP_DIR once, at import.
    """
    settings.web_cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(settings.web_cache_dir)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
