"""Running one plan step: resolve `<step-N>` references, validate arguments, call the tool, and turn
every failure into a StepResult the answer can explain."""

from __future__ import annotations

import time
import traceback
from typing import Any

from pydantic import ValidationError

from agent.core.errors import ModalgraphError, ToolInputError, one_line
from agent.planning.plan import STEP_REF, STEP_REF_INLINE, Step
from graphs.state import StepResult
from tools.base import Tool
from tools.context import RunContext


def _reference(step_id: int, results: dict[str, StepResult]) -> StepResult:
    ref = results.get(str(step_id))
    if ref is None or ref.status != "done":
        raise ToolInputError(f"step {step_id} has no result to use")
    return ref


def resolve_args(step: Step, tool: type[Tool], results: dict[str, StepResult]) -> dict[str, Any]:
    """`"<step-N>"` becomes step N's first file for a tool's file inputs, and its text elsewhere."""
    resolved: dict[str, Any] = {}
    for name, value in step.args.items():
        if isinstance(value, str) and (match := STEP_REF.match(value.strip())):
            ref = _reference(int(match.group(1)), results)
            if name in tool.artifact_inputs:
                if not ref.artifacts:
                    raise ToolInputError(f"step {ref.id} ({ref.tool}) produced no file to use as {name}")
                value = ref.artifacts[0].path
            else:
                value = ref.output
        elif isinstance(value, str):
            value = STEP_REF_INLINE.sub(lambda m: _reference(int(m.group(1)), results).output, value)
        resolved[name] = value
    return resolved


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"invalid argument {where}: {err['msg']}" if where else err["msg"]


def run_step(step: Step, tool_cls: type[Tool], results: dict[str, StepResult], ctx: RunContext) -> StepResult:
    started = time.perf_counter()

    def finish(status: str, **fields: Any) -> StepResult:
        return StepResult(
            id=step.id, tool=step.tool, status=status, seconds=time.perf_counter() - started, **fields
        )

    try:
        args = tool_cls.args_model.model_validate(resolve_args(step, tool_cls, results))
        result = tool_cls().run(args, ctx)
    except ValidationError as exc:
        return finish("failed", error=_validation_message(exc))
    except ModalgraphError as exc:
        return finish("failed", error=one_line(exc))
    except Exception as exc:  # a tool bug must not take the conversation down with it
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})" if last else ""
        return finish("failed", error=f"{step.tool} raised {type(exc).__name__}: {one_line(exc)}{where}")
    return finish("done", output=result.text, artifacts=result.artifacts, data=result.data, note=result.note)
