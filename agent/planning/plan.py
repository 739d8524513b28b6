"""The plan: what the planner LLM writes each turn, checked against a pydantic schema.

The JSON schema handed to the decoder is built from the registry, one branch per tool with that
tool's own argument schema, so a grammar-constrained backend cannot even emit an unknown tool or
argument. Everything a schema cannot express (references to later steps, cycles, the step limit)
is checked in `validate_plan`, and its message is what the planner is shown on a retry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tools.base import STEP_REF_PATTERN, Tool

STEP_REF = re.compile(STEP_REF_PATTERN)
STEP_REF_INLINE = re.compile(r"<step-(\d+)>")


class Step(BaseModel):
    id: int = Field(ge=1, description="1, 2, 3... in order")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[int] = Field(default_factory=list)


class Plan(BaseModel):
    steps: list[Step] = Field(default_factory=list)

    def step(self, step_id: int) -> Step:
        return next(s for s in self.steps if s.id == step_id)


class PlanError(ValueError):
    """An LLM reply that is not a usable plan; the message is shown to the LLM on the retry."""


def referenced_steps(value: Any) -> set[int]:
    """Every `<step-N>` mentioned anywhere inside an argument value."""
    if isinstance(value, str):
        return {int(n) for n in STEP_REF_INLINE.findall(value)}
    if isinstance(value, Mapping):
        return set().union(*(referenced_steps(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(referenced_steps(v) for v in value)) if value else set()
    return set()


def _step_schema(tool: type[Tool]) -> dict[str, Any]:
    args = tool.args_schema()
    defs = args.pop("$defs", None)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "tool": {"const": tool.name},
            "args": args,
            "depends_on": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        },
        "required": ["id", "tool", "args", "depends_on"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema


# A pseudo-tool for requests that need no tool. A small model asked to pick "a tool" reliably picks
# one; giving it a legitimate "no tool" choice among the others stops greetings and knowledge
# questions from turning into spurious tool calls. It is removed from the plan before validation.
NO_TOOL = "answer_in_words"
NO_TOOL_STEP = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "tool": {"const": NO_TOOL},
        "args": {"type": "object", "additionalProperties": False, "properties": {}},
        "depends_on": {"type": "array", "maxItems": 0},
    },
    "required": ["id", "tool", "args", "depends_on"],
    "additionalProperties": False,
}


def plan_json_schema(tools: Mapping[str, type[Tool]], max_steps: int) -> dict[str, Any]:
    """The schema the decoder is constrained by: `{"steps": [one of the tools' step shapes]}`."""
    branches = [NO_TOOL_STEP, *(_step_schema(tool) for tool in tools.values())]
    defs: dict[str, Any] = {}
    for branch in branches:
        defs.update(branch.pop("$defs", {}))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"anyOf": branches}, "minItems": 1, "maxItems": max_steps}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return _digits_spelled(schema)


# llama-cpp-python's schema-to-grammar converter copies a pattern's `\d` into the grammar as a
# quoted literal; llama.cpp then cannot parse the grammar and the process dies on the first plan.
# Every decoder gets this schema, so the rewrite lives here; plans are still validated against the
# tools' own models, whose patterns are unchanged.
_DIGIT_CLASS = re.compile(r"(?<!\\)\\d")


def _digits_spelled(node: Any) -> Any:
    r"""`node` with every regex `pattern`'s `\d` spelled `[0-9]` (the same set for ASCII input)."""
    if isinstance(node, dict):
        return {
            k: _DIGIT_CLASS.sub("[0-9]", v) if k == "pattern" and isinstance(v, str) else _digits_spelled(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_digits_spelled(v) for v in node]
    return node


def extract_json(text: str) -> Any:
    """Parse the first JSON object in an LLM reply, tolerating code fences and chatter around it."""
    stripped = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    if fence:
        stripped = fence.group(1).strip()
    start = stripped.find("{")
    if start < 0:
        raise PlanError('the reply holds no JSON object; answer with one JSON object {"steps": [...]}')
    try:
        value, _end = json.JSONDecoder().raw_decode(stripped[start:])
    except json.JSONDecodeError as exc:
        raise PlanError(f"the reply is not valid JSON: {exc.msg} at character {exc.pos}") from None
    return value


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def validate_plan(data: Any, tools: Mapping[str, type[Tool]], max_steps: int) -> Plan:
    """Turn parsed JSON into a checked Plan, or raise PlanError saying exactly what is wrong."""
    if isinstance(data, list):  # a bare list of steps is an easy slip; accept it
        data = {"steps": data}
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        data = {
            **data,
            "steps": [s for s in data["steps"] if not (isinstance(s, dict) and s.get("tool") == NO_TOOL)],
        }
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(f"the plan does not match the schema: {_format_validation(exc)}") from None
    if len(plan.steps) > max_steps:
        raise PlanError(f"the plan has {len(plan.steps)} steps; at most {max_steps} are allowed")
    seen: set[int] = set()
    for step in plan.steps:
        # Ids are bounded so that no step id can overflow what the checkpointer stores (10**30 did).
        if not 1 <= step.id <= max_steps:
            raise PlanError(f"step id {step.id} is out of range; number the steps 1 to {max_steps}")
        if step.id in seen:
            raise PlanError(f"step id {step.id} is used twice; number the steps 1, 2, 3...")
        seen.add(step.id)
    for step in plan.steps:
        if step.tool not in tools:
            raise PlanError(f"step {step.id}: unknown tool {step.tool!r}; use one of {', '.join(tools)}")
        refs = referenced_steps(step.args)
        for ref in refs | set(step.depends_on):
            if ref not in seen:
                raise PlanError(f"step {step.id} refers to step {ref}, which is not in the plan")
            if ref == step.id:
                raise PlanError(f"step {step.id} depends on itself")
        # A reference is a dependency even when the LLM forgot to list it.
        step.depends_on = sorted(set(step.depends_on) | refs)
        tool = tools[step.tool]
        probe = {k: _placeholder(tool, k, v) for k, v in step.args.items()}
        try:
            tool.args_model.model_validate(probe)
        except ValidationError as exc:
            raise PlanError(f"step {step.id} ({step.tool}): {_format_validation(exc)}") from None
    _check_acyclic(plan)
    return plan


def _placeholder(tool: type[Tool], field: str, value: Any) -> Any:
    # `<step-N>` stands for a value only known at run time; validate the rest of the arguments now.
    if isinstance(value, str) and STEP_REF.match(value.strip()):
        return "placeholder"
    return value


def _check_acyclic(plan: Plan) -> None:
    state: dict[int, int] = {}

    def visit(step_id: int) -> None:
        if state.get(step_id) == 1:
            raise PlanError(f"the steps' dependencies form a cycle through step {step_id}")
        if state.get(step_id) == 2:
            return
        state[step_id] = 1
        for dep in plan.step(step_id).depends_on:
            visit(dep)
        state[step_id] = 2

    for step in plan.steps:
        visit(step.id)


def parse_plan(text: str, tools: Mapping[str, type[Tool]], max_steps: int) -> Plan:
    return validate_plan(extract_json(text), tools, max_steps)
