"""The tool contract: a name, a description the planner reads, pydantic arguments and a typed result."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from memory.artifacts import Artifact

if TYPE_CHECKING:
    from tools.context import RunContext

# A step argument that names an earlier step's output, e.g. "<step-2>".
STEP_REF_PATTERN = r"^<step-(\d+)>$"


class ToolArgs(BaseModel):
    """Base for tool arguments: unknown fields are an error, so typos in plans are caught."""

    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    """What a tool returns: text for the LLM and the user, and files by reference."""

    text: str
    artifacts: list[Artifact] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    # A sentence the final answer must carry verbatim (which voice spoke, that a label is only a
    # guess): facts a small responder LLM might drop or soften are appended by code.
    note: str | None = None


class Tool(ABC):
    """Subclasses set the class attributes below; they are checked when the class is defined.

    `requires` lists importable modules the tool needs: a tool whose modules are missing is not
    offered to the planner. `models` lists the catalogue entries it loads: a tool whose weights are
    missing is still offered, and its step fails with the command that fetches them.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    args_model: ClassVar[type[ToolArgs]]
    requires: ClassVar[tuple[str, ...]] = ()
    models: ClassVar[tuple[str, ...]] = ()
    # Which argument receives an earlier step's artifact when a plan says "<step-N>".
    artifact_inputs: ClassVar[tuple[str, ...]] = ()
    # What the step does, to finish "I could not ..." when a turn's steps all failed.
    action: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "__abstractmethods__", None):
            return
        for attr in ("name", "description", "args_model"):
            if not hasattr(cls, attr):
                raise TypeError(f"tool {cls.__name__} must define `{attr}`")
        if not cls.name.isidentifier():
            raise TypeError(f"tool name {cls.name!r} must be an identifier")
        if not (isinstance(cls.args_model, type) and issubclass(cls.args_model, ToolArgs)):
            raise TypeError(f"tool {cls.name}: args_model must subclass ToolArgs")
        for field in cls.artifact_inputs:
            if field not in cls.args_model.model_fields:
                raise TypeError(f"tool {cls.name}: artifact input {field!r} is not an argument")

    @classmethod
    def missing_requirements(cls) -> list[str]:
        return [mod for mod in cls.requires if importlib.util.find_spec(mod) is None]

    @classmethod
    def args_schema(cls) -> dict[str, Any]:
        return cls.args_model.model_json_schema()

    @abstractmethod
    def run(self, args: ToolArgs, ctx: RunContext) -> ToolResult:
        """Do the work. Raise a ModalgraphError subclass for failures the user can fix."""
