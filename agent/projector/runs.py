"""One training run and one evaluation, from a captions file to a projector folder and figures.

Both commands (`modalgraph projector train|eval`), the shapes-world recipe and the bench go
through here: read captions, get LLM features and generator targets (both cached on disk), then
train or measure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.errors import ConfigError, one_line
from agent.projector.llm_features import FeatureLLM, LLMIdentity, SpanFeatures, span_features
from agent.projector.targets import GeneratorSpec, caption_targets

Log = Callable[[str], None]


@dataclass(frozen=True)
class CaptionRecord:
    caption: str
    image: Path | None = None


def read_captions(path: Path, images: Path | None = None) -> list[CaptionRecord]:
    """A text file (one caption a line) or JSONL ({"caption" or "text", optional "path" or "image"}).

    JSONL records marked `"heldout": true` (as the shapes world's are) are never trained on. Image
    paths are taken relative to `images`.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read captions file {path}: {one_line(exc)}") from None
    records = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            records.append(CaptionRecord(" ".join(line.split())))
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number} is not valid JSON ({one_line(exc)})") from None
        text = data.get("caption") or data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f'{path}:{number} has no "caption" (or "text") string')
        if data.get("heldout") is True:
            continue
        image = data.get("path") or data.get("image")
        image_path = None
        if images is not None and image:
            image_path = Path(str(image))
            image_path = image_path if image_path.is_absolute() else images / image_path
        records.append(CaptionRecord(" ".join(text.split()), image_path))
    if not records:
        raise ConfigError(f"{path} holds no captions")
    return records


def distinct(captions: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(captions))


@contextmanager
def _counting(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def features_for(
    llm: FeatureLLM, captions: Sequence[str], modality: str, cache_root: Path | None, progress: bool = False
) -> list[SpanFeatures]:
    with _counting("LLM features", len(captions), progress) as advance:
        return span_features(llm, captions, modality, cache_root, advance)


def targets_for(
    spec: GeneratorSpec, captions: Sequence[str], cache_root: Path | None, device: str, progress: bool = False
) -> Any:
    with _counting("targets", len(captions), progress) as advance:
        return caption_targets(spec, captions, cache_root, device, progress=advance)


def data_key(
    captions: Sequence[str], llm: LLMIdentity, generator: GeneratorSpec, images: Sequence[Any] = ()
) -> str:
    blob = json.dumps(
        {
            "captions": list(captions),
            "llm": llm.fingerprint,
            "generator": generator.fingerprint,
            "images": images,
        }
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def projector_info(
    llm: LLMIdentity, generator: GeneratorSpec, captions_file: str | None = None
) -> dict[str, Any]:
    """What projector.json records beside the config: the LLM and generator it belongs to."""
    return {"llm": llm.to_dict(), "generator": generator.to_dict(), "captions_file": captions_file}


def retrieval_pool(captions: Sequence[str], limit: int | None) -> list[str]:
    """Distinct captions, at most `limit`: retrieval ranks each among the others."""
    pool = distinct(captions)
    if limit is not None:
        pool = pool[:limit]
    if len(pool) < 2:
        raise ConfigError("evaluation needs at least two distinct captions")
    return pool
