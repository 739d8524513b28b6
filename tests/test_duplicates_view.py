"""The Library tab's Duplicates view, without a browser: captions, the note, the rows of tiles (kept
copy first, unshowable files left out), and a click naming no tile refused."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from agent.context import AppContext
from agent.web.duplicates_view import (
    MOVE_HINT,
    find_groups,
    group_rows,
    member_caption,
    report_note,
)
from agent.web.photo_grid import GridPhoto, tile_at
from agent.web.serving import ServedFiles
from memory.duplicates import DuplicateGroup, DuplicateMember, DuplicateReport
from tests.exif_photos import save_photo


def _member(path: str, digest: str, width: int | None = 640, distance: int = 0) -> DuplicateMember:
    return DuplicateMember(
        path, digest, 1000, width, 480 if width else None, "2019-06-14T10:00:00", distance, 1.0
    )


class FakeFiles:
    """ServedFiles' two calls the view makes: thumbnails for all but the `refused` paths."""

    def __init__(self, refused: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.refused = refused

    def thumbnail(self, raw: str, digest: str | None = None) -> str | None:
        return None if raw in self.refused else f"/thumbs/{digest}.jpg"

    def refresh(self) -> None:
        pass


def test_captions_mark_the_kept_copy_and_give_the_others_distance() -> None:
    kept = member_caption(_member("/p/IMG_1.jpg", "a"), kept=True)
    assert kept == "keep · p/IMG_1.jpg · 640 × 480 · 2019-06-14"
    other = member_caption(_member("/p/small.jpg", "b", distance=7), kept=False)
    assert other.startswith("p/small.jpg · ") and other.endswith(" · 7 bits") and "keep" not in other
    assert member_caption(_member("/p/x.jpg", "c", width=None, distance=1), kept=False).endswith(
        "size unknown · 2019-06-14 · 1 bit"
    )


def test_rows_put_the_kept_copy_first_and_leave_out_what_may_not_be_shown() -> None:
    group = DuplicateGroup(
        "near", _member("/p/a.jpg", "a"), (_member("/p/b.jpg", "b", 320, 5), _member("/p/c.jpg", "c", 320, 9))
    )
    lonely = DuplicateGroup("exact", _member("/p/d.jpg", "d"), (_member("/elsewhere/d.jpg", "d"),))
    records = {"a": {"taken": "2019-06-14T10:00:00", "camera_make": "Canon", "camera_model": "EOS 80D"}}
    rows = group_rows([group, lonely], records, FakeFiles({"/p/c.jpg", "/elsewhere/d.jpg"}))  # type: ignore[arg-type]
    assert len(rows) == 1  # the second group has one showable file left: nothing to compare
    tiles = rows[0].tiles
    assert [t.path for t in tiles] == ["/p/a.jpg", "/p/b.jpg"]
    assert tiles[0].caption.startswith("keep · p/a.jpg") and tiles[1].caption.endswith("5 bits")
    assert tiles[0].thumb == "/thumbs/a.jpg" and tiles[0].details["camera"] == "Canon EOS 80D"
    assert "Group 1" in rows[0].heading and "keep: a.jpg" in rows[0].heading


def test_the_note_counts_the_groups_and_says_how_to_act_on_them() -> None:
    group = DuplicateGroup("exact", _member("/p/a.jpg", "a"), (_member("/q/a.jpg", "a"),))
    note = report_note(DuplicateReport([group, group], 40, 12, 0.85), shown=1)
    assert note.startswith("2 groups of duplicates among 40 photos: 2 copies")
    assert "The 1 largest groups are shown" in note and MOVE_HINT in note and "--move-to" in note
    assert report_note(DuplicateReport([], 40, 12, 0.85), shown=0) == "No duplicates among 40 photos."


def test_a_click_naming_no_tile_is_refused() -> None:
    tiles = [GridPhoto(f"/p/{i}.jpg", str(i), "", "") for i in range(3)]
    assert tile_at(tiles, 2) is tiles[2]
    for forged in (3, -1, True, "1", 1.0, None, [0, 1]):
        assert tile_at(tiles, forged) is None, forged


def test_find_groups_shows_copies_of_one_photo_and_not_a_different_one(
    library_app: AppContext, sample_photos: dict, tmp_path: Path
) -> None:
    folder = tmp_path / "Pictures"
    original = save_photo(sample_photos["chelsea"], folder / "cat.jpg", taken="2019:06:14 10:00:00")
    (folder / "backup").mkdir()
    (folder / "backup" / "cat.jpg").write_bytes(original.read_bytes())
    small = sample_photos["chelsea"].resize((225, 150))
    save_photo(small, folder / "cat-small.jpg", taken="2021:01:01 10:00:00")
    save_photo(sample_photos["coffee"], folder / "coffee.jpg", taken="2020:01:01 10:00:00")
    library_app.image_index.index([folder])

    seen: list[tuple[float, str]] = []
    files = ServedFiles(library_app.settings)
    view = find_groups(library_app, files, lambda fraction, desc: seen.append((fraction, desc)))
    assert len(view.rows) == 1, view.note
    tiles = view.rows[0].tiles
    assert Path(tiles[0].path) == original and tiles[0].caption.startswith(
        "keep · Pictures/cat.jpg · 451 × 300"
    )
    assert {Path(t.path).name for t in tiles} == {"cat.jpg", "cat-small.jpg"} and len(tiles) == 3
    assert all(Image.open(t.thumb).size[0] <= 256 for t in tiles)  # thumbnails, not the originals
    assert seen and seen[-1][0] == 1.0
    assert view.note.startswith("1 group of duplicates among 3 photos")
