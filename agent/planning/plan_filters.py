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

And one it forgets: "all my photos from Japan" planned as a search for what Japan looks like, with
no place. When the request names exactly one well-known place after a preposition ("from Japan",
"in Switzerland", "no Porto", "在东京"), written with a capital in the Latin scripts, a search with
no place gets it. The capital and the preposition keep "nice weather", "in the sunset" and "the
Christmas tree" out; dates are never places.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.planning.date_phrases import date_spans
from agent.planning.plan import Plan
from agent.planning.plan_dates import SEARCH_TOOL
from memory.photo_metadata import fold
from memory.place_names import is_place, place_key, place_within

SAID_FILTERS = ("camera", "folder")
_WORD = re.compile(r"\w+")
# Words, and each punctuation mark as a token of its own, so that a name never runs across a comma.
_TOKEN = re.compile(r"\w[\w'’.-]*|[^\w\s.]")
# Words that put a place after them, in the six languages the date reader reads.
_PLACE_PREPOSITIONS = frozenset(
    {"from", "in", "at", "to", "em", "no", "na", "nos", "nas", "de", "do", "da", "dos", "das"}
    | {"en", "a", "à", "au", "aux", "del", "im", "aus", "von", "nach"}
)
# Lower-case words inside a place's name: "Rio de Janeiro", "Saint-Pierre-et-Miquelon".
_NAME_JOINERS = frozenset(("de", "da", "do", "del", "di", "la", "le", "las", "los", "of", "on", "upon", "am"))
_CJK_AFTER = re.compile(r"[在于]([\u4e00-\u9fff]{2,8})")
_MAX_NAME_WORDS = 4


def _said(value: str, conversation: str) -> bool:
    """Whether a word of `value` (two letters or more) is in the folded `conversation`."""
    return any(word in conversation for word in _WORD.findall(fold(value)) if len(word) >= 2)


def _is_date(text: str, today: date) -> bool:
    # The date reader wants a preposition before a month or a holiday: "in March", "at Christmas".
    return any(date_spans(phrase, today) for phrase in (text, f"in {text}", f"at {text}"))


def place_named(request: str, today: date) -> str | None:
    """The one well-known place `request` names after a preposition, as written there; None when it
    names none or several."""
    found: dict[str, str] = {}
    tokens = _TOKEN.findall(request)
    for n, token in enumerate(tokens[:-1]):
        if fold(token) not in _PLACE_PREPOSITIONS or not tokens[n + 1][0].isupper():
            continue
        # The whole run of capitalised words (and the joiners between them) must be the place:
        # "in Van Gogh style" names no place, though Van is a city.
        run = [tokens[n + 1]]
        for word in tokens[n + 2 : n + 1 + 2 * _MAX_NAME_WORDS]:
            if not (word[0].isupper() or word in _NAME_JOINERS):
                break
            run.append(word)
        while run and not run[-1][0].isupper():
            run.pop()
        name = " ".join(run).rstrip(".")  # "St. Petersburg" keeps its dot, a sentence's end does not
        # One word can be a date ("March", "Christmas"); a longer name is a place even with a month
        # inside it ("Rio de Janeiro").
        if (
            len(run) <= _MAX_NAME_WORDS
            and len(name) >= 3
            and is_place(name, well_known=True)
            and not (len(run) == 1 and _is_date(name, today))
        ):
            found.setdefault(place_key(name), name)
    for match in _CJK_AFTER.finditer(request):
        for size in range(len(match[1]), 1, -1):
            if is_place(match[1][:size], well_known=True):
                found.setdefault(place_key(match[1][:size]), match[1][:size])
                break
    return next(iter(found.values())) if len(found) == 1 else None


def filters_from_conversation(plan: Plan, request: str, today: date, history: Sequence[str] = ()) -> Plan:
    """`plan` with the invented filters of its searches removed, as the module says."""
    conversation = fold(" ".join([*history, request]))
    named: str | None = None
    searches = [step for step in plan.steps if step.tool == SEARCH_TOOL]
    if any(not step.args.get("place") for step in searches):
        named = place_named(request, today)
    for step in searches:
        args = step.args
        for name in SAID_FILTERS:
            value = args.get(name)
            if isinstance(value, str) and not _said(value, conversation):
                del args[name]
        place = args.get("place")
        if not place and named is not None:
            args["place"] = named
            continue
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
