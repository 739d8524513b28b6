"""`modalgraph chat`, `ask` and `plan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent.context import AppContext
    from agent.turns import TurnRunner
    from memory.artifacts import Artifact

SESSION_HELP = "Conversation name; its history is kept on disk and picked up next time."


def register(app: typer.Typer) -> None:
    app.command()(chat)
    app.command()(ask)
    app.command()(plan)


def _app() -> AppContext:
    from agent.context import AppContext
    from agent.settings import load_settings

    settings = load_settings()
    settings.ensure_data_dir()
    return AppContext(settings)


def user_attachment(raw: str) -> Artifact:
    """A file the user attached: trusted, but it must exist and be a readable file."""
    from agent.errors import ToolInputError
    from memory.artifacts import Artifact, guess_mime

    path = Path(raw).expanduser()
    if not path.is_file():
        raise ToolInputError(f"attachment not found: {raw}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ToolInputError(f"cannot read attachment {raw}: {exc.strerror}") from None
    resolved = path.resolve()
    return Artifact(path=str(resolved), mime=guess_mime(resolved))


def _finish_interrupted(runner: TurnRunner, session: str, on_event: object, quiet: bool = False) -> None:
    pending = runner.interrupted(session)
    if pending is None:
        return
    if not quiet:
        typer.secho(f"resuming the interrupted turn: {pending!r}", fg="yellow", err=True)
    runner.resume(session, on_event)  # type: ignore[arg-type]


def chat(session: str = typer.Option("default", "--session", "-s", help=SESSION_HELP)) -> None:
    """Talk with the assistant in the terminal. /help lists the commands."""
    from rich.console import Console

    from agent.chat_view import TurnView
    from agent.turns import TurnRunner
    from memory.sessions import check_session_name

    check_session_name(session)
    console = Console(highlight=False)
    app = _app()
    runner = TurnRunner(app)
    view = TurnView(console)
    console.print(f"[bold]modalgraph[/] session [cyan]{session}[/]  (/help for commands, Ctrl-D to leave)")
    runner.llm  # load the planner before the first prompt, so its errors surface at once  # noqa: B018
    history = runner.history(session)
    if history:
        console.print(
            f"[dim]{sum(1 for h in history if h['role'] == 'user')} earlier turns in this session[/]"
        )
    _finish_interrupted(runner, session, view)
    attachments: list[Artifact] = []
    while True:
        try:
            line = console.input("[bold green]you[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            if _chat_command(line, attachments, console):
                return
            continue
        runner.run(session, line, attachments, view)
        attachments = []


def _chat_command(line: str, attachments: list[Artifact], console: object) -> bool:
    """Handle a /command; True means leave the chat."""
    from agent.errors import ModalgraphError, one_line

    name, _, rest = line.partition(" ")
    if name in ("/quit", "/exit"):
        return True
    if name == "/attach":
        try:
            attachments.append(user_attachment(rest.strip()))
            console.print(f"[dim]attached {attachments[-1].path} for the next message[/]")  # type: ignore[attr-defined]
        except ModalgraphError as exc:
            console.print(f"[red]{one_line(exc)}[/]")  # type: ignore[attr-defined]
        return False
    console.print(  # type: ignore[attr-defined]
        "/attach PATH  attach a file to your next message\n/quit         leave (the session is kept)"
    )
    return False


def ask(
    request: str = typer.Argument(..., help="What you want, in plain words."),
    attach: list[str] = typer.Option([], "--attach", "-a", help="A file to attach (repeatable)."),
    session: str = typer.Option("default", "--session", "-s", help=SESSION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: plan, steps, answer."),
) -> None:
    """Run one turn without the chat loop."""
    from agent.chat_view import TurnView
    from agent.turns import TurnRunner, turn_json
    from memory.sessions import check_session_name

    check_session_name(session)
    attachments = [user_attachment(a) for a in attach]
    app = _app()
    runner = TurnRunner(app)
    on_event = (lambda event: None) if as_json else TurnView()
    _finish_interrupted(runner, session, on_event, quiet=as_json)
    values = runner.run(session, request, attachments, on_event)
    if app.cancel.is_set():
        raise typer.Exit(130)
    if as_json:
        typer.echo(json.dumps(turn_json(values), ensure_ascii=False))


def plan(
    request: str = typer.Argument(..., help="What you want, in plain words."),
    attach: list[str] = typer.Option([], "--attach", "-a", help="A file to attach (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the plan as JSON."),
) -> None:
    """Show the plan the planner makes for a request, without running it."""
    from agent.errors import ModalgraphError
    from agent.llm import create_chat_model
    from agent.planner import Planner

    attachments = [user_attachment(a).path for a in attach]
    app = _app()
    planner = Planner(create_chat_model(app), app.registry.available(), app.settings.max_steps)
    outcome = planner.make_plan(request, attachments)
    if outcome.plan is None:
        raise ModalgraphError(f"no valid plan after {outcome.attempts} attempts: {outcome.error}")
    if as_json:
        typer.echo(json.dumps(outcome.plan.model_dump(), ensure_ascii=False))
        return
    from agent.chat_view import TurnView

    TurnView().on_plan({"plan": outcome.plan.model_dump()})
    if not outcome.plan.steps:
        typer.echo("(no tools needed: a plain chat answer)")
