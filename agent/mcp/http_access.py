"""Who may reach the MCP server over HTTP: loopback unless told otherwise, and then only with the
bearer token from MODALGRAPH_MCP_TOKEN."""

from __future__ import annotations

import hmac

from agent.core.asgi import ASGIApp, Receive, Scope, Send, refuse
from agent.core.errors import ConfigError
from agent.core.hosts import is_loopback

TOKEN_ENV = "MODALGRAPH_MCP_TOKEN"


def check_http_access(host: str, allow_remote: bool, token: str | None) -> str | None:
    """None for a loopback host; the warning to print when a remote one is allowed with a token;
    else a ConfigError. The tools read the photo library and write files, so another machine gets
    them only when the user both asks for it and sets a token."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ConfigError(
            f"refusing to listen on {host}: anyone who reaches it could run the tools and read your "
            "library; keep the default --host 127.0.0.1, or add --allow-remote (with a token in "
            f"{TOKEN_ENV}) if you mean it"
        )
    if not token:
        raise ConfigError(
            f"refusing to listen on {host} without a token: set {TOKEN_ENV} to a long random string "
            "and give clients the header 'Authorization: Bearer <token>'"
        )
    return (
        f"warning: listening on {host}: any machine that can reach it and holds the token can run the tools"
    )


class BearerTokenGuard:
    """ASGI middleware: 401 for any HTTP request whose bearer token is not `token`.

    The comparison takes the same time however much of the token is right, so the token cannot be
    found a character at a time by timing the answers.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            await refuse(send, 401, b"missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = next((value for name, value in scope.get("headers", []) if name == b"authorization"), b"")
        return hmac.compare_digest(given, self.expected)
