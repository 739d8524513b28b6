"""The date filters of a plan's searches, set from what the user said rather than left to the model.

A 1.5B planner gets date arithmetic wrong ("last summer" in November, the last day of a month), and
it also invents dates: "photos of the beach" planned with `date_from` 2025-01-01. An invented date
hides the very photos asked for, while a missing one only shows more, so a search's dates must come
from a date phrase the user wrote (`date_phrases`, in six languages):

- the request names one date range: that range, whatever the model wrote;
- it names several ("2019 and 2021"): the model's, which has to split them over its searches;
- it names none: a follow-up may carry a date from earlier in the conversation ("now only the ones
  with dogs"). If the user's earlier requests named exactly one range, that range replaces the
  model's dates; otherwise a model date is kept only when it is a bound of some range the
  conversation named, and dropped as invented when it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from agent.core.errors import ToolInputError
from agent.planning.date_phrases import DateSpan, date_spans, dates_in
from agent.planning.plan import Plan
from memory.photo_filters import parse_day

SEARCH_TOOL = "search_images"
DATE_ARGS = ("date_from", "date_to")
# How the planner's history lines start for the user's turns: graphs.chat.history_lines writes them.
USER_LINE = "User: "


def _spans(lines: Sequence[str], today: date) -> set[DateSpan]:
    return {span for line in lines for span in date_spans(line, today)}


def dates_from_conversation(plan: Plan, request: str, today: date, history: Sequence[str] = ()) -> Plan:
    """`plan` with the dates of every search_images step set from the request, or from the
    conversation before it, as the module says."""
    searches = [step for step in plan.steps if step.tool == SEARCH_TOOL]
    span = dates_in(request, today)
    if span is not None:
        for step in searches:
            for name in DATE_ARGS:
                step.args.pop(name, None)
            step.args.update(span.search_args())
        return plan
    if date_spans(request, today) or not any(name in step.args for step in searches for name in DATE_ARGS):
        return plan
    said = _spans([line[len(USER_LINE) :] for line in history if line.startswith(USER_LINE)], today)
    bounds = {day for s in _spans(history, today) for day in (s.start, s.end) if day is not None}
    for step in searches:
        model = {name: step.args.pop(name) for name in DATE_ARGS if name in step.args}
        if not model:
            continue
        if len(said) == 1:
            step.args.update(next(iter(said)).search_args())
        else:
            step.args.update({name: value for name, value in model.items() if _day(name, value) in bounds})
    return plan


def _day(name: str, value: object) -> date | None:
    """A date argument as a day ("2019" is 2019-01-01 as `date_from`, 2019-12-31 as `date_to`)."""
    try:
        return parse_day(str(value), end=name == "date_to")
    except ToolInputError:
        return None
