"""The planner: one LLM call per turn that writes a Plan, retried once with the validation error."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.core.errors import BackendError, ModalgraphError
from agent.llm.openai_compat import invoke_with_schema
from agent.planning.plan import Plan, PlanError, parse_plan, plan_json_schema
from agent.planning.prompts import load_prompt
from tools.base import Tool
from tools.search_images import visual_words

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

PLAN_MAX_TOKENS = 512


def _field_doc(name: str, info: Any) -> str:
    return name if info.is_required() else f"{name}?"


def tool_docs(tools: Mapping[str, type[Tool]]) -> str:
    lines = []
    for tool in tools.values():
        args = ", ".join(_field_doc(n, f) for n, f in tool.args_model.model_fields.items())
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


def system_prompt(tools: Mapping[str, type[Tool]]) -> str:
    return load_prompt("planner").replace("{tools}", tool_docs(tools))


# English names whatever the process locale (strftime("%A") follows it): the prompt is English.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def today_line(today: date) -> str:
    """The line relative dates ("last summer", "yesterday") are computed from: "Today is Sunday 2026-11-29."."""
    return f"Today is {WEEKDAYS[today.weekday()]} {today.isoformat()}."


def request_block(
    request: str,
    attachments: Sequence[str] = (),
    history: Sequence[str] = (),
    today: date | None = None,
) -> str:
    """The user message of a planning call. Today's date lives here, not in the system prompt: the
    system prompt's evaluated state is cached and saved across runs, so it must not change daily."""
    parts = [today_line(today or date.today())]
    if history:
        parts.append("Earlier in this conversation:\n" + "\n".join(history))
    parts.append(f"User: {request.strip()}")
    if attachments:
        parts.append("Attached: " + ", ".join(attachments))
    return "\n".join(parts)


# Filters of search_images whose value the small planner also copies into `query` ("Lisbon" as both
# query and place). Such a query looks for pictures *of* the word (a Canon logo for camera "Canon")
# among photos the filter already picks, so it only makes the results worse.
_ECHOED_FILTERS = ("place", "folder", "camera")


def drop_echoed_queries(plan: Plan) -> Plan:
    """`plan` with every search_images `query` that says nothing its filters do not removed: the
    tool's own rule (`visual_words`), applied here so that the plan shows the search that runs."""
    for step in plan.steps:
        args = step.args
        query = args.get("query")
        if step.tool != "search_images" or not isinstance(query, str) or args.get("without"):
            continue  # `without` needs the query to subtract from
        filters = [value if isinstance(value, str) else None for value in map(args.get, _ECHOED_FILTERS)]
        if visual_words(query, filters) is None:
            del args["query"]
    return plan


@dataclass
class PlanOutcome:
    plan: Plan | None
    error: str | None = None
    attempts: int = 0
    raw: list[str] = field(default_factory=list)


def constrained_invoke(llm: BaseChatModel, messages: list[BaseMessage], schema: dict[str, Any]) -> str:
    """One LLM call whose output is constrained by `schema` where the backend can do it."""
    if llm._llm_type.startswith("openai"):
        return invoke_with_schema(llm, messages, schema)
    reply = llm.invoke(messages, json_schema=schema, temperature=0.0, max_tokens=PLAN_MAX_TOKENS)
    return reply.content if isinstance(reply.content, str) else json.dumps(reply.content)


class Planner:
    def __init__(
        self,
        llm: BaseChatModel,
        tools: Mapping[str, type[Tool]],
        max_steps: int,
        retries: int = 1,
        today: date | None = None,
    ):
        self.llm = llm
        self.tools = dict(tools)
        self.max_steps = max_steps
        self.retries = retries
        # None means the day of each call: a long-running chat or web server crosses midnight.
        self.today = today
        self.schema = plan_json_schema(self.tools, max_steps)
        self.system = system_prompt(self.tools)

    def messages(
        self,
        request: str,
        attachments: Sequence[str] = (),
        history: Sequence[str] = (),
        *,
        today: date | None = None,
    ) -> list:
        """System prompt and request; `today` overrides the planner's own date for this call."""
        day = today or self.today or date.today()
        return [SystemMessage(self.system), HumanMessage(request_block(request, attachments, history, day))]

    def make_plan(
        self,
        request: str,
        attachments: Sequence[str] = (),
        history: Sequence[str] = (),
        *,
        today: date | None = None,
    ) -> PlanOutcome:
        """A valid plan, or the reason there is none. Backend failures propagate as BackendError."""
        messages = self.messages(request, attachments, history, today=today)
        outcome = PlanOutcome(plan=None)
        for attempt in range(self.retries + 1):
            outcome.attempts = attempt + 1
            try:
                raw = constrained_invoke(self.llm, messages, self.schema)
            except ModalgraphError:
                raise
            except Exception as exc:  # connection refused, server 500, runtime errors in the backend
                raise BackendError(f"the planner LLM failed: {type(exc).__name__}: {exc}") from None
            outcome.raw.append(raw)
            try:
                outcome.plan = drop_echoed_queries(parse_plan(raw, self.tools, self.max_steps))
                outcome.error = None
                return outcome
            except PlanError as exc:
                outcome.error = str(exc)
                messages = [
                    *messages,
                    AIMessage(raw),
                    HumanMessage(f"That plan is invalid: {exc}. Reply with the corrected JSON plan only."),
                ]
        return outcome
