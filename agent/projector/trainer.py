"""Train an output projector with the LLM and the generator frozen.

The loss is NExT-GPT's: the L2 distance between each projected token and the generator's own
text-encoder output for the caption, averaged over tokens. With images, the latent-diffusion
denoising loss through the frozen U-Net is added with a weight (NExT-GPT's second stage).

Every step draws its batch from a generator seeded by (seed, step), and checkpoints hold the model,
the optimiser and the step, so a run killed at any point and started again ends with the same
weights as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.core.errors import ConfigError, ModelLoadError, one_line
from agent.projector.files import save_projector
from agent.projector.llm_features import SpanFeatures, collate
from agent.projector.model import OutputProjector, ProjectorConfig

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; all but `checkpoint_every`, `max_seconds` and `threads` decide the result."""

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    denoise_weight: float = 0.1
    seed: int = 0
    checkpoint_every: int = 250
    # Stop (checkpointed, resumable) after this long; None runs all steps.
    max_seconds: float | None = None
    # torch CPU threads; None keeps torch's default.
    threads: int | None = None

    def result_fields(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("checkpoint_every", "max_seconds", "threads"):
            data.pop(key)
        return data


@dataclass
class DenoiseSet:
    """Images for the optional denoising loss: VAE latents, each with the index of its caption."""

    latents: torch.Tensor
    caption_index: torch.Tensor
    unet: Any
    scheduler: Any


@dataclass
class TrainResult:
    model: OutputProjector
    step: int
    start_step: int
    finished: bool
    loss: float
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return (self.step - self.start_step) / self.seconds if self.seconds > 0 else 0.0


def token_l2(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """NExT-GPT's loss: per-token Euclidean distance, averaged (the epsilon keeps sqrt's gradient finite)."""
    return ((predicted - target).pow(2).sum(-1) + 1e-8).sqrt().mean()


def match_output_scale(model: OutputProjector, targets: np.ndarray) -> None:
    """Start the last layer at the targets' mean and spread.

    Text-encoder outputs are often far smaller (or larger) than a fresh Linear's output; without
    this the first few hundred steps only shrink the output, and an L2 loss is slow at that.
    """
    flat = torch.from_numpy(np.ascontiguousarray(targets)).float().reshape(-1, targets.shape[-1])
    with torch.no_grad():
        # A LayerNorm'd input of width d gives outputs of std about |w| * sqrt(d) per dimension.
        current = model.fc_out.weight.std() * math.sqrt(model.fc_out.in_features)
        model.fc_out.weight.mul_(float(flat.std()) / float(current))
        model.fc_out.bias.copy_(flat.mean(0))


def _schedule(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def run_key(projector: ProjectorConfig, config: TrainConfig, data_key: str) -> str:
    """Which run a checkpoint belongs to: resuming with other data or settings would be silent nonsense."""
    blob = json.dumps(
        {"projector": projector.to_dict(), "train": config.result_fields(), "data": data_key}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _load_checkpoint(path: Path, key: str, fresh: bool) -> dict[str, Any] | None:
    if not path.is_file() or fresh:
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a checkpoint cut short by a crash: any unpickling error
        raise ModelLoadError(
            f"the checkpoint {path} cannot be read ({one_line(exc)}); delete it or pass --fresh"
        ) from None
    if state.get("run") != key:
        raise ConfigError(
            f"{path.parent} holds a checkpoint of another run (other captions, LLM, generator or settings); "
            "use another --out, or --fresh to start over"
        )
    return state


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]projector[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


@dataclass
class _Run:
    """The state a run carries from step to step: what a checkpoint holds, and where it goes."""

    config: TrainConfig
    model: OutputProjector
    optimizer: torch.optim.Optimizer
    # run_key(): a checkpoint records it so that another run's is never resumed.
    key: str
    checkpoint_path: Path
    start: int = 0
    losses: list[float] = field(default_factory=list)

    def checkpoint(self, step: int) -> None:
        _save_checkpoint(
            self.checkpoint_path,
            {
                "run": self.key,
                "step": step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "losses": self.losses,
            },
        )

    def resume(self, state: dict[str, Any], log: Callable[[str], None]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start, self.losses = int(state["step"]), list(state["losses"])
        log(f"resuming from step {self.start} of {self.config.steps} ({self.checkpoint_path})")


@dataclass
class _Data:
    """The training set as tensors: LLM features padded to the longest span, targets, optional images."""

    padded: dict[str, torch.Tensor]
    lengths: torch.Tensor
    targets: torch.Tensor
    denoise: DenoiseSet | None
    device: str

    @classmethod
    def prepare(
        cls, features: Sequence[SpanFeatures], targets: np.ndarray, denoise: DenoiseSet | None, device: str
    ) -> _Data:
        padded = collate(features)
        lengths = (~padded["padding_mask"]).sum(1)
        target_tensor = torch.from_numpy(np.ascontiguousarray(targets)).float()
        if denoise is not None:
            denoise.unet.to(device).requires_grad_(False).eval()
        return cls(padded, lengths, target_tensor, denoise, device)

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        # Cut to the batch's own longest span: padding past it is only wasted attention.
        width = int(self.lengths[rows].max())
        return {name: value[rows, :width].to(self.device) for name, value in self.padded.items()}


def train_projector(
    features: Sequence[SpanFeatures],
    targets: np.ndarray,
    projector: ProjectorConfig,
    config: TrainConfig,
    out_dir: Path,
    info: dict[str, Any],
    data_key: str,
    device: str = "cpu",
    denoise: DenoiseSet | None = None,
    progress: bool = False,
    fresh: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainResult:
    """Train (or resume) into `out_dir`; when all steps are done, write the projector files there.

    `stop_after` ends the run after that step, as a crash would (tests use it to check resuming).
    """
    _check_inputs(features, targets, projector)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    key = run_key(projector, config, data_key)
    state = _load_checkpoint(checkpoint_path, key, fresh)
    run = _start_run(projector, config, targets, device, key, checkpoint_path)
    if state is not None:
        run.resume(state, log)
    data = _Data.prepare(features, targets, denoise, device)
    step, finished, seconds = _train_steps(run, data, progress, stop_after, log)
    run.model.eval()
    result = TrainResult(
        model=run.model,
        step=step,
        start_step=run.start,
        finished=finished,
        loss=float(np.mean(run.losses[-50:])) if run.losses else float("nan"),
        seconds=seconds,
        losses=run.losses,
    )
    if finished:
        stats = _training_stats(result, config, device, len(features), denoise)
        save_projector(out_dir, run.model, {**info, "training": stats})
        checkpoint_path.unlink(missing_ok=True)
    return result


def _check_inputs(features: Sequence[SpanFeatures], targets: np.ndarray, projector: ProjectorConfig) -> None:
    if len(features) != len(targets):
        raise ValueError(f"{len(features)} feature spans but {len(targets)} targets")
    if targets.shape[1:] != (projector.n_queries, projector.d_cond):
        raise ConfigError(
            f"targets are {targets.shape[1]}x{targets.shape[2]} but the projector makes "
            f"{projector.n_queries}x{projector.d_cond}"
        )


def _start_run(
    projector: ProjectorConfig,
    config: TrainConfig,
    targets: np.ndarray,
    device: str,
    key: str,
    checkpoint_path: Path,
) -> _Run:
    """A fresh model and optimiser, seeded: the same settings always start from the same weights."""
    torch.manual_seed(config.seed)
    model = OutputProjector(projector)
    match_output_scale(model, targets)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    return _Run(config, model, optimizer, key, checkpoint_path)


def _train_steps(
    run: _Run, data: _Data, progress: bool, stop_after: int | None, log: Callable[[str], None]
) -> tuple[int, bool, float]:
    """Step from run.start until done, `stop_after` or the time limit: (step reached, finished, seconds)."""
    config = run.config
    started = time.perf_counter()
    step = run.start
    finished = run.start >= config.steps
    with _threads(config.threads), _progress_bar(progress) as bar:
        task = bar.add_task("train", total=config.steps, completed=run.start, loss="-")
        for step in range(run.start, config.steps):
            run.losses.append(_train_step(run, data, step))
            done = step + 1
            bar.update(task, completed=done, loss=f"{np.mean(run.losses[-50:]):.4f}")
            if done % config.checkpoint_every == 0 or done == config.steps:
                run.checkpoint(done)
            if stop_after is not None and done >= stop_after and done < config.steps:
                run.checkpoint(done)
                step = done
                break
            if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                run.checkpoint(done)
                log(f"stopped at step {done} of {config.steps}: time limit; run again to continue")
                step = done
                break
        else:
            step = config.steps
            finished = True
    return step, finished, time.perf_counter() - started


def _train_step(run: _Run, data: _Data, step: int) -> float:
    """One optimiser step; its batch (and noise) come from a generator seeded by (seed, step) alone."""
    config = run.config
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    for group in run.optimizer.param_groups:
        group["lr"] = config.learning_rate * _schedule(step, config)
    rows = torch.randint(0, len(data), (config.batch_size,), generator=generator)
    predicted = run.model(**data.batch(rows))
    loss = token_l2(predicted, data.targets[rows].to(data.device))
    if data.denoise is not None and config.denoise_weight > 0:
        loss = loss + config.denoise_weight * _denoise_loss(
            run.model, data.denoise, data.batch, config, generator, data.device
        )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    return float(loss.detach())


def _training_stats(
    result: TrainResult, config: TrainConfig, device: str, captions: int, denoise: DenoiseSet | None
) -> dict[str, Any]:
    """What projector.json records of the training."""
    return {
        "steps": config.steps,
        "final_loss": round(result.loss, 5),
        "seconds_this_run": round(result.seconds, 1),
        "steps_per_second": round(result.steps_per_second, 2),
        "device": device,
        "captions": captions,
        "images": 0 if denoise is None else len(denoise.latents),
        **{k: v for k, v in config.result_fields().items() if k != "steps"},
    }


def _denoise_loss(
    model: OutputProjector,
    denoise: DenoiseSet,
    batch_for: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    config: TrainConfig,
    generator: torch.Generator,
    device: str,
) -> torch.Tensor:
    """The U-Net's noise-prediction error when conditioned on the projector's output."""
    picks = torch.randint(0, len(denoise.latents), (config.batch_size,), generator=generator)
    latents = denoise.latents[picks].to(device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    steps = denoise.scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (len(picks),), generator=generator).to(device)
    noisy = denoise.scheduler.add_noise(latents, noise, timesteps)
    conditioning = model(**batch_for(denoise.caption_index[picks]))
    predicted = denoise.unet(noisy, timesteps, encoder_hidden_states=conditioning).sample
    if denoise.scheduler.config.prediction_type == "v_prediction":
        wanted = denoise.scheduler.get_velocity(latents, noise, timesteps)
    else:
        wanted = noise
    return torch.nn.functional.mse_loss(predicted, wanted)


def prepare_denoise(
    generator_path: Path, images: Sequence[Path], caption_index: Sequence[int], device: str = "cpu"
) -> DenoiseSet:
    """Encode the images with the generator's VAE (frozen) at the U-Net's native size."""
    from diffusers import DDPMScheduler, DiffusionPipeline
    from PIL import Image

    try:
        pipe = DiffusionPipeline.from_pretrained(str(generator_path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load {generator_path} for the denoising loss: {one_line(exc)}"
        ) from None
    vae, unet = pipe.vae.to(device).eval(), pipe.unet
    side = int(unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    latents = []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            batch = []
            for path in images[start : start + 64]:
                try:
                    with Image.open(path) as image:
                        pixels = image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
                except OSError as exc:
                    raise ConfigError(f"cannot read image {path}: {one_line(exc)}") from None
                batch.append(torch.from_numpy(np.asarray(pixels).copy()).permute(2, 0, 1).float() / 127.5 - 1)
            encoded = vae.encode(torch.stack(batch).to(device)).latent_dist.mean
            latents.append((encoded * vae.config.scaling_factor).cpu())
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return DenoiseSet(torch.cat(latents), torch.tensor(list(caption_index)), unet, scheduler)
