"""Watch mode: the index follows the library as it changes (new, deleted, moved files; a drive
unplugged and back; bursts; files gone before their read), through `LibraryWatcher.apply` without
timing, then for real with watchfiles, from the command line, and as `serve`'s background watcher."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.settings import load_settings
from memory.image_index import ImageIndex, IndexProgress, IndexReport, ProgressCallback
from memory.library_roots import manifest_path
from memory.library_watch import LibraryWatcher
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _renders(shapes_world: Path, split: str, start: int, count: int) -> list[Path]:
    return sorted((shapes_world / split).iterdir())[start : start + count]


def _copy(sources: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sources:
        shutil.copy2(source, dest / source.name)
        copied.append(dest / source.name)
    return copied


def _indexed(app: AppContext) -> dict[str, str]:
    """{path: hash} of the manifest, read through a connection of its own."""
    with sqlite3.connect(f"file:{manifest_path(app.settings)}?mode=ro", uri=True, timeout=5) as conn:
        return dict(conn.execute("SELECT path, hash FROM files").fetchall())


def _chroma_ids(app: AppContext) -> set[str]:
    index = app.image_index
    collection = index.store.open(index.embedding_model(), create=False)
    return index.store.all_ids(collection) if collection is not None else set()


def _consistent(app: AppContext) -> dict[str, str]:
    """The manifest's {path: hash}, checked to name exactly the vectors in Chroma."""
    files = _indexed(app)
    assert set(files.values()) == _chroma_ids(app)
    return files


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.05)


@pytest.fixture
def library(library_app: AppContext, shapes_world: Path, tmp_path: Path) -> Path:
    """Eight renders, indexed."""
    folder = tmp_path / "photos"
    _copy(_renders(shapes_world, "heldout", 0, 8), folder)
    assert library_app.image_index.index([folder]).embedded == 8
    return folder


# ----------------------------------------------------------------------------- applying changes


def test_new_deleted_and_moved_files_and_folders(
    library_app: AppContext, library: Path, shapes_world: Path
) -> None:
    index = library_app.image_index
    watcher = LibraryWatcher(index, [library])
    files = sorted(library.iterdir())

    new = _copy(_renders(shapes_world, "heldout", 40, 2), library)
    report = watcher.apply(new)
    assert report is not None and (report.embedded, report.reused, report.removed) == (2, 0, 0)
    assert {str(p) for p in new} <= set(_consistent(library_app))
    hits = index.search_text(new[0].stem.split("-", 1)[1].replace("-", " "), k=20)
    assert str(new[0]) in {h.path for h in hits}

    files[0].unlink()
    report = watcher.apply([files[0]])
    assert report is not None and report.removed == 1 and report.embedded == 0
    assert str(files[0]) not in _consistent(library_app)

    # A rename and a folder move, applied by an index that has not loaded CLIP: the vectors stay,
    # the model never loads.
    (library / "trip").mkdir()
    moved = [files[1].rename(library / "trip" / files[1].name), files[2].rename(library / "renamed.png")]
    (library / "trip").rename(library / "trip-2024")
    fresh = AppContext(library_app.settings)
    before = _consistent(library_app)
    report = LibraryWatcher(fresh.image_index, [library]).apply(
        [files[1], files[2], moved[1], library / "trip", library / "trip-2024"]
    )
    assert report is not None and (report.embedded, report.reused, report.removed) == (0, 2, 2)
    assert fresh.model_cache.keys() == []
    after = _consistent(library_app)
    assert after[str(library / "trip-2024" / files[1].name)] == before[str(files[1])]
    assert after[str(moved[1])] == before[str(files[2])]
    assert set(after.values()) == set(before.values())

    shutil.rmtree(library / "trip-2024")
    report = LibraryWatcher(fresh.image_index, [library]).apply([library / "trip-2024"])
    assert report is not None and report.removed == 1
    assert len(_consistent(library_app)) == 8 + 2 - 1 - 1
    fresh.image_index.close()


def test_hidden_foreign_and_non_image_paths_cost_nothing(
    library_app: AppContext, library: Path, tmp_path: Path
) -> None:
    index = library_app.image_index
    watcher = LibraryWatcher(index, [library])
    (library / ".thumbnails").mkdir()
    shutil.copy2(next(library.iterdir()), library / ".thumbnails" / "t.png")
    (library / "notes.txt").write_text("not a photo")
    outside = tmp_path / "elsewhere.png"
    shutil.copy2(next(library.iterdir()), outside)
    before = _indexed(library_app)
    report = watcher.apply([library / ".thumbnails" / "t.png", library / "notes.txt", outside])
    assert report is None or (report.embedded, report.reused, report.removed) == (0, 0, 0)
    assert _indexed(library_app) == before


def test_a_burst_is_one_run_embedded_in_batches_with_progress(
    library_app: AppContext, library: Path, shapes_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = library_app.image_index
    runs = []
    real = ImageIndex.index_changes

    def counted(self: ImageIndex, *args: object, **kwargs: object) -> IndexReport:
        runs.append(1)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageIndex, "index_changes", counted)
    events: list[IndexProgress] = []

    def runner(job: Callable[[ProgressCallback | None], IndexReport]) -> IndexReport:
        return job(events.append)

    burst = _copy(_renders(shapes_world, "train", 0, 60), library / "import")
    report = LibraryWatcher(index, [library], runner=runner, batch_size=8).apply([library / "import", *burst])
    assert report is not None and report.embedded + report.reused == 60
    assert runs == [1]
    steps = [e.done for e in events if e.phase == "embedding"]
    assert steps == [0, 8, 16, 24, 32, 40, 48, 56, 60]
    assert len(_consistent(library_app)) == 68


def test_a_file_gone_before_its_read_is_said_and_leaves_no_record(
    library_app: AppContext, library: Path, shapes_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    import memory.image_index as image_index
    from agent.cli.library import _print_change

    index = library_app.image_index
    new = _copy(_renders(shapes_world, "heldout", 50, 3), library)
    indexed_before = sorted(library.iterdir())[0]
    real_read = image_index.read_and_hash
    doomed = {new[1], indexed_before}
    os.utime(indexed_before, ns=(time.time_ns(), time.time_ns() + 10**9))  # changed: read again

    def read_after_delete(path: Path, max_bytes: int | None = None) -> tuple[bytes | None, str]:
        if path in doomed:
            path.unlink()  # deleted between the event and the read
        return real_read(path, max_bytes)

    monkeypatch.setattr(image_index, "read_and_hash", read_after_delete)
    report = LibraryWatcher(index, [library]).apply([*new, indexed_before])
    assert report is not None
    assert sorted(report.vanished) == sorted(str(p) for p in doomed)
    assert report.embedded == 2 and not report.skipped
    files = _consistent(library_app)
    assert not {str(p) for p in doomed} & set(files)
    assert index.status().skipped == []

    console = Console(record=True, width=200)
    _print_change(console, report, "12:00:00")
    lines = console.export_text().splitlines()
    assert lines[0] == "12:00:00 2 new or changed image(s) embedded"
    assert lines[1].startswith("2 file(s) gone before they could be read: ")


def test_an_unplugged_drive_keeps_its_records_and_comes_back_without_embedding(
    library_app: AppContext, library: Path, tmp_path: Path
) -> None:
    index = library_app.image_index
    watcher = LibraryWatcher(index, [library])
    before = _consistent(library_app)
    files = sorted(library.iterdir())

    # The whole folder gone, with the events a watcher sees for it.
    away = library.rename(tmp_path / "unplugged")
    report = watcher.apply([library, *files])
    assert report is not None and report.missing_roots == [str(library)] and report.removed == 0
    assert index.index().missing_roots == [str(library)]
    assert _consistent(library_app) == before

    # A mount point left empty: the folder is there, the photos are not.
    library.mkdir()
    assert index.looks_unmounted(library)
    report = watcher.apply([library, *files])
    assert report is not None and report.missing_roots == [str(library)] and report.removed == 0
    assert _consistent(library_app) == before

    library.rmdir()
    away.rename(library)
    back = watcher.catch_up()
    assert back is not None and (back.embedded, back.reused, back.removed, back.unchanged) == (0, 0, 0, 8)
    assert _consistent(library_app) == before


def test_an_unreadable_folder_is_said_and_nothing_under_it_forgotten(
    library_app: AppContext, library: Path, shapes_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = library_app.image_index
    _copy(_renders(shapes_world, "heldout", 60, 3), library / "locked")
    assert index.index([library]).embedded == 3
    before = _consistent(library_app)
    real_scandir = os.scandir
    locked = str(library / "locked")

    def scandir(path: object = ".") -> object:
        if os.fspath(path) == locked:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)  # permissions mean nothing to root, who runs CI
    report = LibraryWatcher(index, [library]).apply([library / "locked", library / "locked" / "x.png"])
    assert report is not None and report.unreadable_dirs == [(locked, "Permission denied")]
    assert report.removed == 0 and _consistent(library_app) == before


# ----------------------------------------------------------------------------- for real


def test_a_copied_in_photo_is_searchable_within_seconds_and_a_rename_is_not_embedded(
    library_app: AppContext, library: Path, shapes_world: Path
) -> None:
    reports: list[IndexReport] = []
    # Its own index, as `serve`'s watcher has: the test reads through another connection.
    index = ImageIndex(library_app.settings, library_app.image_index.encoders)
    watcher = LibraryWatcher(
        index, [library], on_report=reports.append, debounce_ms=400, step_ms=100, tick_ms=200
    )
    thread = watcher.start(catch_up=True)
    try:
        _wait_for(lambda: len(reports) >= 1, 30, "the catch-up pass")
        assert (reports[0].embedded, reports[0].unchanged) == (0, 8)

        source = _renders(shapes_world, "heldout", 70, 1)[0]
        copied = library / source.name
        started = time.monotonic()
        shutil.copy2(source, copied)
        _wait_for(lambda: str(copied) in _indexed(library_app), 10, "the copied photo indexed")
        print(f"copied photo indexed after {time.monotonic() - started:.2f}s")
        assert sum(r.embedded for r in reports[1:]) == 1

        embedded_so_far = sum(r.embedded for r in reports)
        renamed = copied.rename(library / "renamed.png")
        _wait_for(
            lambda: str(renamed) in (found := _indexed(library_app)) and str(copied) not in found,
            10,
            "the rename applied",
        )
        assert sum(r.embedded for r in reports) == embedded_so_far
        assert sum(r.reused for r in reports) >= 1
    finally:
        watcher.stop()
        index.close()
    assert not thread.is_alive()
    assert str(renamed) in _consistent(library_app)


def test_watch_command_survives_sigkill_and_stops_on_ctrl_c(
    library_app: AppContext, library: Path, shapes_world: Path, shapes_clip_dir: Path
) -> None:
    env = {
        **os.environ,
        "MODALGRAPH_DATA_DIR": str(library_app.settings.data_dir),
        "MODALGRAPH_MODEL_CLIP": str(shapes_clip_dir),
        "MODALGRAPH_DEVICE": "cpu",
    }
    command = [sys.executable, "-m", "agent", "index", "--watch", str(library), "--batch-size"]

    def start(batch_size: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command, str(batch_size)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_line(process: subprocess.Popen[str], text: str) -> list[str]:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"exited before {text!r}: {''.join(seen)}"
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"no {text!r} within 60s: {''.join(seen)}")

    burst = _renders(shapes_world, "train", 0, 200)
    process = start(2)  # small batches: many commits to be killed between
    try:
        wait_line(process, "watching")
        _copy(burst, library / "import")
        _wait_for(lambda: len(_indexed(library_app)) >= 8 + 10, 60, "part of the burst committed")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    committed = len(_indexed(library_app)) - 8
    assert 10 <= committed < 200

    process = start(32)
    try:
        lines = wait_line(process, "watching")
        summary = next(line for line in lines if "unchanged" in line)
        assert f"{8 + committed} unchanged" in summary
        assert len(_consistent(library_app)) == 8 + 200
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert out.strip().splitlines()[-1] == "stopped watching; the index is saved"
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "--watch", "--status"], "--watch indexes folders"),
        (["index", "--watch", "/definitely/not/here"], "folder not found"),
    ],
)
def test_watch_usage_errors_are_one_line(
    library_app: AppContext,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


# ----------------------------------------------------------------------------- serve's watcher


def test_serve_watches_the_library_only_when_the_setting_says_so(
    library_app: AppContext, library: Path, shapes_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli.serve import start_library_watch

    said: list[str] = []
    assert library_app.settings.watch_library is False
    assert start_library_watch(library_app, said.append) is None

    monkeypatch.setenv("MODALGRAPH_WATCH_LIBRARY", "true")
    monkeypatch.setattr("memory.library_watch.RETRY_S", 0.5)
    app = AppContext(load_settings())
    assert app.settings.watch_library is True
    # A `modalgraph index` holds the lock as the page starts: the watcher says so and waits for it.
    with library_app.image_index._exclusive():
        watcher = start_library_watch(app, said.append)
        assert watcher is not None
        _wait_for(lambda: any("another `modalgraph index` is running" in s for s in said), 15, "busy said")
    try:
        assert watcher.folders == [str(library)]
        source = _renders(shapes_world, "heldout", 80, 1)[0]
        shutil.copy2(source, library / source.name)
        _wait_for(lambda: str(library / source.name) in _indexed(app), 15, "the new photo indexed")
        _wait_for(lambda: any("1 embedded" in line for line in said), 5, "the change said")
    finally:
        watcher.stop()
        watcher.index.close()
    assert said[0] == f"watching the library: {library}"
    assert not any("watcher stopped" in line for line in said)


def test_photos_the_watcher_adds_have_their_perceptual_hash_for_the_duplicates_finder(
    library_app: AppContext, library: Path
) -> None:
    from memory.duplicates import find_duplicates

    index = library_app.image_index
    original = sorted(library.iterdir())[0]
    with Image.open(original) as image:  # a re-encoded copy: other bytes, the same picture
        image.convert("RGB").save(library / "copy.jpg", quality=90)
    shutil.copy2(original, library / "exact-copy.png")
    report = LibraryWatcher(index, [library]).apply([library / "copy.jpg", library / "exact-copy.png"])
    assert report is not None and report.embedded == 1
    found = find_duplicates(index)
    assert found.hashes_computed == 0  # the watcher stored them as it embedded
    # One group: the exact copy (same bytes) and the re-encoded one (same picture) with the original.
    groups = [{m.path for m in group.members} for group in found.groups]
    # (Two renders of one shape and colour may form a group of their own: plain synthetic scenes.)
    assert {str(original), str(library / "exact-copy.png"), str(library / "copy.jpg")} in groups
