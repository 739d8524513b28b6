"""Dates read from requests by code: every labelled request's dates, each kind of phrase in the six
languages, numbers that are not dates, and the planner putting the read dates into its plan."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agent.llm.scripted import ScriptedChatModel
from agent.planning.date_phrases import DateSpan, date_spans, dates_in
from agent.planning.plan_eval import filter_value_right, load_history_rows, load_labelled
from agent.planning.planner import Planner
from tools.registry import ToolRegistry

DATA = Path(__file__).parent / "data"
TODAY = date(2026, 11, 29)  # a Sunday, as the labelled set's


def _labelled_dates() -> list[tuple[str, date, dict[str, Any]]]:
    """(request, today, the date arguments its search step expects; {} for none) of both sets. A
    follow-up's `args_contain` gives words its dates must contain: {"date_from": ["2019"]}."""
    rows = [(r.request, r.today, r.steps) for r in load_labelled(DATA / "planner_eval.jsonl")]
    rows += [(r.request, r.today, r.steps) for r in load_history_rows(DATA / "planner_history.jsonl")]
    out = []
    for request, today, steps in rows:
        expected: dict[str, Any] = {}
        for step in steps:
            args = {**step.get("args", {}), **step.get("args_contain", {})}
            expected.update({k: v for k, v in args.items() if k in ("date_from", "date_to")})
        out.append((request, today, expected))
    return out


LABELLED = _labelled_dates()


def test_the_labelled_sets_have_dated_and_undated_requests() -> None:
    dated = [row for row in LABELLED if row[2]]
    assert len(dated) >= 20 and len(LABELLED) - len(dated) >= 60


@pytest.mark.parametrize(("request_", "today", "expected"), LABELLED, ids=[row[0][:50] for row in LABELLED])
def test_every_labelled_request_gets_exactly_its_dates(request_: str, today: date, expected: dict) -> None:
    span = dates_in(request_, today)
    if not expected:
        assert span is None, f"no date in {request_!r}, read {span}"
        return
    assert span is not None, request_
    got = span.search_args()
    contains = all(isinstance(w, list) and all(len(x) == 4 for x in w) for w in expected.values())
    if contains:  # args_contain: the words a follow-up's dates must contain
        assert all(word in got.get(name, "") for name, words in expected.items() for word in words), got
        return
    assert set(got) == set(expected), (got, expected)
    for name, want in expected.items():
        assert filter_value_right(name, got[name], want), (name, got[name], want)


def span(first: str | None, last: str | None) -> DateSpan:
    return DateSpan(first and date.fromisoformat(first), last and date.fromisoformat(last))


CASES = [
    # years, and open ranges around them
    ("my photos from 2018", span("2018-01-01", "2018-12-31")),
    ("my 2019 photos", span("2019-01-01", "2019-12-31")),
    ("pictures of Lisbon in 2019", span("2019-01-01", "2019-12-31")),
    ("photos since 2022", span("2022-01-01", None)),
    ("photos after 2022", span("2023-01-01", None)),
    ("snow before 2020", span(None, "2019-12-31")),
    ("everything up to 2019", span(None, "2019-12-31")),
    ("beaches from 2018 to 2020", span("2018-01-01", "2020-12-31")),
    ("photos between 2018 and 2020", span("2018-01-01", "2020-12-31")),
    # months and days
    ("show me my photos from March 2024", span("2024-03-01", "2024-03-31")),
    ("February 2024", span("2024-02-01", "2024-02-29")),
    ("photos from Dec. 2015", span("2015-12-01", "2015-12-31")),
    ("my photos in March", span("2026-03-01", "2026-03-31")),
    ("photos from last March", span("2026-03-01", "2026-03-31")),
    ("May 12, 2024", span("2024-05-12", "2024-05-12")),
    ("on the 12th of May 2024", span("2024-05-12", "2024-05-12")),
    ("12 May 2024", span("2024-05-12", "2024-05-12")),
    ("2024-05-12", span("2024-05-12", "2024-05-12")),
    ("photos from May 12", span("2026-05-12", "2026-05-12")),
    ("photos prises en mars", span("2026-03-01", "2026-03-31")),
    ("13/05/2024", span("2024-05-13", "2024-05-13")),
    ("05/13/2024", span("2024-05-13", "2024-05-13")),
    ("photos from 2024-05", span("2024-05-01", "2024-05-31")),
    # around today
    ("photos from today", span("2026-11-29", "2026-11-29")),
    ("the day before yesterday", span("2026-11-27", "2026-11-27")),
    ("this week", span("2026-11-23", "2026-11-29")),
    ("photos from last week", span("2026-11-16", "2026-11-22")),
    ("last month", span("2026-10-01", "2026-10-31")),
    ("this year", span("2026-01-01", "2026-11-29")),
    ("3 days ago", span("2026-11-26", "2026-11-26")),
    ("two weeks ago", span("2026-11-09", "2026-11-15")),
    ("a month ago", span("2026-10-01", "2026-10-31")),
    ("5 years ago", span("2021-01-01", "2021-12-31")),
    # seasons (northern meteorological) and named days
    ("last winter", span("2025-12-01", "2026-02-28")),
    ("this summer", span("2026-06-01", "2026-08-31")),
    ("summer 2021", span("2021-06-01", "2021-08-31")),
    ("in the fall of 2019", span("2019-09-01", "2019-11-30")),
    ("since last summer", span("2026-06-01", None)),
    ("before the summer of 2020", span(None, "2020-05-31")),
    ("at Christmas", span("2025-12-24", "2025-12-26")),
    ("the tree at Christmas 2021", span("2021-12-24", "2021-12-26")),
    ("Easter 2024", span("2024-03-30", "2024-04-01")),
    ("on New Year's Eve 2019", span("2019-12-31", "2019-12-31")),
    # the other languages
    ("fotos de 2019", span("2019-01-01", "2019-12-31")),
    ("fotos do ano passado", span("2025-01-01", "2025-12-31")),
    ("fotos de ontem", span("2026-11-28", "2026-11-28")),
    ("fotos de março de 2024", span("2024-03-01", "2024-03-31")),
    ("antes de 2020", span(None, "2019-12-31")),
    ("no Natal de 2020", span("2020-12-24", "2020-12-26")),
    ("photos de l'année dernière", span("2025-01-01", "2025-12-31")),
    ("photos de l'été dernier", span("2026-06-01", "2026-08-31")),
    ("photos prises hier", span("2026-11-28", "2026-11-28")),
    ("le 14 juillet 2020", span("2020-07-14", "2020-07-14")),
    ("il y a 2 ans", span("2024-01-01", "2024-12-31")),
    ("depuis 2021", span("2021-01-01", None)),
    ("fotos del año pasado", span("2025-01-01", "2025-12-31")),
    ("fotos del verano pasado", span("2026-06-01", "2026-08-31")),
    ("fotos de ayer", span("2026-11-28", "2026-11-28")),
    ("hace 3 días", span("2026-11-26", "2026-11-26")),
    ("Fotos aus 2019", span("2019-01-01", "2019-12-31")),
    ("Fotos vom letzten Sommer", span("2026-06-01", "2026-08-31")),
    ("Fotos von gestern", span("2026-11-28", "2026-11-28")),
    ("Fotos aus dem letzten Jahr", span("2025-01-01", "2025-12-31")),
    ("im März 2024", span("2024-03-01", "2024-03-31")),
    ("vor 3 Tagen", span("2026-11-26", "2026-11-26")),
    ("14. Juli 2020", span("2020-07-14", "2020-07-14")),
    ("2019年的照片", span("2019-01-01", "2019-12-31")),
    ("2024年3月的照片", span("2024-03-01", "2024-03-31")),
    ("2024年3月5日", span("2024-03-05", "2024-03-05")),
    ("昨天拍的照片", span("2026-11-28", "2026-11-28")),
    ("去年夏天的照片", span("2025-06-01", "2025-08-31")),  # summer *of last year*
    ("2020年以前", span(None, "2019-12-31")),
    ("两年前", span("2024-01-01", "2024-12-31")),
]


@pytest.mark.parametrize(("request_", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_phrase_names_its_range(request_: str, expected: DateSpan) -> None:
    assert dates_in(request_, TODAY) == expected


def test_last_summer_is_the_latest_one_already_over() -> None:
    assert dates_in("last summer", date(2026, 7, 10)) == span("2025-06-01", "2025-08-31")
    assert dates_in("last summer", date(2026, 9, 1)) == span("2026-06-01", "2026-08-31")
    assert dates_in("last winter", date(2026, 1, 15)) == span("2024-12-01", "2025-02-28")
    assert dates_in("at Christmas", date(2026, 12, 25)) == span("2026-12-24", "2026-12-26")


NOT_DATES = [
    "find 2 dogs",
    "the top 5 beach photos",
    "a 4K video of waves",
    "make a 1080p clip",
    "show me 3 photos of cats",
    "what's 17 times 23?",
    "a 2048x2048 drawing",
    "photos of 2000 cats",
    "images up to 2000 px wide",
    "photos from the Mars rover",
    "my iPhone 15 photos",
    "the Christmas tree in the hall",
    "fotos em Natal",  # the Brazilian city
    "zeig mir meine Fotos hier",  # German "here", not French "yesterday"
    "what may 3 people do",
    "12/05/2024",  # May 12th or December 5th, by country
    "the summer dress",
    "圣诞树",
]


@pytest.mark.parametrize("request_", NOT_DATES)
def test_numbers_and_words_that_are_not_dates_read_nothing(request_: str) -> None:
    assert date_spans(request_, TODAY) == []


def test_two_different_dates_are_left_to_the_model() -> None:
    assert len(date_spans("compare 2019 and 2021", TODAY)) == 2
    assert dates_in("compare 2019 and 2021", TODAY) is None
    assert dates_in("photos from 2019 or from last summer", TODAY) is None
    # The same range twice is still one.
    assert dates_in("in 2019, my 2019 trip", TODAY) == span("2019-01-01", "2019-12-31")


TOOLS = ToolRegistry.default().available()


def _plan(search_args: dict[str, Any]) -> str:
    return json.dumps(
        {
            "steps": [
                {
                    "id": 1,
                    "tool": "search_images",
                    "args": {"query": "kids", **search_args},
                    "depends_on": [],
                },
                {"id": 2, "tool": "describe_image", "args": {"image": "<step-1>"}, "depends_on": [1]},
            ]
        }
    )


def _planned(request_: str, model_dates: dict[str, str], history: tuple[str, ...] = ()) -> dict[str, Any]:
    llm = ScriptedChatModel(replies=[_plan(model_dates)])
    plan = Planner(llm, TOOLS, 8).make_plan(request_, (), history, today=TODAY).plan
    assert plan is not None
    assert plan.steps[1].args == {"image": "<step-1>"}  # only search steps get dates
    return plan.steps[0].args


def test_the_planner_replaces_the_models_dates_with_the_requests() -> None:
    # The model counts "last summer" from the wrong year and forgets the month has 31 days.
    args = _planned(
        "photos of the kids from last summer", {"date_from": "2025-06-01", "date_to": "2025-08-30"}
    )
    assert (args["date_from"], args["date_to"]) == ("2026-06-01", "2026-08-31")
    assert args["query"] == "kids"
    # An open range drops the model's other end.
    args = _planned("the kids before 2020", {"date_from": "2020-01-01", "date_to": "2020-12-31"})
    assert args["date_to"] == "2019-12-31" and "date_from" not in args
    # A date the model missed is added.
    assert _planned("the kids yesterday", {})["date_from"] == "2026-11-28"


def test_the_planner_keeps_the_models_dates_only_where_the_user_named_dates() -> None:
    model = {"date_from": "2019-01-01", "date_to": "2021-12-31"}
    # Several dates in the request: the model splits them over its searches.
    assert _planned("compare the kids in 2019 and 2021", model) == {"query": "kids", **model}
    # No date anywhere: the model's dates are invented, and would hide the photos asked for.
    assert _planned("the kids at the beach", model) == {"query": "kids"}
    assert _planned("the kids at the beach", {}) == {"query": "kids"}


def test_a_follow_up_carries_the_date_the_user_named_before() -> None:
    before = (
        "User: photos of the kids from last summer",
        "Assistant: Found 4 photos, taken 2026-06-02 to 2026-08-20.",
    )
    wrong = {"date_from": "2025-06-01", "date_to": "2025-08-30"}  # last summer, counted badly
    args = _planned("now only the ones at the beach", wrong, before)
    assert (args["date_from"], args["date_to"]) == ("2026-06-01", "2026-08-31")
    # The model decides whether the date carries over: no date from it, none added.
    assert "date_from" not in _planned("show me cats instead", {}, before)
    # Two dates before: a model date is kept when it is one the conversation named, else dropped.
    two = (
        "User: the kids in 2019",
        "Assistant: Found 3 photos.",
        "User: and in 2021?",
        "Assistant: Found 2.",
    )
    kept = {"date_from": "2021", "date_to": "2021-12-31"}
    assert _planned("only the ones at the beach", kept, two) == {"query": "kids", **kept}
    assert _planned("only the ones at the beach", {"date_from": "2020-01-01"}, two) == {"query": "kids"}
