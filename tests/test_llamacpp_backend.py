"""The llama.cpp backend with the real planner GGUF: streaming, schema-constrained output, and the
prompt-state cache giving the same answers as a cold evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent.planning.plan import plan_json_schema
from tools.registry import ToolRegistry

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

PROMPT = [SystemMessage("You are a terse assistant."), HumanMessage("Name one primary colour.")]


def test_stream_and_schema_constrained_plan(real_planner: Path) -> None:
    from agent.llm.llamacpp import LlamaCppChatModel

    llm = LlamaCppChatModel(model_path=str(real_planner), max_tokens=16, temperature=0.0)
    streamed = "".join(chunk.content for chunk in llm.stream(PROMPT))
    assert streamed.strip()
    assert streamed == llm.invoke(PROMPT).content
    schema = plan_json_schema(ToolRegistry.default().available(), 4)
    reply = llm.invoke(
        [HumanMessage("make a picture of a boat")], json_schema=schema, temperature=0.0, max_tokens=256
    )
    data = json.loads(reply.content)
    assert isinstance(data["steps"], list) and 1 <= len(data["steps"]) <= 4


def test_saved_prompt_state_gives_the_same_plan_in_a_new_model(real_planner: Path, tmp_path: Path) -> None:
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.planning.planner import Planner

    tools = ToolRegistry.default().available()
    state_dir = str(tmp_path / "state")
    first = LlamaCppChatModel(model_path=str(real_planner), state_cache_dir=state_dir)
    cold = Planner(first, tools, 8).make_plan("show me my photos of boats")
    saved = list((tmp_path / "state").rglob("*.npz"))
    assert saved, "no prompt state was written"

    second = LlamaCppChatModel(model_path=str(real_planner), state_cache_dir=state_dir)
    cache = second.llama().cache
    warm = Planner(second, tools, 8).make_plan("show me my photos of boats")
    assert warm.plan == cold.plan
    assert cache._ram, "the saved state was not loaded"
    # A different request reuses the shared instructions and still plans correctly.
    other = Planner(second, tools, 8).make_plan("draw a red boat")
    assert [s.tool for s in other.plan.steps] == ["generate_image"]
