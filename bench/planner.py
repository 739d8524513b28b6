"""Planner speed with the default local model, as ratios measured in one run.

    python bench/planner.py [--plans 12] [--turns 3]

Prints:
- median seconds per plan (warm: the model loaded, the prompt-state cache in use), and the first
  plan of a fresh model with and without the on-disk prompt state (what `modalgraph ask` pays);
- a full text-only chat turn (plan + answer through the graph) against a bare llama.cpp chat call
  on the same request with the same answer budget, median of --turns.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REQUESTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "planner_eval.jsonl"
CHAT_REQUESTS = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "What is 12 times 12?",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", type=int, default=12)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    opts = parser.parse_args()

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.planning.plan_eval import load_labelled
    from agent.planning.planner import Planner
    from agent.turns import TurnRunner

    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings()
        model_path = str(AppContext(settings).catalogue.resolve("planner"))
        app = AppContext(load_settings(data_dir=scratch))
        tools = app.registry.available()
        rows = load_labelled(REQUESTS)[: opts.plans]

        def fresh(state_dir: str | None) -> LlamaCppChatModel:
            return LlamaCppChatModel(
                model_path=model_path, max_tokens=opts.max_tokens, state_cache_dir=state_dir
            )

        # Cold first plans: a new process with no saved state, then one that finds the saved state.
        state_dir = str(Path(scratch) / "state")
        cold = []
        for label, directory in (
            ("no saved state", None),
            ("saved state (writes it)", state_dir),
            ("saved state", state_dir),
        ):
            llm = fresh(directory)
            llm.llama()  # loading the weights is not part of planning
            started = time.perf_counter()
            Planner(llm, tools, settings.max_steps).make_plan(rows[0].request, rows[0].attachments)
            cold.append((label, time.perf_counter() - started))
            del llm

        llm = fresh(state_dir)
        planner = Planner(llm, tools, settings.max_steps)
        planner.make_plan("warm up", [])
        plan_times = []
        for row in rows:
            started = time.perf_counter()
            planner.make_plan(row.request, row.attachments)
            plan_times.append(time.perf_counter() - started)

        runner = TurnRunner(app, llm)
        llama = llm.llama()
        turn_times, bare_times = [], []
        for i in range(opts.turns):
            request = CHAT_REQUESTS[i % len(CHAT_REQUESTS)]
            started = time.perf_counter()
            runner.run("bench", request, [], lambda event: None)
            turn_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            llama.create_chat_completion(
                messages=[{"role": "user", "content": request}], max_tokens=opts.max_tokens, temperature=0.2
            )
            bare_times.append(time.perf_counter() - started)

    print(f"model: {Path(model_path).name}")
    for label, seconds in cold:
        print(f"first plan, fresh model, {label:24s} {seconds:6.2f} s")
    print(
        f"plans: {len(plan_times)}, median {statistics.median(plan_times):.2f} s, max {max(plan_times):.2f} s"
    )
    turn, bare = statistics.median(turn_times), statistics.median(bare_times)
    print(
        f"text-only chat turn median {turn:.2f} s; bare llama.cpp call median {bare:.2f} s; ratio {turn / bare:.2f}x"
    )


if __name__ == "__main__":
    main()
