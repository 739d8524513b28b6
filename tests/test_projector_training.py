"""Training the projector: every part of it learns for every modality, runs resume, caches hit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.core.errors import ConfigError
from agent.projector.files import CONFIG, WEIGHTS, load_projector
from agent.projector.llm_features import identity_for_path, open_feature_llm, span_features
from agent.projector.model import OutputProjector
from agent.projector.signals import signal_tokens
from agent.projector.targets import TargetEncoder, caption_targets, generator_spec
from agent.projector.trainer import CHECKPOINT
from tests.projector_fixtures import CAPTIONS, quick_train


@pytest.mark.parametrize(
    "modality,generator", [("image", "image-gen"), ("video", "video-gen"), ("audio", "audio-gen")]
)
def test_every_parameter_of_every_modality_learns(
    modality: str, generator: str, tiny_llm: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """NExT-GPT's shipped script froze the image and video projectors; here all of each one trains."""
    spec = generator_spec(tiny_models[generator], modality)
    start = quick_train(tiny_llm, tiny_models[generator], modality, tmp_path / "start", steps=0).model
    result = quick_train(tiny_llm, tiny_models[generator], modality, tmp_path / "p", steps=3)
    before = dict(start.named_parameters())
    assert before.keys() == dict(result.model.named_parameters()).keys()
    unchanged = [
        name
        for name, param in result.model.named_parameters()
        if torch.equal(param.detach(), before[name].detach())
    ]
    assert unchanged == []
    assert {"queries", "signal_embeddings"} <= before.keys()
    loaded, info = load_projector(tmp_path / "p", modality)
    assert torch.equal(loaded.queries, result.model.queries.detach())
    assert info["config"].modality == modality
    assert info["generator"]["n_queries"] == spec.n_queries and info["generator"]["d_cond"] == spec.d_cond
    assert all(p.requires_grad for p in OutputProjector(info["config"]).parameters())


def test_a_killed_run_resumes_to_the_same_weights(
    tiny_llm: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    generator = tiny_models["image-gen"]
    whole = quick_train(tiny_llm, generator, "image", tmp_path / "whole", steps=8, checkpoint_every=4)
    assert whole.finished and not (tmp_path / "whole" / CHECKPOINT).exists()

    part = quick_train(
        tiny_llm, generator, "image", tmp_path / "resumed", steps=8, checkpoint_every=4, stop_after=5
    )
    assert not part.finished and part.step == 5
    assert (tmp_path / "resumed" / CHECKPOINT).is_file()
    assert not (tmp_path / "resumed" / WEIGHTS).exists()  # nothing half-trained is published

    rest = quick_train(tiny_llm, generator, "image", tmp_path / "resumed", steps=8, checkpoint_every=4)
    assert rest.finished and rest.start_step == 5 and rest.step == 8
    for (name, a), (_, b) in zip(
        whole.model.state_dict().items(), rest.model.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    training = json.loads((tmp_path / "resumed" / CONFIG).read_text())["training"]
    assert training["steps"] == 8


def test_a_checkpoint_of_another_run_is_refused(
    tiny_llm: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "p"
    quick_train(tiny_llm, tiny_models["image-gen"], "image", out, steps=6, stop_after=2)
    with pytest.raises(ConfigError, match="checkpoint of another run"):
        quick_train(tiny_llm, tiny_models["image-gen"], "image", out, steps=6, captions=CAPTIONS[:4])


def test_targets_are_computed_once_then_read_from_the_cache(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    spec = generator_spec(tiny_models["image-gen"], "image")
    encoder = TargetEncoder(spec)
    first = caption_targets(spec, CAPTIONS, tmp_path, encoder=encoder)
    assert encoder.calls == 1
    files = list((tmp_path / spec.fingerprint).glob("*.npy"))
    assert len(files) == len(CAPTIONS)
    again = caption_targets(spec, CAPTIONS, tmp_path, encoder=encoder)
    assert encoder.calls == 1  # a cache hit runs no text encoder
    assert np.array_equal(first, again)
    # Same values as the pipeline's own encode_prompt.
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["image-gen"])
    embeds, _ = pipe.encode_prompt(CAPTIONS[0], "cpu", 1, False)
    assert np.allclose(first[0], embeds[0].detach().numpy(), atol=1e-5)
    # One more caption: only it is encoded.
    caption_targets(spec, [*CAPTIONS, "a purple cross"], tmp_path, encoder=encoder)
    assert encoder.calls == 2 and len(list((tmp_path / spec.fingerprint).glob("*.npy"))) == len(CAPTIONS) + 1


def test_audio_targets_are_audioldms_normalised_clap_vector(tiny_models: dict[str, Path]) -> None:
    from diffusers import AudioLDMPipeline

    spec = generator_spec(tiny_models["audio-gen"], "audio")
    targets = caption_targets(spec, CAPTIONS[:2])
    assert targets.shape == (2, 1, 8)
    pipe = AudioLDMPipeline.from_pretrained(tiny_models["audio-gen"])
    expected = pipe._encode_prompt(CAPTIONS[:2], "cpu", 1, False)
    assert np.allclose(targets[:, 0], expected.detach().numpy(), atol=1e-5)


def test_features_are_cached_per_llm_and_text(
    tiny_llm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = identity_for_path(tiny_llm, "tiny-llm")
    llm = open_feature_llm(identity)
    calls: list[int] = []
    encode = llm.encode
    monkeypatch.setattr(llm, "encode", lambda texts: calls.append(len(texts)) or encode(texts))
    first = span_features(llm, CAPTIONS, "image", tmp_path)
    second = span_features(llm, CAPTIONS, "image", tmp_path)
    assert sum(calls) == len(CAPTIONS)
    for a, b in zip(first, second, strict=True):
        assert np.allclose(a.hidden, b.hidden, atol=1e-2) and np.array_equal(a.signal_ids, b.signal_ids)
    # Another modality is another text (other signal tokens), so another entry.
    span_features(llm, CAPTIONS[:1], "audio", tmp_path)
    assert sum(calls) == len(CAPTIONS) + 1


def test_transformers_features_mark_every_signal(tiny_llm: Path) -> None:
    llm = open_feature_llm(identity_for_path(tiny_llm, "tiny-llm"))
    [short, long] = span_features(llm, ["a red circle", "a large red circle on a gray background"], "image")
    assert short.hidden.shape[1] == llm.d_llm == 128
    for span in (short, long):
        assert len(span.hidden) == len(span.signal_ids)
        assert sorted(set(span.signal_ids.tolist()) - {-1}) == [0, 1, 2, 3]
        assert span.signal_ids[0] == -1 and span.signal_ids[-1] == 3
    assert len(long.hidden) > len(short.hidden)
    # The states differ between requests (the LLM reads the words).
    assert not np.allclose(short.hidden[-1], long.hidden[-1])
    assert signal_tokens("image")[0] not in "a red circle"
