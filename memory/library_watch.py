"""Watch mode: keep the image index current while the library's folders change.

`LibraryWatcher.run` watches folders with `watchfiles` (inotify, FSEvents or ReadDirectoryChanges)
and hands every debounced burst of changed paths to `apply`, which runs one
`ImageIndex.index_changes` over all of them: a burst of thousands of new photos is embedded in CLIP
batches, not file by file, and every batch is committed as in any index run, so a watcher killed at
any moment leaves an index the next run continues.

A watched folder that disappears (a drive unplugged) is not read as "every photo deleted": its
records stay, and the folder is watched again, with one incremental pass over it, once it is back.
Tests drive `apply` directly; `run` adds the timing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import ModalgraphError, ToolInputError, one_line
from agent.core.text import shown_path
from memory.image_files import is_image_name

if TYPE_CHECKING:
    from memory.image_index import ImageIndex, IndexReport, ProgressCallback

    IndexJob = Callable[[ProgressCallback | None], IndexReport]

# watchfiles groups a burst of events: it yields once nothing new came for STEP_MS, or after
# DEBOUNCE_MS of continuous events, so that a big copy becomes a few large index runs.
DEBOUNCE_MS = 1_600
STEP_MS = 300
# How often, with nothing happening, the watcher checks that its folders are still there.
TICK_MS = 1_000
# After a failed run (another index run holds the lock, a full disk), wait this long to retry.
RETRY_S = 10.0


def _run_plain(job: IndexJob) -> IndexReport:
    return job(None)


class LibraryWatcher:
    """Keeps the index of `folders` (default: every indexed folder) current.

    `runner` runs one index job, typically showing its progress; `on_report` receives the report of
    each run (the catch-up pass too); `on_message` one-line notes (a folder gone or back, a failure).
    """

    def __init__(
        self,
        index: ImageIndex,
        folders: Sequence[str | Path] | None = None,
        *,
        runner: Callable[[IndexJob], IndexReport] = _run_plain,
        on_report: Callable[[IndexReport], None] = lambda _report: None,
        on_message: Callable[[str], None] = lambda _line: None,
        batch_size: int | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        step_ms: int = STEP_MS,
        tick_ms: int = TICK_MS,
    ) -> None:
        self.index = index
        chosen = folders if folders else index.manifest.roots()
        # Resolved, as the manifest stores paths: events then name paths the index knows.
        self.folders = sorted({str(Path(f).expanduser().resolve()) for f in chosen})
        self.runner = runner
        self.on_report = on_report
        self.on_message = on_message
        self.batch_size = batch_size
        self.debounce_ms, self.step_ms, self.tick_ms = debounce_ms, step_ms, tick_ms
        self.cancel = threading.Event()  # set by `stop`: ends `run`, and a long run at its next batch
        self._pending: set[str] = set()
        self._retry_at = 0.0
        self._last_problem = ""
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- applying changes

    def apply(self, paths: Iterable[str | Path]) -> IndexReport | None:
        """Index these changed paths (with any left over from a failed try); None when there was
        nothing to do, or the run failed and the paths wait for the next try."""
        self._pending.update(str(p) for p in paths if _relevant(str(p)))
        if not self._pending:
            return None
        if time.monotonic() < self._retry_at:
            return None
        batch = sorted(self._pending)

        def job(progress: ProgressCallback | None) -> IndexReport:
            return self.index.index_changes(
                batch, progress=progress, cancel=self.cancel, batch_size=self.batch_size
            )

        report = self._try(job)
        if report is not None:
            self._pending.difference_update(batch)
        return report

    def catch_up(self, folders: Sequence[str] | None = None, *, first: bool = False) -> IndexReport | None:
        """One incremental pass over `folders` (default: all watched), as `modalgraph index` does:
        what changed while nobody watched. Unchanged files cost a stat each, nothing more. The
        `first` pass's error is raised (a missing model, another run busy): nothing was watched yet."""

        def job(progress: ProgressCallback | None) -> IndexReport:
            return self.index.index(
                folders or self.folders, progress=progress, cancel=self.cancel, batch_size=self.batch_size
            )

        if first:
            report = self.runner(job)
            self.on_report(report)
            return report
        if time.monotonic() < self._retry_at:
            return None
        return self._try(job)

    def _try(self, job: IndexJob) -> IndexReport | None:
        try:
            report = self.runner(job)
        except ModalgraphError as exc:
            # Another index run holding the lock, a full disk, a Chroma server gone: the changes
            # are kept and tried again later; the same problem is said once, not every retry.
            problem = one_line(exc)
            if problem != self._last_problem:
                self.on_message(f"{problem} (will retry in {RETRY_S:.0f}s)")
            self._last_problem = problem
            self._retry_at = time.monotonic() + RETRY_S
            return None
        self._last_problem = ""
        self._retry_at = 0.0
        self.on_report(report)
        return report

    # ----------------------------------------------------------------- watching

    def run(self, catch_up: bool = True, fail_fast: bool = True) -> None:
        """Watch until `stop` (or Ctrl-C in the main thread, raised as KeyboardInterrupt). With
        `catch_up`, first one incremental pass over every folder, made once the watch is set up, so
        that nothing changed during the pass is missed. With `fail_fast`, that pass's error is
        raised (the command line's case); else it is said and the pass retried."""
        import watchfiles  # deferred: only watch mode needs it

        if not self.folders:
            raise ToolInputError("no folders indexed yet: run `modalgraph index FOLDER`")
        first = catch_up
        present = {f: self._identity(f) for f in self.folders}
        due = [f for f, ident in present.items() if ident is not None] if catch_up else []
        for folder, ident in present.items():
            if ident is None:
                self.on_message(
                    f"folder missing: {shown_path(folder)} (records kept; watched again once back)"
                )
        while not self.cancel.is_set():
            watched = [f for f, ident in present.items() if ident is not None]
            if not watched:
                self.cancel.wait(self.tick_ms / 1000)
                present, _back = self._recheck(present)
                due += _back
                continue
            try:
                for changes in watchfiles.watch(
                    *watched,
                    watch_filter=None,  # own rules: see `_relevant` and `ImageIndex.index_changes`
                    debounce=self.debounce_ms,
                    step=self.step_ms,
                    rust_timeout=self.tick_ms,
                    yield_on_timeout=True,
                    stop_event=self.cancel,
                    ignore_permission_denied=True,  # an unreadable folder is said by the scan instead
                ):
                    if first and fail_fast:
                        self.catch_up(due, first=True)
                        first, due = False, []
                    elif due and self.catch_up(due) is not None:
                        first, due = False, []
                    self.apply(path for _change, path in changes)
                    present, back = self._recheck(present)
                    if back or set(watched) != {f for f, i in present.items() if i is not None}:
                        due += back
                        break  # watch the folders that are there now
            except (OSError, RuntimeError) as exc:
                # A folder that vanished as the watch was set up, or a watch limit reached.
                self.on_message(f"cannot watch: {one_line(exc)} (trying again)")
                self.cancel.wait(self.tick_ms / 1000)
                present, back = self._recheck(present)
                due += back

    def _recheck(
        self, present: dict[str, tuple[int, int] | None]
    ) -> tuple[dict[str, tuple[int, int] | None], list[str]]:
        """The folders' identities now, and those that came back (or were mounted over): a drive
        plugged in again is a new folder to the OS watcher, and may have changed meanwhile."""
        now = {f: self._identity(f) for f in present}
        back = []
        for folder, ident in now.items():
            if ident == present[folder]:
                continue
            if ident is None:
                self.on_message(
                    f"folder missing: {shown_path(folder)} (records kept; watched again once back)"
                )
            else:
                self.on_message(f"folder back: {shown_path(folder)}")
                back.append(folder)
        return now, back

    def _identity(self, folder: str) -> tuple[int, int] | None:
        """(device, inode) of a folder; None when it is not there, or is the empty mount point of a
        drive that is not mounted (its records are kept: see `ImageIndex.looks_unmounted`)."""
        try:
            info = os.stat(folder)
        except OSError:
            return None
        if self.index.looks_unmounted(folder):
            return None
        return (info.st_dev, info.st_ino)

    # ----------------------------------------------------------------- in the background

    def start(self, catch_up: bool = True) -> threading.Thread:
        """Run in a daemon thread (the web server's watcher); `stop` ends it."""

        def main() -> None:
            try:
                self.run(catch_up=catch_up, fail_fast=False)
            except Exception as exc:  # the page goes on without a watcher; the user is told why
                self.on_message(f"library watcher stopped: {one_line(exc)}")

        self._thread = threading.Thread(target=main, name="library-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _relevant(path: str) -> bool:
    """Whether a changed path may matter: an image, a folder, or something gone (maybe a folder of
    photos). Other files (sidecars, editors' temporary files) are not worth a scan."""
    return is_image_name(path) or not os.path.isfile(path)
