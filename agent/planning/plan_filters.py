"""Search filters a small planner invented, taken out of its plan before it runs.

A filter the user never asked for hides the photos they did ask for, and the search then answers
"nothing found". The 1.5B planner makes two kinds of such filters:

- a camera or folder nobody named: copied from the prompt's examples ("camera: Sony" for "photos of
  snow before 2020"), or made of a query word ("camera" for "red cars"). Such a value must share a
  word with what the user said, in this request or earlier in the conversation;
- a place that is no place: a query word ("the lake" as place "Lake"), a date ("Christmas"), or a
  place with words around it ("Porto do Verão" for "no Porto do verão passado"). A place value must
  be a name the index can hold (`memory.place_names`); a longer phrase is cut to the place inside
  it, and a value with none goes back into the visual query, where the words belong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.planning.date_phrases import date_spans
from agent.planning.plan import Plan
from memory.photo_metadata import fold
from memory.place_names import is_place, place_within

SEARCH_TOOL = "search_images"
SAID_FILTERS = ("camera", "folder")
_WORD = re.compile(r"\w+")


def _said(value: str, conversation: str) -> bool:
    """Whether a word of `value` (two letters or more) is in the folded `conversation`."""
    return any(word in conversation for word in _WORD.findall(fold(value)) if len(word) >= 2)


def _is_date(text: str, today: date) -> bool:
    return bool(date_spans(text, today) or date_spans(f"at {text}", today))


def filters_from_conversation(plan: Plan, request: str, today: date, history: Sequence[str] = ()) -> Plan:
    """`plan` with the invented filters of its searches removed, as the module says."""
    conversation = fold(" ".join([*history, request]))
    for step in plan.steps:
        if step.tool != SEARCH_TOOL:
            continue
        args = step.args
        for name in SAID_FILTERS:
            value = args.get(name)
            if isinstance(value, str) and not _said(value, conversation):
                del args[name]
        place = args.get("place")
        if not isinstance(place, str):
            continue
        kept, words = [], []
        for part in (p.strip() for p in place.split(",")):
            if not part:
                continue
            if _is_date(part, today):
                words.append(part)
            elif is_place(part):
                kept.append(part)
            elif (inner := place_within(part)) is not None:
                kept.append(inner)
            else:
                words.append(part)
        if kept:
            args["place"] = ", ".join(kept)
        else:
            del args["place"]
        query = args.get("query")
        for part in words:
            if not isinstance(query, str) or not query.strip():
                query = part
            elif fold(part) not in fold(query):
                query = f"{query} {part}"
        if query is not None:
            args["query"] = query
    return plan
