"""The chat graph's state. Values are plain JSON-able data: checkpoints stay small and portable,
and files are referenced by path (see memory.artifacts), never embedded."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, Field

from memory.artifacts import Artifact

StepStatus = Literal["done", "failed", "skipped"]


class StepResult(BaseModel):
    id: int
    tool: str
    status: StepStatus
    output: str = ""
    error: str | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None
    seconds: float = 0.0


class Answer(BaseModel):
    text: str
    artifacts: list[Artifact] = Field(default_factory=list)


def merge_results(old: dict[str, dict] | None, new: dict[str, dict] | None) -> dict[str, dict]:
    """Step results accumulate within a turn; a new turn sends None to start afresh."""
    if new is None:
        return {}
    return {**(old or {}), **new}


class ChatState(TypedDict, total=False):
    history: Annotated[list[dict[str, Any]], operator.add]
    request: str
    attachments: list[dict[str, Any]]
    # The recording the request was spoken in (its transcript is `request`), apart from the
    # attachments: it is the request itself, not a file for the tools to work on.
    spoken: dict[str, Any] | None
    plan: dict[str, Any] | None
    plan_error: str | None
    # The answer, when the planning call itself answered a turn that needs no tool.
    direct_answer: str | None
    results: Annotated[dict[str, dict[str, Any]], merge_results]
    answer: dict[str, Any] | None


def new_turn(request: str, attachments: list[Artifact], spoken: Artifact | None = None) -> dict[str, Any]:
    """The graph input that starts a turn, clearing what the previous turn left. `spoken` is the
    recording a spoken request came from, `request` its transcript."""
    return {
        "request": request,
        "attachments": [a.model_dump() for a in attachments],
        "spoken": spoken.model_dump() if spoken is not None else None,
        "plan": None,
        "plan_error": None,
        "direct_answer": None,
        "results": None,
        "answer": None,
    }
