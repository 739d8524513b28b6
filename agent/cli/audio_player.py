"""Playing an audio file on the user's machine, with whatever player is installed (if any).

Playback is a convenience: no player, or a player that fails, is never an error; the terminal
always prints the file's path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# (program, arguments before the path, mime types it plays), in order of preference.
PLAYERS: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("paplay", (), frozenset({"audio/wav", "audio/x-wav"})),
    ("aplay", ("-q",), frozenset({"audio/wav", "audio/x-wav"})),
    ("afplay", (), frozenset({"audio/wav", "audio/x-wav", "audio/mpeg"})),
    (
        "ffplay",
        ("-nodisp", "-autoexit", "-loglevel", "quiet"),
        frozenset({"audio/wav", "audio/x-wav", "audio/mpeg"}),
    ),
)


def player_command(path: str | Path, mime: str) -> list[str] | None:
    """The command that plays `path`, or None when no installed player handles its type."""
    for program, args, mimes in PLAYERS:
        if mime in mimes:
            found = shutil.which(program)
            if found:
                return [found, *args, str(path)]
    return None


class AudioPlayer:
    """Plays one file at a time: starting a new one stops the one still playing."""

    def __init__(self) -> None:
        self._current: subprocess.Popen[bytes] | None = None

    def play(self, path: str | Path, mime: str) -> str | None:
        """Start playing in the background; returns the player's name, or None when nothing can play it."""
        command = player_command(path, mime)
        if command is None:
            return None
        self.stop()
        try:
            self._current = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError:
            return None
        return Path(command[0]).name

    def wait(self) -> None:
        """Block until the file has played; Ctrl-C stops it."""
        if self._current is None:
            return
        try:
            self._current.wait()
        except KeyboardInterrupt:
            self.stop()
            raise

    def stop(self) -> None:
        if self._current is not None and self._current.poll() is None:
            self._current.terminate()
            try:
                self._current.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._current.kill()
        self._current = None
