"""The size and pixel caps of `modalgraph index`, and the reasons given for files over them.

One 3 GB file or one 169-megapixel PNG of 490 KB must not take gigabytes of memory, so each is
skipped before it is read or decoded, with a reason that names the setting that lets it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.core.text import human_bytes

if TYPE_CHECKING:
    from agent.core.settings import Settings

FILE_SETTING = "index_max_file_mb"
PIXEL_SETTING = "index_max_megapixels"


def _env_var(setting: str) -> str:
    from agent.core.settings import ENV_PREFIX  # deferred: imports pydantic-settings

    return f"{ENV_PREFIX}{setting.upper()}"


@dataclass(frozen=True)
class IndexLimits:
    """The two caps in effect for a run (or a query image), and the reasons they give."""

    max_file_mb: float
    max_megapixels: float

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexLimits:
        return cls(settings.index_max_file_mb, settings.index_max_megapixels)

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 10**6)

    def file_reason(self, size: int) -> str:
        return (
            f"too large to index: {human_bytes(size)}, over the {self._file_limit} "
            f"(set {_env_var(FILE_SETTING)} to raise it)"
        )

    def pixel_reason(self, width: int, height: int) -> str:
        return (
            f"too many pixels to decode: {width * height / 10**6:.0f} megapixels ({width}x{height}), over "
            f"the {self._pixel_limit} (set {_env_var(PIXEL_SETTING)} to raise it)"
        )

    def outdated(self, reason: str) -> bool:
        """Whether a recorded skip came from a cap whose value has changed since: that file is looked
        at again. Under the same cap an unchanged file is still over it, and is not read again."""
        if FILE_SETTING in reason:
            return self._file_limit not in reason
        if PIXEL_SETTING in reason:
            return self._pixel_limit not in reason
        return False

    @property
    def _file_limit(self) -> str:
        return f"{FILE_SETTING} limit of {self.max_file_mb:g} MB"

    @property
    def _pixel_limit(self) -> str:
        return f"{PIXEL_SETTING} limit of {self.max_megapixels:g}"
