"""The chat graph: plan -> dispatch -> run_step (fanned out) -> dispatch ... -> respond.

`dispatch` sends every step whose dependencies are done to `run_step` at once (LangGraph runs the
sends of one superstep side by side) and marks steps that depend on a failure as skipped. Each
superstep is checkpointed, so a turn killed half-way resumes without redoing finished steps.

Front ends read progress from the `custom` stream: plan, step_start, step_end, progress, token.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agent.context import AppContext
from agent.core.errors import ModalgraphError, one_line
from agent.planning.plan import Plan, Step
from agent.planning.plan_dates import USER_LINE
from agent.planning.planner import Planner
from agent.planning.prompts import load_prompt
from graphs.executor import run_step
from graphs.state import Answer, ChatState, StepResult
from memory.artifacts import Artifact
from tools.context import RunContext

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

HISTORY_CHARS = 300
CANCELLED_TEXT = "(cancelled by the user)"


def _emit(event: dict[str, Any]) -> None:
    with contextlib.suppress(RuntimeError):  # called outside a graph run (unit tests of a node)
        get_stream_writer()(event)


def history_lines(history: list[dict[str, Any]], turns: int) -> list[str]:
    lines = []
    for entry in history[-2 * turns :] if turns else []:
        who = USER_LINE if entry["role"] == "user" else "Assistant: "
        text = entry.get("text", "")
        text = text if len(text) <= HISTORY_CHARS else text[:HISTORY_CHARS] + "..."
        files = [a["path"] for a in entry.get("attachments", []) + entry.get("artifacts", [])]
        lines.append(f"{who}{text}" + (f" [files: {', '.join(files)}]" if files else ""))
    return lines


def _results(state: ChatState) -> dict[str, StepResult]:
    return {k: StepResult.model_validate(v) for k, v in (state.get("results") or {}).items()}


def _plan(state: ChatState) -> Plan:
    return Plan.model_validate(state.get("plan") or {"steps": []})


def problems(plan: Plan, results: dict[str, StepResult]) -> list[str]:
    """Plain sentences about what failed and why; written by code, not left to a small LLM."""
    lines = []
    for step in plan.steps:
        result = results.get(str(step.id))
        if result is None:
            continue
        if result.status == "failed":
            lines.append(f"Step {step.id} ({step.tool}) failed: {result.error}")
        elif result.status == "skipped":
            lines.append(f"Step {step.id} ({step.tool}) was skipped: {result.error}")
    return lines


def failure_answer(plan: Plan, results: dict[str, StepResult], tools: dict[str, Any]) -> str:
    """One or two sentences for a turn none of whose steps finished: what could not be done, and
    the fix the failing step's error names. Skipped steps only follow from a failure, so they go
    unmentioned."""
    failed = [(step, r) for step in plan.steps if (r := results.get(str(step.id))) and r.status == "failed"]
    if not failed:
        return "None of the steps could run, so I have nothing to show."
    sentences = []
    for step, result in failed[:2]:
        action = getattr(tools.get(step.tool), "action", "") or f"run {step.tool}"
        reason = (result.error or "it failed").strip().rstrip(".")
        sentences.append(f"I could not {action}: {reason}.")
    if len(failed) > 2:
        sentences[-1] = sentences[-1][:-1] + f"; {len(failed) - 2} more step(s) failed too."
    return " ".join(sentences)


def results_block(plan: Plan, results: dict[str, StepResult]) -> str:
    lines = []
    for step in plan.steps:
        result = results.get(str(step.id))
        if result is None:
            continue
        if result.status == "done":
            files = ", ".join(a.path.rsplit("/", 1)[-1] for a in result.artifacts)
            lines.append(
                f"[{step.id}] {step.tool}: {result.output}" + (f" (files: {files})" if files else "")
            )
        else:
            lines.append(f"[{step.id}] {step.tool}: {result.status.upper()} - {result.error}")
    return "\n".join(lines)


def build_chat_graph(
    app: AppContext,
    llm: BaseChatModel,
    checkpointer: BaseCheckpointSaver | None = None,
    tools: dict[str, Any] | None = None,
    progress_hook: Callable[[int, str, float | None], None] | None = None,
) -> CompiledStateGraph:
    settings = app.settings
    tools = tools if tools is not None else app.registry.available()
    planner = Planner(
        llm, tools, settings.max_steps, settings.plan_retries, one_call=None if settings.one_call else False
    )

    def plan_node(state: ChatState) -> dict[str, Any]:
        attachments = [a["path"] for a in state.get("attachments") or []]
        history = history_lines(state.get("history") or [], settings.history_turns)
        outcome = planner.make_plan(state["request"], attachments, history, keep_answer=True)
        plan = outcome.plan.model_dump() if outcome.plan else None
        _emit({"type": "plan", "plan": plan, "error": outcome.error, "attempts": outcome.attempts})
        if outcome.answer is not None:  # the planning call is answering: stream it on
            text = _streamed(outcome.answer, app.cancel, "(The answer was cut short: {})")
            return {"plan": plan, "plan_error": None, "direct_answer": text}
        return {"plan": plan, "plan_error": outcome.error}

    def dispatch(state: ChatState) -> dict[str, Any]:
        plan, results = _plan(state), _results(state)
        skipped: dict[str, dict] = {}
        for step in plan.steps:
            if str(step.id) in results or str(step.id) in skipped:
                continue
            blocked = [d for d in step.depends_on if _status(d, results, skipped) in ("failed", "skipped")]
            if blocked:
                result = StepResult(
                    id=step.id,
                    tool=step.tool,
                    status="skipped",
                    error=f"it needs step {blocked[0]}, which did not finish",
                )
                skipped[str(step.id)] = result.model_dump()
                _emit({"type": "step_end", **result.model_dump(mode="json")})
        return {"results": skipped} if skipped else {}

    def route(state: ChatState) -> list[Send] | str:
        if app.cancel.is_set():
            return "respond"
        plan, results = _plan(state), _results(state)
        ready = [
            step
            for step in plan.steps
            if str(step.id) not in results and all(_status(d, results, {}) == "done" for d in step.depends_on)
        ]
        if not ready:
            return "respond"
        return [Send("run_step", {"step": s.model_dump(), "state": state}) for s in ready]

    def run_step_node(payload: dict[str, Any]) -> dict[str, Any]:
        step = Step.model_validate(payload["step"])
        state: ChatState = payload["state"]
        _emit({"type": "step_start", "id": step.id, "tool": step.tool, "args": step.args})
        trusted = [a["path"] for a in state.get("attachments") or []]

        def progress(message: str, fraction: float | None = None) -> None:
            _emit({"type": "progress", "id": step.id, "message": message, "fraction": fraction})

        ctx = RunContext(app=app, step_id=step.id, trusted_paths=trusted, progress=progress)  # type: ignore[arg-type]
        result = run_step(step, tools[step.tool], _results(state), ctx)
        if ctx.cancelled and result.status == "done":
            result.error = "finished, but the turn was cancelled"
        _emit({"type": "step_end", **result.model_dump(mode="json")})
        return {"results": {str(step.id): result.model_dump(mode="json")}}

    def respond(state: ChatState) -> dict[str, Any]:
        plan, results = _plan(state), _results(state)
        artifacts = _unique(a for step in plan.steps for a in _done_artifacts(results.get(str(step.id))))
        if app.cancel.is_set():
            text = CANCELLED_TEXT
        elif state.get("plan_error"):
            text = f"I could not turn that request into a valid plan: {state['plan_error']}"
        elif state.get("direct_answer") is not None:
            text = str(state["direct_answer"])
        elif plan.steps and not any(r.status == "done" for r in results.values()):
            # Nothing to answer from: the small responder would only apologise and then be
            # contradicted by the failure lines, so code says what failed and how to fix it.
            text = failure_answer(plan, results, tools)
        else:
            text = _write_answer(llm, state, plan, results, settings.history_turns, app.cancel)
            notes = [
                r.note for s in plan.steps if (r := results.get(str(s.id))) and r.status == "done" and r.note
            ]
            issues = [*notes, *problems(plan, results)]
            if issues:
                text = (text.rstrip() + "\n\n" if text.strip() else "") + "\n".join(issues)
        answer = Answer(text=text, artifacts=artifacts)
        _emit({"type": "answer", **answer.model_dump(mode="json")})
        user_entry = {"role": "user", "text": state["request"], "attachments": state.get("attachments") or []}
        if state.get("spoken"):
            user_entry["spoken"] = state["spoken"]
        bot_entry = {"role": "assistant", "text": text, "artifacts": [a.model_dump() for a in artifacts]}
        return {"answer": answer.model_dump(mode="json"), "history": [user_entry, bot_entry]}

    graph = StateGraph(ChatState)
    graph.add_node("plan", plan_node)
    graph.add_node("dispatch", dispatch)
    graph.add_node("run_step", run_step_node)
    graph.add_node("respond", respond)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "dispatch")
    graph.add_conditional_edges("dispatch", route, ["run_step", "respond"])
    graph.add_edge("run_step", "dispatch")
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=checkpointer)


def _status(step_id: int, results: dict[str, StepResult], extra: dict[str, dict]) -> str | None:
    if str(step_id) in extra:
        return extra[str(step_id)]["status"]
    result = results.get(str(step_id))
    return result.status if result else None


def _done_artifacts(result: StepResult | None) -> list[Artifact]:
    return result.artifacts if result and result.status == "done" else []


def _unique(artifacts: Any) -> list[Artifact]:
    seen, out = set(), []
    for artifact in artifacts:
        if artifact.path not in seen:
            seen.add(artifact.path)
            out.append(artifact)
    return out


def _write_answer(
    llm: BaseChatModel,
    state: ChatState,
    plan: Plan,
    results: dict[str, StepResult],
    turns: int,
    cancel: threading.Event,
) -> str:
    """Stream the responder LLM's answer as `token` events; a failure here still yields an answer."""
    parts = history_lines(state.get("history") or [], turns)
    parts.append(f"User: {state['request']}")
    if state.get("attachments"):
        parts.append("Attached: " + ", ".join(a["path"] for a in state["attachments"]))
    if plan.steps:
        parts.append("Results of the tools:\n" + results_block(plan, results))
    parts.append("Write your answer to the user now.")
    messages = [SystemMessage(load_prompt("responder")), HumanMessage("\n".join(parts))]
    pieces = (chunk.content if isinstance(chunk.content, str) else "" for chunk in llm.stream(messages))
    return _streamed(pieces, cancel, "\n(The answer was cut short: {})")


def _streamed(pieces: Iterable[str], cancel: threading.Event, cut_short: str) -> str:
    """Hand each piece of an answer to the front ends as a `token` event and return the whole text.

    Cancelling stops the generation (the iterator is closed); a backend failure half-way still
    yields an answer, ending with `cut_short` filled in with the reason."""
    out: list[str] = []
    try:
        for text in pieces:
            if text:
                out.append(text)
                _emit({"type": "token", "text": text})
            if cancel.is_set():
                out.append(" " + CANCELLED_TEXT)
                break
    except ModalgraphError:
        raise
    except Exception as exc:
        out.append(cut_short.format(one_line(exc)))
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    return "".join(out).strip()
