"""MCP servers' tools as Tool subclasses built at run time, so the planner, the plan schema and the
step runner treat them as they treat the built-in tools.

Naming: a remote tool is SERVER__TOOL. A server marked `replaces_local` serves its tools under
the local names instead when the local tool exists and the argument schemas are the same (a
generator box serving `generate_image`); with a different schema the remote tool keeps its
prefixed name and the local one stays, with a warning.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agent.core.errors import ToolUnavailableError
from agent.core.mcp_server_spec import TOOL_NAME_SEPARATOR
from tools.base import Tool, ToolArgs, ToolResult
from tools.remote.content import result_from_mcp
from tools.remote.json_args import JsonSchemaArgs, args_model_for

if TYPE_CHECKING:
    import mcp_types as types

    from tools.context import RunContext
    from tools.remote.connections import RemoteServers


class RemoteToolMethods:
    """What every remote tool does; `remote_tool_class` mixes it into a Tool subclass with the
    listed tool's name, description and arguments (it is not a Tool itself, since those are only
    known once the server answers)."""

    name: ClassVar[str]

    servers: ClassVar[RemoteServers]
    server: ClassVar[str]
    remote_name: ClassVar[str]
    input_schema: ClassVar[dict[str, Any]]

    @classmethod
    def args_schema(cls) -> dict[str, Any]:
        return copy.deepcopy(cls.input_schema)

    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        arguments = args.arguments() if isinstance(args, JsonSchemaArgs) else args.model_dump(mode="json")
        result = self.servers.call_tool(
            self.server, self.remote_name, arguments, ctx.progress, lambda: ctx.cancelled
        )
        if result.is_error:
            import mcp_types as types

            text = " ".join(b.text for b in result.content if isinstance(b, types.TextContent))
            raise ToolUnavailableError(
                f"{self.name} failed on MCP server {self.server!r}: {text or 'no reason given'}"
            )
        return result_from_mcp(
            result,
            ctx.app.artifacts,
            lambda uri: self.servers.read_resource(self.server, uri),
            self.name,
        )


def remote_tool_class(
    servers: RemoteServers, server: str, listing: types.Tool, local: type[Tool] | None = None
) -> type[Tool]:
    """A RemoteTool for one listed tool: under the local tool's name, arguments and file inputs
    when `local` is given (it replaces that tool), else as SERVER__TOOL with the server's schema."""
    # MCP allows names such as "get-time"; a plan's tool name must be an identifier.
    plain = re.sub(r"\W", "_", listing.name)
    name = local.name if local is not None else f"{server}{TOOL_NAME_SEPARATOR}{plain}"
    attrs: dict[str, Any] = {
        "name": name,
        "description": listing.description or listing.title or f"{listing.name} on {server}",
        "servers": servers,
        "server": server,
        "remote_name": listing.name,
        "input_schema": dict(listing.input_schema),
        "action": f"run {listing.name} on {server}",
        "__module__": __name__,
    }
    if local is not None:
        attrs.update(args_model=local.args_model, artifact_inputs=local.artifact_inputs, action=local.action)
    else:
        attrs["args_model"] = args_model_for(name, dict(listing.input_schema))
    return type(f"Remote_{name}", (RemoteToolMethods, Tool), attrs)


@dataclass
class RemoteTools:
    """What the servers add to the registry, and the lines to show about them."""

    tools: list[type[Tool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_remote_tools(servers: RemoteServers, local: Mapping[str, type[Tool]]) -> RemoteTools:
    """One RemoteTool per listed tool of every server that answered; a line per server that did
    not, per tool whose schema the JSON-schema checker refuses, and per replacement refused."""
    built = RemoteTools()
    for name, state in servers.states.items():
        if not state.up:
            built.notes.append(
                f"MCP server {name!r} ({state.spec.where()}) is unavailable, its tools are left out: "
                f"{state.problem}"
            )
            continue
        for listing in state.tools:
            replaced = local.get(listing.name) if state.spec.replaces_local else None
            why_not = _why_not_replace(replaced, listing) if replaced is not None else None
            if why_not:
                built.notes.append(
                    f"warning: {name}'s {listing.name} {why_not}; it is offered as "
                    f"{name}{TOOL_NAME_SEPARATOR}{listing.name} and the local tool is kept"
                )
                replaced = None
            try:
                built.tools.append(remote_tool_class(servers, name, listing, replaced))
            except Exception as exc:  # a malformed schema leaves out this tool, not the server
                built.notes.append(f"MCP server {name!r}: tool {listing.name!r} left out: {exc}")
    return built


def _why_not_replace(local: type[Tool], listing: types.Tool) -> str | None:
    if dict(listing.input_schema) != local.args_schema():
        return "takes other arguments than the local one"
    if local.artifact_inputs:
        # Its file arguments would be paths on this machine, which the server cannot read.
        return f"would be sent paths of this machine ({', '.join(local.artifact_inputs)})"
    return None
