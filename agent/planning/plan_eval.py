"""Scoring plans against labelled ones: tool-node F1 and dependency-edge F1, micro-averaged.

Nodes are compared as multisets of tool names and edges as multisets of (from tool, to tool)
pairs, so step numbering does not matter.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LabelledRequest:
    request: str
    attachments: list[str]
    steps: list[dict[str, Any]]  # [{"tool", "depends_on": [1-based indexes]}]


def load_labelled(path: Path) -> list[LabelledRequest]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            data = json.loads(line)
            rows.append(LabelledRequest(data["request"], data.get("attachments", []), data["steps"]))
    return rows


def nodes(steps: Sequence[dict[str, Any]]) -> Counter[str]:
    return Counter(s["tool"] for s in steps)


def edges(steps: Sequence[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Edges of a plan whose steps carry `id`s, or of a labelled plan whose deps are 1-based indexes."""
    by_id = {s.get("id", i + 1): s["tool"] for i, s in enumerate(steps)}
    return Counter((by_id[d], s["tool"]) for s in steps for d in s.get("depends_on", []) if d in by_id)


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
class PlanScores:
    node: F1 = field(default_factory=F1)
    edge: F1 = field(default_factory=F1)
    exact: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, request: str, predicted: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]]) -> None:
        self.node.add(nodes(predicted), nodes(gold))
        self.edge.add(edges(predicted), edges(gold))
        self.total += 1
        if nodes(predicted) == nodes(gold) and edges(predicted) == edges(gold):
            self.exact += 1
        else:
            got = [s["tool"] for s in predicted]
            want = [s["tool"] for s in gold]
            self.misses.append(f"{request!r}: got {got}, want {want}")

    def summary(self) -> str:
        return (
            f"tool-node F1 {self.node.score:.3f}, dependency-edge F1 {self.edge.score:.3f}, "
            f"exact plans {self.exact}/{self.total}"
        )


def score_all(pairs: Iterable[tuple[str, Sequence[dict], Sequence[dict]]]) -> PlanScores:
    scores = PlanScores()
    for request, predicted, gold in pairs:
        scores.add(request, predicted, gold)
    return scores
