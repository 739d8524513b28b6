"""A remote tool's MCP result as a local ToolResult: text as text, and every file it sent (inline,
embedded or linked) copied into the local artifact store and checked by its sha256."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.core.errors import ToolUnavailableError
from memory.artifacts import Artifact, ArtifactStore
from tools.base import ToolResult

if TYPE_CHECKING:
    import mcp_types as types

# Reads a linked resource from the server that sent the link.
ReadResource = Callable[[str], "types.ReadResourceResult"]


def _suffix(mime: str | None) -> str:
    if mime in ("audio/wav", "audio/x-wav"):
        return ".wav"
    return (mimetypes.guess_extension(mime or "") or ".bin") if mime else ".bin"


def _store(store: ArtifactStore, data: bytes, mime: str | None, expected: str | None, what: str) -> Artifact:
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected.lower():
        raise ToolUnavailableError(
            f"{what} arrived damaged: sha256 {digest[:12]}... but the server announced {expected[:12]}...; "
            "try again"
        )
    return store.put_bytes(data, _suffix(mime), mime or "application/octet-stream", source=what)


def _announced_sha256(meta: dict[str, object] | None) -> str | None:
    value = (meta or {}).get("sha256")
    return value if isinstance(value, str) else None


def result_from_mcp(
    result: types.CallToolResult, store: ArtifactStore, read_resource: ReadResource, tool: str
) -> ToolResult:
    """Text blocks joined as the result text; images, audio and resources stored as artifacts."""
    import mcp_types as types

    texts: list[str] = []
    artifacts: list[Artifact] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            texts.append(block.text)
        elif isinstance(block, (types.ImageContent, types.AudioContent)):
            data = base64.b64decode(block.data)
            artifacts.append(_store(store, data, block.mime_type, _announced_sha256(block.meta), tool))
        elif isinstance(block, types.EmbeddedResource):
            contents = block.resource
            if isinstance(contents, types.BlobResourceContents):
                data = base64.b64decode(contents.blob)
                artifacts.append(_store(store, data, contents.mime_type, _announced_sha256(block.meta), tool))
            else:
                texts.append(contents.text)
        elif isinstance(block, types.ResourceLink):
            artifacts.append(_fetch_link(block, store, read_resource, tool))
    if result.structured_content and not texts:
        import json

        texts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return ToolResult(text="\n\n".join(texts) or f"{tool} returned no text", artifacts=artifacts)


def _fetch_link(
    link: types.ResourceLink, store: ArtifactStore, read_resource: ReadResource, tool: str
) -> Artifact:
    """The linked file, read through the server (it may be another machine), then stored."""
    import mcp_types as types

    read = read_resource(str(link.uri))
    for contents in read.contents:
        if isinstance(contents, types.BlobResourceContents):
            data = base64.b64decode(contents.blob)
            return _store(
                store, data, contents.mime_type or link.mime_type, _announced_sha256(link.meta), tool
            )
        data = contents.text.encode()
        return _store(store, data, contents.mime_type or link.mime_type, _announced_sha256(link.meta), tool)
    raise ToolUnavailableError(f"{tool}: the server sent a link to {link.uri} but returned nothing for it")
