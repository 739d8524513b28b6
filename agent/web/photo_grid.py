"""The Library tab's photo grid: the library newest first, or a search, a page at a time, as thumbnails.

Plain functions over the app context; the page (app.py) keeps a `Listing` between clicks, so "Load
more" continues where the grid ends. A page asks the index for one page (`ImageIndex.newest_page`,
or a search for the photos shown so far plus one page): nothing lists the whole library. The grid
shows thumbnails (`memory.thumbnails`), never originals; a photo's view shows the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.core.text import shown_path
from agent.web.uploads import UploadRejectedError, inspect_upload
from memory.photo_filters import PhotoFilters

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.web.serving import ServedFiles
    from memory.image_index import SearchHit
    from memory.photo_pages import Cursor

ListingKind = Literal["newest", "text", "image"]


@dataclass(frozen=True)
class Listing:
    """What the grid lists, and how far it got."""

    kind: ListingKind
    filters: PhotoFilters
    page: int
    text: str | None = None
    # A path the page trusts: a checked upload, or a library photo taken from the grid's own state.
    image: str | None = None
    cursor: Cursor | None = None  # newest first: where the next page starts
    shown: int = 0  # searches: how many were asked for so far
    more: bool = False

    @property
    def what(self) -> str:
        """In words, for the note above the grid."""
        if self.kind == "newest":
            return self.filters.describe() or "the whole library, newest first"
        subject = f"“{self.text}”" if self.kind == "text" else f"photos like {Path(self.image or '').name}"
        return " ".join(p for p in (subject, self.filters.describe()) if p)


@dataclass(frozen=True)
class GridPhoto:
    """One tile, and what its view shows."""

    path: str
    hash: str
    thumb: str
    caption: str
    details: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass
class GridPage:
    photos: list[GridPhoto]
    note: str
    listing: Listing

    def items(self) -> list[tuple[str, str]]:
        """Gallery items: (thumbnail, caption)."""
        return [(photo.thumb, photo.caption) for photo in self.photos]


def caption(hit: SearchHit) -> str:
    """ "0.312 · IMG_0001.jpg · 2019-06-14 · Lisbon, Portugal": the score only when ranked by likeness."""
    parts = [f"{hit.score:.3f}"] if hit.score else []
    parts.append(shown_path(Path(hit.path).name))
    if hit.taken:
        parts.append(hit.taken[:10] + (" (file date)" if hit.taken_guess else ""))
    if hit.place:
        parts.append(hit.place)
    return " · ".join(parts)


def _photos(hits: list[SearchHit], files: ServedFiles) -> tuple[list[GridPhoto], int]:
    """Tiles for the hits the page may show, and how many it may not."""
    photos = []
    for hit in hits:
        # A photo gone since indexing keeps its place, greyed, and its view says so.
        thumb = files.thumbnail(hit.path, hit.hash)
        if thumb is None:
            continue
        details = hit.details()
        photos.append(
            GridPhoto(hit.path, hit.hash, thumb, caption(hit), details, shown_path(Path(hit.path).name))
        )
    return photos, len(hits) - len(photos)


def _note(count: int, listing: Listing, hidden: int, total: int | None = None) -> str:
    shown = total if total is not None else count
    note = f"{shown} result{'s' if shown != 1 else ''} for {listing.what}"
    if hidden:
        # Gradio resolves symlinks before its own check, so a photo reached through a symlinked
        # folder counts as outside the library.
        note += f" ({hidden} not shown: outside the indexed folders once links are followed)"
    if not shown:
        return note + "."
    return note + ("; more below" if listing.more else "") + "; click one to see it."


def start_listing(
    app: AppContext,
    files: ServedFiles,
    page: int,
    text: str | None = None,
    image: str | None = None,
    filters: PhotoFilters | None = None,
) -> GridPage:
    """The grid's first page: the library newest first (no text, no image), or a search."""
    filters = filters or PhotoFilters()
    query = (text or "").strip() or None
    kind: ListingKind = "image" if image else "text" if query else "newest"
    listing = Listing(kind, filters, max(1, page), text=query, image=image)
    return next_page(app, files, listing, [])


def next_page(app: AppContext, files: ServedFiles, listing: Listing, shown: list[GridPhoto]) -> GridPage:
    """The photos that follow `shown` in `listing`; the page's note counts them all."""
    index = app.image_index
    files.refresh()  # a folder indexed from the CLI meanwhile: its photos may be shown
    if listing.kind == "newest":
        hits, cursor = index.newest_page(listing.filters, listing.page, listing.cursor)
        listing = replace(listing, cursor=cursor, more=cursor is not None)
        photos, hidden = _photos(hits, files)
        return GridPage(photos, _note(len(photos), listing, hidden, len(shown) + len(photos)), listing)
    k = listing.shown + listing.page
    outcome = index.search(text=listing.text, image=listing.image, filters=listing.filters, k=k)
    if outcome.no_match:
        listing = replace(listing, shown=k, more=False)
        photos, _ = _photos(outcome.closest, files)
        return GridPage(
            photos,
            f"No photos look like {listing.what}; the closest are shown, and they do not match.",
            listing,
        )
    seen = {photo.hash for photo in shown}
    fresh = [hit for hit in outcome.hits if hit.hash not in seen]
    listing = replace(listing, shown=k, more=len(outcome.hits) >= k)
    photos, hidden = _photos(fresh, files)
    return GridPage(photos, _note(len(photos), listing, hidden, len(shown) + len(photos)), listing)


def example_image(path: str, max_bytes: int) -> str:
    """An uploaded example checked like any upload: an image, within the size limit."""
    _, mime, _ = inspect_upload(path, max_bytes)
    if not mime.startswith("image/"):
        raise UploadRejectedError(f"{Path(path).name} is {mime}; the example must be an image")
    return path


def tile_at(tiles: list[GridPhoto], index: object) -> GridPhoto | None:
    """The tile a click names by its place in a grid, or None when the place is not one of them
    (a forged request: not a whole number, or out of range)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(tiles):
        return None
    return tiles[index]


def view_text(photo: GridPhoto, present: bool) -> str:
    """The view's words: when, where, with what, how big, and where the file is."""
    details = photo.details
    size = (
        f" · {details['width']} × {details['height']}"
        if details.get("width") and details.get("height")
        else ""
    )
    taken = "unknown"
    if details.get("taken"):
        taken = _day_words(str(details["taken"])) + (
            " (the file's date: the photo holds none)" if details.get("taken_is_file_date") else ""
        )
    lines = [
        f"**{photo.name}**{size}",
        f"- **Taken:** {taken}",
        f"- **Place:** {details.get('place') or 'unknown'}",
        f"- **Camera:** {details.get('camera') or 'unknown'}",
        f"- **Folder:** `{shown_path(Path(photo.path).parent)}`",
    ]
    if not present:
        lines.append("\nThe file is gone or cannot be read; index the folder again to drop it.")
    return "\n".join(lines)


def _day_words(taken: str) -> str:
    """ "June 14, 2019, 18:30" from the stored local time."""
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(taken)
    except ValueError:
        return taken
    clock = f", {moment:%H:%M}" if (moment.hour, moment.minute, moment.second) != (0, 0, 0) else ""
    return f"{moment:%B} {moment.day}, {moment.year}{clock}"
