"""`modalgraph library duplicates`: exact and near-duplicate groups on a planted library of real
sample photos, moving copies aside and back, and the index kept consistent throughout."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from agent.context import AppContext
from memory.duplicate_moves import JOURNAL_NAME
from memory.duplicates import find_duplicates
from memory.library_roots import manifest_path
from memory.perceptual_hash import distance, perceptual_hash
from tests.cli_runner import run_cli
from tests.duplicate_photos import Planted, build_planted

# Two photos with every kind of copy, two as two framings each (different photos of one scene).
PHOTOS = ("astronaut", "chelsea", "china", "rocket")


@pytest.fixture
def planted(sample_photos: dict, tmp_path: Path) -> list[Planted]:
    return build_planted({name: sample_photos[name] for name in PHOTOS}, tmp_path / "photos")


def _expected_groups(planted: list[Planted]) -> set[frozenset[str]]:
    scenes: dict[str, set[str]] = {}
    for item in planted:
        scenes.setdefault(item.scene, set()).add(str(item.path))
    return {frozenset(paths) for paths in scenes.values() if len(paths) > 1}


def _consistent(app: AppContext) -> set[str]:
    """The indexed paths, after checking that the manifest's hashes and Chroma's ids agree."""
    index = app.image_index
    model = index.embedding_model()
    collection = index.store.open(model, create=False)
    with sqlite3.connect(manifest_path(app.settings)) as conn:
        rows = conn.execute("SELECT path, hash FROM files WHERE collection = ?", (model.collection_name,))
        files = dict(rows.fetchall())
    assert set(files.values()) == index.store.all_ids(collection)
    return set(files)


def test_perceptual_hash_tells_copies_from_other_framings(sample_photos: dict) -> None:
    photo = sample_photos["astronaut"]
    original = perceptual_hash(photo)
    assert distance(original, perceptual_hash(photo.resize((256, 256)))) <= 4
    assert distance(original, perceptual_hash(photo.convert("L"))) <= 4
    shifted = photo.crop((170, 0, 512, 512))
    assert distance(original, perceptual_hash(shifted)) > 16
    assert distance(original, perceptual_hash(sample_photos["coffee"])) > 16


def test_planted_duplicates_are_grouped_and_other_photos_are_not(
    library_app: AppContext,
    planted: list[Planted],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library_app.image_index.index([tmp_path / "photos"])
    report = find_duplicates(library_app.image_index)
    found = {frozenset(m.path for m in group.members) for group in report.groups}
    assert found == _expected_groups(planted)
    for group in report.groups:
        # The full-size original, dated first, is kept; copies come with how far they are from it.
        assert Path(group.keep.path).name == "original.jpg"
        assert group.kind == "near"
        assert all(m.distance <= report.threshold for m in group.others)
        assert group.keep.width and group.keep.height and group.keep.taken == "2020-05-01T10:00:00"
    assert report.photos == len(planted) - 1  # the exact copy shares its original's content
    assert report.hashes_computed == 0  # stored at index time

    # With no near link possible (a cosine above 1), the exact copy and its original alone.
    exact = find_duplicates(library_app.image_index, min_cosine=2.0)
    copy = next(p.path for p in planted if p.variant == "exact-copy")
    assert [(g.kind, {Path(m.path) for m in g.members}) for g in exact.groups] == [
        ("exact", {copy, copy.parent.parent / "astronaut" / "original.jpg"})
    ]

    code, out, err = run_cli(["library", "duplicates", "--json"], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    assert {
        frozenset([g["keep"]["path"], *(m["path"] for m in g["others"])]) for g in data["groups"]
    } == found

    code, out, _ = run_cli(["library", "duplicates", "-q"], capsys, monkeypatch)
    assert code == 0 and f"{len(found)} group(s)" in out


def test_move_to_and_undo_keep_the_index_consistent(
    library_app: AppContext,
    planted: list[Planted],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library_app.image_index.index([tmp_path / "photos"])
    before = _consistent(library_app)
    aside = tmp_path / "duplicates aside"
    code, out, err = run_cli(
        ["library", "duplicates", "--move-to", str(aside), "--json"], capsys, monkeypatch
    )
    assert code == 0, err
    moved = json.loads(out)["moved"]
    extra = {str(p) for group in _expected_groups(planted) for p in group} - {
        str(p.path) for p in planted if p.variant == "original"
    }
    assert {m["from"] for m in moved} == extra
    assert all(not Path(m["from"]).exists() and Path(m["to"]).is_file() for m in moved)
    assert (aside / JOURNAL_NAME).is_file()
    assert _consistent(library_app) == before - extra
    # The kept originals stand alone now: no group is left.
    assert find_duplicates(library_app.image_index).groups == []

    code, out, err = run_cli(
        ["library", "duplicates", "--move-to", str(aside), "--undo", "-q"], capsys, monkeypatch
    )
    assert code == 0, err
    assert f"put back {len(extra)} file(s)" in out
    assert all(Path(p).is_file() for p in extra)
    assert not (aside / JOURNAL_NAME).exists()
    assert _consistent(library_app) == before
    assert len(find_duplicates(library_app.image_index).groups) == len(_expected_groups(planted))

    # A place taken again meanwhile: that file stays in the folder, its journal entry too.
    code, out, err = run_cli(
        ["library", "duplicates", "--move-to", str(aside), "--json"], capsys, monkeypatch
    )
    first = json.loads(out)["moved"][0]
    Path(first["from"]).write_bytes(b"a new file with that name")
    code, out, err = run_cli(
        ["library", "duplicates", "--move-to", str(aside), "--undo"], capsys, monkeypatch
    )
    assert code == 0, err
    assert f"put back {len(extra) - 1} file(s)" in out and "exists again: left here" in out
    assert Path(first["to"]).is_file() and Path(first["from"]).read_bytes() == b"a new file with that name"
    assert [json.loads(line)["to"] for line in (aside / JOURNAL_NAME).read_text().splitlines()] == [
        first["to"]
    ]


def test_photos_indexed_before_perceptual_hashes_get_theirs_once(
    library_app: AppContext, planted: list[Planted], tmp_path: Path
) -> None:
    library_app.image_index.index([tmp_path / "photos"])
    expected = {frozenset(m.path for m in g.members) for g in find_duplicates(library_app.image_index).groups}
    with sqlite3.connect(manifest_path(library_app.settings)) as conn:
        conn.execute("DELETE FROM perceptual")
    # One photo cannot be read any more: reported, the rest compared.
    broken = next(p.path for p in planted if p.scene.endswith("/view-left"))
    broken.write_bytes(b"no longer a photo")
    report = find_duplicates(library_app.image_index)
    assert report.hashes_computed == len(planted) - 2  # the exact copy shares a hash; one unreadable
    assert [path for path, _ in report.not_compared] == [str(broken)]
    assert {frozenset(m.path for m in g.members) for g in report.groups} == expected
    assert find_duplicates(library_app.image_index).hashes_computed == 0  # stored


def test_usage_errors_are_one_line_with_exit_code_2(
    library_app: AppContext,
    planted: list[Planted],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_cli(["library", "duplicates"], capsys, monkeypatch)
    assert code == 2 and "index your photos first" in err and len(err.strip().splitlines()) == 1
    library_app.image_index.index([tmp_path / "photos"])
    cases = [
        (["--undo"], "--undo needs --move-to"),
        (["--threshold", "99"], "--threshold"),
        (["--move-to", str(tmp_path / "photos" / "aside")], "inside the indexed folder"),
        (["--move-to", str(tmp_path / "nothing"), "--undo"], "nothing to undo"),
    ]
    files = sorted(p for p in (tmp_path / "photos").rglob("*") if p.is_file())
    for args, words in cases:
        code, out, err = run_cli(["library", "duplicates", *args], capsys, monkeypatch)
        assert code == 2, (args, out, err)
        assert words in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err
    assert sorted(p for p in (tmp_path / "photos").rglob("*") if p.is_file()) == files  # nothing moved
    assert not (tmp_path / "photos" / "aside").exists()


def test_a_photo_stored_turned_is_a_duplicate_of_its_upright_copy(
    library_app: AppContext, sample_photos: dict, tmp_path: Path
) -> None:
    """The hash is of the photo as a viewer sees it: a camera's sideways JPEG with an orientation
    tag matches the upright copy an editor exported, and a really turned photo does not."""
    from tests.exif_photos import save_photo

    photo = sample_photos["chelsea"]
    folder = tmp_path / "turned"
    save_photo(photo, folder / "upright.jpg")
    # Stored turned a quarter anticlockwise; orientation 6 says to turn it a quarter clockwise.
    save_photo(photo.transpose(Image.Transpose.ROTATE_90), folder / "camera.jpg", orientation=6)
    save_photo(photo.transpose(Image.Transpose.ROTATE_90), folder / "sideways.jpg")
    library_app.image_index.index([folder])
    groups = find_duplicates(library_app.image_index).groups
    assert [{Path(m.path).name for m in g.members} for g in groups] == [{"upright.jpg", "camera.jpg"}]
