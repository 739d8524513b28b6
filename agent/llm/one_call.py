"""The one-call turn's contract between the planner and a backend that can branch mid-generation.

Every plan begins the same way up to the first step's tool name (`prefix`). There the model
chooses among `choices` by the logits of their first tokens: a tool, and the plan is written under
the schema's grammar; or the no-tool choice, and `answer_suffix` (closing that one-step plan, then a
line break) is followed by the answer itself. Choosing there, rather than on the reply's first
token, keeps the decision the planner was measured on: "is a tool needed?" is asked in the same
words and at the same place as in a two-call plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanFork:
    prefix: str  # what every plan starts with, up to the choice
    choices: tuple[str, ...]  # everything the model may write there
    answer_choice: str  # the choice that means "no tool: the answer follows"
    answer_suffix: str  # what completes that plan before the answer

    def __post_init__(self) -> None:
        if self.answer_choice not in self.choices:
            raise ValueError(f"{self.answer_choice!r} is not among the choices")
