"""Errors a user can act on. The CLI prints each as one line, without a traceback."""

from __future__ import annotations


class ModalgraphError(Exception):
    """Base class: the message is shown to the user as is, so it must name the fix."""

    exit_code = 2


class ConfigError(ModalgraphError):
    """Bad settings: an unknown model, an unwritable data dir, an invalid value."""


class ModelMissingError(ModalgraphError):
    """A model's weights are not present; the message says how to get them."""


class ModelLoadError(ModalgraphError):
    """Weights exist but cannot be loaded (corrupt, truncated, wrong checksum)."""


class BackendError(ModalgraphError):
    """The LLM backend cannot be reached or failed in a way retrying will not fix."""


class ToolInputError(ModalgraphError):
    """A tool was given arguments it cannot use (a missing file, a path outside the library)."""


class ToolUnavailableError(ModalgraphError):
    """A tool cannot run in this installation; the message says what to install or configure."""


class StorageError(ModalgraphError):
    """A write to the data dir failed (full disk, permissions)."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is empty."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__
