"""The output projector's shapes, its signal span and its figures, without any trained model.

Three tests pin NExT-GPT's known defects: queries that start at zero, a projector that only works
for 77 x 768 conditioning, and projector parameters that never train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agent.core.errors import ConfigError
from agent.projector.evaluate import conditioning_metrics
from agent.projector.llm_features import SpanFeatures, collate
from agent.projector.model import PROJECTOR_TYPES, OutputProjector, ProjectorConfig, build_output_projector
from agent.projector.signals import TEXT, signal_ids, signal_tokens, with_signals
from agent.projector.targets import generator_spec


def spans(count: int, d_llm: int, seed: int = 0, lengths: tuple[int, ...] = (7, 12)) -> list[SpanFeatures]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        length = lengths[i % len(lengths)]
        ids = np.full(length, TEXT)
        ids[-4:] = np.arange(4)
        out.append(SpanFeatures(rng.normal(size=(length, d_llm)).astype(np.float32), ids))
    return out


# ------------------------------------------------------------------ NExT-GPT's defects


@pytest.mark.parametrize("kind", PROJECTOR_TYPES)
def test_queries_start_random_never_zero(kind: str) -> None:
    torch.manual_seed(0)
    model = build_output_projector("image", d_llm=24, n_queries=10, d_cond=8, type=kind, d_model=32)
    queries = model.queries.detach()
    assert queries.abs().sum() > 0
    assert 0.01 < float(queries.std()) < 0.04  # normal, std 0.02
    # Distinct queries give distinct output positions from the first step on.
    out = model(**collate(spans(2, 24)))
    assert not torch.allclose(out[:, 0], out[:, 1])
    assert torch.cdist(out[0], out[0]).triu(1)[torch.triu_indices(10, 10, 1).unbind()].min() > 1e-4


@pytest.mark.parametrize("kind", PROJECTOR_TYPES)
@pytest.mark.parametrize("n_queries,d_cond", [(16, 64), (5, 24), (1, 8), (77, 32)])
def test_any_token_count_and_width_not_only_77(kind: str, n_queries: int, d_cond: int) -> None:
    model = build_output_projector(
        "image", d_llm=20, n_queries=n_queries, d_cond=d_cond, type=kind, d_model=16
    )
    out = model(**collate(spans(3, 20)))
    assert out.shape == (3, n_queries, d_cond)


def test_sizes_come_from_the_generator_config(tiny_models: dict[str, Path], shapes_world: Path) -> None:
    """The tiny SD and the shapes text-to-image model are not 77 tokens; AudioLDM is one CLAP vector."""
    image = generator_spec(tiny_models["image-gen"], "image")
    assert (image.n_queries, image.d_cond) == (16, 32)
    video = generator_spec(tiny_models["video-gen"], "video")
    assert (video.n_queries, video.d_cond) == (16, 32)
    audio = generator_spec(tiny_models["audio-gen"], "audio")
    assert (audio.n_queries, audio.d_cond) == (1, 8)
    for spec in (image, video, audio):
        model = build_output_projector(spec.modality, 20, spec.n_queries, spec.d_cond, d_model=16)
        assert model(**collate(spans(2, 20))).shape == (2, spec.n_queries, spec.d_cond)


def test_every_parameter_is_trainable_from_the_start() -> None:
    for modality in ("image", "video", "audio"):
        model = build_output_projector(modality, 20, 4, 8, d_model=16)
        assert all(p.requires_grad for p in model.parameters())
        names = {name for name, _ in model.named_parameters()}
        assert {"queries", "signal_embeddings"} <= names


# ------------------------------------------------------------------ the span


def test_signal_tokens_follow_the_request() -> None:
    assert signal_tokens("video") == ["<video_00>", "<video_01>", "<video_02>", "<video_03>"]
    text = with_signals("  a red\ncircle ", "image")
    assert text.text == "a red circle <image_00><image_01><image_02><image_03>"
    assert [text.text[a:b] for a, b in text.spans] == signal_tokens("image")


def test_signal_ids_follow_token_ends_across_merged_boundaries() -> None:
    text = with_signals("a red circle", "image")
    # How Qwen's BPE cuts it: "><" spans two signals and belongs to the later one.
    pieces = ["a", " red", " circle", " <", "image", "_", "0", "0", "><", "image", "_", "0", "1", "><"]
    pieces += ["image", "_", "0", "2", "><", "image", "_", "0", "3", ">"]
    assert "".join(pieces) == text.text
    ends = np.cumsum([len(p) for p in pieces]).tolist()
    ids = signal_ids(ends, text.spans)
    assert ids[:3] == [TEXT] * 3
    assert ids[3:8] == [0] * 5 and ids[8] == 1 and ids[-1] == 3
    assert sorted(set(ids) - {TEXT}) == [0, 1, 2, 3]


def test_padding_changes_nothing() -> None:
    torch.manual_seed(0)
    model = build_output_projector("image", 20, 6, 8, d_model=16).eval()
    batch = spans(2, 20, lengths=(5, 11))
    together = model(**collate(batch))
    alone = torch.cat([model(**collate([span])) for span in batch])
    assert torch.allclose(together, alone, atol=1e-5)


def test_signal_embeddings_are_added_only_at_signal_positions() -> None:
    torch.manual_seed(0)
    model = build_output_projector("image", 20, 3, 8, type="linear", d_model=16).eval()
    batch = collate(spans(1, 20))
    before = model(**batch)
    with torch.no_grad():
        # Not a constant: the input LayerNorm would take that out again.
        model.signal_embeddings.add_(torch.randn_like(model.signal_embeddings))
    assert not torch.allclose(before, model(**batch))
    words_only = {**batch, "signal_ids": torch.full_like(batch["signal_ids"], TEXT)}
    reference = model(**words_only)
    with torch.no_grad():
        model.signal_embeddings.add_(torch.randn_like(model.signal_embeddings))
    assert torch.allclose(reference, model(**words_only))


# ------------------------------------------------------------------ configs and figures


def test_unknown_modality_and_type_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown modality 'smell'; use one of image, video, audio"):
        build_output_projector("smell", 8, 4, 8)
    with pytest.raises(ConfigError, match=r"unknown projector type 'qformer'"):
        build_output_projector("image", 8, 4, 8, type="qformer")
    with pytest.raises(ConfigError, match="not divisible"):
        ProjectorConfig("image", 8, 4, 8, d_model=30, heads=4)
    with pytest.raises(ConfigError, match="unknown modality"):
        signal_tokens("smell")


def test_config_round_trips() -> None:
    config = ProjectorConfig("audio", 1536, 1, 512, type="mlp", d_model=64)
    assert ProjectorConfig.from_dict(config.to_dict()) == config
    assert isinstance(OutputProjector(config), torch.nn.Module)


def test_metrics_rank_each_caption_among_the_others() -> None:
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(50, 4, 6)).astype(np.float32)
    perfect = conditioning_metrics(targets.copy(), targets)
    assert perfect["top1"] == 1.0 and perfect["top5"] == 1.0 and perfect["mean_cosine"] == pytest.approx(1.0)
    shifted = conditioning_metrics(np.roll(targets, 1, axis=0), targets)
    assert shifted["top1"] == 0.0 and shifted["mean_cosine"] < 0.3
    # A little noise keeps each caption nearest its own target.
    noisy = conditioning_metrics(targets + 0.1 * rng.normal(size=targets.shape).astype(np.float32), targets)
    assert noisy["top1"] == 1.0 and 0.9 < noisy["mean_cosine"] < 1.0
