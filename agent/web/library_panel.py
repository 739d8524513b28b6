"""The Library and Models panels: index a folder, search by text or example image, list the models.

Plain functions over the app context; the page (app.py) wires them to Gradio components.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ToolInputError
from agent.core.text import shown_path
from agent.models.catalogue import Catalogue
from agent.web.uploads import UploadRejectedError, inspect_upload
from memory.photo_filters import PhotoFilters

if TYPE_CHECKING:
    from agent.context import AppContext
    from memory.image_index import IndexProgress, IndexReport, SearchHit

ProgressFn = Callable[[float | None, str], None]
MODEL_COLUMNS = ["model", "format", "present", "found in", "path, or how to get it"]


def index_folder(app: AppContext, folder: str, progress: ProgressFn) -> str:
    """Index one folder, reporting (fraction or None, description) as it goes; returns a summary."""
    text = folder.strip()
    if not text:
        raise ToolInputError("type the path of a folder of photos to index")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ToolInputError(f"not a folder: {text}")

    def on_progress(event: IndexProgress) -> None:
        if event.phase == "scanning":
            progress(None, "scanning the folder")
        elif event.phase == "metadata":
            progress(event.done / event.total if event.total else None, "reading dates and places")
        elif event.phase == "loading":
            progress(None, "loading CLIP")
        elif event.total:
            progress(event.done / event.total, f"indexing: {event.done} of {event.total} images")

    report = app.image_index.index([path], progress=on_progress)
    return report_text(report)


def report_text(report: IndexReport) -> str:
    new = report.embedded + report.reused
    lines = [
        f"Indexed **{', '.join(report.roots)}**: {new} new or changed image{'s' if new != 1 else ''}, "
        f"{report.unchanged} unchanged, {report.removed} removed, {len(report.skipped)} skipped, "
        f"in {report.seconds:.1f} s."
    ]
    lines += [f"- skipped `{shown_path(item.path)}`: {item.reason}" for item in report.skipped[:20]]
    if len(report.skipped) > 20:
        lines.append(f"- … and {len(report.skipped) - 20} more")
    return "\n".join(lines)


def library_status(app: AppContext) -> str:
    status = app.image_index.status()
    if not status.model_id:
        return f"The CLIP model is not available: {status.model_problem}"
    if not status.roots:
        return f"Nothing indexed yet (model {status.model_id}). Index a folder of photos below."
    folders = ", ".join(f"`{root.root}` ({root.files} files)" for root in status.roots)
    return f"{status.vectors} images indexed with {status.model_id}, from {folders}."


def search_text(
    app: AppContext,
    text: str,
    k: int,
    shows: Callable[[str], bool],
    filters: PhotoFilters | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """Gallery items (path, caption with the score, date and place) and a one-line note about them.
    Text, filters or both: filters alone list the matching photos newest first."""
    query = (text or "").strip() or None
    filters = filters or PhotoFilters()
    if query is None and filters.empty:
        raise ToolInputError("type what to look for, e.g. a dog on a beach, or fill in a filter")
    outcome = app.image_index.search(text=query, filters=filters, k=k)
    what = " ".join(p for p in (f"“{query}”" if query else "", filters.describe()) if p) or "photos"
    if outcome.no_match:
        items, _ = _gallery(outcome.closest, what, shows)
        return items, f"No photos look like {what}; the closest are shown, and they do not match."
    return _gallery(outcome.hits, what, shows)


def search_image(
    app: AppContext,
    image: str,
    k: int,
    shows: Callable[[str], bool],
    max_bytes: int,
    filters: PhotoFilters | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """Like `search_text`, for an uploaded example image (checked like any upload)."""
    _, mime, _ = inspect_upload(image, max_bytes)
    if not mime.startswith("image/"):
        raise UploadRejectedError(f"{Path(image).name} is {mime}; the example must be an image")
    filters = filters or PhotoFilters()
    hits = app.image_index.search(image=image, filters=filters, k=k).hits
    return _gallery(hits, " ".join(p for p in ("the example image", filters.describe()) if p), shows)


def _gallery(
    hits: list[SearchHit], what: str, shows: Callable[[str], bool]
) -> tuple[list[tuple[str, str]], str]:
    items = [(hit.path, caption(hit)) for hit in hits if shows(hit.path)]
    note = f"{len(items)} result{'s' if len(items) != 1 else ''} for {what}"
    if len(items) < len(hits):
        # Gradio resolves symlinks before its own check, so a photo reached through a symlinked
        # folder counts as outside the library.
        note += f" ({len(hits) - len(items)} not shown: outside the indexed folders once links are followed)"
    return items, note + ("; click one to ask about it in the chat." if items else ".")


def caption(hit: SearchHit) -> str:
    """ "0.312 · IMG_0001.jpg · 2019-06-14 · Lisbon, Portugal": the score only when ranked by likeness."""
    parts = [f"{hit.score:.3f}"] if hit.score else []
    parts.append(shown_path(Path(hit.path).name))
    if hit.taken:
        parts.append(hit.taken[:10] + (" (file date)" if hit.taken_guess else ""))
    if hit.place:
        parts.append(hit.place)
    return " · ".join(parts)


def model_rows(app: AppContext) -> list[list[str]]:
    """One row per catalogue entry: present or not, and where it is or how to get it."""
    catalogue = Catalogue.load(app.settings)  # not the cached one: this reads what is on disk now
    rows = []
    for name in catalogue.names():
        status = catalogue.status(name)
        where = str(status.path) if status.present else status.detail
        rows.append([name, status.format, "yes" if status.present else "no", status.source, where])
    return rows
