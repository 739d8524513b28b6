"""The image index: scanning, decoding, incremental and crash-safe indexing, and search by meaning."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import StorageError, ToolInputError
from agent.core.settings import load_settings
from memory.chroma_store import ChromaStore, EmbeddingModel, ModelMismatchError, check_model
from memory.image_files import ImageDecodeError, decode_image, scan_folder
from memory.library_manifest import FileRow, LibraryManifest, SkippedRow
from memory.library_roots import load_library_roots, manifest_path
from tools.context import RunContext

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def _jpeg_bytes(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def _consistency(app: AppContext) -> tuple[set[str], set[str]]:
    """(hashes the manifest refers to, ids in Chroma) for the current model's collection."""
    index = app.image_index
    model = index.embedding_model()
    collection = index.store.open(model, create=False)
    chroma_ids = index.store.all_ids(collection) if collection is not None else set()
    with sqlite3.connect(manifest_path(app.settings)) as conn:
        rows = conn.execute("SELECT hash FROM files WHERE collection = ?", (model.collection_name,))
        manifest = {row[0] for row in rows}
        pending = conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
    assert pending == 0, "pending marks left after a finished run"
    return manifest, chroma_ids


def _copy_renders(shapes_world: Path, dest: Path, count: int, split: str = "train") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    sources = sorted((shapes_world / split).iterdir())
    step = max(1, len(sources) // count)
    copied = []
    for source in sources[::step][:count]:
        target = dest / source.name
        shutil.copy2(source, target)
        copied.append(target)
    return copied


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory: pytest.TempPathFactory, sample_photos: dict) -> Path:
    """A 40-megapixel JPEG (8000x5000), made from a real photo."""
    path = tmp_path_factory.mktemp("huge") / "huge-40mp.jpg"
    sample_photos["china"].resize((8000, 5000), Image.Resampling.NEAREST).save(path, "JPEG", quality=80)
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path, sample_photos: dict, huge_jpeg: Path) -> Path:
    """Real photos in every promised format, plus every kind of bad file the issue lists."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    photos = sample_photos
    photos["astronaut"].save(folder / "astronaut.jpg", quality=90)
    photos["chelsea"].save(folder / "chelsea.png")
    photos["coffee"].save(folder / "coffee.webp", quality=85)
    photos["rocket"].save(folder / "nested" / "rocket.gif")
    photos["china"].save(folder / "nested" / "china.bmp")
    photos["grace_hopper"].save(folder / "grace_hopper.tiff")
    shutil.copy2(folder / "astronaut.jpg", folder / "nested" / "astronaut-copy.jpg")
    shutil.copy2(huge_jpeg, folder / "huge-40mp.jpg")
    good = (folder / "astronaut.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "corrupt.jpg").write_bytes(good[:20] + os.urandom(4000))
    (folder / "notes.png").write_text("these are my holiday notes, not a picture\n")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    os.symlink(folder, folder / "nested" / "loop")
    return folder


# ----------------------------------------------------------------------------- scanning and decoding


def test_scan_survives_symlink_loops_and_skips_hidden_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "a" / "x.jpg")
    os.symlink(root, root / "a" / "loop")  # a cycle
    os.symlink(root / "a", root / "b")  # a second way into the same folder
    os.symlink(root / "missing.jpg", root / "dangling.jpg")
    (root / ".thumbnails").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".thumbnails" / "t.jpg")
    (root / "._x.jpg").write_bytes(b"resource fork")
    (root / "notes.txt").write_text("not an image")
    started = time.perf_counter()
    result = scan_folder(root)
    assert time.perf_counter() - started < 5
    names = sorted(str(f.path.relative_to(root)) for f in result.files)
    assert names in (["a/x.jpg"], ["b/x.jpg"])


def test_decode_every_format_from_a_real_photo(tmp_path: Path, sample_photos: dict) -> None:
    photo = sample_photos["chelsea"]  # 451x300
    original = np.asarray(photo, dtype=np.float32)
    for fmt, suffix in [
        ("JPEG", "jpg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tif"),
    ]:
        path = tmp_path / f"chelsea.{suffix}"
        photo.save(path, fmt)
        decoded = decode_image(path.read_bytes(), min_side=300)
        assert decoded.image.mode == "RGB"
        assert (decoded.width, decoded.height) == photo.size
        assert decoded.image.size == photo.size  # its shorter side is just the size asked for
        error = np.abs(np.asarray(decoded.image, dtype=np.float32) - original).mean()
        assert error < (25 if fmt == "GIF" else 6), (fmt, error)


def test_gif_gives_its_first_frame_and_transparency_becomes_white(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    red = np.asarray(decode_image(gif.read_bytes()).image)
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 50
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(clear)
    assert np.asarray(decode_image(clear.read_bytes()).image).min() == 255


def test_sixteen_bit_scan_keeps_its_contrast(tmp_path: Path) -> None:
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "scan.png"
    Image.fromarray(ramp).save(path)
    pixels = np.asarray(decode_image(path.read_bytes()).image)
    assert pixels.min() < 10 and pixels.max() > 245


@pytest.mark.parametrize(("orientation", "stored"), [(6, "ROTATE_90"), (8, "ROTATE_270"), (3, "ROTATE_180")])
def test_exif_orientation_is_honoured(sample_photos: dict, orientation: int, stored: str) -> None:
    upright = sample_photos["chelsea"]
    sideways = upright.transpose(getattr(Image.Transpose, stored))
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(_jpeg_bytes(sideways, exif=exif.tobytes()), min_side=300)
    assert decoded.image.size == upright.size
    assert (decoded.width, decoded.height) == upright.size
    reference = np.asarray(decode_image(_jpeg_bytes(upright), min_side=300).image, dtype=np.float32)
    assert np.abs(np.asarray(decoded.image, dtype=np.float32) - reference).mean() < 6
    ignored = decode_image(_jpeg_bytes(sideways), min_side=300).image
    assert (
        ignored.size != upright.size or np.abs(np.asarray(ignored, dtype=np.float32) - reference).mean() > 20
    )


def test_bad_files_give_one_line_reasons(sample_photos: dict) -> None:
    good = _jpeg_bytes(sample_photos["astronaut"])
    cases = {
        b"": "empty",
        b"just some text pretending to be a png\n": "not an image",
        good[: len(good) // 3]: "truncated",
        good[:20] + b"\x00" * 4000: "",
    }
    for data, words in cases.items():
        with pytest.raises(ImageDecodeError) as caught:
            decode_image(data)
        message = str(caught.value)
        assert words in message and "\n" not in message


def test_forty_megapixel_jpeg_decodes_small_and_cheaply(huge_jpeg: Path) -> None:
    """Decoded in a fresh process so its peak memory can be measured: it must stay far below the
    120 MB a full-size decode would need."""
    code = (
        "import resource, sys\n"
        "from memory.image_files import decode_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "decoded = decode_image(data, 224)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(decoded.width, decoded.height, *decoded.image.size, (after - before) // 1024)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(huge_jpeg)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    width, height, small_w, small_h, grown_mb = map(int, result.stdout.split())
    assert (width, height) == (8000, 5000)
    assert 224 <= min(small_w, small_h) <= 4 * 224
    assert grown_mb < 60


# ----------------------------------------------------------------------------- indexing


def test_index_a_folder_of_real_photos_with_bad_files(library_app: AppContext, mixed_folder: Path) -> None:
    report = library_app.image_index.index([mixed_folder])
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"truncated.jpg", "corrupt.jpg", "notes.png", "empty.jpg"}
    assert "truncated" in skipped["truncated.jpg"]
    assert "not an image" in skipped["notes.png"]
    assert "empty" in skipped["empty.jpg"]
    # Six photos in six formats and the 40 MP one; the copy of the astronaut is not embedded again.
    assert report.embedded == 7
    assert report.reused == 1
    assert report.scanned == 12
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 7
    status = library_app.image_index.status()
    assert [r.root for r in status.roots] == [str(mixed_folder.resolve())]
    assert (status.roots[0].files, status.roots[0].unique, status.roots[0].skipped) == (8, 7, 4)
    assert status.roots[0].last_indexed is not None
    assert status.vectors == 7
    # The duplicate keeps both of its paths.
    hits = library_app.image_index.search_vector(
        library_app.image_index.encoder().encode_images(
            [Image.open(mixed_folder / "astronaut.jpg").convert("RGB")]
        )[0],
        k=1,
    )
    assert {Path(hits[0].path).name, *(Path(p).name for p in hits[0].other_paths)} == {
        "astronaut.jpg",
        "astronaut-copy.jpg",
    }
    assert hits[0].score > 0.99 and hits[0].size == (mixed_folder / "astronaut.jpg").stat().st_size


def test_reindex_embeds_only_changes_and_removes_deleted_files(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    files = _copy_renders(shapes_world, folder, 40)
    index = library_app.image_index
    first = index.index([folder])
    assert first.embedded == 40
    again = index.index()  # no folders: every indexed folder
    assert (again.embedded, again.unchanged, again.removed, again.reused) == (0, 40, 0, 0)

    files[0].unlink()
    files[1].unlink()
    # Same name, new content: a render from the held-out split.
    shutil.copy2(sorted((shapes_world / "heldout").iterdir())[0], files[2])
    os.utime(files[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    shutil.copy2(files[3], folder / "copy-of-3.png")
    third = index.index([folder])
    assert third.removed == 2
    assert third.embedded == 1 and third.reused == 1
    assert third.unchanged == 37
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 38

    # Moving photos around embeds nothing, and does not even load the model.
    (folder / "moved").mkdir()
    files[4].rename(folder / "moved" / files[4].name)
    fresh_app = AppContext(library_app.settings)
    moved = fresh_app.image_index.index([folder])
    assert (moved.embedded, moved.reused, moved.removed) == (0, 1, 1)
    assert fresh_app.model_cache.keys() == []
    # A whole folder gone takes its files with it; a folder whose name starts the same keeps its own.
    (folder / "moved x").mkdir()
    files[5].rename(folder / "moved x" / files[5].name)
    shutil.rmtree(folder / "moved")
    gone = fresh_app.image_index.index([folder])
    assert (gone.embedded, gone.reused, gone.removed) == (0, 1, 2)
    manifest, chroma = _consistency(fresh_app)
    assert manifest == chroma and len(chroma) == 37
    fresh_app.image_index.close()


def test_the_check_reads_the_manifest_one_folder_at_a_time(tmp_path: Path) -> None:
    manifest = LibraryManifest(tmp_path / "manifest.sqlite")
    root = str(tmp_path / "lib")
    names = [
        "a.jpg",
        "a/b.jpg",
        "a/c/d.jpg",
        "a b/e.jpg",
        "a-x/f.jpg",
        "a0/g.jpg",
        "a/\udcff.jpg",
        "\udcfe/h.jpg",
    ]
    rows = [FileRow(os.path.join(root, n), root, f"h{i}", i, i) for i, n in enumerate(names)]
    manifest.commit_batch("c", rows, [SkippedRow(os.path.join(root, "a", "bad.jpg"), root, "broken", 1, 1)])

    def rel(found: dict) -> list[str]:
        return sorted(os.path.relpath(p, root) for p in found)

    files, skipped = manifest.rows_in_folder("c", root, os.path.join(root, "a"))
    # Only what lies directly in `a`, undecodable names included; not `a b`, `a-x` or `a0`.
    assert rel(files) == ["a/b.jpg", "a/\udcff.jpg"] and rel(skipped) == ["a/bad.jpg"]
    below, _ = manifest.rows_in_folder("c", root, os.path.join(root, "a"), below=True)
    assert rel(below) == ["a/b.jpg", "a/c/d.jpg", "a/\udcff.jpg"]
    assert rel(manifest.rows_in_folder("c", root, os.path.join(root, "\udcfe"))[0]) == ["\udcfe/h.jpg"]
    assert rel(manifest.rows_in_folder("c", root, root)[0]) == ["a.jpg"]
    assert manifest.rows_in_folder("other", root, root) == ({}, {})
    exact, _ = manifest.rows_at(
        "c", root, [os.path.join(root, "a0", "g.jpg"), os.path.join(root, "nope.jpg")]
    )
    assert rel(exact) == ["a0/g.jpg"]
    assert len(list(manifest.paths_under("c", root))) == len(names) + 1
    manifest.close()


def test_nested_and_repeated_folders_are_one_library_root(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    outer = tmp_path / "outer"
    _copy_renders(shapes_world, outer / "inner", 6)
    _copy_renders(shapes_world, outer, 4, split="heldout")
    index = library_app.image_index
    assert index.index([outer / "inner"]).embedded == 6
    report = index.index([outer, outer / "inner"])
    assert report.embedded == 4 and report.unchanged == 6
    assert load_library_roots(library_app.settings) == [outer.resolve()]
    # Re-indexing just the inner folder must not treat the outer folder's files as deleted.
    assert index.index([outer / "inner"]).removed == 0
    assert index.status().roots[0].files == 10


def test_commit_failures_leave_no_half_written_record(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies after Chroma took a batch but before the manifest did, and one that dies
    inside the upsert: the next run reuses what was stored, redoes nothing finished, and ends
    consistent."""
    from memory.library_manifest import LibraryManifest

    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 24)
    index = library_app.image_index
    real_commit = LibraryManifest.commit_batch
    calls = {"n": 0}

    def dying_commit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(LibraryManifest, "commit_batch", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        index.index([folder], batch_size=4)
    monkeypatch.setattr(LibraryManifest, "commit_batch", real_commit)
    resumed = index.index([folder], batch_size=4)
    # Two batches were committed; the third reached Chroma, so its vectors are reused.
    assert resumed.unchanged == 8
    assert resumed.embedded == 12 and resumed.reused == 4
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 24

    more = tmp_path / "more"
    _copy_renders(shapes_world, more, 8, split="heldout")
    real_upsert = ChromaStore.upsert

    def dying_upsert(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise StorageError("disk full (simulated)")

    monkeypatch.setattr(ChromaStore, "upsert", dying_upsert)
    with pytest.raises(StorageError):
        index.index([more], batch_size=4)
    monkeypatch.setattr(ChromaStore, "upsert", real_upsert)
    assert index.index([more], batch_size=4).embedded == 8
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 32


def test_sigkill_mid_run_resumes_without_redoing_finished_batches(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, shapes_clip_dir: Path
) -> None:
    folder = tmp_path / "lib"
    total = len(_copy_renders(shapes_world, folder, 200))
    env = {
        **os.environ,
        "MODALGRAPH_DATA_DIR": str(library_app.settings.data_dir),
        "MODALGRAPH_MODEL_CLIP": str(shapes_clip_dir),
        "MODALGRAPH_DEVICE": "cpu",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "index", str(folder), "--batch-size", "2", "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    manifest = manifest_path(library_app.settings)
    committed = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=5) as conn:
                    committed = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            except sqlite3.OperationalError:  # not created yet
                committed = 0
            if committed >= 20:
                break
            time.sleep(0.02)
        assert process.poll() is None, f"indexing ended before it could be killed: {process.stderr.read()!r}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    with sqlite3.connect(manifest) as conn:
        committed = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    assert 20 <= committed < total

    report = library_app.image_index.index([folder], batch_size=16)
    assert report.unchanged == committed  # finished batches are not redone
    assert report.embedded + report.reused == total - committed
    assert report.embedded >= total - committed - 2  # at most one batch was in flight
    manifest_hashes, chroma = _consistency(library_app)
    assert manifest_hashes == chroma and len(chroma) == total


def test_two_index_runs_at_once_are_refused(library_app: AppContext, tmp_path: Path) -> None:
    index = library_app.image_index
    with index._exclusive(), pytest.raises(StorageError, match="another `modalgraph index` is running"):
        AppContext(library_app.settings).image_index.index([tmp_path])


def test_bad_folders_are_clear_errors(library_app: AppContext, tmp_path: Path) -> None:
    index = library_app.image_index
    with pytest.raises(ToolInputError, match="no folders indexed yet"):
        index.index()
    with pytest.raises(ToolInputError, match="folder not found"):
        index.index([tmp_path / "nope"])
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(ToolInputError, match="not a folder"):
        index.index([tmp_path / "file.jpg"])


def test_forget_removes_a_folder_and_its_vectors(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    keep, drop = tmp_path / "keep", tmp_path / "drop"
    _copy_renders(shapes_world, keep, 5)
    _copy_renders(shapes_world, drop, 5, split="heldout")
    index = library_app.image_index
    index.index([keep, drop])
    index.forget(drop)
    assert load_library_roots(library_app.settings) == [keep.resolve()]
    manifest, chroma = _consistency(library_app)
    assert manifest == chroma and len(chroma) == 5


# ----------------------------------------------------------------------------- models and Chroma


def test_vectors_of_another_model_are_refused(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import CLIPModel

    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 4)
    library_app.image_index.index([folder])
    other = tmp_path / "other-clip"
    shutil.copytree(shapes_world / "clip", other)
    model = CLIPModel.from_pretrained(other)
    with torch.no_grad():
        model.visual_projection.weight.mul_(-1)
    model.save_pretrained(other)
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(other))
    switched = AppContext(load_settings())
    with pytest.raises(ModelMismatchError, match="re-run `modalgraph index`") as caught:
        switched.image_index.search_text("a red circle")
    assert "cannot be compared" in str(caught.value) and "\n" not in str(caught.value)
    # Re-indexing with the new model builds its own collection; the old one is left alone.
    assert switched.image_index.index().embedded == 4
    assert len(switched.image_index.status().other_collections) == 1
    switched.image_index.close()


def test_query_vectors_must_match_the_collection_model(
    library_app: AppContext, shapes_world: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 3)
    index = library_app.image_index
    index.index([folder])
    model = index.embedding_model()
    collection = index.store.open(model, create=False)
    with pytest.raises(ModelMismatchError, match="dimensions"):
        index.store.query(collection, model, np.ones(model.dim + 1, dtype=np.float32), 3)
    impostor = EmbeddingModel("someone/else", model.dim * 2, "0" * 16)
    with pytest.raises(ModelMismatchError, match="vectors"):
        check_model(collection.metadata, impostor)


def test_chroma_default_embedding_function_never_runs(
    library_app: AppContext, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.utils import embedding_functions

    def forbidden(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("Chroma's default embedding function was called")

    monkeypatch.setattr(embedding_functions.DefaultEmbeddingFunction, "__call__", forbidden)
    folder = tmp_path / "lib"
    _copy_renders(shapes_world, folder, 4)
    library_app.image_index.index([folder])
    assert library_app.image_index.search_text("a red circle", k=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_chroma_server_mode_against_a_real_chroma_run(
    shapes_clip_dir: Path, shapes_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented team setup: `chroma run` on a host, MODALGRAPH_CHROMA_HOST/PORT pointing at it."""
    chroma = shutil.which("chroma")
    if chroma is None:
        pytest.skip("the `chroma` command (from the chromadb package) is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, "chroma run exited"
            time.sleep(0.2)
        monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(shapes_clip_dir))
        monkeypatch.setenv("MODALGRAPH_CHROMA_HOST", "127.0.0.1")
        monkeypatch.setenv("MODALGRAPH_CHROMA_PORT", str(port))
        app = AppContext(load_settings())
        folder = tmp_path / "lib"
        _copy_renders(shapes_world, folder, 30, split="heldout")
        assert app.image_index.index([folder]).embedded == 30
        assert "Chroma server 127.0.0.1" in app.image_index.status().store
        assert not (app.settings.index_dir / "chroma").exists()  # nothing embedded on disk
        hits = app.image_index.search_text("a red circle", k=3)
        assert len(hits) == 3 and all(Path(h.path).is_file() for h in hits)
        manifest, chroma_ids = _consistency(app)
        assert manifest == chroma_ids
        app.image_index.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_unreachable_chroma_server_is_a_one_line_error(
    library_app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODALGRAPH_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("MODALGRAPH_CHROMA_PORT", str(_free_port()))
    app = AppContext(load_settings())
    with pytest.raises(StorageError, match="chroma run") as caught:
        app.image_index.status()
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- search by meaning


def test_text_search_finds_the_named_colour_and_shape(
    indexed_world: AppContext, shapes_records: list
) -> None:
    by_path = {Path(str(r["path"])).name: r for r in shapes_records}
    pairs = sorted({(str(r["colour"]), str(r["shape"])) for r in shapes_records})
    hits = 0
    for colour, shape in pairs:
        top = indexed_world.image_index.search_text(f"a {colour} {shape}", k=1)[0]
        record = by_path[Path(top.path).name]
        hits += (record["colour"], record["shape"]) == (colour, shape)
    assert hits / len(pairs) >= 0.9


def test_image_search_finds_renders_of_the_same_colour_and_shape(
    indexed_world: AppContext, heldout_folder: Path, shapes_records: list
) -> None:
    by_name = {Path(str(r["path"])).name: (r["colour"], r["shape"]) for r in shapes_records}
    first_right, any_right = [], []
    for query in sorted(heldout_folder.iterdir()):
        hits = indexed_world.image_index.search_image(query, k=3)
        assert all(Path(h.path).name != query.name for h in hits)  # the query itself is left out
        same = [by_name[Path(h.path).name] == by_name[query.name] for h in hits]
        first_right.append(same[0])
        any_right.append(any(same))
    # Chance: 3 of the 119 other renders share the query's colour and shape.
    assert np.mean(first_right) >= 0.75
    assert np.mean(any_right) >= 0.9


def test_results_are_ranked_with_scores_and_sizes(indexed_world: AppContext) -> None:
    hits = indexed_world.image_index.search_text("a small green star on a black background", k=7)
    assert len(hits) == 7
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    for hit in hits:
        assert hit.size == Path(hit.path).stat().st_size


def test_search_before_indexing_says_what_to_do(library_app: AppContext) -> None:
    with pytest.raises(ToolInputError, match="modalgraph index FOLDER"):
        library_app.image_index.search_text("a red circle")


def test_library_roots_feed_the_path_guard(
    indexed_world: AppContext, heldout_folder: Path, tmp_path: Path
) -> None:
    assert load_library_roots(indexed_world.settings) == [heldout_folder.resolve()]
    ctx = RunContext(indexed_world)
    inside = sorted(heldout_folder.iterdir())[0]
    assert ctx.resolve_path(str(inside)) == inside.resolve()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    with pytest.raises(ToolInputError, match="outside the image library"):
        ctx.resolve_path(str(outside))
    assert RunContext(indexed_world, trusted_paths=[outside]).resolve_path(str(outside)) == outside.resolve()
