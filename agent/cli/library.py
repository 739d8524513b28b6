"""`modalgraph index`, `modalgraph search` and `modalgraph library ...`: the image library from the
command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.core.errors import ToolInputError
from agent.core.text import human_bytes, shorten, shown_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from memory.duplicate_moves import MoveReport, UndoReport
    from memory.duplicates import DuplicateReport
    from memory.image_index import (
        ImageIndex,
        IndexProgress,
        IndexReport,
        LibraryStatus,
        ProgressCallback,
        SearchHit,
        SkippedFile,
    )


library_app = typer.Typer(help="Look after the photo library: duplicates.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.add_typer(library_app, name="library")


def _open_index() -> ImageIndex:
    from agent.context import AppContext  # deferred: imports pydantic-settings
    from agent.core.settings import load_settings  # deferred: imports pydantic-settings

    settings = load_settings()
    settings.ensure_data_dir()
    return AppContext(settings).image_index


def index_command(
    folders: list[Path] = typer.Argument(
        None, help="Folders of photos to index (default: re-index every folder indexed before)."
    ),
    status: bool = typer.Option(
        False, "--status", help="Show the indexed folders, counts and model; index nothing."
    ),
    forget: Path | None = typer.Option(None, "--forget", help="Remove an indexed folder and its records."),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Images per CLIP forward pass (default: the clip_batch_size setting).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Index, then stay running and keep the index current: new photos become searchable "
        "within seconds, deleted ones leave, moved ones keep their embedding. Ctrl-C stops.",
    ),
) -> None:
    """Index every JPEG, PNG, HEIC/HEIF, AVIF, WebP, GIF, BMP and TIFF under FOLDERS for
    `modalgraph search` (camera RAW files are listed as skipped).

    Re-running embeds only new or changed files and drops deleted ones; an interrupted run resumes.
    """
    from rich.console import Console

    console = Console()
    if sum(bool(x) for x in (status, forget, folders)) > 1:
        raise ToolInputError("give folders to index, or --status, or --forget FOLDER: one at a time")
    if watch and (status or forget is not None):
        raise ToolInputError("--watch indexes folders: it does not go with --status or --forget")
    index = _open_index()
    if watch:
        _watch(console, index, folders or None, batch_size, quiet)
        return
    if status:
        _print_status(console, index.status())
        return
    if forget is not None:
        records = index.forget(forget)
        console.print(f"forgot {shown_path(forget)} ({records} records)", highlight=False)
        return
    report = _run_index(console, index, folders or None, batch_size, quiet)
    _print_report(console, report)


def _run_index(
    console: Console, index: ImageIndex, folders: list[Path] | None, batch_size: int | None, quiet: bool
) -> IndexReport:
    def job(progress: ProgressCallback | None) -> IndexReport:
        return index.index(folders, progress=progress, batch_size=batch_size)

    return _with_progress(console, job, quiet)


def _with_progress(
    console: Console,
    job: Callable[[ProgressCallback | None], IndexReport],
    quiet: bool,
    transient: bool = False,
) -> IndexReport:
    """Run an index job under a progress bar (scanning, loading CLIP, indexing, metadata)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} images/s" if speed else "- images/s", style="progress.data.speed")

    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=transient,
    )
    task_id = progress.add_task("scanning folders", total=None)

    def on_progress(event: IndexProgress) -> None:
        if event.phase == "scanning":
            progress.update(task_id, description="scanning folders", total=None)
        elif event.phase == "metadata":
            progress.update(
                task_id, description="reading dates and places", total=event.total, completed=event.done
            )
        elif event.phase == "loading":
            progress.update(task_id, description="loading CLIP")
        elif event.done == 0:
            # Restart the clock: the rate shown is images per second of indexing, not of loading.
            progress.reset(task_id, description="indexing", total=event.total)
        else:
            progress.update(task_id, description="indexing", total=event.total, completed=event.done)

    with progress:
        report = job(on_progress)
        if report.processed == 0:
            progress.update(task_id, description="nothing new", total=1, completed=1)
    return report


def _watch(
    console: Console, index: ImageIndex, folders: list[Path] | None, batch_size: int | None, quiet: bool
) -> None:
    """`index --watch`: one incremental pass with progress, then every change as it happens, until
    Ctrl-C (exit 130, like any interrupted command). Each batch is committed as it is embedded, so
    an interrupted or killed watcher leaves an index the next run continues."""
    import time

    from memory.library_watch import LibraryWatcher

    # A typo in a folder is one line now, not a folder watched for ever in vain.
    chosen = [str(f) for f in index.check_folders(folders)] if folders else None
    first = [True]

    def runner(job: Callable[[ProgressCallback | None], IndexReport]) -> IndexReport:
        if first[0]:
            return _with_progress(console, job, quiet)
        # A burst's bar is replaced by its one-line summary; only a terminal can take it back.
        return _with_progress(console, job, quiet or not console.is_terminal, transient=True)

    def on_report(report: IndexReport) -> None:
        if first[0]:
            first[0] = False
            _print_report(console, report)
            names = ", ".join(_plain(shown_path(f)) for f in watcher.folders)
            console.print(f"watching {names} (Ctrl-C stops)", highlight=False, soft_wrap=True)
        else:
            _print_change(console, report, time.strftime("%H:%M:%S"))

    def on_message(line: str) -> None:
        console.print(f"[yellow]{_plain(line)}[/]", highlight=False, soft_wrap=True)

    watcher = LibraryWatcher(
        index,
        chosen,
        runner=runner,
        on_report=on_report,
        on_message=on_message,
        batch_size=batch_size,
    )
    try:
        watcher.run(catch_up=True)
    except KeyboardInterrupt:
        watcher.cancel.set()
        console.print("stopped watching; the index is saved", highlight=False)
        raise typer.Exit(130) from None


def _print_change(console: Console, report: IndexReport, when: str) -> None:
    """One line per burst of changes that did something, then its problems."""
    parts = []
    if report.embedded:
        parts.append(f"{report.embedded} new or changed image(s) embedded")
    if report.reused:
        parts.append(f"{report.reused} moved, renamed or duplicate image(s) indexed without embedding")
    if report.removed:
        parts.append(f"{report.removed} removed (deleted or moved away)")
    fresh_skips = len(report.skipped) - report.skipped_unchanged
    if fresh_skips:
        parts.append(f"{fresh_skips} skipped")
    if parts:
        console.print(f"{when} " + ", ".join(parts), highlight=False, soft_wrap=True)
    # A folder gone is said by the watcher itself, once, with when it is watched again.
    _print_problems(console, report, missing=False)
    if fresh_skips:
        _print_skipped(console, report.skipped)


def _print_problems(console: Console, report: IndexReport, missing: bool = True) -> None:
    for folder in report.missing_roots if missing else []:
        shown = _plain(shown_path(folder))
        hint = f"records kept; `modalgraph index --forget {shown}` drops them"
        console.print(f"[yellow]folder missing or empty:[/] {shown} ({hint})", highlight=False)
    for folder, reason in report.unreadable_dirs:
        console.print(
            f"[yellow]cannot read folder:[/] {_plain(shown_path(folder))}: {reason}", highlight=False
        )
    if report.vanished:
        shown = ", ".join(_plain(shown_path(p)) for p in report.vanished[:3])
        more = f" and {len(report.vanished) - 3} more" if len(report.vanished) > 3 else ""
        console.print(
            f"[yellow]{len(report.vanished)} file(s) gone before they could be read:[/] {shown}{more}",
            highlight=False,
            soft_wrap=True,
        )


def _print_report(console: Console, report: IndexReport) -> None:
    new = report.embedded + report.reused
    parts = [f"{new} new or changed image{'s' if new != 1 else ''} indexed"]
    if report.reused:
        parts.append(f"{report.reused} of them duplicates of indexed content (not embedded again)")
    skipped = f"{len(report.skipped)} skipped"
    if report.skipped_unchanged:
        skipped += f" ({report.skipped_unchanged} unchanged since the last run)"
    parts += [f"{report.unchanged} unchanged", f"{report.removed} removed", skipped]
    console.print(", ".join(parts) + f" in {report.seconds:.1f}s", highlight=False, soft_wrap=True)
    if report.metadata_filled:
        console.print(
            f"read the date, place and camera of {report.metadata_filled} photo(s) indexed before "
            "(nothing embedded again)",
            highlight=False,
        )
    if report.embedded:
        console.print(
            f"{report.images_per_second:.1f} images/s with {report.model_id} "
            f"(model loaded in {report.load_seconds:.1f}s)",
            highlight=False,
            soft_wrap=True,
        )
    _print_problems(console, report)
    _print_skipped(console, report.skipped)


def _print_skipped(
    console: Console, skipped: list[SkippedFile], heading: str = "skipped {n} unreadable file(s)"
) -> None:
    """One line per file not indexed: its path (escaped where its name is not UTF-8) and why."""
    if not skipped:
        return
    console.print(f"[yellow]{heading.format(n=len(skipped))}:[/]")
    for item in skipped:
        line = f"  {shown_path(item.path)}: {item.reason}"
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _plain(text: str) -> str:
    """`text` safe inside Rich markup: a folder named `[red]` is printed, not interpreted."""
    from rich.markup import escape

    return escape(text)


def _print_status(console: Console, status: LibraryStatus) -> None:
    import datetime as dt

    from rich.table import Table

    console.print(f"store: {status.store}", highlight=False, soft_wrap=True)
    if status.model_id:
        console.print(f"model: {status.model_id} ({status.vectors} vectors)", highlight=False, soft_wrap=True)
    else:
        console.print(f"model: [red]not available[/] ({status.model_problem})", highlight=False)
    if not status.roots:
        console.print("no folders indexed yet: run `modalgraph index FOLDER`")
    else:
        table = Table()
        for column in ("folder", "files", "unique", "skipped", "last indexed"):
            table.add_column(
                column,
                overflow="fold",
                justify="right" if column in ("files", "unique", "skipped") else "left",
            )
        for root in status.roots:
            when = (
                dt.datetime.fromtimestamp(root.last_indexed).strftime("%Y-%m-%d %H:%M:%S")
                if root.last_indexed
                else "never with this model"
            )
            table.add_row(
                _plain(shown_path(root.root)), str(root.files), str(root.unique), str(root.skipped), when
            )
        console.print(table)
    for other in status.other_collections:
        console.print(
            f"also in the index: {other.count} vectors from {other.model_id} ({other.dim}-d)", highlight=False
        )
    _print_skipped(console, status.skipped, "{n} file(s) not indexed")
    _print_skipped(
        console, status.metadata_problems, "{n} metadata field(s) left empty (the photos are indexed)"
    )


def search_command(
    text: str | None = typer.Argument(None, help='What to look for, e.g. "a dog on a beach".'),
    image: Path | None = typer.Option(
        None, "--image", help="Find photos like this file (with TEXT too: like it, but TEXT)."
    ),
    without: list[str] = typer.Option(
        [], "--not", help="Leave out photos showing this (repeatable), e.g. --not people."
    ),
    after: str | None = typer.Option(
        None, "--after", help="Taken on or after this day: YYYY-MM-DD, YYYY-MM or YYYY."
    ),
    before: str | None = typer.Option(
        None, "--before", help="Taken before this day: YYYY-MM-DD, YYYY-MM or YYYY."
    ),
    place: str | None = typer.Option(None, "--place", help="A city, region or country, e.g. Lisbon."),
    folder: str | None = typer.Option(None, "--folder", help="A folder name the photos are in."),
    camera: str | None = typer.Option(None, "--camera", help="Words of the camera's make or model."),
    orientation: str | None = typer.Option(None, "--orientation", help="landscape, portrait or square."),
    file_type: str | None = typer.Option(None, "--type", help="File type, e.g. jpg or png."),
    k: int = typer.Option(10, "-k", "--top", min=1, max=200, help="How many results."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"results": [{"path", "score", "taken", "place", ...}]} only.'
    ),
) -> None:
    """Search the indexed photos by text, by an example image (--image), or by filters alone
    (newest first), e.g. `modalgraph search --after 2021-01-01 --place paris "red"`."""
    from memory.photo_filters import PhotoFilters  # deferred: keeps --help light

    filters = PhotoFilters.from_words(after, before, place, folder, camera, orientation, file_type)
    if text is None and image is None and filters.empty:
        raise ToolInputError(
            'give search text, e.g. `modalgraph search "a red car"`, --image FILE, or a filter '
            "such as --place or --after"
        )
    index = _open_index()
    outcome = index.search(text=text, image=image, without=without, filters=filters, k=k)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "results": [{"path": h.path, "score": h.score, **h.details()} for h in outcome.hits],
                    "no_match": outcome.no_match,
                    "closest": [{"path": h.path, "score": h.score} for h in outcome.closest],
                }
            )
        )
        return
    if outcome.no_match:
        typer.echo(f"no photos look like {text!r}; closest, not matching:")
        _print_hits(outcome.closest)
        return
    _print_hits(outcome.hits)


def _print_hits(hits: list[SearchHit]) -> None:
    if not hits:
        typer.echo("no matching images")
        return
    for hit in hits:
        dims = f"{hit.width}x{hit.height}" if hit.width and hit.height else "?"
        size = "?" if hit.size is None else human_bytes(hit.size)
        taken = (hit.taken or "")[:10] + ("~" if hit.taken_guess else "")
        place = shorten(hit.place, 24)
        typer.echo(
            f"{hit.score:6.3f}  {size:>8}  {dims:>11}  {taken:<11}  {place:<24}  {shown_path(hit.path)}"
        )
        for other in hit.other_paths:
            typer.echo(f"{'':6}  {'':>8}  {'':>11}  {'':<11}  {'':<24}  = {shown_path(other)}")


@library_app.command("duplicates")
def duplicates_command(
    threshold: int | None = typer.Option(
        None,
        "--threshold",
        min=0,
        max=63,
        help="Most perceptual-hash bits (of 64) two photos may differ in to be near-duplicates "
        "(default 12; lower is stricter, higher finds more and risks more).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"groups": [{"kind", "keep", "others"}]} only.'
    ),
    move_to: Path | None = typer.Option(
        None,
        "--move-to",
        help="Move all but the best of each group (largest, then earliest) into this folder, "
        "outside the library; a journal there lets --undo put them back.",
    ),
    undo: bool = typer.Option(
        False, "--undo", help="With --move-to DIR: put the files moved into DIR back, and index them."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """List duplicate photos: exact copies, and near-duplicates (bursts, resized, re-encoded or
    brightened copies) found by perceptual hash and CLIP together. Nothing is ever deleted."""
    from rich.console import Console

    from memory.duplicate_moves import move_duplicates, undo_moves
    from memory.duplicates import DEFAULT_THRESHOLD, find_duplicates

    if undo and move_to is None:
        raise typer.BadParameter("--undo needs --move-to DIR: the folder the files were moved into")
    if undo and threshold is not None:
        raise typer.BadParameter("--undo puts files back; it takes no --threshold")
    console = Console(stderr=as_json)
    index = _open_index()
    if undo:
        assert move_to is not None
        with _simple_progress(console, quiet or as_json) as bar:
            restored = undo_moves(index, move_to, progress=_index_progress(bar))
        _print_undo(console, restored, as_json)
        return
    with _simple_progress(console, quiet or as_json) as bar:
        task = bar.add_task("reading the index", total=None)

        def on_progress(phase: str, done: int, total: int) -> None:
            label = "hashing photos indexed before" if phase == "hashing" else "comparing"
            bar.update(task, description=label, total=total, completed=done)

        report = find_duplicates(
            index, DEFAULT_THRESHOLD if threshold is None else threshold, progress=on_progress
        )
    moved = move_duplicates(index, report.groups, move_to) if move_to is not None else None
    if as_json:
        data = report.as_dict()
        if moved is not None:
            data["moved"] = [{"from": a, "to": b} for a, b in moved.moved]
            data["move_failed"] = [{"path": p, "reason": r} for p, r in moved.failed]
        typer.echo(json.dumps(data))
        return
    _print_duplicates(console, report)
    if moved is not None:
        _print_moved(console, moved)


def _simple_progress(console: Console, disable: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=disable,
        transient=True,
    )


def _index_progress(bar: Progress) -> Callable[[IndexProgress], None]:
    task = bar.add_task("putting files back", total=None)

    def on_progress(event: IndexProgress) -> None:
        bar.update(
            task, description=f"indexing ({event.phase})", total=event.total or None, completed=event.done
        )

    return on_progress


def _print_duplicates(console: Console, report: DuplicateReport) -> None:
    from agent.core.text import human_bytes

    def line(prefix: str, member: object) -> str:
        from memory.duplicates import DuplicateMember

        assert isinstance(member, DuplicateMember)
        dims = f"{member.width}x{member.height}" if member.width and member.height else "?"
        taken = (member.taken or "")[:10]
        return f"  {prefix} {dims:>11}  {human_bytes(member.size):>8}  {taken:<10}  {shown_path(member.path)}"

    if report.hashes_computed:
        console.print(
            f"computed the perceptual hash of {report.hashes_computed} photo(s) indexed before (stored)",
            highlight=False,
        )
    for n, group in enumerate(report.groups, 1):
        console.print(f"group {n}: {group.kind} ({len(group.members)} files)", highlight=False)
        console.print(line("keep", group.keep), highlight=False, markup=False, soft_wrap=True)
        for other in group.others:
            console.print(line("    ", other), highlight=False, markup=False, soft_wrap=True)
    spare = sum(len(g.others) for g in report.groups)
    console.print(
        f"{len(report.groups)} group(s), {spare} file(s) beside the best copy, among {report.photos} "
        f"distinct photo(s) (threshold {report.threshold} bits, CLIP cosine >= {report.min_cosine})",
        highlight=False,
    )
    _print_skipped(console, [_skipped(p, r) for p, r in report.not_compared], "{n} photo(s) not compared")


def _print_moved(console: Console, moved: MoveReport) -> None:
    console.print(
        f"moved {len(moved.moved)} file(s); journal {shown_path(moved.journal)} "
        "(`--move-to` the same folder with `--undo` puts them back)",
        highlight=False,
        soft_wrap=True,
    )
    _print_skipped(console, [_skipped(p, r) for p, r in moved.failed], "{n} file(s) not moved")


def _print_undo(console: Console, restored: UndoReport, as_json: bool) -> None:
    if as_json:
        data = {
            "restored": [{"from": a, "to": b} for a, b in restored.restored],
            "failed": [{"path": p, "reason": r} for p, r in restored.failed],
            "reindexed": restored.reindexed,
        }
        typer.echo(json.dumps(data))
        return
    console.print(
        f"put back {len(restored.restored)} file(s), {restored.reindexed} indexed again", highlight=False
    )
    _print_skipped(console, [_skipped(p, r) for p, r in restored.failed], "{n} file(s) left in the folder")


def _skipped(path: str, reason: str) -> SkippedFile:
    from memory.image_index import SkippedFile

    return SkippedFile(path, reason)
