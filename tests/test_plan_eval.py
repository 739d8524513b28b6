"""The plan scorer, without any LLM: tools, edges, search filter values and the labelled set's shape;
and what the planner hands the model: today's date and the order arguments are decoded in."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agent.planning.plan import Plan, parse_plan
from agent.planning.plan_eval import (
    EVAL_TODAY,
    FILTER_FIELDS,
    HistoryScores,
    args_contain_wrong,
    filter_items,
    filter_value_right,
    load_history_rows,
    load_labelled,
    same_plan,
    score_all,
)
from agent.planning.planner import Planner, drop_echoed_queries, request_block, system_prompt
from agent.planning.prompts import load_prompt
from tools.registry import ToolRegistry
from tools.search_images import SearchImagesArgs

LABELLED = Path(__file__).parent / "data" / "planner_eval.jsonl"
HISTORY = Path(__file__).parent / "data" / "planner_history.jsonl"
TOOLS = ToolRegistry.default().available()

GOLD = [
    {
        "tool": "search_images",
        "depends_on": [],
        "args": {"place": "Lisbon", "date_from": "2019-01-01", "date_to": "2019-12-31"},
    },
    {"tool": "describe_image", "depends_on": [1]},
]


def plan(**search_args: Any) -> list[dict[str, Any]]:
    return [
        {"id": 1, "tool": "search_images", "args": {"k": 5, **search_args}, "depends_on": []},
        {"id": 2, "tool": "describe_image", "args": {"image": "<step-1>"}, "depends_on": [1]},
    ]


def scores_of(predicted: list[dict[str, Any]], gold: list[dict[str, Any]] = GOLD) -> Any:
    return score_all([("photos from Lisbon in 2019, describe one", predicted, gold)])


def test_the_right_plan_scores_one_everywhere() -> None:
    scores = scores_of(plan(place="Lisbon", date_from="2019-01-01", date_to="2019-12-31"))
    assert (scores.node.score, scores.edge.score, scores.filters.score) == (1.0, 1.0, 1.0)
    assert (scores.filters.right, scores.filters.total) == (4, 4)  # query absent, place, two dates
    assert scores.exact == 1 and scores.misses == []


def test_case_accents_aliases_and_short_dates_still_count_right() -> None:
    scores = scores_of(plan(place="LISBOA", date_from="2019", date_to="2019"))
    assert scores.filters.score == 1.0, scores.misses
    assert filter_value_right("place", "São Paulo", "sao paulo")
    assert filter_value_right("place", "tokyo,  Japan", "Japan, Tokyo")
    assert filter_value_right("camera", "IPHONE", "iPhone")
    assert filter_value_right("folder", "/Holidays/", "holidays")
    assert filter_value_right("date_to", "2024-02", "2024-02-29")
    assert filter_value_right("date_from", "2024-02", "2024-02-01")
    assert filter_value_right("file_type", "JPEG", "jpg")
    assert filter_value_right("without", ["People ", "cars"], ["cars", "people"])


def test_wrong_values_count_wrong() -> None:
    assert not filter_value_right("date_to", "2019-12-30", "2019-12-31")
    assert not filter_value_right("date_from", "2019-12", "2019-01-01")
    assert not filter_value_right("date_to", "not a date", "2019-12-31")
    assert not filter_value_right("place", "Porto", "Lisbon")
    assert not filter_value_right("place", "Tokyo, Japan", "Tokyo")
    assert not filter_value_right("without", ["people", "dogs"], ["people"])
    assert not filter_value_right("camera", "Canon", "Nikon")


def test_a_wrong_place_or_date_lowers_the_score() -> None:
    wrong_place = scores_of(plan(place="Porto", date_from="2019-01-01", date_to="2019-12-31"))
    assert (wrong_place.filters.right, wrong_place.filters.total) == (3, 4)
    assert any("place 'Porto'" in m for m in wrong_place.misses)
    wrong_year = scores_of(plan(place="Lisbon", date_from="2018-01-01", date_to="2018-12-31"))
    assert wrong_year.filters.score == 0.5
    # Tools and edges are still right: the filter score is what catches it.
    assert wrong_year.node.score == 1.0 and wrong_year.exact == 1


def test_a_missing_filter_or_an_unwanted_query_counts_wrong() -> None:
    no_dates = scores_of(plan(place="Lisbon"))
    assert (no_dates.filters.right, no_dates.filters.total) == (2, 4)
    with_query = scores_of(plan(query="photos", place="Lisbon", date_from="2019", date_to="2019"))
    assert (with_query.filters.right, with_query.filters.total) == (3, 4)
    assert any("query present" in m for m in with_query.misses)


def test_a_filter_nobody_asked_for_counts_wrong_but_nulls_do_not() -> None:
    extra = scores_of(plan(place="Lisbon", date_from="2019", date_to="2019", camera="iPhone"))
    assert (extra.filters.right, extra.filters.total) == (4, 5)
    assert any("camera 'iPhone' not asked for" in m for m in extra.misses)
    nulls = scores_of(plan(place="Lisbon", date_from="2019", date_to="2019", camera=None, without=[]))
    assert nulls.filters.score == 1.0


def test_an_expected_query_must_be_present_whatever_its_words() -> None:
    gold = [
        {"tool": "search_images", "depends_on": [], "args": {"query": "the beach", "without": ["people"]}}
    ]
    right = score_all([("r", plan(query="beach", without=["people"])[:1], gold)])
    assert right.filters.score == 1.0
    missing = score_all([("r", plan(without=["people"])[:1], gold)])
    assert missing.filters.score == 0.5


def test_no_search_step_makes_every_labelled_value_wrong() -> None:
    scores = scores_of([{"id": 1, "tool": "generate_image", "args": {"prompt": "Lisbon"}, "depends_on": []}])
    assert (scores.filters.right, scores.filters.total) == (0, 4)
    assert scores.node.score < 1.0 and scores.exact == 0
    assert filter_items(None, GOLD[0]["args"]) == (0, 4, ["no search_images step"])


def test_a_list_of_labels_accepts_any_of_them() -> None:
    assert filter_value_right("date_from", "2021-12-25", ["2021-12-24", "2021-12-25"])
    assert not filter_value_right("date_from", "2021-12-20", ["2021-12-24", "2021-12-25"])


def test_unlabelled_steps_and_plain_chat() -> None:
    gold = [{"tool": "search_images", "depends_on": []}]  # no "args": tools and edges only
    scores = score_all(
        [
            ("find my dogs", plan(query="dogs", camera="Canon")[:1], gold),
            ("hi", [], []),
            ("thanks", [{"id": 1, "tool": "speak", "args": {"text": "x"}, "depends_on": []}], []),
        ]
    )
    assert scores.filters.total == 0 and scores.filters.score == 1.0
    assert (scores.chat.right, scores.chat.total) == (1, 2)
    assert "plain chat 1/2 with no tool" in scores.summary()


def test_the_labelled_set_has_enough_valid_filter_rows() -> None:
    rows = load_labelled(LABELLED)
    labelled = [s["args"] for r in rows for s in r.steps if "args" in s]
    assert len(rows) >= 70 and len(labelled) >= 25
    assert all(r.today == EVAL_TODAY for r in rows)
    for args in labelled:
        assert set(args) <= {"query", *FILTER_FIELDS}, args
        # Each label is something search_images accepts (the first of any list of alternatives).
        first = {k: v[0] if isinstance(v, list) and k != "without" else v for k, v in args.items()}
        SearchImagesArgs.model_validate(first)


def test_the_request_carries_today_and_the_system_prompt_does_not() -> None:
    block = request_block("photos from last summer", today=date(2026, 11, 29))
    assert block.splitlines()[0] == "Today is Sunday 2026-11-29."
    assert block.endswith("User: photos from last summer")
    planner = Planner(object(), {}, 4, today=date(2024, 7, 3))  # type: ignore[arg-type]
    system, human = planner.messages("hi")
    assert "Today is Wednesday 2024-07-03." in human.content
    assert "2024-07-03" not in system.content
    assert "Thursday 2024-07-04" in planner.messages("hi", today=date(2024, 7, 4))[1].content


@pytest.mark.parametrize("today", [date(2026, 1, 1), date(2030, 6, 15)])
def test_the_system_prompt_is_the_same_every_day(today: date) -> None:
    first = Planner(object(), {}, 4, today=date(2026, 11, 29))  # type: ignore[arg-type]
    other = Planner(object(), {}, 4, today=today)  # type: ignore[arg-type]
    assert first.messages("hi")[0].content == other.messages("hi")[0].content
    assert first.messages("hi")[1].content != other.messages("hi")[1].content


def test_the_prompt_examples_are_valid_plans_in_the_decoders_argument_order() -> None:
    # The grammar fixes the order of arguments; an example in another order teaches the model a
    # plan it cannot write.
    tools = TOOLS
    examples = [line for line in load_prompt("planner").splitlines() if line.startswith('{"steps"')]
    assert len(examples) >= 10
    for line in examples:
        parse_plan(line, tools, 8)
        for step in json.loads(line)["steps"]:
            if step["tool"] in tools:
                order = list(tools[step["tool"]].args_model.model_fields)
                assert list(step["args"]) == sorted(step["args"], key=order.index), line


def search_plan(**args: Any) -> Plan:
    return parse_plan(json.dumps({"steps": [{"id": 1, "tool": "search_images", "args": args}]}), TOOLS, 8)


def test_a_query_that_only_repeats_a_filter_is_dropped() -> None:
    echoed = drop_echoed_queries(search_plan(query="Lisbon", place="lisbon", date_from="2019"))
    assert echoed.steps[0].args == {"place": "lisbon", "date_from": "2019"}
    assert "query" not in drop_echoed_queries(search_plan(query="CANON", camera="Canon")).steps[0].args
    # A query with more to see, or one `without` subtracts from, stays.
    kept = drop_echoed_queries(search_plan(query="trams in Lisbon", place="Lisbon"))
    assert kept.steps[0].args["query"] == "trams in Lisbon"
    with_without = drop_echoed_queries(search_plan(query="Lisbon", without=["people"], place="Lisbon"))
    assert with_without.steps[0].args["query"] == "Lisbon"
    SearchImagesArgs.model_validate(echoed.steps[0].args)


def test_the_history_set_has_15_follow_ups_and_15_new_topics_of_valid_tools() -> None:
    rows = load_history_rows(HISTORY)
    kinds = [r.kind for r in rows]
    assert (
        kinds.count("follow-up") >= 15
        and kinds.count("new-topic") >= 15
        and set(kinds) == {"follow-up", "new-topic"}
    )
    for row in rows:
        assert row.history and row.history[0]["role"] == "user" and row.history[-1]["role"] == "assistant"
        for step in row.steps:
            fields = TOOLS[step["tool"]].args_model.model_fields
            assert set(step.get("args_contain", {})) <= set(fields), row.request
        if row.kind == "follow-up":
            assert all(s.get("args_contain") for s in row.steps), row.request  # each must reach back


def test_follow_ups_are_scored_on_the_words_they_carry_over() -> None:
    gold = [{"tool": "generate_image", "depends_on": [], "args_contain": {"prompt": ["blue", "boat"]}}]
    right = [{"id": 1, "tool": "generate_image", "args": {"prompt": "a Blue boat"}, "depends_on": []}]
    forgot = [{"id": 1, "tool": "generate_image", "args": {"prompt": "make it blue"}, "depends_on": []}]
    assert args_contain_wrong(right, gold) == []
    assert args_contain_wrong(forgot, gold) == ["generate_image.prompt 'make it blue' lacks ['blue', 'boat']"]
    scores = HistoryScores()
    scores.add_follow_up("now make it blue", right, gold)
    scores.add_follow_up("now make it blue", forgot, gold)
    scores.add_follow_up("now make it blue", [], gold)  # no step at all
    assert (scores.follow_up.right, scores.follow_up.total) == (1, 3)


def test_a_new_topic_must_plan_exactly_as_without_history() -> None:
    search = {"id": 1, "tool": "search_images", "args": {"place": "Tokyo"}, "depends_on": []}
    narrowed = {
        "id": 1,
        "tool": "search_images",
        "args": {"place": "Tokyo", "query": "castle"},
        "depends_on": [],
    }
    gold = [{"tool": "search_images", "depends_on": []}]
    assert same_plan([search], [dict(search, id=3)]) and not same_plan([narrowed], [search])
    scores = HistoryScores()
    scores.add_new_topic("find my photos from Tokyo", [search], [search], gold)
    scores.add_new_topic("find my photos from Tokyo", [narrowed], [search], gold)  # history leaked in
    scores.add_new_topic("what is 2+2?", [], [], [])
    assert (scores.new_topic.right, scores.new_topic.total) == (2, 3)
    assert "history" in scores.misses[0]


def test_one_call_and_two_call_prompts_differ_only_in_how_plain_chat_is_answered() -> None:
    one, two = system_prompt(TOOLS, one_call=True), system_prompt(TOOLS, one_call=False)
    no_tool = '{"steps": [{"id": 1, "tool": "answer_in_words", "args": {}, "depends_on": []}]}'
    # The same no-tool plan in both; in one call the example answer follows it on the next line.
    assert f"{no_tool}\nLeonardo da Vinci painted the Mona Lisa" in one
    assert f"{no_tool}\nToday is" in two and "Leonardo" not in two
    assert "{" + "no_tool" not in one + two and "ANSWER:" not in one + two
    # Everything about the tools is shared.
    for line in two.splitlines():
        if line.startswith(("1.", "2.", "3.", "4.", "6.", "7.", "8.", "9.")) or line.startswith(
            '{"steps": [{"id": 1, "tool": "search'
        ):
            assert line in one
