"""The tool registry: built-in tools listed as data, plus plugins and tools named in settings.

Tool modules are imported when the registry is built, so they must import nothing heavy at module
level; models load inside `run`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from agent.core.errors import ConfigError
from tools.base import Tool

# Public names: users see them in plans.
BUILTIN_TOOLS: dict[str, str] = {
    "search_images": "tools.search_images:SearchImagesTool",
    "describe_image": "tools.describe_image:DescribeImageTool",
    "generate_image": "tools.generate_image:GenerateImageTool",
    "generate_video": "tools.generate_video:GenerateVideoTool",
    "generate_audio": "tools.generate_audio:GenerateAudioTool",
    "speak": "tools.speak:SpeakTool",
    "transcribe": "tools.transcribe:TranscribeTool",
}

ENTRY_POINT_GROUP = "modalgraph.tools"


def load_object(spec: str) -> type[Tool]:
    """Import `module:Class`, with a one-line error naming the spec when it cannot be found."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"tool spec {spec!r} must look like module:Class")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load tool {spec!r}: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, Tool)):
        raise ConfigError(f"{spec!r} is not a Tool subclass")
    return obj


class ToolRegistry:
    """Name -> tool class. `available()` is what the planner is offered."""

    def __init__(self, tools: Iterable[type[Tool]] = ()) -> None:
        self._tools: dict[str, type[Tool]] = {}
        # One line per MCP server or tool left out, for start-up and `modalgraph models list`.
        self.notes: list[str] = []
        for tool in tools:
            self.register(tool)

    def register(self, tool: type[Tool]) -> None:
        self._tools[tool.name] = tool

    def get(self, name: str) -> type[Tool]:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; known: {', '.join(sorted(self._tools))}") from None

    def names(self) -> list[str]:
        return list(self._tools)

    def available(self) -> dict[str, type[Tool]]:
        """Tools whose code and Python dependencies are installed (weights may still be missing)."""
        return {name: tool for name, tool in self._tools.items() if not tool.missing_requirements()}

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    @classmethod
    def default(cls, extra: Iterable[str] = ()) -> ToolRegistry:
        registry = cls(load_object(spec) for spec in BUILTIN_TOOLS.values())
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            registry.register(load_object(ep.value))
        for spec in extra:
            registry.register(load_object(spec))
        return registry
