"""conditioning="projector": a request -> LLM with signal tokens -> projector -> `prompt_embeds`.

The projector is checked against what would run now before anything heavy loads: it must be for
this modality, make the conditioning shape the current generator takes, and have been trained on
the current LLM's features with the current generator's text encoder. Each failure is one sentence
that names the setting or the train command.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ConfigError
from agent.projector.files import CONFIG, WEIGHTS, load_projector, read_info, train_command
from agent.projector.llm_features import (
    FeatureLLM,
    LLMIdentity,
    feature_llm_name,
    identity_for_path,
    llm_identity,
    load_feature_llm,
    span_features,
)
from agent.projector.signals import check_modality
from agent.projector.targets import GeneratorSpec, as_prompt_embeds, current_generator

if TYPE_CHECKING:
    import torch

    from agent.models.host import ModelHost
    from agent.projector.model import OutputProjector


@dataclass
class LoadedProjector:
    model: OutputProjector
    info: dict[str, Any]
    folder: Path
    device: str
    lock: threading.Lock

    @property
    def components(self) -> dict[str, Any]:
        """For the model cache's size estimate."""
        return {"projector": self.model}


def current_llm(app: ModelHost) -> LLMIdentity:
    """The feature LLM the settings select: a path, or a catalogue name (default: the planner)."""
    name = feature_llm_name(app)
    candidate = Path(name).expanduser()
    if candidate.exists():
        return identity_for_path(candidate)
    return llm_identity(app, name)


def check_compatible(info: dict[str, Any], folder: Path, generator: GeneratorSpec, llm: LLMIdentity) -> None:
    """Refuse a projector made for another generator shape, text encoder or LLM."""
    config = info["config"]
    modality = config.modality
    retrain = f"retrain with `{train_command(modality, folder)}`"
    if (config.n_queries, config.d_cond) != (generator.n_queries, generator.d_cond):
        raise ConfigError(
            f"size mismatch: the {modality} projector in {folder} makes {config.n_queries}x{config.d_cond} "
            f"conditioning but {generator.describe()} takes {generator.n_queries}x{generator.d_cond}; {retrain}"
        )
    trained_gen = info.get("generator") or {}
    if trained_gen.get("fingerprint") not in (None, generator.fingerprint):
        raise ConfigError(
            f"the {modality} projector in {folder} was trained for the text encoder of "
            f"{trained_gen.get('model_id') or trained_gen.get('path')}, not {generator.describe()}; {retrain}"
        )
    trained_llm = info.get("llm") or {}
    if trained_llm.get("fingerprint") not in (None, llm.fingerprint):
        raise ConfigError(
            f"the {modality} projector in {folder} was trained on the features of "
            f"{trained_llm.get('name') or trained_llm.get('path')} ({trained_llm.get('fingerprint')}), "
            f"but projector_llm is now {llm.describe()}; set MODALGRAPH_PROJECTOR_LLM to the LLM it "
            f"was trained with or {retrain}"
        )


def load_for_generation(app: ModelHost, modality: str) -> tuple[LoadedProjector, FeatureLLM, GeneratorSpec]:
    """The modality's projector and feature LLM from the model cache, after the checks above."""
    check_modality(modality)
    folder = app.settings.projector_dir(modality)
    info = read_info(folder, modality)  # missing: names the train command
    generator = current_generator(app, modality)
    llm = current_llm(app)
    config = info["config"]
    trained_llm = info.get("llm") or {}
    if trained_llm.get("fingerprint") not in (None, llm.fingerprint):
        # Another LLM: if its width differs too, say so, as that is the mismatch a user can see.
        feature = load_feature_llm(app, llm)
        if feature.d_llm != config.d_llm:
            raise ConfigError(
                f"size mismatch: the {modality} projector in {folder} reads {config.d_llm}-wide LLM states "
                f"but {llm.describe()} gives {feature.d_llm}; set MODALGRAPH_PROJECTOR_LLM to the LLM it "
                f"was trained with or retrain with `{train_command(modality, folder)}`"
            )
    check_compatible(info, folder, generator, llm)
    device = app.device
    stamp = "-".join(str((folder / name).stat().st_mtime_ns) for name in (WEIGHTS, CONFIG))

    def loader() -> LoadedProjector:
        model, loaded_info = load_projector(folder, modality, device)
        return LoadedProjector(model, loaded_info, folder, device, threading.Lock())

    loaded = app.model_cache.get(f"projector:{modality}:{folder.resolve()}:{stamp}", loader, device)
    return loaded, load_feature_llm(app, llm), generator


def projector_prompt_embeds(
    app: ModelHost, modality: str, prompt: str, dtype: torch.dtype | None = None, device: str | None = None
) -> torch.Tensor:
    """`prompt_embeds` for one request: (1, n_queries, d_cond), or (1, d) for AudioLDM."""
    import torch

    from agent.projector.llm_features import collate  # deferred: imports langchain

    loaded, llm, _generator = load_for_generation(app, modality)
    # No disk cache here: a request is read once, and the cache would fill with users' prompts.
    [span] = span_features(llm, [prompt], modality)
    with loaded.lock, torch.inference_mode():
        batch = collate([span], loaded.device)
        conditioning = loaded.model(**batch)
    embeds = as_prompt_embeds(conditioning.float(), modality)
    return embeds.to(device=device or loaded.device, dtype=dtype or embeds.dtype)
