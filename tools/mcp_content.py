"""A tool's result as MCP content: text as text, small images and sounds inline, other files as links.

It sits beside the tool contract rather than in the MCP server, so that a client of other MCP
servers can share these rules (and the mime types they rely on) when it turns content back into
artifacts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from memory.artifacts import Artifact

if TYPE_CHECKING:
    from mcp_types import ContentBlock

# Inline content travels base64-encoded in one JSON message: past a few MB a client is better
# served by a link it can fetch (or read, on the same machine) when it needs the bytes.
DEFAULT_INLINE_LIMIT = 4 * 2**20
# What MCP clients render inline; other image types (HEIC, TIFF) go as links.
INLINE_IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
INLINE_AUDIO_MIMES = frozenset({"audio/wav", "audio/x-wav", "audio/mpeg", "audio/ogg", "audio/flac"})


def is_inlined(artifact: Artifact, size: int, inline_limit: int = DEFAULT_INLINE_LIMIT) -> bool:
    """Whether this file goes in the result itself rather than as a link."""
    return size <= inline_limit and artifact.mime in INLINE_IMAGE_MIMES | INLINE_AUDIO_MIMES


def artifact_content(artifact: Artifact, inline_limit: int = DEFAULT_INLINE_LIMIT) -> ContentBlock:
    """One artifact as an image, audio or resource-link block; a file gone since the tool wrote it
    becomes a text block that says so."""
    from mcp_types import AudioContent, ImageContent, ResourceLink, TextContent

    path = Path(artifact.path)
    try:
        size = path.stat().st_size
    except OSError:
        return TextContent(text=f"file no longer readable: {artifact.path}")
    # The sha256 travels in every block's metadata, so a client that copies the file (a laptop
    # using a generator box) can check it arrived whole.
    meta = {"sha256": artifact.sha256} if artifact.sha256 else None
    if is_inlined(artifact, size, inline_limit):
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        if artifact.kind == "image":
            return ImageContent(data=data, mime_type=artifact.mime, meta=meta)
        return AudioContent(data=data, mime_type=artifact.mime, meta=meta)
    return ResourceLink(
        uri=path.resolve().as_uri(), name=path.name, mime_type=artifact.mime, size=size, meta=meta
    )


def result_content(
    text: str, artifacts: Sequence[Artifact], inline_limit: int = DEFAULT_INLINE_LIMIT
) -> list[ContentBlock]:
    """A tool's text first (what an LLM reads), then one block per file, in the tool's order."""
    from mcp_types import TextContent

    blocks: list[ContentBlock] = [TextContent(text=text)] if text else []
    blocks.extend(artifact_content(artifact, inline_limit) for artifact in artifacts)
    return blocks
