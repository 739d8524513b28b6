"""The output projector: the LLM's hidden states over a signal span -> a generator's conditioning.

`transformer` (NExT-GPT's choice for every modality): `Linear(d_llm -> d)`, an `nn.Transformer`
whose encoder reads the span and whose decoder reads `n_queries` learnable queries, then
`Linear(d -> d_cond)`. `linear` and `mlp` skip the attention: they read the mean of the signal
positions and give each output position its own learnable offset. All three return exactly
`(batch, n_queries, d_cond)`; the sizes come from the generator (see `targets.generator_spec`).

Departures from NExT-GPT, each fixing something that broke there or here:
- queries start random (normal, std 0.02), never zeros, so output positions differ from step 0;
- the signal tokens' embeddings live here and are trained (a GGUF's vocabulary cannot grow);
- the span gets sinusoidal positions (`nn.Transformer` has none; a frozen LLM's states carry order
  only implicitly) and a LayerNorm first (an LLM's last states have a few huge dimensions);
- nothing assumes 77 tokens or 768 dimensions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

import torch
from torch import nn

from agent.core.errors import ConfigError
from agent.projector.signals import SIGNAL_COUNT, check_modality

ProjectorType = Literal["linear", "mlp", "transformer"]
PROJECTOR_TYPES: tuple[str, ...] = get_args(ProjectorType)
# NExT-GPT's `build_output_projector` picks a type per modality; the transformer suits all three.
DEFAULT_TYPES: dict[str, str] = {"image": "transformer", "video": "transformer", "audio": "transformer"}
INIT_STD = 0.02


@dataclass(frozen=True)
class ProjectorConfig:
    """Everything that decides the projector's shapes; saved beside its weights."""

    modality: str
    d_llm: int
    n_queries: int
    d_cond: int
    type: str = "transformer"
    d_model: int = 256
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    n_signals: int = SIGNAL_COUNT

    def __post_init__(self) -> None:
        check_modality(self.modality)
        if self.type not in PROJECTOR_TYPES:
            raise ConfigError(
                f"unknown projector type {self.type!r}; use one of {', '.join(PROJECTOR_TYPES)}"
            )
        for name in ("d_llm", "n_queries", "d_cond", "d_model", "heads", "n_signals"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"projector {name} must be a positive integer, not {value!r}")
        if self.d_model % self.heads:
            raise ConfigError(f"projector d_model {self.d_model} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectorConfig:
        known = {f.name for f in fields(cls)}
        missing = {"modality", "d_llm", "n_queries", "d_cond"} - set(data)
        if missing:
            raise ConfigError(f"projector config lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})


def sinusoid(length: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The Transformer paper's fixed position encoding, (length, width); any length works."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)[:, : width // 2]
    return table


class OutputProjector(nn.Module):
    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        # NExT-GPT adds the signal tokens' input embeddings to the LLM's last hidden states there.
        self.signal_embeddings = nn.Parameter(torch.randn(config.n_signals, config.d_llm) * INIT_STD)
        self.input_norm = nn.LayerNorm(config.d_llm)
        self.fc_in = nn.Linear(config.d_llm, d)
        self.queries = nn.Parameter(torch.randn(config.n_queries, d) * INIT_STD)
        self.transformer: nn.Transformer | None = None
        self.hidden: nn.Module | None = None
        if config.type == "transformer":
            encoder = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(
                    d, config.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
                ),
                config.encoder_layers,
                norm=nn.LayerNorm(d),
                enable_nested_tensor=False,  # not with norm_first; saying so silences a warning
            )
            decoder = nn.TransformerDecoder(
                nn.TransformerDecoderLayer(
                    d, config.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
                ),
                config.decoder_layers,
                norm=nn.LayerNorm(d),
            )
            self.transformer = nn.Transformer(
                d, config.heads, custom_encoder=encoder, custom_decoder=decoder, batch_first=True
            )
        elif config.type == "mlp":
            self.hidden = nn.Sequential(nn.GELU(), nn.Linear(d, d), nn.GELU())
        self.fc_out = nn.Linear(d, config.d_cond)

    def forward(
        self, hidden: torch.Tensor, signal_ids: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """hidden (B, L, d_llm); signal_ids (B, L), -1 for words; padding_mask (B, L), True = padding.

        Returns (B, n_queries, d_cond).
        """
        batch, length, _ = hidden.shape
        if padding_mask is None:
            padding_mask = torch.zeros(batch, length, dtype=torch.bool, device=hidden.device)
        is_signal = (signal_ids >= 0) & ~padding_mask
        added = self.signal_embeddings[signal_ids.clamp(min=0)] * is_signal[..., None].to(hidden.dtype)
        x = self.fc_in(self.input_norm(hidden + added))
        if self.transformer is not None:
            x = x + sinusoid(length, x.shape[-1], x.device).to(x.dtype)
            queries = self.queries.expand(batch, -1, -1)
            out = self.transformer(
                x, queries, src_key_padding_mask=padding_mask, memory_key_padding_mask=padding_mask
            )
        else:
            # Without attention, read what NExT-GPT's linear mode reads: the signal positions.
            weights = is_signal.to(x.dtype)
            no_signal = weights.sum(1, keepdim=True) == 0
            weights = torch.where(no_signal, (~padding_mask).to(x.dtype), weights)
            pooled = (x * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
            out = pooled[:, None, :] + self.queries[None]
            if self.hidden is not None:
                out = self.hidden(out)
        return self.fc_out(out)


def build_output_projector(
    modality: str,
    d_llm: int,
    n_queries: int,
    d_cond: int,
    type: str | None = None,
    **sizes: int,
) -> OutputProjector:
    """NExT-GPT's `build_output_projector`: the modality's type, with sizes from the LLM and generator."""
    check_modality(modality)
    config = ProjectorConfig(
        modality=modality,
        d_llm=d_llm,
        n_queries=n_queries,
        d_cond=d_cond,
        type=type or DEFAULT_TYPES[modality],
        **sizes,
    )
    return OutputProjector(config)
