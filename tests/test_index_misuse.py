"""Misuse of the image index, as a real photo library brings it: names that are not UTF-8, a full
disk, huge files and pixel bombs, links out of the library, FIFOs and symlink loops, a folder given
as a query image, two runs at once. Each case asserts the one-line reason, the absence of a
traceback, and that nothing already indexed is lost."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import StorageError, ToolInputError
from agent.core.settings import Settings, load_settings
from agent.core.text import shown_path
from memory import image_files, image_index
from memory.chroma_store import ChromaStore
from memory.image_files import (
    BROKEN_LINK,
    LINK_OUTSIDE,
    SYMLINK_LOOP,
    FileTooLargeError,
    ImageDecodeError,
    read_and_hash,
)
from memory.library_roots import load_library_roots, manifest_path
from memory.stored_paths import path_from_db, path_from_metadata, path_metadata, path_to_db
from tests.cli_runner import run_cli
from tests.test_image_index import _consistency, _copy_renders
from tests.test_misuse import _fill, mounted_tmpfs
from tools.paths import resolve_tool_path

ODD_NAME = b"a\xff.png"  # a Latin-1 era name: 0xff is never valid in UTF-8


@pytest.fixture
def cli_world(shapes_clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI, run in-process, with the shapes-world CLIP and wide lines (one per skipped file)."""
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(shapes_clip_dir))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "300")


def _odd(folder: Path, name: bytes = ODD_NAME) -> Path:
    """`folder`/`name` for a name given as bytes, as Python represents it (with surrogates)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _write(path: Path, data: bytes) -> Path:
    with open(os.fsencode(path), "wb") as handle:  # as the issue creates it: by bytes
        handle.write(data)
    return path


def _other_render(shapes_world: Path, n: int = 0) -> bytes:
    """A render from the train split: content no held-out copy shares, so it is embedded anew."""
    return sorted((shapes_world / "train").iterdir())[n].read_bytes()


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """Run `work` in a thread and return its result; fail (rather than hang) if it blocks."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s (a FIFO opened?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _reasons(skipped: list[Any]) -> dict[str, str]:
    return {Path(item.path).name: item.reason for item in skipped}


def _stored_path_types(settings: Settings) -> dict[str, str]:
    """{path: SQLite type of its stored form} for every file row of the manifest."""
    with sqlite3.connect(manifest_path(settings)) as conn:
        rows = conn.execute("SELECT path, typeof(path) FROM files").fetchall()
    return {path_from_db(path): kind for path, kind in rows}


# ----------------------------------------------------------------------------- 1. names not UTF-8


def test_stored_paths_round_trip_every_name_and_keep_utf8_as_text() -> None:
    odd = os.fsdecode(b"/photos/caf\xe9/" + ODD_NAME)
    assert path_to_db("/photos/café.png") == "/photos/café.png"  # as every row written before
    assert path_to_db(odd) == os.fsencode(odd) and path_from_db(path_to_db(odd)) == odd
    meta = path_metadata(odd)
    assert meta["path"] == "/photos/caf\\xe9/a\\xff.png" and meta["path"].encode("utf-8")
    assert path_from_metadata(meta) == odd
    assert path_from_metadata(path_metadata("/photos/café.png")) == "/photos/café.png"
    assert shown_path(odd) == "/photos/caf\\xe9/a\\xff.png"


def test_a_file_name_that_is_not_utf8_is_indexed_found_and_shown_escaped(
    cli_world: None,
    shapes_world: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "photos"
    _copy_renders(shapes_world, folder, 4, split="heldout")
    odd = _write(_odd(folder), _other_render(shapes_world))
    _write(_odd(folder, b"broken\xfe.png"), b"not a png at all")
    _write(folder / "two\nlines\x1b[31m.png", b"not a png either")

    code, out, err = run_cli(["index", str(folder)], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    assert "5 new or changed images indexed" in out
    assert "broken\\xfe.png: not an image" in out  # shown escaped, one line
    assert "two\\nlines\\x1b[31m.png: not an image" in out and "\x1b" not in out

    missing = _odd(tmp_path, b"gone\xe9")
    code, _out, err = run_cli(["index", str(missing)], capsys, monkeypatch)
    assert (code, err) == (2, f"error: folder not found: {tmp_path}/gone\\xe9\n")

    code, out, err = run_cli(["search", "a red circle", "-k", "10"], capsys, monkeypatch)
    assert code == 0, err
    assert any(line.endswith("/photos/a\\xff.png") for line in out.splitlines()), out

    code, out, _ = run_cli(["search", "a red circle", "-k", "10", "--json"], capsys, monkeypatch)
    paths = [item["path"] for item in json.loads(out)["results"]]
    assert str(odd.resolve()) in paths  # the exact name: it opens the very file
    assert Path(str(odd.resolve())).read_bytes() == _other_render(shapes_world)

    code, out, _ = run_cli(["index", "--status"], capsys, monkeypatch)
    assert code == 0 and "2 file(s) not indexed" in out and "broken\\xfe.png: not an image" in out
    code, out, _ = run_cli(["index"], capsys, monkeypatch)
    assert code == 0 and "5 unchanged" in out and "(2 unchanged since the last run)" in out

    settings = load_settings()
    kinds = _stored_path_types(settings)
    assert kinds.pop(str(odd.resolve())) == "blob" and set(kinds.values()) == {"text"}
    app = AppContext(settings)
    model = app.image_index.embedding_model()
    collection = app.image_index.store.open(model, create=False)
    digest = hashlib.sha256(_other_render(shapes_world)).hexdigest()
    record = collection.get(ids=[digest], include=["metadatas"])["metadatas"][0]
    assert record["path"].endswith("/photos/a\\xff.png")
    assert path_from_metadata(record) == str(odd.resolve())
    app.image_index.close()


def test_an_index_from_before_keeps_its_rows_when_odd_names_arrive(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 6)
    index = library_app.image_index
    assert index.index([folder]).embedded == 6
    before = _stored_path_types(library_app.settings)
    assert set(before.values()) == {"text"}  # the form every earlier run wrote

    odd = _write(_odd(folder), _other_render(shapes_world, 1))
    report = index.index()
    assert (report.embedded, report.unchanged, report.skipped) == (1, 6, [])
    after = _stored_path_types(library_app.settings)
    assert {p: after[p] for p in before} == before and after[str(odd.resolve())] == "blob"
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 7


def test_a_library_folder_whose_name_is_not_utf8_is_a_root_like_any_other(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    folder = _odd(tmp_path, b"caf\xe9")
    os.mkdir(os.fsencode(folder))
    photo = _write(folder / "cat.png", _other_render(shapes_world, 2))
    assert library_app.image_index.index([folder]).embedded == 1
    assert load_library_roots(library_app.settings) == [folder.resolve()]
    assert resolve_tool_path(photo, load_library_roots(library_app.settings)) == photo.resolve()
    assert [r.files for r in library_app.image_index.status().roots] == [1]
    assert library_app.image_index.index().unchanged == 1


def test_a_record_chroma_refuses_skips_that_file_and_the_run_goes_on(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lib"
    files = _copy_renders(shapes_world, folder, 8)
    refused = str(files[3].resolve())
    real_upsert = ChromaStore.upsert

    def picky(self: ChromaStore, collection: Any, ids: Any, vectors: Any, metadatas: list[dict]) -> None:
        if any(meta.get("path") == refused for meta in metadatas):
            raise StorageError("argument 'metadatas': Cannot convert Python object to UpdateMetadataValue")
        real_upsert(self, collection, ids, vectors, metadatas)

    monkeypatch.setattr(ChromaStore, "upsert", picky)
    report = library_app.image_index.index([folder], batch_size=4)
    assert report.embedded == 7
    assert [(s.path, s.reason.split(":")[0]) for s in report.skipped] == [
        (refused, "cannot be stored in the index")
    ]
    assert "Cannot convert" in report.skipped[0].reason and "\n" not in report.skipped[0].reason
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 7
    assert [s.path for s in library_app.image_index.status().skipped] == [refused]


# ----------------------------------------------------------------------------- 2. a full disk


@pytest.fixture
def index_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB disk: 330 photos with their dates and places take about 3 MiB of index, so the run
    after the filler is removed has room to finish."""
    yield from mounted_tmpfs(tmp_path / "small-disk", "8M")


def test_indexing_into_a_full_disk_ends_in_one_line_and_a_later_run_continues(
    cli_world: None,
    shapes_world: Path,
    tmp_path: Path,
    index_disk: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(index_disk / "data"))
    first = tmp_path / "first"
    _copy_renders(shapes_world, first, 30, split="heldout")
    code, _out, err = run_cli(["index", str(first), "--quiet"], capsys, monkeypatch)
    assert code == 0, err

    more = tmp_path / "more"
    _copy_renders(shapes_world, more, 300)
    filler = _fill(index_disk, leave=200 * 1024)
    code, _out, err = run_cli(["index", str(more), "--quiet"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the disk holding "), err
    assert str(index_disk / "data") in lines[0] and "is full" in lines[0]
    assert "compaction" not in lines[0], err

    filler.unlink()
    code, _out, err = run_cli(["index", "--quiet"], capsys, monkeypatch)
    assert code == 0, err
    app = AppContext(load_settings())
    manifest, chroma = _consistency(app)
    assert manifest == chroma and len(chroma) == 330
    assert sorted(r.files for r in app.image_index.status().roots) == [30, 300]
    app.image_index.close()


# ----------------------------------------------------------------------------- 3. size and pixel caps


def test_the_caps_are_documented_settings() -> None:
    fields = Settings.model_fields
    assert fields["index_max_file_mb"].default == 200 and fields["index_max_megapixels"].default == 100
    assert "skipped" in (fields["index_max_file_mb"].description or "")
    assert "header" in (fields["index_max_megapixels"].description or "")


def test_a_file_over_the_size_cap_is_skipped_without_being_read(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 3)
    huge = folder / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: 3 GB that take no disk
    opened: list[Path] = []
    real_read = image_index.read_and_hash

    def watched(path: Path, max_bytes: int | None = None) -> tuple[bytes | None, str]:
        opened.append(path)
        return real_read(path, max_bytes)

    monkeypatch.setattr(image_index, "read_and_hash", watched)
    report = library_app.image_index.index([folder])
    assert report.embedded == 3 and "huge.jpg" not in {p.name for p in opened}
    reason = _reasons(report.skipped)["huge.jpg"]
    assert reason == (
        "too large to index: 3.0 GB, over the index_max_file_mb limit of 200 MB "
        "(set MODALGRAPH_INDEX_MAX_FILE_MB to raise it)"
    )
    assert _reasons(library_app.image_index.status().skipped) == {"huge.jpg": reason}
    again = library_app.image_index.index()
    assert (again.skipped_unchanged, again.embedded) == (1, 0) and "huge.jpg" not in {p.name for p in opened}


def _png(size: tuple[int, int], seed: int = 0) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_over_the_pixel_cap_is_skipped_from_its_header_and_let_in_when_raised(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 2)
    (folder / "wide.png").write_bytes(_png((2000, 1000)))
    cut = _png((1500, 1000), seed=1)
    # Decoding this one would fail on its missing half: the reason shows the header alone was read.
    (folder / "cut.png").write_bytes(cut[: len(cut) // 2])
    monkeypatch.setenv("MODALGRAPH_INDEX_MAX_MEGAPIXELS", "1")
    app = AppContext(load_settings())
    report = app.image_index.index([folder])
    reasons = _reasons(report.skipped)
    assert report.embedded == 2 and set(reasons) == {"wide.png", "cut.png"}
    assert reasons["wide.png"] == (
        "too many pixels to decode: 2 megapixels (2000x1000), over the index_max_megapixels limit of 1 "
        "(set MODALGRAPH_INDEX_MAX_MEGAPIXELS to raise it)"
    )
    assert "(1500x1000)" in reasons["cut.png"]
    opened: list[Path] = []
    real_read = image_index.read_and_hash
    monkeypatch.setattr(
        image_index, "read_and_hash", lambda path, cap=None: opened.append(path) or real_read(path, cap)
    )
    again = app.image_index.index()  # the same cap: neither file is read again
    assert again.skipped_unchanged == 2 and _reasons(again.skipped) == reasons and opened == []
    app.image_index.close()

    monkeypatch.setenv("MODALGRAPH_INDEX_MAX_MEGAPIXELS", "5")
    raised = AppContext(load_settings())
    report = raised.image_index.index()
    assert report.embedded == 1 and report.unchanged == 2
    assert _reasons(report.skipped) == {"cut.png": "truncated image data"}
    raised.image_index.close()


def test_a_query_image_over_a_cap_is_refused_in_one_line(
    indexed_world: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = tmp_path / "wide.png"
    query.write_bytes(_png((2000, 1000)))
    settings = indexed_world.settings.model_copy(update={"index_max_megapixels": 1.0})
    monkeypatch.setattr(indexed_world.image_index, "settings", settings)
    with pytest.raises(
        ToolInputError, match=r"cannot use .*wide.png as a query image: too many pix"
    ) as caught:
        indexed_world.image_index.search_image(query)
    assert "MODALGRAPH_INDEX_MAX_MEGAPIXELS" in str(caught.value)


def test_big_files_are_hashed_in_chunks_and_decoded_from_disk(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrunk so that the renders (about 1 KB) count as big files.
    monkeypatch.setattr(image_files, "WHOLE_READ_BYTES", 256)
    monkeypatch.setattr(image_files, "READ_CHUNK_BYTES", 100)
    folder = tmp_path / "lib"
    files = _copy_renders(shapes_world, folder, 6)
    data, digest = read_and_hash(files[0])
    assert data is None and digest == hashlib.sha256(files[0].read_bytes()).hexdigest()
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 200)
    assert read_and_hash(small) == (b"x" * 200, hashlib.sha256(b"x" * 200).hexdigest())
    with pytest.raises(FileTooLargeError):
        read_and_hash(files[0], max_bytes=300)  # a file that grew past the cap after the scan

    report = library_app.image_index.index([folder])
    assert report.embedded == 6 and report.skipped == []
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma == {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


# ----------------------------------------------------------------------------- 4. links out of the library


def test_links_out_of_the_library_are_listed_and_never_searchable(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    renders = _copy_renders(shapes_world, library, 4, split="heldout")
    outside = tmp_path / "outside"
    secrets = _copy_renders(shapes_world, outside, 3)
    (library / "escape.png").symlink_to(secrets[0])
    (library / "linked-dir").symlink_to(outside, target_is_directory=True)
    (library / "same-photo.png").symlink_to(renders[1])  # a link that stays inside: indexed
    (library / "notes.txt").symlink_to(outside / "x.txt")  # not offered as a photo: silent

    index = library_app.image_index
    report = index.index([library])
    assert _reasons(report.skipped) == {"escape.png": LINK_OUTSIDE, "linked-dir": LINK_OUTSIDE}
    assert (report.embedded, report.reused) == (4, 1)
    roots = load_library_roots(library_app.settings)
    hits = index.search_text("a red circle", k=50)
    assert len(hits) == 4
    for path in [p for hit in hits for p in (hit.path, *hit.other_paths)]:
        resolve_tool_path(path, roots)  # the tools' guard accepts every path search gives
    assert _reasons(index.status().skipped) == _reasons(report.skipped)


def test_a_photo_replaced_by_a_link_out_of_the_library_leaves_the_index(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    renders = _copy_renders(shapes_world, library, 3, split="heldout")
    outside = tmp_path / "outside"
    elsewhere = _copy_renders(shapes_world, outside, 1)[0]
    index = library_app.image_index
    assert index.index([library]).embedded == 3
    renders[2].unlink()
    renders[2].symlink_to(elsewhere)
    report = index.index()
    assert _reasons(report.skipped) == {renders[2].name: LINK_OUTSIDE}
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 2


# ----------------------------------------------------------------------------- 5. FIFOs and symlink loops


def test_fifos_and_symlink_loops_are_listed_and_no_fifo_is_opened(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 2)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("self.png", folder / "self.png")
    os.symlink("b-loop.png", folder / "a-loop.png")
    os.symlink("a-loop.png", folder / "b-loop.png")
    os.symlink("loop-folder", folder / "loop-folder")  # a loop without an image name: listed too
    os.symlink(folder / "missing.png", folder / "dangling.png")

    index = library_app.image_index
    report = _within(120, lambda: index.index([folder]))
    assert report.embedded == 2
    assert _reasons(report.skipped) == {
        "pipe.jpg": "not a regular file (FIFO)",
        "self.png": SYMLINK_LOOP,
        "a-loop.png": SYMLINK_LOOP,
        "b-loop.png": SYMLINK_LOOP,
        "loop-folder": SYMLINK_LOOP,
        "dangling.png": BROKEN_LINK,
    }
    assert len(index.status().skipped) == 6
    again = _within(120, index.index)
    assert again.skipped_unchanged == 6 and len(again.skipped) == 6
    with pytest.raises(ImageDecodeError, match=r"not a regular file \(FIFO\)"):
        _within(10, lambda: read_and_hash(folder / "pipe.jpg"))  # opened without blocking, refused


# ----------------------------------------------------------------------------- 6. a folder as the query


def test_search_by_a_folder_says_an_image_file_is_needed(
    cli_world: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = run_cli(["search", "--image", str(tmp_path)], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert err == f"error: {tmp_path} is a folder, not an image: give one image file to search by\n"


# ----------------------------------------------------------------------------- 7. two runs at once


def test_a_refused_second_run_registers_no_folder(library_app: AppContext, tmp_path: Path) -> None:
    index = library_app.image_index
    other = AppContext(library_app.settings)
    with index._exclusive(), pytest.raises(StorageError, match="another `modalgraph index` is running"):
        other.image_index.index([tmp_path])
    other.image_index.close()
    assert load_library_roots(library_app.settings) == []
    assert index.status().roots == []
