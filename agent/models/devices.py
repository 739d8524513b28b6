"""Device and dtype choice from settings: never a hard-coded `cuda:1`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(setting: str = "auto") -> str:
    """`auto` -> cuda when present, then mps, else cpu; an explicit device is checked, not trusted."""
    import torch

    setting = setting.strip().lower()
    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {setting!r} asked for but CUDA is not available; set MODALGRAPH_DEVICE=cpu"
            )
        index = setting.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"device {setting!r} does not exist ({torch.cuda.device_count()} GPU(s)); "
                "set MODALGRAPH_DEVICE=auto"
            )
        return setting
    if setting in ("cpu", "mps"):
        return setting
    raise ConfigError(f"unknown device {setting!r}; use auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    """`auto` -> float16 on CUDA (half the memory, tensor cores), float32 elsewhere (CPU fp16 is slow)."""
    import torch

    if setting == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[setting]


def module_bytes(obj: Any) -> int:
    """Bytes held by a torch module's parameters and buffers (or a pipeline's components)."""
    total = 0
    components = getattr(obj, "components", None)
    modules = components.values() if isinstance(components, dict) else [obj]
    for module in modules:
        for attr in ("parameters", "buffers"):
            fn = getattr(module, attr, None)
            if callable(fn):
                total += sum(t.numel() * t.element_size() for t in fn())
    return total
