"""Sampler names a user (or the planner) may ask for -> diffusers scheduler classes.

A sampler is swapped with `from_config` on the model's own scheduler config, so the noise schedule the
model was trained with (betas, timestep spacing, prediction type) is kept and only the solver changes.
"""

from __future__ import annotations

from typing import Any

SCHEDULER_CLASSES: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "lcm": "LCMScheduler",
    "pndm": "PNDMScheduler",
}


def sampler_name(scheduler: Any) -> str:
    """Our name for a scheduler instance, or its class name when it is none of ours (recorded in metadata)."""
    cls_name = type(scheduler).__name__
    return next((name for name, cls in SCHEDULER_CLASSES.items() if cls == cls_name), cls_name)


def make_scheduler(name: str | None, model_default: Any) -> Any:
    """A fresh scheduler for one call: `name`'s class, or the model's own class, from the model's config.

    Fresh each call because schedulers carry per-call state (timesteps, step index).
    """
    import diffusers

    if name is None:
        return type(model_default).from_config(model_default.config)
    try:
        cls = getattr(diffusers, SCHEDULER_CLASSES[name])
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SCHEDULER_CLASSES)}") from None
    return cls.from_config(model_default.config)
