"""How well the default local planner plans: the whole labelled sets, scored as the tests score them.

    python bench/plan_quality.py [--only labelled|history] [--every N] [--misses]
                                 [--save FILE | --replay FILE]

- labelled (tests/data/planner_eval.jsonl): tool-node F1, dependency-edge F1, search filter values,
  and plain chat answered with no tool;
- history (tests/data/planner_history.jsonl): follow-ups that must reach back into the
  conversation, and new topics that must be planned as they are without any history.

The test suite plans a fixed sample of each set (every 4th row, tests/test_planner_real.py): the
whole sets take about 17 minutes of two CPU cores, which would be most of the suite's time. This
command plans every row (or every Nth with --every), so it is the one whose figures the README
quotes. It needs the planner GGUF (`modalgraph models pull planner`).

`--save FILE` keeps the model's raw output for every request; `--replay FILE` scores those outputs
again without the model, in seconds. The model at temperature 0 writes the same output for the same
prompt, so a change to what code does with a plan afterwards (dates, places, echoed queries) is
measured by a replay; a change to the prompt needs a new run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.planning.planner import Planner, PlanOutcome  # noqa: E402 - after the line above

LABELLED = ROOT / "tests" / "data" / "planner_eval.jsonl"
HISTORY = ROOT / "tests" / "data" / "planner_history.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description="Planner quality on the labelled request sets.")
    parser.add_argument("--only", choices=("labelled", "history"), help="one set only")
    parser.add_argument("--every", type=int, default=1, help="plan every Nth row (the tests use 4)")
    parser.add_argument("--misses", action="store_true", help="print every request planned wrong")
    saving = parser.add_mutually_exclusive_group()
    saving.add_argument("--save", type=Path, help="write the model's raw output for every request here")
    saving.add_argument("--replay", type=Path, help="score the raw outputs saved by --save, no model")
    opts = parser.parse_args()
    if opts.every < 1:
        parser.error("--every must be 1 or more")

    from agent.context import AppContext
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.models.catalogue import Catalogue
    from agent.planning.plan_eval import evaluate_history, evaluate_labelled, load_history_rows, load_labelled
    from graphs.chat import history_lines

    saved: dict[str, Any] = {}
    if opts.replay:
        try:
            saved = json.loads(opts.replay.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--replay: cannot read {opts.replay}: {exc}")
    with tempfile.TemporaryDirectory(prefix="plan-quality-") as scratch:
        app = AppContext(load_settings(data_dir=scratch))
        tools, max_steps = app.registry.available(), app.settings.max_steps
        planner: Planner
        if opts.replay:
            planner = ReplayPlanner(saved, tools, max_steps)
        else:
            try:  # the user's pulled planner; everything else in a scratch data dir
                model_path = Catalogue.load(load_settings()).resolve("planner")
            except ModalgraphError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            llm = LlamaCppChatModel(model_path=str(model_path), max_tokens=256)
            planner = RecordingPlanner(llm, tools, max_steps) if opts.save else Planner(llm, tools, max_steps)

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
    if opts.save and isinstance(planner, RecordingPlanner):
        opts.save.write_text(json.dumps(planner.raw, ensure_ascii=False, indent=1))
        print(f"raw outputs of {len(planner.raw)} planning calls saved to {opts.save}", file=sys.stderr)
    return 0


def _key(request: str, attachments: Sequence[str], history: Sequence[str], today: date | None) -> str:
    return json.dumps([request, list(attachments), list(history), str(today)], ensure_ascii=False)


class RecordingPlanner(Planner):
    """The planner, keeping each call's raw outputs, one per attempt (none when it answered with no
    tool)."""

    def __init__(self, llm: Any, tools: dict[str, Any], max_steps: int) -> None:
        super().__init__(llm, tools, max_steps)
        self.raw: dict[str, list[str]] = {}

    def make_plan(
        self, request: str, attachments: Sequence[str] = (), history: Sequence[str] = (), **options: Any
    ) -> PlanOutcome:  # type: ignore[override]
        outcome = super().make_plan(request, attachments, history, **options)
        self.raw[_key(request, attachments, history, options.get("today"))] = list(outcome.raw)
        return outcome


class ReplayPlanner(Planner):
    """Plans from saved raw outputs: what code does after the model runs, without the model."""

    def __init__(self, saved: dict[str, Any], tools: dict[str, Any], max_steps: int) -> None:
        from agent.llm.scripted import ScriptedChatModel

        super().__init__(ScriptedChatModel(), tools, max_steps)
        self.saved = saved

    def make_plan(
        self, request: str, attachments: Sequence[str] = (), history: Sequence[str] = (), **options: Any
    ) -> PlanOutcome:  # type: ignore[override]
        from agent.llm.scripted import ScriptedChatModel
        from agent.planning.plan import Plan

        today = options.get("today")
        key = _key(request, attachments, history, today)
        if key not in self.saved:
            raise SystemExit(f"--replay: no saved output for {request!r}; save again with --save")
        raw = self.saved[key]
        # One output per attempt; a single string is an attempt that may have been retried as itself.
        replies = [raw] * (self.retries + 1) if isinstance(raw, str) else list(raw)
        if not any(replies):
            return PlanOutcome(plan=Plan())  # the model answered in words
        replay = Planner(ScriptedChatModel(replies=replies), self.tools, self.max_steps)
        return replay.make_plan(request, attachments, history, today=today)


if __name__ == "__main__":
    raise SystemExit(main())
