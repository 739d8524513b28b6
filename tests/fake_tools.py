"""Tools for graph tests: they record calls and behave as scripted, with no model behind them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from agent.core.errors import ModelMissingError
from tools.base import Tool, ToolArgs, ToolResult
from tools.context import RunContext

CALLS: list[tuple[str, dict[str, Any], float, float]] = []
CALLS_LOCK = threading.Lock()


def record(name: str, args: ToolArgs, started: float) -> None:
    with CALLS_LOCK:
        CALLS.append((name, args.model_dump(), started, time.perf_counter()))


class EchoArgs(ToolArgs):
    text: str
    delay: float = 0.0


class EchoTool(Tool):
    name = "echo"
    description = "Repeat the text."
    args_model = EchoArgs

    def run(self, args: EchoArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        started = time.perf_counter()
        while time.perf_counter() - started < args.delay and not ctx.cancelled:
            time.sleep(0.02)
        record(self.name, args, started)
        return ToolResult(text=f"echo: {args.text}")


class MakeFileArgs(ToolArgs):
    content: str = Field(min_length=1)


class MakeFileTool(Tool):
    name = "make_file"
    description = "Write a text file into the artifact store."
    args_model = MakeFileArgs

    def run(self, args: MakeFileArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        started = time.perf_counter()
        artifact = ctx.app.artifacts.put_bytes(args.content.encode(), ".txt", "text/plain")
        record(self.name, args, started)
        return ToolResult(text=f"wrote {len(args.content)} characters", artifacts=[artifact])


class ReadFileArgs(ToolArgs):
    path: str


class ReadFileTool(Tool):
    name = "read_file"
    description = "Read a file another step made."
    args_model = ReadFileArgs
    artifact_inputs = ("path",)

    def run(self, args: ReadFileArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        started = time.perf_counter()
        text = ctx.resolve_path(args.path).read_text()
        record(self.name, args, started)
        return ToolResult(text=f"the file says {text}")


class BoomArgs(ToolArgs):
    kind: str = "bug"


class BoomTool(Tool):
    name = "boom"
    action = "look at it"
    description = "Always fails."
    args_model = BoomArgs

    def run(self, args: BoomArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        if args.kind == "missing":
            raise ModelMissingError("model 'vlm' is not present; run `modalgraph models pull vlm`")
        raise RuntimeError("kaboom")


class WaitArgs(ToolArgs):
    marker: str


def _count_run(marker: str) -> int:
    """Raise the run count kept in MARKER.count; the new count."""
    count_file = Path(marker + ".count")
    count = (int(count_file.read_text()) if count_file.exists() else 0) + 1
    count_file.write_text(str(count))
    return count


class WaitForFileTool(Tool):
    """Blocks until MARKER.go exists, after writing MARKER.started: lets a test kill a turn mid-step."""

    name = "wait_for_file"
    description = "Wait for a file."
    args_model = WaitArgs

    def run(self, args: WaitArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        _count_run(args.marker)
        # Written after the count: a test that kills the process on seeing ".started" must find the
        # count already raised, or a loaded machine makes the kill land between the two writes.
        Path(args.marker + ".started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not Path(args.marker + ".go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("nobody released the wait")
            time.sleep(0.05)
        return ToolResult(text=f"waited for {args.marker}")


ALL = [EchoTool, MakeFileTool, ReadFileTool, BoomTool, WaitForFileTool]
SPECS = [f"tests.fake_tools:{cls.__name__}" for cls in ALL]


class CountArgs(ToolArgs):
    marker: str


class CountTool(Tool):
    """Counts its runs in MARKER.count: shows whether a resumed turn redid a finished step."""

    name = "count"
    description = "Count."
    args_model = CountArgs

    def run(self, args: CountArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        return ToolResult(text=f"counted {_count_run(args.marker)}")


ALL.append(CountTool)
SPECS.append("tests.fake_tools:CountTool")


class MediaArgs(ToolArgs):
    steps: int = Field(3, ge=1, le=10)


class MakeMediaTool(Tool):
    """Reports progress, then stores a small WAV and a small (not playable) MP4: what a generator
    returns, without a model."""

    name = "make_media"
    description = "Make a sound and a video."
    args_model = MediaArgs

    def run(self, args: MediaArgs, ctx: RunContext) -> ToolResult:  # type: ignore[override]
        import io
        import wave

        for done in range(1, args.steps + 1):
            ctx.progress(f"step {done}/{args.steps}", done / args.steps)
        sound = io.BytesIO()
        with wave.open(sound, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x01" * 800)
        audio = ctx.app.artifacts.put_bytes(sound.getvalue(), ".wav", "audio/wav")
        video = ctx.app.artifacts.put_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4, ".mp4")
        return ToolResult(text="made a sound and a video", artifacts=[audio, video])


MEDIA_SPEC = "tests.fake_tools:MakeMediaTool"
