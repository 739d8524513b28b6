"""One entry of the `mcp_servers` setting: an MCP server whose tools the planner may use."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Remote tools are named SERVER__TOOL, so a server's name must not itself hold the separator.
TOOL_NAME_SEPARATOR = "__"


class McpServerSpec(BaseModel):
    """`{name, command = [...]}` starts a stdio server; `{name, url, token?}` reaches a Streamable
    HTTP one. `replaces_local` lets this server's tools take the names of local tools whose argument
    schemas they share (a generator box serving `generate_image`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Prefix of its tools' names.")
    command: list[str] | None = Field(None, min_length=1, description="argv of a stdio server.")
    url: str | None = Field(None, pattern=r"^https?://", description="URL of a Streamable HTTP server.")
    token: str | None = Field(None, description="Bearer token sent to an HTTP server.")
    timeout_s: float = Field(300.0, gt=0, description="Seconds one tool call may take.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to connect and list the tools.")
    replaces_local: bool = Field(False, description="Its tools replace local ones of the same name.")

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if TOOL_NAME_SEPARATOR in self.name:
            raise ValueError(f"server name {self.name!r} must not contain {TOOL_NAME_SEPARATOR!r}")
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server {self.name!r} needs exactly one of command (stdio) or url (HTTP)")
        if self.token and self.command is not None:
            raise ValueError(f"server {self.name!r}: a token applies to an HTTP url, not a command")
        return self

    def where(self) -> str:
        """How the server is reached, for messages (never the token)."""
        return self.url if self.url is not None else " ".join(self.command or [])
