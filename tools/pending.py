"""Shared behaviour of tools whose model code is not in this release yet.

They are real tools to the planner (their names and arguments are public and validated), but their
`run` checks the weights first, so the user learns what to fetch, and then says plainly that the
generator itself is not available, instead of returning a placeholder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from agent.errors import ToolUnavailableError

if TYPE_CHECKING:
    from agent.context import RunContext


def require_models_then_refuse(tool_name: str, models: tuple[str, ...], ctx: RunContext) -> NoReturn:
    for model in models:
        ctx.app.catalogue.resolve(model)  # raises ModelMissingError naming the pull command
    raise ToolUnavailableError(
        f"{tool_name} is not available in this version of modalgraph (models present, runtime missing)"
    )
