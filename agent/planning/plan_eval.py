"""Scoring plans against labelled ones: tool-node F1, dependency-edge F1 and search filter values.

Nodes are compared as multisets of tool names and edges as multisets of (from tool, to tool)
pairs, so step numbering does not matter.

A labelled `search_images` step may carry `"args"`: the filter values the planner must produce
(`date_from`, `date_to`, `place`, `folder`, `camera`, `orientation`, `file_type`, `without`) and
`query`, which is scored only as present or absent (its wording is free; label it with any text,
or leave it out for a filter-only request such as "my photos from Lisbon"). Every labelled value
is one item, and so is every filter the planner set that the label leaves out: a filter nobody
asked for narrows the search as wrongly as a wrong value. A labelled value may be a list of
acceptable answers where the request is genuinely vague ("at Christmas" starting on the 24th or
the 25th). Steps without `"args"` are scored on tools and edges only.

Relative dates ("last summer", "yesterday") need a fixed today: every row is planned as if today
were `EVAL_TODAY` (Sunday 2026-11-29) unless the row gives its own `"today": "YYYY-MM-DD"`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ToolInputError
from memory.photo_filters import file_types, parse_day
from memory.photo_metadata import fold
from memory.place_names import place_key

if TYPE_CHECKING:
    from agent.planning.planner import Planner

EVAL_TODAY = date(2026, 11, 29)
SEARCH_TOOL = "search_images"
# The search arguments scored by value; `query` is scored by presence only.
FILTER_FIELDS = ("date_from", "date_to", "place", "folder", "camera", "orientation", "file_type", "without")


@dataclass
class LabelledRequest:
    request: str
    attachments: list[str]
    steps: list[dict[str, Any]]  # [{"tool", "depends_on": [1-based indexes], "args"?: {...}}]
    today: date = EVAL_TODAY


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file, blank lines skipped."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _today(data: dict[str, Any]) -> date:
    return date.fromisoformat(data["today"]) if "today" in data else EVAL_TODAY


def load_labelled(path: Path) -> list[LabelledRequest]:
    return [
        LabelledRequest(data["request"], data.get("attachments", []), data["steps"], _today(data))
        for data in _jsonl_rows(path)
    ]


def nodes(steps: Sequence[dict[str, Any]]) -> Counter[str]:
    return Counter(s["tool"] for s in steps)


def edges(steps: Sequence[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Edges of a plan whose steps carry `id`s, or of a labelled plan whose deps are 1-based indexes."""
    by_id = {s.get("id", i + 1): s["tool"] for i, s in enumerate(steps)}
    return Counter((by_id[d], s["tool"]) for s in steps for d in s.get("depends_on", []) if d in by_id)


def _given(value: Any) -> bool:
    # The planner may write `null`, "" or [] for an argument it means to leave out.
    return value is not None and value != "" and value != []


def _words(text: str) -> str:
    return " ".join(fold(text).split())


def _day(text: Any, end: bool) -> date | None:
    try:
        return parse_day(str(text), end=end)
    except ToolInputError:
        return None


def _place(text: Any) -> frozenset[str]:
    # "Lisbon, Portugal" is the tool's "both of these"; order and spacing do not matter.
    return frozenset(place_key(part) for part in str(text).split(",") if fold(part).strip())


def _folder(text: Any) -> tuple[str, ...]:
    return tuple(_words(part) for part in re.split(r"[/\\]+", str(text)) if fold(part).strip())


def _without(value: Any) -> frozenset[str]:
    terms = value if isinstance(value, list) else [value]
    return frozenset(_words(str(t)) for t in terms if str(t).strip())


def filter_value_right(name: str, predicted: Any, expected: Any) -> bool:
    """Whether one predicted filter value means the labelled one (or one of a list of them)."""
    if name != "without" and isinstance(expected, list):
        return any(filter_value_right(name, predicted, option) for option in expected)
    if name in ("date_from", "date_to"):
        want = _day(expected, end=name == "date_to")
        return want is not None and _day(predicted, end=name == "date_to") == want
    if name == "place":
        return _place(predicted) == _place(expected)
    if name == "folder":
        return _folder(predicted) == _folder(expected)
    if name == "without":
        return _without(predicted) == _without(expected)
    if name == "file_type":
        return file_types(str(predicted)) == file_types(str(expected))
    return _words(str(predicted)) == _words(str(expected))  # camera, orientation


def filter_items(predicted: dict[str, Any] | None, expected: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(right, total, what was wrong) for one labelled search step against the planner's step
    (None when the planner wrote no matching search step: every labelled item is then wrong)."""
    if predicted is None:
        return 0, 1 + sum(_given(expected.get(n)) for n in FILTER_FIELDS), ["no search_images step"]
    got = {k: v for k, v in predicted.items() if _given(v)}
    right, total, wrong = 0, 1, []
    if ("query" in got) == _given(expected.get("query")):
        right += 1
    else:
        wrong.append(f"query {'present' if 'query' in got else 'absent'}")
    for name in FILTER_FIELDS:
        want, have = expected.get(name), got.get(name)
        if not _given(want):
            if have is not None:  # a filter nobody asked for
                total += 1
                wrong.append(f"{name} {have!r} not asked for")
            continue
        total += 1
        if have is not None and filter_value_right(name, have, want):
            right += 1
        else:
            wrong.append(f"{name} {have!r}, want {want!r}")
    return right, total, wrong


@dataclass
class F1:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: Counter, gold: Counter) -> None:
        overlap = sum((predicted & gold).values())
        self.tp += overlap
        self.fp += sum(predicted.values()) - overlap
        self.fn += sum(gold.values()) - overlap

    @property
    def score(self) -> float:
        # With nothing predicted and nothing expected (all plain chat), the planner was perfect.
        denominator = 2 * self.tp + self.fp + self.fn
        return 1.0 if denominator == 0 else 2 * self.tp / denominator


@dataclass
class Fraction:
    right: int = 0
    total: int = 0

    @property
    def score(self) -> float:
        return 1.0 if self.total == 0 else self.right / self.total


@dataclass
class PlanScores:
    node: F1 = field(default_factory=F1)
    edge: F1 = field(default_factory=F1)
    filters: Fraction = field(default_factory=Fraction)
    chat: Fraction = field(default_factory=Fraction)  # plain chat rows planned with no tool
    exact: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, request: str, predicted: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]]) -> None:
        self.node.add(nodes(predicted), nodes(gold))
        self.edge.add(edges(predicted), edges(gold))
        self.total += 1
        if not gold:
            self.chat.total += 1
            self.chat.right += not predicted
        if nodes(predicted) == nodes(gold) and edges(predicted) == edges(gold):
            self.exact += 1
        else:
            got = [s["tool"] for s in predicted]
            want = [s["tool"] for s in gold]
            self.misses.append(f"{request!r}: got {got}, want {want}")
        self._add_filters(request, predicted, gold)

    def _add_filters(
        self, request: str, predicted: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]]
    ) -> None:
        # The n-th labelled search step is matched with the n-th search step of the plan.
        searches = [s.get("args") or {} for s in predicted if s["tool"] == SEARCH_TOOL]
        labelled = [s for s in gold if s["tool"] == SEARCH_TOOL]
        for n, step in enumerate(labelled):
            if "args" not in step:
                continue
            right, total, wrong = filter_items(searches[n] if n < len(searches) else None, step["args"])
            self.filters.right += right
            self.filters.total += total
            if wrong:
                self.misses.append(f"{request!r}: filters {'; '.join(wrong)}")

    def summary(self) -> str:
        return (
            f"tool-node F1 {self.node.score:.3f}, dependency-edge F1 {self.edge.score:.3f}, "
            f"filter values right {self.filters.right}/{self.filters.total} ({self.filters.score:.3f}), "
            f"exact plans {self.exact}/{self.total}, plain chat {self.chat.right}/{self.chat.total} with no tool"
        )


def score_all(pairs: Iterable[tuple[str, Sequence[dict], Sequence[dict]]]) -> PlanScores:
    scores = PlanScores()
    for request, predicted, gold in pairs:
        scores.add(request, predicted, gold)
    return scores


# ----------------------------------------------------------------------------- earlier turns
#
# A labelled follow-up ("now make it blue" after a drawing) must reach back into the conversation:
# its steps carry `args_contain`, words that must appear in an argument (the earlier subject, a
# file path from an earlier answer). A new-topic request after the same history must be planned
# exactly as it is without any history.


@dataclass
class HistoryRequest:
    kind: str  # "follow-up" or "new-topic"
    history: list[dict[str, Any]]  # the session's history entries (role, text, attachments/artifacts)
    request: str
    steps: list[dict[str, Any]]
    today: date = EVAL_TODAY


def load_history_rows(path: Path) -> list[HistoryRequest]:
    return [
        HistoryRequest(data["kind"], data["history"], data["request"], data["steps"], _today(data))
        for data in _jsonl_rows(path)
    ]


def _contains_all(value: Any, words: Sequence[str]) -> bool:
    text = _words(json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)
    return all(_words(word) in text for word in words)


def args_contain_wrong(predicted: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]]) -> list[str]:
    """What the n-th predicted step of each tool lacks of the words its labelled twin asks for."""
    wrong = []
    for tool in {s["tool"] for s in gold}:
        mine = [s.get("args") or {} for s in predicted if s["tool"] == tool]
        for n, step in enumerate(s for s in gold if s["tool"] == tool):
            args = mine[n] if n < len(mine) else {}
            for name, words in (step.get("args_contain") or {}).items():
                if not _contains_all(args.get(name, ""), words):
                    wrong.append(f"{tool}.{name} {args.get(name)!r} lacks {words}")
    return wrong


def same_plan(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> bool:
    """Whether two plans are the same steps with the same arguments (numbering aside)."""

    def shape(steps: Sequence[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps([s["tool"], s.get("args") or {}], sort_keys=True) for s in steps)

    return shape(a) == shape(b) and edges(a) == edges(b)


@dataclass
class HistoryScores:
    follow_up: Fraction = field(default_factory=Fraction)
    new_topic: Fraction = field(default_factory=Fraction)
    misses: list[str] = field(default_factory=list)

    def add_follow_up(self, request: str, predicted: Sequence[dict], gold: Sequence[dict]) -> None:
        wrong = [] if nodes(predicted) == nodes(gold) and edges(predicted) == edges(gold) else ["tools"]
        wrong += args_contain_wrong(predicted, gold)
        self.follow_up.total += 1
        self.follow_up.right += not wrong
        if wrong:
            got = [(s["tool"], s.get("args")) for s in predicted]
            self.misses.append(f"follow-up {request!r}: got {got}; {'; '.join(wrong)}")

    def add_new_topic(
        self, request: str, predicted: Sequence[dict], without_history: Sequence[dict], gold: Sequence[dict]
    ) -> None:
        right = same_plan(predicted, without_history) and nodes(predicted) == nodes(gold)
        self.new_topic.total += 1
        self.new_topic.right += right
        if not right:
            got = [(s["tool"], s.get("args")) for s in predicted]
            alone = [(s["tool"], s.get("args")) for s in without_history]
            self.misses.append(f"new topic {request!r}: got {got}; without history {alone}")

    def summary(self) -> str:
        return (
            f"follow-ups right {self.follow_up.right}/{self.follow_up.total}, "
            f"new topics planned as without history {self.new_topic.right}/{self.new_topic.total}"
        )


# ----------------------------------------------------------------------------- running a planner
#
# The test suite plans a fixed sample of each set (every 4th row: the whole sets take 17 minutes of
# two CPU cores, most of the suite's time); `python bench/plan_quality.py` plans all of them.


def planned_steps(
    planner: Planner,
    request: str,
    attachments: Sequence[str] = (),
    history: Sequence[str] = (),
    today: date | None = None,
) -> list[dict[str, Any]]:
    """The steps `planner` plans for one request, as dicts; none when it gave no valid plan."""
    outcome = planner.make_plan(request, attachments, history, today=today)
    return [s.model_dump() for s in outcome.plan.steps] if outcome.plan else []


def evaluate_labelled(
    planner: Planner, rows: Sequence[LabelledRequest], on_row: Callable[[int], None] | None = None
) -> PlanScores:
    scores = PlanScores()
    for n, row in enumerate(rows, 1):
        scores.add(
            row.request, planned_steps(planner, row.request, row.attachments, today=row.today), row.steps
        )
        if on_row:
            on_row(n)
    return scores


def evaluate_history(
    planner: Planner,
    rows: Sequence[HistoryRequest],
    lines: Callable[[list[dict[str, Any]]], list[str]],
    on_row: Callable[[int], None] | None = None,
) -> HistoryScores:
    """`lines` turns a row's history entries into the prompt's history lines, as a chat turn does."""
    scores = HistoryScores()
    for n, row in enumerate(rows, 1):
        seen = planned_steps(planner, row.request, history=lines(row.history), today=row.today)
        if row.kind == "follow-up":
            scores.add_follow_up(row.request, seen, row.steps)
        else:
            alone = planned_steps(planner, row.request, today=row.today)
            scores.add_new_topic(row.request, seen, alone, row.steps)
        if on_row:
            on_row(n)
    return scores
