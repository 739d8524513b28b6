"""The terminal chat's rendering: a planning line with elapsed seconds until the turn's first event."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from agent.cli.chat_view import TurnView


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=80, highlight=False, color_system=None), out


def test_the_planning_line_counts_seconds_until_the_first_event_and_then_goes() -> None:
    console, out = _terminal()
    view = TurnView(console)
    view.planning()
    time.sleep(0.6)
    view({"type": "token", "text": "Paris."})
    time.sleep(0.3)  # a redraw after the first event would show up here
    view({"type": "answer", "text": "Paris.", "artifacts": []})
    text = out.getvalue()
    seconds = [float(s) for s in re.findall(r"planning… (\d+\.\d) s", text)]
    assert seconds and max(seconds) >= 0.3  # redrawn while waiting, with the time going up
    assert "Paris." in text[text.rindex("planning…") :]  # the answer comes after the last redraw
    assert view._waiting is None


def test_piped_output_gets_no_planning_line() -> None:
    out = io.StringIO()
    view = TurnView(Console(file=out, force_terminal=False, width=80))
    view.planning()
    time.sleep(0.3)
    view({"type": "token", "text": "Paris."})
    view.done_planning()
    assert "planning" not in out.getvalue()
    assert "Paris." in out.getvalue()
