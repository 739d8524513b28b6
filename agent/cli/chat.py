"""`modalgraph chat`, `ask` and `plan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.cli.audio_player import AudioPlayer
from agent.core.errors import ConfigError, ModalgraphError, ToolInputError, one_line
from memory.sessions import check_session_name

if TYPE_CHECKING:
    from agent.cli.audio_player import AudioPlayer
    from agent.context import AppContext
    from agent.spoken_requests import SpokenRequest
    from agent.turns import TurnRunner
    from memory.artifacts import Artifact

SESSION_HELP = "Conversation name; its history is kept on disk and picked up next time."
ASK_SESSION_HELP = "Continue this named conversation (by default each ask starts a new one)."
CONTINUE_HELP = "Continue the most recent conversation."
SPEAK_HELP = "Read every answer aloud: prints the audio file's path, and plays it when a player exists."


def register(app: typer.Typer) -> None:
    app.command()(chat)
    app.command()(ask)
    app.command()(plan)


def _app() -> AppContext:
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings

    settings = load_settings()
    settings.ensure_data_dir()
    return AppContext(settings)


def user_attachment(raw: str) -> Artifact:
    """A file the user attached: trusted, but it must exist and be a readable file."""
    from memory.artifacts import Artifact, guess_mime  # deferred: imports pydantic

    path = Path(raw).expanduser()
    if path.is_dir():
        raise ToolInputError(f"attachment {raw} is a folder; attach image or audio files one by one")
    if not path.is_file():
        raise ToolInputError(f"attachment not found: {raw}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ToolInputError(f"cannot read attachment {raw}: {exc.strerror}") from None
    resolved = path.resolve()
    return Artifact(path=str(resolved), mime=guess_mime(resolved))


def show_and_play(console: object, app: AppContext, speech: dict, player: AudioPlayer | None) -> None:
    """Print where the spoken answer is, then play it when a player exists (never an error if not)."""
    from rich.markup import escape

    if "error" in speech:
        console.print(f"[yellow]not read aloud: {escape(speech['error'])}[/]")  # type: ignore[attr-defined]
        return
    console.print(  # type: ignore[attr-defined]
        f"  [blue]{speech['mime']}[/] {escape(speech['path'])}  "
        f"[dim](spoken by {speech['engine']}, voice {escape(speech['voice'])}, {speech['seconds']:.1f} s)[/]",
        soft_wrap=True,  # a path broken across lines cannot be copied
    )
    if player is not None and app.settings.play_audio:
        name = player.play(speech["path"], speech["mime"])
        if name:
            console.print(f"[dim]  playing with {name}[/]")  # type: ignore[attr-defined]


def _finish_interrupted(runner: TurnRunner, session: str, on_event: object, quiet: bool = False) -> None:
    pending = runner.interrupted(session)
    if pending is None:
        return
    if not quiet:
        typer.secho(f"resuming the interrupted turn: {pending!r}", fg="yellow", err=True)
    runner.resume(session, on_event)  # type: ignore[arg-type]


def chat(
    session: str = typer.Option("default", "--session", "-s", help=SESSION_HELP),
    speak: bool = typer.Option(False, "--speak", help=SPEAK_HELP),
) -> None:
    """Talk with the assistant in the terminal. /help lists the commands."""
    from rich.console import Console

    from agent.cli.chat_view import TurnView  # deferred: imports rich
    from agent.turns import TurnRunner, speak_answer  # deferred: imports pydantic-settings

    check_session_name(session)
    console = Console(highlight=False)
    app = _app()
    runner = TurnRunner(app)
    view = TurnView(console)
    console.print(f"[bold]modalgraph[/] session [cyan]{session}[/]  (/help for commands, Ctrl-D to leave)")
    runner.llm  # find (or fetch) the planner before the first prompt, so its errors surface at once  # noqa: B018
    runner.warm_up_in_background(places=True)  # while the user types
    history = runner.history(session)
    if history:
        console.print(
            f"[dim]{sum(1 for h in history if h['role'] == 'user')} earlier turns in this session[/]"
        )
    _finish_interrupted(runner, session, view)
    attachments: list[Artifact] = []
    player = AudioPlayer()
    while True:
        try:
            line = console.input("[bold green]you[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            player.stop()
            console.print()
            return
        if not line:
            continue
        if line.split()[0] == "/speak":
            speak = _speak_command(line, speak, console)
            continue
        spoken = None
        if line.split()[0] == "/voice":
            spoken = _voice_command(app, line, console)
            if spoken is None:
                continue
            line = spoken.text
        elif line.startswith("/"):
            if _chat_command(line, attachments, console):
                player.stop()
                return
            continue
        view.planning()
        try:
            values = runner.run(session, line, attachments, view, spoken=spoken.audio if spoken else None)
        finally:
            view.done_planning()
        attachments = []
        if speak and not app.cancel.is_set():
            try:
                show_and_play(console, app, speak_answer(app, values), player)
            except KeyboardInterrupt:  # Ctrl-C while a long answer is being spoken: keep chatting
                console.print("[yellow]not read aloud (cancelled)[/]")


def _speak_command(line: str, speak: bool, console: object) -> bool:
    """`/speak on|off`: whether answers are read aloud from now on; returns the new setting."""
    arg = line.partition(" ")[2].strip().lower()
    if arg in ("on", "off"):
        speak = arg == "on"
    elif arg:
        console.print("[red]use /speak on or /speak off[/]")  # type: ignore[attr-defined]
        return speak
    console.print(f"[dim]answers are {'read aloud' if speak else 'not read aloud'}[/]")  # type: ignore[attr-defined]
    return speak


def _voice_command(app: AppContext, line: str, console: object) -> SpokenRequest | None:
    """`/voice FILE`: the request spoken in FILE, its transcript shown; None (and the reason shown)
    when there is nothing to run."""
    from agent.cli.spoken import spoken_from_file

    raw = line.partition(" ")[2].strip()
    if not raw:
        console.print("[red]use /voice FILE: a recording of your request[/]")  # type: ignore[attr-defined]
        return None
    try:
        return spoken_from_file(app, Path(user_attachment(raw).path), console)
    except ModalgraphError as exc:
        console.print(f"[red]{one_line(exc)}[/]")  # type: ignore[attr-defined]
    except KeyboardInterrupt:  # Ctrl-C while listening drops this request, not the chat
        console.print("[yellow]not transcribed (cancelled)[/]")  # type: ignore[attr-defined]
    return None


def _chat_command(line: str, attachments: list[Artifact], console: object) -> bool:
    """Handle a /command; True means leave the chat."""

    name, _, rest = line.partition(" ")
    if name in ("/quit", "/exit"):
        return True
    if name == "/attach":
        try:
            attachments.append(user_attachment(rest.strip()))
            added = attachments[-1]
            console.print(f"[dim]attached {added.path} ({added.mime}) for the next message[/]")  # type: ignore[attr-defined]
        except ModalgraphError as exc:
            console.print(f"[red]{one_line(exc)}[/]")  # type: ignore[attr-defined]
        return False
    console.print(  # type: ignore[attr-defined]
        "/attach PATH     attach a file to your next message\n"
        "/voice FILE      speak your request: FILE is a recording of it (transcribed, then run)\n"
        "/speak on|off    read answers aloud (or stop)\n"
        "/quit            leave (the session is kept)"
    )
    return False


def _which_session(runner: TurnRunner, session: str | None, resume: bool, fresh: bool) -> str:
    """The conversation a one-shot command works in: the named one, the latest (`--continue`), or
    else a new one when `fresh` (`ask`); "" for none (`plan` without history)."""
    if session is not None and resume:
        raise ConfigError("give --session NAME or --continue, not both")
    if session is not None:
        return check_session_name(session)
    if resume:
        latest = runner.sessions.last()
        if latest is None:
            raise ConfigError(
                "there is no earlier conversation to continue; leave out --continue to start one"
            )
        return latest
    return runner.sessions.new_name("ask") if fresh else ""


def ask(
    request: str | None = typer.Argument(None, help="What you want, in plain words (or use --audio)."),
    attach: list[str] = typer.Option([], "--attach", "-a", help="A file to attach (repeatable)."),
    audio: str | None = typer.Option(
        None, "--audio", help="Take the request from this recording of it (speech to text) instead."
    ),
    session: str | None = typer.Option(None, "--session", "-s", help=ASK_SESSION_HELP),
    resume: bool = typer.Option(False, "--continue", "-c", help=CONTINUE_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: plan, steps, answer, session."
    ),
    speak: bool = typer.Option(False, "--speak", help=SPEAK_HELP),
) -> None:
    """Run one turn without the chat loop, in a new conversation unless told to continue one.

    The conversation is kept: its name is printed (on stderr) so that `-c` or `--session NAME`
    can carry on from it."""
    from agent.cli.chat_view import TurnView  # deferred: imports rich
    from agent.turns import TurnRunner, speak_answer, turn_json  # deferred: imports pydantic-settings

    if (request is None) == (audio is None):
        raise ConfigError(
            "give the request as text or as --audio FILE, one of the two (see 'modalgraph ask --help')"
        )
    if session is not None:
        check_session_name(session)
    attachments = [user_attachment(a) for a in attach]
    recording = Path(user_attachment(audio).path) if audio is not None else None
    app = _app()
    runner = TurnRunner(app)
    runner.llm  # noqa: B018  (a missing or broken planner is reported before anything else)
    runner.warm_up_in_background()  # the weights load while the graph and the session are opened
    spoken = None
    if recording is not None:
        from rich.console import Console

        from agent.cli.spoken import spoken_from_file

        spoken = spoken_from_file(app, recording, None if as_json else Console(highlight=False))
        request = spoken.text
    session = _which_session(runner, session, resume, fresh=True)
    on_event = (lambda event: None) if as_json else TurnView()
    _finish_interrupted(runner, session, on_event, quiet=as_json)
    values = runner.run(session, str(request), attachments, on_event, spoken=spoken.audio if spoken else None)
    if app.cancel.is_set():
        raise typer.Exit(130)
    speech = speak_answer(app, values) if speak else None
    if not as_json:
        typer.secho(
            f"conversation {session} (continue it with -c, or --session {session})", dim=True, err=True
        )
    if as_json:
        out = {**turn_json(values), "session": session}
        if spoken is not None:
            out["spoken"] = spoken.json()
        if speech is not None:
            out["speech"] = speech  # not played: the caller is a program, and gets the path
        typer.echo(json.dumps(out, ensure_ascii=False))
    elif speech is not None:
        from rich.console import Console

        player = AudioPlayer()
        show_and_play(Console(highlight=False), app, speech, player)
        player.wait()


def plan(
    request: str = typer.Argument(..., help="What you want, in plain words."),
    attach: list[str] = typer.Option([], "--attach", "-a", help="A file to attach (repeatable)."),
    session: str | None = typer.Option(
        None, "--session", "-s", help="Plan as a follow-up in this conversation."
    ),
    resume: bool = typer.Option(
        False, "--continue", "-c", help="Plan as a follow-up in the most recent one."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print only the plan as JSON."),
) -> None:
    """Show the plan the planner makes for a request, without running it (nor saving anything)."""
    from agent.cli.chat_view import TurnView  # deferred: imports rich
    from agent.planning.planner import Planner  # deferred: imports langchain
    from agent.turns import TurnRunner  # deferred: imports pydantic-settings
    from graphs.chat import history_lines  # deferred: imports langgraph

    if session is not None:
        check_session_name(session)
    attachments = [user_attachment(a).path for a in attach]
    app = _app()
    runner = TurnRunner(app)
    chosen = _which_session(runner, session, resume, fresh=False)
    history = history_lines(runner.history(chosen), app.settings.history_turns) if chosen else []
    planner = Planner(runner.llm, app.registry.available(), app.settings.max_steps)
    outcome = planner.make_plan(request, attachments, history)
    if outcome.plan is None:
        raise ModalgraphError(f"no valid plan after {outcome.attempts} attempts: {outcome.error}")
    if as_json:
        typer.echo(json.dumps(outcome.plan.model_dump(), ensure_ascii=False))
        return

    TurnView().on_plan({"plan": outcome.plan.model_dump()})
    if not outcome.plan.steps:
        typer.echo("(no tools needed: a plain chat answer)")
