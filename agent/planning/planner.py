"""The planner: one LLM call per turn that writes a Plan, retried once with the validation error.

With a backend that can branch inside one generation (`supports_one_call`, e.g. llama.cpp), that
call either writes the plan or, for a turn that needs no tool, is already the answer: the prompt
asks for the answer on the line after the `answer_in_words` plan, and it streams from the planning
call itself (agent.llm.one_call). Other backends make two calls (plan, then answer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.core.errors import BackendError, ModalgraphError
from agent.llm.one_call import PlanFork
from agent.llm.openai_compat import invoke_with_schema
from agent.planning.plan import NO_TOOL, Plan, PlanError, parse_plan, plan_json_schema
from agent.planning.plan_dates import dates_from_conversation
from agent.planning.plan_filters import filters_from_conversation
from agent.planning.prompts import load_prompt
from tools.base import Tool
from tools.search_images import visual_words

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

PLAN_MAX_TOKENS = 512


def tool_docs(tools: Mapping[str, type[Tool]]) -> str:
    # Read from the argument schema, not the pydantic fields: an MCP server's tool has only a schema.
    lines = []
    for tool in tools.values():
        schema = tool.args_schema()
        required = set(schema.get("required", ()))
        args = ", ".join(n if n in required else f"{n}?" for n in schema.get("properties", {}))
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


# What differs between the two ways of answering a turn without tools; the rest of the prompt
# (tools, rules, examples) is one text, so both planners plan alike.
_TWO_CALL = {
    "{role}": "You are the planner of modalgraph, an assistant with tools. Read the user's request and "
    'reply with a plan as one JSON object: {"steps": [...]}.',
    "{no_tool_line}": f"- {NO_TOOL}(): no tool is needed; you will simply answer in words (chat, facts, "
    "explanations, advice, writing, translation, code, maths).\n",
    "{no_tool_rule}": f"use {NO_TOOL} alone.",
}
_ONE_CALL = {
    "{role}": "You are modalgraph, a helpful assistant that runs on the user's own computer. Read the "
    'user\'s request and reply with a plan as one JSON object: {"steps": [...]}.',
    "{no_tool_line}": f"- {NO_TOOL}(): no tool is needed; write the plan, then your answer to the user "
    "on the next line, briefly, in plain text (chat, facts, explanations, advice, writing, translation, "
    "code, maths).\n",
    "{no_tool_rule}": f"use {NO_TOOL} alone, then answer on the next line.",
}
_EXAMPLE_ANSWER = re.compile(r"^ANSWER: (.*)$", re.MULTILINE)
_NO_TOOL_PLAN = json.dumps({"steps": [{"id": 1, "tool": NO_TOOL, "args": {}, "depends_on": []}]})
# Where a one-call plan forks: everything before the first tool name, and what completes the
# no-tool plan (the answer follows it). Two shorter forks were measured and set aside (README): an
# empty plan, `{"steps": []}`, chose wrongly on 7 of 107 labelled requests (this fork: none), and a
# no-tool step without its empty fields in the examples cost search plans 5 of 112 filter values. Spelled as json.dumps spells _NO_TOOL_PLAN, which is how
# the prompt's examples show every plan.
_FORK_PREFIX = _NO_TOOL_PLAN[: _NO_TOOL_PLAN.index(NO_TOOL)]
_FORK_SUFFIX = _NO_TOOL_PLAN[_NO_TOOL_PLAN.index(NO_TOOL) + len(NO_TOOL) :] + "\n"


def system_prompt(tools: Mapping[str, type[Tool]], one_call: bool = False) -> str:
    """The planner's instructions; `one_call` for a backend whose planning call may be the answer."""
    text = load_prompt("planner").replace("{tools}", tool_docs(tools))
    for key, value in (_ONE_CALL if one_call else _TWO_CALL).items():
        text = text.replace(key, value)
    # The examples' plain-chat replies: the no-tool plan, followed by the answer in one call.
    return _EXAMPLE_ANSWER.sub(lambda m: _NO_TOOL_PLAN + ("\n" + m.group(1) if one_call else ""), text)


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


TRANSCRIBE_TOOL = "transcribe"
# Suffixes of sound files: such a path is never an image. WebM is listed because a browser's
# microphone recording is WebM audio.
AUDIO_SUFFIXES = frozenset(
    (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".weba")
)


def is_audio_path(value: object) -> bool:
    return isinstance(value, str) and PurePath(value.strip()).suffix.lower() in AUDIO_SUFFIXES


def route_audio_to_transcribe(plan: Plan) -> Plan:
    """`plan` with every describe_image step given a sound file turned into transcribe on that file:
    a small planner sees "Attached: memo.wav" and reaches for the tool it knows attachments go to,
    which would fail on audio and take its dependents down with it."""
    for step in plan.steps:
        image = step.args.get("image")
        if step.tool == "describe_image" and is_audio_path(image):
            step.tool, step.args = TRANSCRIBE_TOOL, {"audio": image}
    return plan


@dataclass
class PlanOutcome:
    plan: Plan | None
    error: str | None = None
    attempts: int = 0
    raw: list[str] = field(default_factory=list)
    # The answer's text pieces when the planning call answered the turn itself (one-call backends).
    # It holds the model until read to the end or closed: see `discard_answer`.
    answer: AnswerStream | None = None

    def discard_answer(self) -> None:
        """Stop the answer's generation, for callers that only wanted the plan."""
        if self.answer is not None:
            self.answer.close()
            self.answer = None


def constrained_invoke(llm: BaseChatModel, messages: list[BaseMessage], schema: dict[str, Any]) -> str:
    """One LLM call whose output is constrained by `schema` where the backend can do it."""
    if llm._llm_type.startswith("openai"):
        return invoke_with_schema(llm, messages, schema)
    reply = llm.invoke(messages, json_schema=schema, temperature=0.0, max_tokens=PLAN_MAX_TOKENS)
    return reply.content if isinstance(reply.content, str) else json.dumps(reply.content)


class AnswerStream:
    """The text of a one-call answer: the piece that made the choice, then the rest as decoded.

    `close` stops the generation even when reading never began (a plain generator's `finally`
    would not run then, and the model would stay held until garbage collection)."""

    def __init__(self, first: str, rest: Iterator[tuple[str, str]]) -> None:
        self.first = first.lstrip()
        self.rest = rest

    def __iter__(self) -> Iterator[str]:
        try:
            yield self.first
            for _kind, text in self.rest:
                yield text
        finally:
            self.close()

    def close(self) -> None:
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()


class Planner:
    def __init__(
        self,
        llm: BaseChatModel,
        tools: Mapping[str, type[Tool]],
        max_steps: int,
        retries: int = 1,
        today: date | None = None,
        one_call: bool | None = None,
    ):
        self.llm = llm
        self.tools = dict(tools)
        self.max_steps = max_steps
        self.retries = retries
        # None means the day of each call: a long-running chat or web server crosses midnight.
        self.today = today
        self.schema = plan_json_schema(self.tools, max_steps)
        self.one_call = bool(getattr(llm, "supports_one_call", False)) if one_call is None else one_call
        self.system = system_prompt(self.tools, self.one_call)

    def _two_calls_from_now(self) -> None:
        """The backend turned out unable to branch (a GGUF without a chat template, say)."""
        self.one_call = False
        self.system = system_prompt(self.tools, False)

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
        keep_answer: bool = False,
    ) -> PlanOutcome:
        """A valid plan, or the reason there is none. Backend failures propagate as BackendError.

        On a one-call backend a turn that needs no tool comes back as an empty plan; with
        `keep_answer`, `answer` is then the answer streaming from this same call, and the caller
        must read it to the end or `discard_answer()` (it holds the model meanwhile). Without it
        the generation is stopped at once: planning only (`modalgraph plan`, the evaluation)."""
        messages = self.messages(request, attachments, history, today=today)
        outcome = PlanOutcome(plan=None)
        for attempt in range(self.retries + 1):
            outcome.attempts = attempt + 1
            try:
                if attempt == 0 and self.one_call:
                    raw, answer = self._plan_or_answer(messages)
                    if answer is not None:
                        outcome.plan, outcome.answer = Plan(), answer
                        if not keep_answer:
                            outcome.discard_answer()
                        return outcome
                    if raw is None:  # the backend cannot branch: plan with the two-call prompt
                        messages = self.messages(request, attachments, history, today=today)
                        raw = constrained_invoke(self.llm, messages, self.schema)
                else:
                    raw = constrained_invoke(self.llm, messages, self.schema)
            except ModalgraphError:
                raise
            except Exception as exc:  # connection refused, server 500, runtime errors in the backend
                raise BackendError(f"the planner LLM failed: {type(exc).__name__}: {exc}") from None
            outcome.raw.append(raw)
            try:
                day = today or self.today or date.today()
                # What the user said decides the filters: invented ones out first, so that an echoed
                # query is judged against the filters that stay.
                parsed = filters_from_conversation(
                    parse_plan(raw, self.tools, self.max_steps), request, day, history
                )
                outcome.plan = dates_from_conversation(drop_echoed_queries(parsed), request, day, history)
                if TRANSCRIBE_TOOL in self.tools:
                    outcome.plan = route_audio_to_transcribe(outcome.plan)
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

    def _plan_or_answer(self, messages: list[BaseMessage]) -> tuple[str | None, AnswerStream | None]:
        """(plan JSON, None) or (None, answer pieces) from one generation; (None, None) when the
        backend cannot branch after all, having switched this planner to two calls."""
        fork = PlanFork(_FORK_PREFIX, (NO_TOOL, *self.tools), NO_TOOL, _FORK_SUFFIX)
        replies = self.llm.plan_or_answer(messages, self.schema, PLAN_MAX_TOKENS, fork)  # type: ignore[attr-defined]
        try:
            kind, text = next(replies)
        except NotImplementedError:
            self._two_calls_from_now()
            return None, None
        except StopIteration:
            return "", None
        if kind == "plan":
            replies.close()
            return text, None
        return None, AnswerStream(text, replies)
