"""The Library and Models panels: index a folder, say what is indexed, list the models.

The photo grid (browsing and searching) is photo_grid.py.

Plain functions over the app context; the page (app.py) wires them to Gradio components.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ToolInputError
from agent.core.text import shown_path
from agent.models.catalogue import Catalogue

if TYPE_CHECKING:
    from agent.context import AppContext
    from memory.image_index import IndexProgress, IndexReport

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


def model_rows(app: AppContext) -> list[list[str]]:
    """One row per catalogue entry: present or not, and where it is or how to get it."""
    catalogue = Catalogue.load(app.settings)  # not the cached one: this reads what is on disk now
    rows = []
    for name in catalogue.names():
        status = catalogue.status(name)
        where = str(status.path) if status.present else status.detail
        rows.append([name, status.format, "yes" if status.present else "no", status.source, where])
    return rows
