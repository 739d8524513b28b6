"""One writer of the two-writers test: `python -m tests.session_writer WHO TURNS SESSION BARRIER_DIR`.

It opens the sessions store of its environment (SQLite in MODALGRAPH_DATA_DIR, or
MODALGRAPH_SESSIONS_URL), says it is ready by creating BARRIER_DIR/WHO, waits until every writer is
(two), then runs TURNS turns on SESSION with a scripted LLM: request `WHO-k`, one slow echo step,
answer `answer WHO-k`. A turn of the other writer's that ran into one of these would show up in the
history as a request followed by the wrong answer, or a missing one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

WRITERS = 2


def script(who: str, turns: int) -> list[object]:
    replies: list[object] = []
    for k in range(turns):
        step = {"id": 1, "tool": "echo", "args": {"text": f"{who}-{k}", "delay": 0.1}, "depends_on": []}
        replies += [{"delay_s": 0.05, "content": {"steps": [step]}}, f"answer {who}-{k}"]
    return replies


def main(who: str, turns: int, session: str, barrier: Path) -> None:
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.scripted import ScriptedChatModel
    from agent.turns import TurnRunner
    from tests import fake_tools
    from tools.registry import ToolRegistry

    app = AppContext(load_settings())
    app.__dict__["registry"] = ToolRegistry(fake_tools.ALL)
    runner = TurnRunner(app, ScriptedChatModel(replies=script(who, turns)))
    runner.graph  # noqa: B018 - connect and build before the barrier, so the turns start together
    (barrier / who).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < WRITERS:
        if time.monotonic() > deadline:
            sys.exit(f"{who}: the other writer never got ready")
        time.sleep(0.01)
    for k in range(turns):
        runner.run(session, f"{who}-{k}", [], lambda event: None)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
