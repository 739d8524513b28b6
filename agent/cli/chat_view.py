"""Terminal rendering of a turn's events with rich: the plan, each step, the streamed answer."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from agent.core.text import shorten

STATUS_STYLE = {"done": "green", "failed": "red", "skipped": "yellow"}


class Planning:
    """A "planning… 2.5 s" line, redrawn by a rich Live from when a message is sent until the turn's
    first event (the plan, or the first token of an answer): the wait shows that work goes on."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        return Text(f"planning… {time.monotonic() - self.started:.1f} s", style="dim")


class TurnView:
    """Prints events as they arrive; tokens are written straight through so the answer streams."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.streaming = False
        self._waiting: Live | None = None

    def planning(self) -> None:
        """Show the planning line until the next event: call it as the message is sent. Transient,
        and drawn only on a terminal (piped output gets no redraws)."""
        self.done_planning()
        self._waiting = Live(Planning(), console=self.console, transient=True, refresh_per_second=8)
        self._waiting.start()

    def done_planning(self) -> None:
        if self._waiting is not None:
            self._waiting.stop()
            self._waiting = None

    def __call__(self, event: dict[str, Any]) -> None:
        self.done_planning()
        kind = event.get("type")
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(event)

    def _end_stream(self) -> None:
        if self.streaming:
            self.console.print()
            self.streaming = False

    def on_plan(self, event: dict[str, Any]) -> None:
        plan = event.get("plan")
        if plan is None:
            self.console.print(f"[red]no valid plan[/] ({escape(str(event.get('error')))})")
            return
        if not plan["steps"]:
            return
        self.console.print("[bold]plan[/]")
        for step in plan["steps"]:
            args = ", ".join(f"{k}={shorten(v, 40, one_line=False)}" for k, v in step["args"].items())
            after = f"  [dim]after {', '.join(map(str, step['depends_on']))}[/]" if step["depends_on"] else ""
            self.console.print(f"  {step['id']}. [cyan]{step['tool']}[/]({escape(args)}){after}")

    def on_step_start(self, event: dict[str, Any]) -> None:
        self.console.print(f"[dim]  > step {event['id']} {event['tool']} started[/]")

    def on_progress(self, event: dict[str, Any]) -> None:
        fraction = event.get("fraction")
        pct = f" {fraction:.0%}" if isinstance(fraction, (int, float)) else ""
        self.console.print(f"[dim]    step {event['id']}: {escape(event['message'])}{pct}[/]")

    def on_step_end(self, event: dict[str, Any]) -> None:
        status = event["status"]
        style = STATUS_STYLE.get(status, "white")
        detail = event.get("error") or shorten(event.get("output", ""), 80, one_line=False)
        seconds = f" {event['seconds']:.1f}s" if event.get("seconds") else ""
        self.console.print(
            f"  [{style}]{'✓' if status == 'done' else '✗'} step {event['id']} {event['tool']} {status}[/]"
            f"{seconds}  [dim]{escape(detail)}[/]"
        )

    def on_waiting(self, event: dict[str, Any]) -> None:
        self.console.print(f"[yellow]{escape(str(event.get('message', 'waiting…')))}[/]")

    def on_cancelling(self, event: dict[str, Any]) -> None:
        self._end_stream()
        self.console.print("[yellow]cancelling: no new step will start (Ctrl-C again to stop waiting)[/]")

    def on_token(self, event: dict[str, Any]) -> None:
        if not self.streaming:
            self.console.print("[bold magenta]modalgraph[/] ", end="")
            self.streaming = True
        self.console.print(escape(event["text"]), end="", soft_wrap=True)

    def on_answer(self, event: dict[str, Any]) -> None:
        if not self.streaming:  # nothing was streamed (e.g. no valid plan): show the whole answer
            self.console.print(f"[bold magenta]modalgraph[/] {escape(event['text'])}")
        self._end_stream()
        for artifact in event.get("artifacts", []):
            self.console.print(f"  [blue]{artifact['mime']}[/] {escape(artifact['path'])}")
