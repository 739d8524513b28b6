"""Running turns of a session: shared by `chat`, `ask` and the web page.

A turn streams events (see graphs.chat) to a callback and returns the final state. A turn that was
interrupted (Ctrl-C, a crash, SIGKILL) is found on the next start and finished from its last
checkpoint, without redoing the steps that completed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agent.context import AppContext
from memory.artifacts import Artifact
from memory.sessions import open_checkpointer, thread_config

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

EventFn = Callable[[dict[str, Any]], None]


class TurnRunner:
    def __init__(self, app: AppContext, llm: BaseChatModel | None = None) -> None:
        self.app = app
        self._llm = llm

    @cached_property
    def llm(self) -> BaseChatModel:
        if self._llm is not None:
            return self._llm
        from agent.llm import create_chat_model

        return create_chat_model(self.app)

    @cached_property
    def checkpointer(self) -> Any:
        return open_checkpointer(self.app.settings)

    @cached_property
    def graph(self) -> Any:
        from graphs.chat import build_chat_graph

        return build_chat_graph(self.app, self.llm, self.checkpointer)

    def _config(self, session: str) -> dict[str, Any]:
        config = thread_config(session)
        config["recursion_limit"] = 4 * self.app.settings.max_steps + 16
        return config

    def interrupted(self, session: str) -> str | None:
        """The request of an unfinished turn in this session, if any."""
        # `next` can be empty while finished steps' writes are pending, so look at the values instead.
        values = self.graph.get_state(self._config(session)).values
        if values.get("request") and not values.get("answer"):
            return str(values["request"])
        return None

    def history(self, session: str) -> list[dict[str, Any]]:
        return list(self.graph.get_state(self._config(session)).values.get("history") or [])

    def _stream(self, graph_input: Any, session: str, on_event: EventFn) -> dict[str, Any]:
        config = self._config(session)
        # sync durability: each superstep is on disk before the next starts, so SIGKILL loses no step.
        for event in self.graph.stream(graph_input, config, stream_mode="custom", durability="sync"):
            on_event(event)
        return dict(self.graph.get_state(config).values)

    def run(
        self, session: str, request: str, attachments: list[Artifact] | None = None, on_event: EventFn = print
    ) -> dict[str, Any]:
        from graphs.state import new_turn

        return self._stream(new_turn(request, attachments or []), session, on_event)

    def resume(self, session: str, on_event: EventFn = print) -> dict[str, Any]:
        return self._stream(None, session, on_event)

    def mark_cancelled(self, session: str) -> None:
        """Close a turn stopped by Ctrl-C so that the session's next turn starts cleanly."""
        config = self._config(session)
        if self.interrupted(session) is None:
            return
        values = self.graph.get_state(config).values
        text = "(cancelled by the user)"
        update = {
            "answer": {"text": text, "artifacts": []},
            "history": [
                {
                    "role": "user",
                    "text": values.get("request", ""),
                    "attachments": values.get("attachments") or [],
                },
                {"role": "assistant", "text": text, "artifacts": []},
            ],
        }
        self.graph.update_state(config, update, as_node="respond")


def turn_json(values: dict[str, Any]) -> dict[str, Any]:
    """The `ask --json` shape: plan, steps, answer, with artifacts as {path, mime}."""

    def refs(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"path": a["path"], "mime": a["mime"]} for a in items]

    plan = values.get("plan") or {"steps": []}
    results = values.get("results") or {}
    steps = []
    for step in plan["steps"]:
        result = results.get(str(step["id"]), {})
        steps.append(
            {
                "id": step["id"],
                "tool": step["tool"],
                "status": result.get("status", "skipped"),
                "output": result.get("output", ""),
                "error": result.get("error"),
                "artifacts": refs(result.get("artifacts", [])),
            }
        )
    answer = values.get("answer") or {"text": "", "artifacts": []}
    out: dict[str, Any] = {
        "plan": {"steps": plan["steps"]},
        "steps": steps,
        "answer": {"text": answer["text"], "artifacts": refs(answer.get("artifacts", []))},
    }
    if values.get("plan_error"):
        out["plan_error"] = values["plan_error"]
    return out
