"""One loader for the diffusion generators: it honours each generator's declared device policy.

A generator declares a `DevicePolicy`; `choose_placement` turns it and the settings into a device, a
dtype and the memory savers to switch on; `load_pipeline` resolves the weights through the catalogue
(a missing model is one line naming the pull command), loads them with `from_pretrained` into the
shared model cache (so SD, Zeroscope and AudioLDM evict each other when the budget says so), and
`denoise` runs one call with per-step progress, cancellation and CUDA out-of-memory recovery.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ModalgraphError, ModelLoadError, one_line
from agent.generation.samplers import make_scheduler
from agent.models.devices import resolve_device, resolve_dtype

if TYPE_CHECKING:
    import torch

    from agent.core.settings import Settings
    from agent.models.host import ModelHost, StepHooks


class GeneratorOutOfMemoryError(ModalgraphError):
    """The device ran out of memory; the message names the setting that would help."""


class GenerationCancelledError(ModalgraphError):
    """The user cancelled the turn while a generator was denoising."""


@dataclass(frozen=True)
class DevicePolicy:
    """What a generator supports, declared once per generator (diffusers' `model_cpu_offload_seq` idea).

    `device="auto"` follows the `device` setting (itself `auto`: CUDA when present); a generator that
    must not run elsewhere pins it. `offload` says whether `enable_model_cpu_offload` is safe for it.
    """

    device: str = "auto"
    offload: bool = True
    attention_slicing: bool = True


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: torch.dtype
    cpu_offload: bool
    attention_slicing: bool
    vae_tiling: bool
    safety_checker: bool

    @property
    def pool(self) -> str:
        """Where the weights rest between calls: offloaded models live in RAM, so the RAM budget holds them."""
        return "cpu" if self.cpu_offload else self.device

    def key(self) -> str:
        flags = "".join(
            "1" if f else "0"
            for f in (self.cpu_offload, self.attention_slicing, self.vae_tiling, self.safety_checker)
        )
        return f"{self.device}:{str(self.dtype).removeprefix('torch.')}:{flags}"


def choose_placement(settings: Settings, policy: DevicePolicy) -> Placement:
    """auto -> CUDA when present; float16 on CUDA, float32 on CPU; savers only where they mean something."""
    wanted = settings.device if policy.device == "auto" else policy.device
    device = resolve_device(wanted)
    on_cuda = device.startswith("cuda")
    return Placement(
        device=device,
        dtype=resolve_dtype(settings.dtype, device),
        # Offload moves parts between RAM and VRAM: on the CPU there is nowhere to move them.
        cpu_offload=on_cuda and policy.offload and settings.cpu_offload,
        attention_slicing=policy.attention_slicing and settings.attention_slicing,
        vae_tiling=settings.vae_tiling,
        safety_checker=settings.safety_checker,
    )


@dataclass
class LoadedPipeline:
    """A pipeline in the model cache, with what a call needs to be reproducible and safe to share."""

    name: str
    model_id: str
    pipe: Any
    placement: Placement
    default_scheduler: Any
    # Steps of one plan may run side by side; one pipeline (its scheduler) serves one call at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def components(self) -> dict[str, Any]:
        """For `module_bytes`, which sizes the cache entry."""
        return dict(self.pipe.components)


def _ships_safety_checker(path: Path) -> bool:
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    value = index.get("safety_checker")
    return isinstance(value, list) and value[0] is not None


def _apply_placement(pipe: Any, placement: Placement) -> None:
    if placement.cpu_offload:
        try:
            pipe.enable_model_cpu_offload(device=placement.device)
        except (ImportError, RuntimeError) as exc:
            raise ModalgraphError(
                f"cpu_offload needs accelerate ({one_line(exc)}); `pip install accelerate` "
                "or set MODALGRAPH_CPU_OFFLOAD=false"
            ) from None
    else:
        pipe.to(placement.device)
    if placement.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    vae = getattr(pipe, "vae", None)
    if placement.vae_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # progress goes through ctx.progress instead


# diffusers (and the transformers classes it builds) import their names lazily, on first use, and
# that is not thread-safe: two steps of one plan loading pipelines side by side (generate_image and
# generate_video) sometimes failed with "cannot import name 'DiffusionPipeline' from 'diffusers'".
# Building pipelines one at a time avoids it; moving them to the device stays parallel.
_DIFFUSERS_IMPORTS = threading.Lock()


def load_pipeline(app: ModelHost, name: str, policy: DevicePolicy) -> LoadedPipeline:
    """The pipeline for catalogue entry `name`, from the model cache or loaded now."""
    path = app.catalogue.resolve(name)  # ModelMissingError: one line naming `modalgraph models pull`
    placement = choose_placement(app.settings, policy)
    model_id = app.catalogue.model_id(name)

    def loader() -> LoadedPipeline:
        kwargs: dict[str, Any] = {"torch_dtype": placement.dtype}
        if not placement.safety_checker and _ships_safety_checker(path):
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            with _DIFFUSERS_IMPORTS:
                from diffusers import DiffusionPipeline

                pipe = DiffusionPipeline.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"cannot load model '{name}' from {path}: {one_line(exc)}; "
                f"run `modalgraph models pull {name}` to re-fetch it"
            ) from None
        _apply_placement(pipe, placement)
        return LoadedPipeline(name, model_id, pipe, placement, pipe.scheduler)

    with oom_guard(app, name, placement):
        return app.model_cache.get(f"{name}:{path}:{placement.key()}", loader, placement.pool)


def oom_message(name: str, placement: Placement) -> str:
    helpers = []
    if placement.device.startswith("cuda") and not placement.cpu_offload:
        helpers.append("MODALGRAPH_CPU_OFFLOAD=true")
    if not placement.attention_slicing:
        helpers.append("MODALGRAPH_ATTENTION_SLICING=true")
    if not placement.vae_tiling:
        helpers.append("MODALGRAPH_VAE_TILING=true")
    fix = (
        f"set {' or '.join(helpers)}, or ask for less"
        if helpers
        else "ask for a smaller size or fewer frames"
    )
    return (
        f"out of memory on {placement.device} running '{name}'; {fix} (models were unloaded, you can retry)"
    )


@contextlib.contextmanager
def oom_guard(app: ModelHost, name: str, placement: Placement) -> Iterator[None]:
    """A CUDA OOM becomes one line naming the setting that helps; the cache is emptied so the next try fits."""
    import torch

    try:
        yield
    except (torch.cuda.OutOfMemoryError, MemoryError):
        app.model_cache.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise GeneratorOutOfMemoryError(oom_message(name, placement)) from None


class _Stop(Exception):
    """Raised from the step callback: the pipelines have no other way out of their loop."""


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: the initial noise is the same on every device, so a seed means the same output."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def denoise(
    loaded: LoadedPipeline,
    ctx: StepHooks,
    steps: int,
    sampler: str | None = None,
    progress_total: int | None = None,
    **call_kwargs: Any,
) -> Any:
    """One pipeline call: a fresh scheduler, progress per denoising step, cancellation, OOM recovery."""
    total = progress_total or steps
    done = 0

    def on_step(step: int) -> None:
        nonlocal done, total
        if step == 0 and progress_total is None:
            # Some samplers run more model calls than steps (PNDM's warm-up): count what really runs.
            total = max(steps, len(getattr(pipe.scheduler, "timesteps", ())))
        done = step + 1
        ctx.progress(f"step {done}/{total}", min(1.0, done / total))
        if ctx.cancelled:
            raise _Stop

    pipe = loaded.pipe
    params = inspect.signature(pipe.__call__).parameters
    if "callback_on_step_end" in params:
        call_kwargs["callback_on_step_end"] = lambda _pipe, i, _t, kwargs: on_step(i) or kwargs
    else:  # the older pipelines (TextToVideoSD, AudioLDM) only have the legacy hook
        call_kwargs.update(callback=lambda i, _t, _latents: on_step(i), callback_steps=1)
    if ctx.cancelled:
        raise GenerationCancelledError(f"cancelled before '{loaded.name}' started")
    with loaded.lock, oom_guard(ctx.app, loaded.name, loaded.placement):
        pipe.scheduler = make_scheduler(sampler, loaded.default_scheduler)
        try:
            return pipe(num_inference_steps=steps, **call_kwargs)
        except _Stop:
            raise GenerationCancelledError(f"cancelled at step {done}/{total} of '{loaded.name}'") from None
