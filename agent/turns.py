"""Running turns of a session: shared by `chat`, `ask` and the web page.

A turn streams events (see graphs.chat) to a callback and returns the final state. A turn that was
interrupted (Ctrl-C, a crash, SIGKILL) is found on the next start and finished from its last
checkpoint, without redoing the steps that completed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agent.context import AppContext
from agent.core.disk_full import disk_full_error, is_disk_full
from agent.core.errors import ModalgraphError, one_line
from agent.core.settings import Settings
from agent.llm import create_chat_model
from agent.tts import speak_text
from graphs.state import new_turn
from memory.artifacts import Artifact
from memory.sessions import SessionStore, open_sessions, thread_config

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

EventFn = Callable[[dict[str, Any]], None]
_DONE = object()


class TurnRunner:
    def __init__(self, app: AppContext, llm: BaseChatModel | None = None) -> None:
        self.app = app
        self._llm = llm

    @cached_property
    def llm(self) -> BaseChatModel:
        if self._llm is not None:
            return self._llm

        return create_chat_model(self.app)

    @cached_property
    def sessions(self) -> SessionStore:
        return open_sessions(self.app.settings)

    @property
    def checkpointer(self) -> Any:
        return self.sessions.saver

    @cached_property
    def graph(self) -> Any:
        from graphs.chat import build_chat_graph  # deferred: imports langgraph, langchain, pydantic-settings

        return build_chat_graph(self.app, self.llm, self.checkpointer)

    def warm_up(self, places: bool = False) -> None:
        """Do now what the first turn would otherwise wait for: load the planner's weights and bring
        its instructions into the model's context (from the saved prompt state when there is one).
        With `places`, then open the place names that plans and searches check place filters
        against (a fraction of a second; the first process after an install folds and saves them,
        about 9 s). Safe beside a turn: the model's own locks order them."""
        from agent.planning.planner import Planner  # deferred: imports langchain

        warm = getattr(self.llm, "warm_up", None)
        if warm is not None:  # else a server or a script: nothing local to load
            settings = self.app.settings
            planner = Planner(
                self.llm,
                self.app.registry.available(),
                settings.max_steps,
                one_call=None if settings.one_call else False,
            )
            warm(planner.messages(""))
        if places:
            from memory.place_names import load_place_names

            load_place_names()

    def warm_up_in_background(self, places: bool = False) -> threading.Thread:
        """`warm_up` in a daemon thread, started while the user reads the banner and types. A
        failure there is left for the first turn to meet (and report) again. `places` is for the
        long-running commands: a one-shot `ask` would only slow its own model load with it."""

        def work() -> None:
            with contextlib.suppress(Exception):
                self.warm_up(places)

        thread = threading.Thread(target=work, name="warm-up", daemon=True)
        thread.start()
        return thread

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
        """Run the graph in a worker thread and hand its events to `on_event` in this one.

        Ctrl-C here sets the app's cancel flag instead of tearing the graph down mid-step: no new
        step starts, a running tool may stop early, and the turn ends with a cancelled answer, so
        the session stays consistent. A second Ctrl-C stops waiting.
        """
        config = self._config(session)
        busy = {"type": "waiting", "message": f"session {session} is busy in another window, waiting…"}
        with self.sessions.turn_lock(session, on_wait=lambda: on_event(busy)):
            if graph_input is None and self.interrupted(session) is None:
                return dict(self.graph.get_state(config).values)  # its own process finished it meanwhile
            return self._stream_locked(graph_input, config, session, on_event)

    def _stream_locked(
        self, graph_input: Any, config: dict[str, Any], session: str, on_event: EventFn
    ) -> dict[str, Any]:
        self.app.cancel.clear()
        events: queue.Queue[Any] = queue.Queue()
        failures: list[BaseException] = []

        def work() -> None:
            try:
                # sync durability: each superstep is on disk before the next starts.
                for event in self.graph.stream(graph_input, config, stream_mode="custom", durability="sync"):
                    events.put(event)
            except BaseException as exc:  # handed to the caller's thread below
                failures.append(exc)
            finally:
                events.put(_DONE)

        worker = threading.Thread(target=work, name=f"turn-{session}", daemon=True)
        worker.start()
        while True:
            try:
                event = events.get(timeout=0.1)
                if event is _DONE:
                    break
                on_event(event)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                if self.app.cancel.is_set():
                    raise
                self.app.cancel.set()
                on_event({"type": "cancelling"})
        worker.join()
        if failures:
            raise _storage_failure(failures[0], self.sessions, self.app.settings) from None
        return dict(self.graph.get_state(config).values)

    def run(
        self,
        session: str,
        request: str,
        attachments: list[Artifact] | None = None,
        on_event: EventFn = print,
        spoken: Artifact | None = None,
    ) -> dict[str, Any]:
        """One turn; `spoken` is the recording when `request` is the transcript of a spoken request."""
        return self._stream(new_turn(request, attachments or [], spoken), session, on_event)

    def resume(self, session: str, on_event: EventFn = print) -> dict[str, Any]:
        return self._stream(None, session, on_event)


def _storage_failure(exc: BaseException, sessions: SessionStore, settings: Settings) -> BaseException:
    """What the turn's own storage raised (the sessions database, the file system), as one line;
    any other exception unchanged."""
    stored = sessions.storage_error(exc)
    if stored is not None:
        return stored
    if isinstance(exc, OSError) and is_disk_full(exc, settings.data_dir):
        return disk_full_error(settings.data_dir)
    return exc


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


def speak_answer(app: AppContext, values: dict) -> dict:
    """Read the turn's answer aloud; returns what `ask --json` shows under "speech".

    Speech is an extra: a failure is reported, never raised, so the answer itself stands.
    """

    text = str((values.get("answer") or {}).get("text") or "").strip()
    if not text:
        return {"error": "no answer to read aloud"}
    try:
        spoken = speak_text(app, text, cancelled=app.cancel.is_set)
    except ModalgraphError as exc:
        return {"error": one_line(exc)}
    out = spoken.output
    return {
        "path": spoken.artifact.path,
        "mime": spoken.artifact.mime,
        "engine": out.engine,
        "voice": out.voice,
        "seconds": round(out.seconds, 2),
    }
