"""The composition root: one typed object builds and carries the app's resources (settings, models,
stores, tools) to the code that needs them.

Code below this layer never imports it: model-loading code sees it as `agent.models.host.ModelHost`
and tools as `tools.context.ToolHost`, two Protocols it satisfies."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.settings import Settings
from agent.models.cache import ModelCache
from agent.models.catalogue import Catalogue
from agent.models.devices import resolve_device
from agent.vision.clip_encoder import ClipEncoderSource
from memory.artifacts import ArtifactStore
from memory.image_index import ImageIndex
from memory.library_roots import load_library_roots
from tools.registry import ToolRegistry
from tools.remote.connections import RemoteServers
from tools.remote.remote_tool import build_remote_tools

if TYPE_CHECKING:
    from agent.models.cache import ModelCache
    from agent.models.catalogue import Catalogue
    from memory.artifacts import ArtifactStore
    from memory.image_index import ImageIndex
    from tools.registry import ToolRegistry


@dataclass
class AppContext:
    """Process-wide resources, each built on first use so that start-up stays cheap."""

    settings: Settings
    # Set by a front end when the user cancels a turn (Ctrl-C); tools and the graph check it.
    cancel: threading.Event = field(default_factory=threading.Event)

    @cached_property
    def registry(self) -> ToolRegistry:
        """The built-in, plugin and configured tools, then the MCP servers' tools: a server that is
        down costs its tools and one line on stderr, never the app."""
        registry = ToolRegistry.default(self.settings.extra_tools)
        if self.settings.mcp_servers:
            remote = build_remote_tools(self.remote_servers, registry.available())
            for tool in remote.tools:
                registry.register(tool)
            registry.notes.extend(remote.notes)
            for note in remote.notes:
                print(note, file=sys.stderr)
        return registry

    @cached_property
    def remote_servers(self) -> RemoteServers:
        """Connections to the `mcp_servers`, all opened at once, each within its connect timeout."""
        servers = RemoteServers(self.settings.mcp_servers, self.settings.data_dir / "mcp-logs")
        servers.connect()
        return servers

    def close(self) -> None:
        """Close what holds processes or files open: MCP connections and the image index."""
        if "remote_servers" in self.__dict__:
            self.remote_servers.close()
        if "image_index" in self.__dict__:
            self.image_index.close()

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue.load(self.settings)

    @cached_property
    def model_cache(self) -> ModelCache:
        budget = int(self.settings.memory_budget_gb * 2**30) or None
        return ModelCache(budget)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts_dir)

    @cached_property
    def image_index(self) -> ImageIndex:
        return ImageIndex(self.settings, ClipEncoderSource(self))

    @cached_property
    def device(self) -> str:
        return resolve_device(self.settings.device)

    def library_roots(self) -> list[Path]:
        """Folders the user indexed: tools may read files under them when an LLM names a path."""
        return load_library_roots(self.settings)
