"""A trained projector on disk: `projector.safetensors` (weights) and `projector.json` (what it is).

The JSON records the modality, type and sizes, and which LLM and generator it was trained with, so
a projector used with anything else fails with a sentence rather than with noise or a shape error
deep inside a pipeline.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agent.core.errors import ConfigError, ModelLoadError, ToolUnavailableError, one_line
from agent.projector.model import OutputProjector, ProjectorConfig

WEIGHTS = "projector.safetensors"
CONFIG = "projector.json"
FORMAT = "modalgraph-output-projector"
VERSION = 1


def train_command(modality: str, out: Path | str | None = None) -> str:
    where = f" --out {out}" if out else ""
    return f"modalgraph projector train --modality {modality} --captions FILE{where}"


def save_projector(out_dir: Path, model: OutputProjector, info: dict[str, Any]) -> Path:
    """Write weights then config, each atomically: a reader never sees half a file."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    handle, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    os.close(handle)
    save_file(tensors, tmp, metadata={"format": FORMAT})
    os.replace(tmp, out_dir / WEIGHTS)
    record = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(), **info}
    handle, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(record, out, indent=2, sort_keys=True)
    os.replace(tmp, out_dir / CONFIG)
    return out_dir


def read_info(folder: Path, modality: str | None = None) -> dict[str, Any]:
    """projector.json, checked; a missing folder names the train command."""
    modality_hint = modality or "image"
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise ToolUnavailableError(
            f"no trained {modality or ''} output projector in {folder}; "
            f"train one with `{train_command(modality_hint, folder)}`, or use conditioning=text"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"the projector config {path} is corrupt ({one_line(exc)}); "
            f"retrain with `{train_command(modality_hint, folder)}`"
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("config"), dict):
        raise ModelLoadError(
            f"{path} is not a modalgraph projector config; retrain with `{train_command(modality_hint, folder)}`"
        )
    if info.get("version", 0) > VERSION:
        raise ModelLoadError(f"{path} was written by a newer modalgraph (format {info['version']}); upgrade")
    info["config"] = ProjectorConfig.from_dict(info["config"])  # unknown modality or type: ConfigError
    if modality is not None and info["config"].modality != modality:
        raise ConfigError(
            f"the projector in {folder} is for {info['config'].modality}, not {modality}; "
            f"point the {modality} projector setting elsewhere or `{train_command(modality)}`"
        )
    return info


def load_projector(
    folder: Path, modality: str | None = None, device: str = "cpu"
) -> tuple[OutputProjector, dict]:
    """The projector in `folder` with its info; clear errors for missing, corrupt or mismatched files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_info(folder, modality)
    config: ProjectorConfig = info["config"]
    retrain = f"retrain with `{train_command(config.modality, folder)}`"
    try:
        tensors = load_file(folder / WEIGHTS)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"the projector weights {folder / WEIGHTS} are corrupt or truncated ({one_line(exc)}); {retrain}"
        ) from None
    model = OutputProjector(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelLoadError(
            f"the projector weights in {folder} do not match its config "
            f"(missing {missing[:3]}, unexpected {extra[:3]}); {retrain}"
        )
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise ModelLoadError(
                f"size mismatch in {folder / WEIGHTS}: {key} is {tuple(tensors[key].shape)} but its config "
                f"({config.type}, d_llm {config.d_llm}, {config.n_queries}x{config.d_cond}) needs "
                f"{tuple(value.shape)}; {retrain}"
            )
    model.load_state_dict(tensors)
    return model.to(device).eval().requires_grad_(False), info
