"""Which of the registry's tools a server offers: all that are available, or the ones named."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.core.errors import ConfigError

if TYPE_CHECKING:
    from tools.base import Tool


def select_tools(available: dict[str, type[Tool]], wanted: Iterable[str] | None) -> dict[str, type[Tool]]:
    """All available tools, or the named ones; an unknown or unavailable name is a ConfigError."""
    if wanted is None:
        return dict(available)
    names = [name.strip() for name in wanted if name.strip()]
    if not names:
        raise ConfigError("--tools names no tool; give a comma-separated list such as search_images,speak")
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(
            f"unknown or unavailable tool(s): {', '.join(unknown)}; available: {', '.join(sorted(available))}"
        )
    return {name: available[name] for name in names}
