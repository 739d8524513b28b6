"""Arguments checked against an MCP server's JSON schema: a ToolArgs model whose validation is the
schema's, so plans and steps validate remote tools exactly as they validate local ones."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from tools.base import ToolArgs


class JsonSchemaArgs(ToolArgs):
    """Holds the arguments as given (extra fields are the arguments); `input_schema` decides."""

    model_config = ConfigDict(extra="allow")
    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    @model_validator(mode="before")
    @classmethod
    def _check_schema(cls, data: Any) -> Any:
        import jsonschema  # deferred: only remote tools need it

        validator_cls = jsonschema.validators.validator_for(cls.input_schema)
        error = jsonschema.exceptions.best_match(validator_cls(cls.input_schema).iter_errors(data))
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path)
            message = f"invalid argument {where}: {error.message}" if where else error.message
            raise PydanticCustomError("remote_schema", "{message}", {"message": message})
        return data

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def args_model_for(tool_name: str, input_schema: dict[str, Any]) -> type[JsonSchemaArgs]:
    """A JsonSchemaArgs subclass bound to one tool's schema; a schema that is itself invalid is
    refused here, when the server is listed, rather than at the first call."""
    import jsonschema  # deferred: only remote tools need it

    schema = {"type": "object", **input_schema}
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return type(f"{tool_name}_args", (JsonSchemaArgs,), {"input_schema": schema, "__module__": __name__})
