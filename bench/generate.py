"""Seconds per denoising step and peak memory of the generators: `python bench/generate.py`.

For each pipeline (the tiny random-weight ones by default, or whatever MODALGRAPH_MODEL_IMAGE_GEN /
_VIDEO_GEN / _AUDIO_GEN point at) it times the bare diffusers call (the baseline) and the same call
through our tool (catalogue, model cache, scheduler swap, progress hook, file encoding, artifact
store), on the CPU and on CUDA when present, and prints one table with the tool/bare ratio.
Peak memory is the RSS rise over the run on the CPU and torch.cuda.max_memory_allocated on CUDA.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.core.settings import model_env_var

GENERATORS = ("image-gen", "video-gen", "audio-gen")


class PeakRss:
    """Samples this process's RSS every 5 ms: torch's allocations are invisible to tracemalloc."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def rise(self) -> int:
        return self.peak - self.start


def measure(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, int]:
    """(best wall seconds of `repeats` runs, peak memory bytes from before the first call)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    with PeakRss() as rss:
        fn()  # warm-up, timed apart: first-call allocations are not per-step cost, but they are memory
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else rss.rise
    return best, peak


def call_args(name: str, steps: int, size: int, frames: int, duration: float) -> tuple[dict, dict]:
    """(bare pipeline kwargs, tool args) asking for the same work."""
    if name == "image-gen":
        return {"width": size, "height": size}, {"width": size, "height": size}
    if name == "video-gen":
        return (
            {"width": size, "height": size, "num_frames": frames},
            {"width": size, "height": size, "frames": frames},
        )
    return {"audio_length_in_s": duration}, {"duration": duration}


def run_one(name: str, device: str, args: argparse.Namespace) -> list[tuple[str, str, str, float, int]]:
    import torch
    from diffusers import DiffusionPipeline

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.models.devices import resolve_dtype
    from tools.context import RunContext
    from tools.generate_audio import GenerateAudioArgs, GenerateAudioTool
    from tools.generate_image import GenerateImageArgs, GenerateImageTool
    from tools.generate_video import GenerateVideoArgs, GenerateVideoTool

    tool, tool_args = {
        "image-gen": (GenerateImageTool, GenerateImageArgs),
        "video-gen": (GenerateVideoTool, GenerateVideoArgs),
        "audio-gen": (GenerateAudioTool, GenerateAudioArgs),
    }[name]
    bare_kwargs, extra = call_args(name, args.steps, args.size, args.frames, args.duration)
    app = AppContext(load_settings(device=device, data_dir=Path(tempfile.mkdtemp(prefix="bench-gen-"))))
    path = app.catalogue.resolve(name)
    dtype = resolve_dtype("auto", device)

    pipes = [DiffusionPipeline.from_pretrained(str(path), torch_dtype=dtype).to(device)]
    pipes[0].set_progress_bar_config(disable=True)

    def bare() -> Any:
        generator = torch.Generator("cpu").manual_seed(0)
        return pipes[0](
            "a red circle",
            num_inference_steps=args.steps,
            generator=generator,
            output_type="np",
            **bare_kwargs,
        )

    ctx = RunContext(app)
    parsed = tool_args(prompt="a red circle", steps=args.steps, seed=0, **extra)

    def wrapped() -> Any:
        return tool().run(parsed, ctx)

    rows = []
    bare_s, bare_peak = measure(bare, device, args.repeats)
    pipes.clear()  # the tool loads its own copy through the model cache
    tool_s, tool_peak = measure(wrapped, device, args.repeats)
    app.model_cache.clear()
    dtype_name = str(dtype).removeprefix("torch.")
    rows.append((name, device, dtype_name, bare_s / args.steps, bare_peak, tool_s / args.steps, tool_peak))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="image/video side in pixels")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds of audio")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=GENERATORS, action="append", help="bench only these")
    args = parser.parse_args(argv)

    import torch

    from tests.tiny_pipelines import BUILDERS

    tiny_root = Path(tempfile.mkdtemp(prefix="tiny-pipelines-"))
    for name in GENERATORS:
        if not os.environ.get(model_env_var(name)):  # a real model wins over the tiny one
            os.environ[model_env_var(name)] = str(BUILDERS[name](tiny_root / name))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"steps={args.steps} size={args.size} frames={args.frames} duration={args.duration}s threads={torch.get_num_threads()}"
    )
    header = (
        "pipeline",
        "device",
        "dtype",
        "bare s/step",
        "bare peak MB",
        "tool s/step",
        "tool peak MB",
        "tool/bare",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for device in devices:
        for name in args.only or GENERATORS:
            for row in run_one(name, device, args):
                pipeline, dev, dtype, bare_s, bare_peak, tool_s, tool_peak = row
                print(
                    f"{pipeline} | {dev} | {dtype} | {bare_s:.4f} | {bare_peak / 2**20:.1f} | "
                    f"{tool_s:.4f} | {tool_peak / 2**20:.1f} | {tool_s / bare_s:.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
