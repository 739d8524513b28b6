"""Planner and chat-turn speed with the default local model, as ratios measured in one run.

    python bench/planner.py [--plans 12] [--turns 3] [--processes 5] [--typing 4] [--skip PARTS]

Parts (all by default; --skip takes a comma list):
- plans: median seconds per plan (warm: the model loaded, the prompt-state cache in use), and the
  first plan of a fresh model with and without the on-disk prompt state;
- turns: a text-only chat turn through the graph, answered from the planning call (one call) and
  with a plan call then an answer call (two calls), against a bare llama.cpp chat call on the same
  request made to write an answer of the same length; each has its own model and context, as a
  running chat does; total time and time to the first answer token, medians of --turns
  alternating runs per request;
- first: the first turn of a fresh `chat` after the user has typed for --typing seconds, with and
  without loading the model in the background while they type;
- processes: `modalgraph ask "What is the capital of France?"` as a whole process against a bare
  llama-cpp-python process answering the same question (median of --processes alternating runs).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REQUESTS = ROOT / "tests" / "data" / "planner_eval.jsonl"
CHAT_REQUESTS = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "What is 12 times 12?",
]
PROCESS_REQUEST = "What is the capital of France?"
PARTS = ("plans", "turns", "first", "processes")

# The bare process: load the GGUF, answer one question with the model's own chat template, print it.
BARE_PROCESS = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_threads=int(sys.argv[3]), n_ctx=4096, flash_attn=sys.argv[4] == "1", verbose=False)
out = llama.create_chat_completion(messages=[{"role": "user", "content": sys.argv[2]}], max_tokens=96, temperature=0.2)
print(out["choices"][0]["message"]["content"])
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class TurnClock:
    """Times one turn from its start: the first answer token and the end."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.text: list[str] = []

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "token":
            if self.first_token is None:
                self.first_token = time.perf_counter() - self.started
            self.text.append(str(event.get("text", "")))


def bare_call(llama: Any, request: str, tokens: int) -> tuple[float, float]:
    """(total, first-token) seconds of a plain chat completion forced to write exactly `tokens`
    tokens (the end-of-text token is barred until then): the same length as the answer compared."""
    bias = {str(llama.token_eos()): -1e9}
    started = time.perf_counter()
    first: float | None = None
    for part in llama.create_chat_completion(
        messages=[{"role": "user", "content": request}],
        max_tokens=tokens,
        temperature=0.2,
        logit_bias=bias,
        stream=True,
    ):
        if first is None and part["choices"][0]["delta"].get("content"):
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return total, first if first is not None else total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=12)
    parser.add_argument("--turns", type=int, default=3, help="runs per chat request")
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--typing", type=float, default=4.0, help="seconds the simulated user types")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--skip", default="", help=f"comma list of parts to skip: {', '.join(PARTS)}")
    opts = parser.parse_args()
    skip = {p.strip() for p in opts.skip.split(",") if p.strip()}
    unknown = skip - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")

    from agent.context import AppContext
    from agent.core.settings import load_settings

    settings = load_settings()
    model_path = str(AppContext(settings).catalogue.resolve("planner"))
    threads = settings.n_threads or os.cpu_count() or 1
    print(f"model: {Path(model_path).name}, {threads} threads")
    with tempfile.TemporaryDirectory() as scratch:
        if "plans" not in skip:
            plans_part(model_path, scratch, opts)
        if "turns" not in skip:
            turns_part(model_path, scratch, opts)
        if "first" not in skip:
            first_turn_part(model_path, scratch, opts)
        if "processes" not in skip:
            processes_part(model_path, scratch, threads, opts)


def _bare_model(model_path: str, like: Any) -> Any:
    """A plain llama.cpp model with the engine options of `like` (a LlamaCppChatModel)."""
    from llama_cpp import Llama

    return Llama(
        model_path=model_path,
        n_ctx=like.n_ctx,
        n_threads=like.n_threads or os.cpu_count() or 1,
        flash_attn=like.flash_attn,
        seed=like.seed,
        verbose=False,
    )


def _model(model_path: str, state_dir: str | None, max_tokens: int) -> Any:
    from agent.llm.llamacpp import LlamaCppChatModel

    return LlamaCppChatModel(model_path=model_path, max_tokens=max_tokens, state_cache_dir=state_dir)


def plans_part(model_path: str, scratch: str, opts: argparse.Namespace) -> None:
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.planning.plan_eval import load_labelled
    from agent.planning.planner import Planner

    app = AppContext(load_settings(data_dir=scratch))
    tools, max_steps = app.registry.available(), app.settings.max_steps
    rows = load_labelled(REQUESTS)[: opts.plans]
    state_dir = str(Path(scratch) / "plans-state")
    cold = []
    for label, directory in (
        ("no saved state", None),
        ("saved state (writes it)", state_dir),
        ("saved state", state_dir),
    ):
        llm = _model(model_path, directory, opts.max_tokens)
        llm.llama()  # loading the weights is not part of planning
        started = time.perf_counter()
        Planner(llm, tools, max_steps).make_plan(rows[0].request, rows[0].attachments)
        cold.append((label, time.perf_counter() - started))
        del llm
    llm = _model(model_path, state_dir, opts.max_tokens)
    planner = Planner(llm, tools, max_steps)
    planner.make_plan("warm up", [])
    times = []
    for row in rows:
        started = time.perf_counter()
        planner.make_plan(row.request, row.attachments)
        times.append(time.perf_counter() - started)
    for label, seconds in cold:
        print(f"first plan, fresh model, {label:24s} {seconds:6.2f} s")
    print(f"plans: {len(times)}, median {_median(times):.2f} s, max {max(times):.2f} s")


def turns_part(model_path: str, scratch: str, opts: argparse.Namespace) -> None:
    """Text-only turns as a running chat has them: each way of answering has its own model, so its
    context keeps its own instructions between turns (as one process's chat does), and the bare
    call has its own llama.cpp context with the same engine options."""
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.turns import TurnRunner

    runners = {}
    for name, one_call in (("one call", True), ("two calls", False)):
        settings = load_settings(data_dir=Path(scratch) / name.replace(" ", "-"), one_call=one_call)
        llm = _model(model_path, str(Path(scratch) / f"turns-state-{one_call}"), opts.max_tokens)
        runners[name] = TurnRunner(AppContext(settings), llm)
    for runner in runners.values():  # each prompt's state evaluated once, as in a running chat
        runner.run("warm", "hello", [], lambda event: None)
    bare = _bare_model(model_path, runners["one call"].llm)
    bare_call(bare, "hello", 8)
    rows: dict[str, dict[str, list[float]]] = {
        name: {"total": [], "first": []} for name in (*runners, "bare")
    }
    lengths = []
    sessions = itertools.count()
    for _ in range(opts.turns):
        for request in CHAT_REQUESTS:
            clocks = {}
            for name, runner in runners.items():
                clock = TurnClock()
                runner.run(f"bench-{next(sessions)}", request, [], clock.on_event)
                total = time.perf_counter() - clock.started
                rows[name]["total"].append(total)
                rows[name]["first"].append(clock.first_token if clock.first_token is not None else total)
                clocks[name] = clock
            answer = "".join(clocks["one call"].text)
            tokens = max(1, len(bare.tokenize(answer.encode("utf-8"), add_bos=False)))
            lengths.append(tokens)
            total, first = bare_call(bare, request, tokens)
            rows["bare"]["total"].append(total)
            rows["bare"]["first"].append(first)
    bare_total, bare_first = _median(rows["bare"]["total"]), _median(rows["bare"]["first"])
    print(
        f"text-only turns: {len(lengths)} per mode ({len(CHAT_REQUESTS)} requests x {opts.turns}), answers "
        f"{min(lengths)}-{max(lengths)} tokens; the bare call writes as many"
    )
    print(f"  {'':10s} {'total s':>8s} {'ratio':>7s} {'first token s':>14s} {'ratio':>7s}")
    for name, times in rows.items():
        total, first = _median(times["total"]), _median(times["first"])
        print(
            f"  {name:10s} {total:8.2f} {total / bare_total:6.2f}x {first:14.2f} {first / bare_first:6.2f}x"
        )


def first_turn_part(model_path: str, scratch: str, opts: argparse.Namespace) -> None:
    """The first turn of a new chat whose user types for `opts.typing` seconds first."""
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.turns import TurnRunner

    state_dir = str(Path(scratch) / "first-state")
    results: list[tuple[str, float]] = []
    sessions = itertools.count()  # a new conversation each time: no turn sees another's history

    def first_turn(background: bool, label: str) -> None:
        app = AppContext(load_settings(data_dir=Path(scratch) / "first"))
        runner = TurnRunner(app, _model(model_path, state_dir, opts.max_tokens))
        if background:
            runner.warm_up_in_background()
        time.sleep(opts.typing)  # the prompt is shown; the user types
        started = time.perf_counter()
        runner.run(f"first-{next(sessions)}", CHAT_REQUESTS[0], [], lambda event: None)
        results.append((label, time.perf_counter() - started))

    first_turn(False, "seed")  # writes the saved prompt state a returning user has
    results.clear()
    for _ in range(2):
        first_turn(False, "loads on first turn")
        first_turn(True, "loads while typing")
    print(f"first turn of a fresh chat, after {opts.typing:.0f} s of typing (saved prompt state on disk):")
    by_label: dict[str, list[float]] = {}
    for label, seconds in results:
        by_label.setdefault(label, []).append(seconds)
    base = _median(by_label["loads on first turn"])
    for label, values in by_label.items():
        print(f"  {label:20s} {_median(values):6.2f} s  {_median(values) / base:5.2f}x")


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout.strip()


def processes_part(model_path: str, scratch: str, threads: int, opts: argparse.Namespace) -> None:
    from agent.core.settings import load_settings

    env = dict(os.environ)
    env.update(MODALGRAPH_DATA_DIR=str(Path(scratch) / "processes"), MODALGRAPH_MODEL_PLANNER=model_path)
    ask = [sys.executable, "-m", "agent", "ask", PROCESS_REQUEST]
    flash = "1" if load_settings().flash_attn else "0"  # the engine options `ask` runs with
    bare = [sys.executable, "-c", BARE_PROCESS, model_path, PROCESS_REQUEST, str(threads), flash]
    runs: dict[str, list[float]] = {"modalgraph ask": [], "bare process": []}
    answers: dict[str, str] = {}
    commands: dict[str, list[str]] = {"modalgraph ask": ask, "bare process": bare}
    _timed(ask, env)  # the first ask ever writes the saved prompt state; later ones read it
    for _ in range(opts.processes):
        for name, command in commands.items():
            seconds, out = _timed(command, env)
            runs[name].append(seconds)
            answers[name] = out.splitlines()[-1] if out else ""
    base = _median(runs["bare process"])
    print(f"whole process, {PROCESS_REQUEST!r}, median of {opts.processes} alternating runs:")
    for name, values in runs.items():
        print(
            f"  {name:15s} {_median(values):6.2f} s  {_median(values) / base:5.2f}x  answer: {answers[name][:70]!r}"
        )


if __name__ == "__main__":
    main()
