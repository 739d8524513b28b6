"""How well the default local planner plans: the whole labelled sets, scored as the tests score them.

    python bench/plan_quality.py [--only labelled|history] [--every N] [--misses]

- labelled (tests/data/planner_eval.jsonl): tool-node F1, dependency-edge F1, search filter values,
  and plain chat answered with no tool;
- history (tests/data/planner_history.jsonl): follow-ups that must reach back into the
  conversation, and new topics that must be planned as they are without any history.

The test suite plans a fixed sample of each set (every 4th row, tests/test_planner_real.py): the
whole sets take about 17 minutes of two CPU cores, which would be most of the suite's time. This
command plans every row (or every Nth with --every), so it is the one whose figures the README
quotes. It needs the planner GGUF (`modalgraph models pull planner`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELLED = ROOT / "tests" / "data" / "planner_eval.jsonl"
HISTORY = ROOT / "tests" / "data" / "planner_history.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description="Planner quality on the labelled request sets.")
    parser.add_argument("--only", choices=("labelled", "history"), help="one set only")
    parser.add_argument("--every", type=int, default=1, help="plan every Nth row (the tests use 4)")
    parser.add_argument("--misses", action="store_true", help="print every request planned wrong")
    opts = parser.parse_args()
    if opts.every < 1:
        parser.error("--every must be 1 or more")

    from agent.context import AppContext
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.models.catalogue import Catalogue
    from agent.planning.plan_eval import evaluate_history, evaluate_labelled, load_history_rows, load_labelled
    from agent.planning.planner import Planner
    from graphs.chat import history_lines

    try:  # the user's pulled planner; everything else in a scratch data dir
        model_path = Catalogue.load(load_settings()).resolve("planner")
    except ModalgraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="plan-quality-") as scratch:
        app = AppContext(load_settings(data_dir=scratch))
        llm = LlamaCppChatModel(model_path=str(model_path), max_tokens=256)
        planner = Planner(llm, app.registry.available(), app.settings.max_steps)

        def progress(name: str, total: int) -> object:
            started = time.perf_counter()

            def on_row(n: int) -> None:
                rate = (time.perf_counter() - started) / n
                print(f"\r{name}: {n}/{total} ({rate:.1f} s a row)", end="", file=sys.stderr, flush=True)

            return on_row

        if opts.only in (None, "labelled"):
            rows = load_labelled(LABELLED)[:: opts.every]
            started = time.perf_counter()
            scores = evaluate_labelled(planner, rows, progress("labelled", len(rows)))  # type: ignore[arg-type]
            print(file=sys.stderr)
            print(
                f"labelled set, {len(rows)} requests ({time.perf_counter() - started:.0f} s): {scores.summary()}"
            )
            if opts.misses:
                print("\n".join(scores.misses))
        if opts.only in (None, "history"):
            history = load_history_rows(HISTORY)[:: opts.every]
            turns = app.settings.history_turns
            started = time.perf_counter()
            found = evaluate_history(
                planner,
                history,
                lambda entries: history_lines(entries, turns),
                progress("history", len(history)),  # type: ignore[arg-type]
            )
            print(file=sys.stderr)
            print(
                f"history set, {len(history)} requests ({time.perf_counter() - started:.0f} s): {found.summary()}"
            )
            if opts.misses:
                print("\n".join(found.misses))
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
