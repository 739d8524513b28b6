"""A turn's events as chatbot messages, updated while the turn runs.

The page shows what the terminal shows (agent/cli/chat_view.py): the plan, each step with its status
(waiting, running, done, failed with its message, skipped) and latest progress, the answer as it
streams, then the answer's files inline. Before the plan comes, a "planning… 2.4 s" entry counts the
seconds, so a slow planner does not look like a page that did nothing. Messages are Gradio
"messages" dicts, built here without importing Gradio, so the rendering is testable on its own. A
step is a "thought" message (it has a metadata title): Gradio draws it as a small accordion with a
spinner while its status is pending.
"""

from __future__ import annotations

import copy
import html
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent.core.text import shorten
from agent.turns import speak_answer
from memory.artifacts import guess_mime

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.turns import EventFn, TurnRunner
    from memory.artifacts import Artifact

Message = dict[str, Any]
ShowsFn = Callable[[str], bool]
# (path, sha256 or None) -> the thumbnail to show, or None when the file may not be shown.
ThumbFn = Callable[[str, "str | None"], "str | None"]
# Gradio's route for a local file; the file-route guard checks each request (serving.py).
FILE_ROUTE = "/gradio_api/file="

ICONS = {"waiting": "○", "running": "⏳", "done": "✓", "failed": "✗", "skipped": "⤼"}
OUTPUT_CHARS = 600
# Streaming: after the first event of a batch, wait this long for more before the page is updated,
# so a fast token stream costs a few updates per second rather than one per token.
BATCH_SECONDS = 0.05
# While the planner works no event comes: the page is updated this often anyway, so the planning
# entry's seconds keep counting.
TICK_SECONDS = 0.5
# Events that say planning is over. A resumed turn sends no plan event but steps; "waiting" (the
# session is busy elsewhere) and "cancelling" come while the planning entry still stands.
PLANNING_ENDS = frozenset({"plan", "step_start", "step_end", "progress", "token", "answer"})
_DONE = object()
# One turn at a time in this process: turns share the app's cancel flag, and a turn cancelled
# because its browser went away must wind down before the next one clears that flag.
_TURNS = threading.Lock()


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{key}={shorten(value, 48, '…')}" for key, value in args.items())


def file_message(item: dict[str, Any] | Artifact, role: str, shows: ShowsFn) -> Message:
    """One file, shown inline (image, audio player, video player, else a download link) when the
    page may send it; otherwise its path as text, so the conversation still says what was there."""
    data = item if isinstance(item, dict) else item.model_dump()
    path = str(data["path"])
    mime = str(data.get("mime") or guess_mime(path))
    if shows(path):
        return {"role": role, "content": {"path": path, "alt_text": Path(path).name}}
    return {
        "role": role,
        "content": f"📎 `{path}` ({mime}): not shown, the page only sends files from the artifact "
        "store and the image library",
    }


def file_url(path: str) -> str:
    return FILE_ROUTE + quote(path)


def image_grid(items: list[dict[str, Any]], role: str, thumbs: ThumbFn) -> Message | None:
    """Images as one message: a grid of thumbnails, each a link to the full-size file (a new tab).

    Found photos and generated images used to come one under another at full size, a column
    taller than the screen; a grid keeps an answer with twenty photos readable."""
    links = []
    for item in items:
        path = str(item["path"])
        thumb = thumbs(path, item.get("sha256"))
        if thumb is None:
            continue
        name = html.escape(Path(path).name, quote=True)
        links.append(
            f'<a href="{html.escape(file_url(path), quote=True)}" target="_blank" rel="noopener" title="{name}">'
            f'<img src="{html.escape(file_url(thumb), quote=True)}" alt="{name}"></a>'
        )
    if not links:
        return None
    return {"role": role, "content": f'<div class="photo-grid">{"".join(links)}</div>'}


def files_messages(
    items: list[dict[str, Any] | Artifact], role: str, shows: ShowsFn, thumbs: ThumbFn | None
) -> list[Message]:
    """Files of one message: images the page may show as one grid (with `thumbs`), the rest one by one."""
    data = [item if isinstance(item, dict) else item.model_dump() for item in items]
    images = [
        d
        for d in data
        if str(d.get("mime") or guess_mime(str(d["path"]))).startswith("image/") and shows(str(d["path"]))
    ]
    grid = image_grid(images, role, thumbs) if thumbs is not None and images else None
    out = [grid] if grid is not None else []
    gridded = {id(d) for d in images} if grid is not None else set()
    out += [file_message(d, role, shows) for d in data if id(d) not in gridded]
    return out


def history_messages(
    history: list[dict[str, Any]], shows: ShowsFn, thumbs: ThumbFn | None = None
) -> list[Message]:
    """A session's saved conversation (text and files of each turn; plans are not kept). An
    answer's images show as a grid of thumbnails; the user's attachments as they were sent."""
    out: list[Message] = []
    for entry in history:
        role = "user" if entry.get("role") == "user" else "assistant"
        if entry.get("text"):
            out.append({"role": role, "content": entry["text"]})
        spoken = [entry["spoken"]] if entry.get("spoken") else []  # the recording of a spoken request
        out += [file_message(item, role, shows) for item in spoken + entry.get("attachments", [])]
        out += files_messages(entry.get("artifacts", []), role, shows, thumbs)
    return out


class TurnMessages:
    """Feeds on a turn's events (call it with each) and keeps `messages` up to date."""

    def __init__(
        self, shows: ShowsFn, clock: Callable[[], float] = time.monotonic, thumbs: ThumbFn | None = None
    ) -> None:
        self.shows = shows
        self.thumbs = thumbs
        self.clock = clock
        self.messages: list[Message] = []
        self._steps: dict[int, Message] = {}
        self._answer: Message | None = None
        self._planning: Message | None = None
        self._planning_since = 0.0
        self._planned_in: float | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") in PLANNING_ENDS:
            self._end_planning()
        handler = getattr(self, f"on_{event.get('type')}", None)
        if handler:
            handler(event)

    # ------------------------------------------------------------------ planning

    @property
    def planning(self) -> bool:
        """Whether the planning entry is shown (and so wants `tick` calls to keep counting)."""
        return self._planning is not None

    def start_planning(self) -> None:
        """Show the planning entry, counting from now, until the turn's first event past planning."""
        self._planning_since = self.clock()
        self._planning = {
            "role": "assistant",
            "content": "",
            "metadata": {"title": "", "status": "pending", "id": "planning"},
        }
        self.messages.append(self._planning)
        self.tick()

    def tick(self) -> None:
        """Bring the planning entry's elapsed seconds up to date (nothing once planning is over)."""
        if self._planning is not None:
            seconds = self.clock() - self._planning_since
            self._planning["metadata"]["title"] = f"⏳ planning… {seconds:.1f} s"

    def _end_planning(self) -> None:
        # Removed rather than marked done: the plan (or for a plain chat turn, the answer) that
        # follows says planning is over, and the plan keeps how long it took as its duration.
        if self._planning is not None:
            self._planned_in = self.clock() - self._planning_since
            self.messages.remove(self._planning)
            self._planning = None

    def finish(self) -> None:
        """The turn is over, whatever it sent: no planning entry is left spinning."""
        self._end_planning()

    def snapshot(self) -> list[Message]:
        """A copy to hand to Gradio: these messages keep changing after it is sent."""
        return copy.deepcopy(self.messages)

    def note(self, title: str, text: str = "") -> None:
        self.messages.append({"role": "assistant", "content": text, "metadata": {"title": title}})

    # ------------------------------------------------------------------ steps

    def _step(self, step_id: int, tool: str, args: dict[str, Any] | None = None) -> Message:
        """The message of a step, made on first sight (a resumed turn sends no plan event)."""
        message = self._steps.get(step_id)
        if message is None:
            message = {
                "role": "assistant",
                "content": f"`{tool}`({_args_text(args or {})})",
                "metadata": {"id": f"step-{step_id}"},
            }
            self._steps[step_id] = message
            self.messages.append(message)
            self._set_status(message, step_id, tool, "waiting")
        return message

    @staticmethod
    def _set_status(message: Message, step_id: int, tool: str, status: str, log: str = "") -> None:
        meta = message["metadata"]
        meta["title"] = f"{ICONS.get(status, '•')} step {step_id} · {tool}: {status}"
        if status in ("waiting", "running"):
            meta["status"] = "pending"  # a spinner, accordion open
        elif status == "failed":
            meta.pop("status", None)  # no status: the accordion stays open, so the error is seen
        else:
            meta["status"] = "done"
        if log:
            meta["log"] = log
        else:
            meta.pop("log", None)

    def on_plan(self, event: dict[str, Any]) -> None:
        plan = event.get("plan")
        if plan is None:
            self.messages.append(
                {
                    "role": "assistant",
                    "content": str(event.get("error") or "the planner gave no usable plan"),
                    "metadata": {"title": "✗ no valid plan", **self._planning_duration()},
                }
            )
            return
        steps = plan.get("steps") or []
        if not steps:
            return  # a plain chat answer: nothing to show but the answer
        lines = []
        for step in steps:
            after = f" (after {', '.join(map(str, step['depends_on']))})" if step.get("depends_on") else ""
            lines.append(f"{step['id']}. `{step['tool']}`({_args_text(step['args'])}){after}")
        count = f"{len(steps)} step{'s' if len(steps) != 1 else ''}"
        self.messages.append(
            {
                "role": "assistant",
                "content": "\n".join(lines),
                "metadata": {
                    "title": f"Plan: {count}",
                    "status": "done",
                    "id": "plan",
                    **self._planning_duration(),
                },
            }
        )
        for step in steps:
            self._step(step["id"], step["tool"], step["args"])

    def _planning_duration(self) -> dict[str, float]:
        """Gradio shows a thought's duration beside its title: here, how long planning took."""
        return {} if self._planned_in is None else {"duration": round(self._planned_in, 1)}

    def on_step_start(self, event: dict[str, Any]) -> None:
        message = self._step(event["id"], event["tool"], event.get("args"))
        self._set_status(message, event["id"], event["tool"], "running")

    def on_progress(self, event: dict[str, Any]) -> None:
        message = self._steps.get(event["id"])
        if message is None:
            return
        fraction = event.get("fraction")
        percent = f" {fraction:.0%}" if isinstance(fraction, (int, float)) else ""
        message["metadata"]["log"] = shorten(f"{event.get('message', '')}{percent}", 80, "…")

    def on_step_end(self, event: dict[str, Any]) -> None:
        step_id, tool, status = event["id"], event["tool"], event["status"]
        message = self._step(step_id, tool)
        error = event.get("error")
        if status == "failed":
            message["content"] = f"**Failed:** {error}"
            self._set_status(message, step_id, tool, status, log=shorten(str(error), 90, "…"))
        elif status == "skipped":
            message["content"] = f"Skipped: {error}"
            self._set_status(message, step_id, tool, status)
        else:
            output = str(event.get("output") or "")
            message["content"] = shorten(output, OUTPUT_CHARS, "…") if output else "(no text output)"
            self._set_status(message, step_id, tool, status, log=shorten(error, 90, "…") if error else "")
        if event.get("seconds"):
            message["metadata"]["duration"] = round(float(event["seconds"]), 2)

    # ------------------------------------------------------------------ answer

    def on_waiting(self, event: dict[str, Any]) -> None:
        self.note(str(event.get("message", "waiting…")))

    def on_cancelling(self, event: dict[str, Any]) -> None:
        self.note("cancelling: no new step will start")

    def on_token(self, event: dict[str, Any]) -> None:
        if self._answer is None:
            self._answer = {"role": "assistant", "content": ""}
            self.messages.append(self._answer)
        self._answer["content"] += event["text"]

    def on_answer(self, event: dict[str, Any]) -> None:
        # The final text also carries what code appended (failures and their fixes, tool notes).
        if self._answer is None:
            self._answer = {"role": "assistant", "content": ""}
            self.messages.append(self._answer)
        self._answer["content"] = event.get("text", "")
        self.messages += files_messages(event.get("artifacts", []), "assistant", self.shows, self.thumbs)


def run_streamed(
    call: Callable[[EventFn], dict[str, Any]], view: TurnMessages, cancel: threading.Event
) -> Iterator[None]:
    """Run `call(on_event)` in a thread, render its events into `view`, yield after each batch,
    and also every TICK_SECONDS while `view` shows the planning entry (its seconds keep counting).

    Returns (through `yield from`) what `call` returned, or raises what it raised. If the consumer
    stops early (the browser went away), the turn is cancelled the way Ctrl-C cancels it in the
    terminal: no new step starts and the session stays consistent.
    """
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with _TURNS:
                outcome["values"] = call(events.put)
        except BaseException as exc:  # handed to the consumer below
            outcome["error"] = exc
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=work, name="web-turn", daemon=True)
    worker.start()
    finished = False
    try:
        while not finished:
            try:
                batch = [events.get(timeout=TICK_SECONDS if view.planning else None)]
            except queue.Empty:
                view.tick()
                yield
                continue
            try:
                batch.append(events.get(timeout=BATCH_SECONDS))
                while True:
                    batch.append(events.get_nowait())
            except queue.Empty:
                pass
            for event in batch:
                if event is _DONE:
                    finished = True
                    view.finish()
                else:
                    view(event)
            view.tick()
            yield
    finally:
        if not finished:
            cancel.set()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["values"]


def user_messages(
    request: str, attachments: list[Artifact], shows: ShowsFn, spoken: Artifact | None = None
) -> list[Message]:
    out: list[Message] = [{"role": "user", "content": request}]
    out += [file_message(a, "user", shows) for a in ([spoken] if spoken else []) + attachments]
    return out


def chat_turn(
    app: AppContext,
    runner: TurnRunner,
    session: str,
    request: str,
    attachments: list[Artifact],
    shows: ShowsFn,
    speak: bool = False,
    thumbs: ThumbFn | None = None,
    spoken: Artifact | None = None,
) -> Iterator[list[Message]]:
    """Yield this turn's messages (the user's first) each time they change, until the answer is in.
    `spoken` is the recording `request` was transcribed from, kept with the turn.

    The first update already shows the planning entry, so the page answers the moment it is asked.

    A turn left unfinished in this session (a crash, a killed CLI) is finished first, as the CLI does.
    With `speak`, the answer is then read aloud and its audio added, like `chat --speak`.
    """
    done: list[Message] = []
    pending = runner.interrupted(session)
    if pending is not None:
        resumed = TurnMessages(shows, thumbs=thumbs)
        resumed.note(f"finishing the interrupted turn: {shorten(pending, 80, '…')}")
        stream = run_streamed(lambda on_event: runner.resume(session, on_event), resumed, app.cancel)
        yield from _rendered(stream, resumed.snapshot)
        done = resumed.snapshot()
    asked = done + user_messages(request, attachments, shows, spoken)
    turn = TurnMessages(shows, thumbs=thumbs)
    turn.start_planning()
    yield asked + turn.snapshot()
    stream = run_streamed(
        lambda on_event: runner.run(session, request, attachments, on_event, spoken=spoken), turn, app.cancel
    )
    values = yield from _rendered(stream, lambda: asked + turn.snapshot())
    if speak and not app.cancel.is_set():
        turn.note("reading the answer aloud…")
        yield asked + turn.snapshot()
        speech = speak_answer(app, values)
        turn.messages.pop()
        if "error" in speech:
            turn.note("not read aloud", speech["error"])
        else:
            turn.messages.append(file_message(speech, "assistant", shows))
        yield asked + turn.snapshot()


def _rendered(stream: Iterator[None], render: Callable[[], list[Message]]) -> Iterator[list[Message]]:
    """`render()` after each step of `stream`; returns what the stream returned."""
    try:
        while True:
            try:
                next(stream)
            except StopIteration as stop:
                return stop.value
            yield render()
    finally:
        stream.close()  # stopped early: run_streamed's cleanup cancels the turn now, not at GC
