"""Plan schema and validation, without any LLM."""

from __future__ import annotations

import json
import re

import pytest

from agent.planning.plan import NO_TOOL, PlanError, extract_json, parse_plan, plan_json_schema
from agent.planning.planner import Planner
from tools.registry import ToolRegistry

TOOLS = ToolRegistry.default().available()


def test_builtin_tools_are_the_public_seven() -> None:
    assert set(TOOLS) == {
        "search_images",
        "describe_image",
        "generate_image",
        "generate_video",
        "generate_audio",
        "speak",
        "transcribe",
    }


def test_schema_has_one_branch_per_tool_and_the_no_tool_choice() -> None:
    schema = plan_json_schema(TOOLS, 8)
    branches = schema["properties"]["steps"]["items"]["anyOf"]
    assert [b["properties"]["tool"]["const"] for b in branches] == [NO_TOOL, *TOOLS]
    assert schema["properties"]["steps"]["maxItems"] == 8


def test_llama_cpp_turns_the_schema_into_a_grammar() -> None:
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    grammar = llama_grammar.LlamaGrammar.from_json_schema(
        json.dumps(plan_json_schema(TOOLS, 8)), verbose=False
    )
    assert grammar is not None


def test_the_planner_grammar_spells_digits_the_way_llama_cpp_parses_them() -> None:
    # llama-cpp-python turns a pattern's `\\d` into a quoted literal that llama.cpp cannot parse,
    # and the process dies on the first plan; the plan schema every decoder gets says `[0-9]` instead.
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    schema = Planner(object(), TOOLS, 8).schema  # type: ignore[arg-type]
    assert "\\d" not in json.dumps(schema)
    assert "\\d" not in llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    date_from = schema["properties"]["steps"]["items"]["anyOf"][1]["properties"]["args"]["properties"][
        "date_from"
    ]
    pattern = date_from["anyOf"][0]["pattern"]
    assert all(re.fullmatch(pattern, day) for day in ("2019", "2019-06", "2019-06-30"))
    assert not any(re.fullmatch(pattern, day) for day in ("19", "2019-6", "2019-06-30T00", "２０１９"))


def test_no_tool_step_means_plain_chat() -> None:
    only = {"steps": [{"id": 1, "tool": NO_TOOL, "args": {}, "depends_on": []}]}
    assert parse_plan(json.dumps(only), TOOLS, 8).steps == []
    mixed = {
        "steps": [
            {"id": 1, "tool": NO_TOOL, "args": {}, "depends_on": []},
            {"id": 2, "tool": "speak", "args": {"text": "hi"}, "depends_on": []},
        ]
    }
    assert [s.tool for s in parse_plan(json.dumps(mixed), TOOLS, 8).steps] == ["speak"]


def test_json_is_found_inside_fences_and_chatter() -> None:
    assert extract_json('Sure!\n```json\n{"steps": []}\n```\nDone.') == {"steps": []}
    with pytest.raises(PlanError, match="no JSON object"):
        extract_json("I cannot help with that.")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"id": 1, "tool": "speak", "args": {"text": "a", "volume": 3}, "depends_on": []}], "volume"),
        (
            [{"id": 1, "tool": "generate_image", "args": {"prompt": "x", "width": 513}, "depends_on": []}],
            "multiple of 8",
        ),
        (
            [{"id": 1, "tool": "generate_audio", "args": {"prompt": "x", "duration": -1}, "depends_on": []}],
            "duration",
        ),
        (
            [
                {
                    "id": 1,
                    "tool": "generate_image",
                    "args": {"prompt": "x", "sampler": "magic"},
                    "depends_on": [],
                }
            ],
            "sampler",
        ),
        ([{"id": 1, "tool": "speak", "args": {"text": "a"}, "depends_on": []}] * 2, "used twice"),
        ([{"id": 1, "tool": "describe_image", "args": {"image": "<step-1>"}, "depends_on": []}], "itself"),
    ],
)
def test_invalid_plans_say_what_is_wrong(steps: list, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan(json.dumps({"steps": steps}), TOOLS, 8)


def test_reference_inside_text_becomes_a_dependency() -> None:
    plan = parse_plan(
        json.dumps(
            {
                "steps": [
                    {"id": 1, "tool": "describe_image", "args": {"image": "/a.png"}, "depends_on": []},
                    {"id": 2, "tool": "speak", "args": {"text": "It shows <step-1>"}, "depends_on": []},
                ]
            }
        ),
        TOOLS,
        8,
    )
    assert plan.step(2).depends_on == [1]


def test_references_are_added_to_declared_dependencies() -> None:
    plan = parse_plan(
        json.dumps(
            {
                "steps": [
                    {"id": 1, "tool": "generate_image", "args": {"prompt": "a village"}, "depends_on": []},
                    {"id": 2, "tool": "generate_video", "args": {"prompt": "snow"}, "depends_on": [1]},
                    {"id": 3, "tool": "describe_image", "args": {"image": "<step-1>"}, "depends_on": []},
                ]
            }
        ),
        TOOLS,
        8,
    )
    assert [s.depends_on for s in plan.steps] == [[], [1], [1]]
