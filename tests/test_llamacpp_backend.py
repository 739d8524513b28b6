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


def test_warm_up_saves_the_instructions_and_a_new_model_plans_the_same_from_them(
    real_planner: Path, tmp_path: Path
) -> None:
    """One cold evaluation of the instructions (about 50 s on two cores) serves both checks: the
    warm-up brings them into the context and saves them, and a new model restored from that file
    plans exactly as the model that evaluated them."""
    from agent.llm.llamacpp import LlamaCppChatModel, _held_prefix
    from agent.planning.planner import Planner

    tools = ToolRegistry.default().available()
    state_dir = tmp_path / "state"
    first = LlamaCppChatModel(model_path=str(real_planner), state_cache_dir=str(state_dir))
    planner = Planner(first, tools, 8)
    first.warm_up(planner.messages(""))
    llama = first.llama()
    request = first._prompt_tokens(llama, planner.messages("show me my photos of boats"))
    assert request is not None
    held = _held_prefix(llama, request)
    # All but the request's own words are already evaluated when the first turn comes.
    assert held > 600 and len(request) - held < 20, (held, len(request))
    assert list(state_dir.rglob("*.npz")), "the warm state was not saved for the next process"
    evaluated = planner.make_plan("show me my photos of boats")

    second = LlamaCppChatModel(model_path=str(real_planner), state_cache_dir=str(state_dir))
    second.llama()
    cache = second._states
    restored = Planner(second, tools, 8).make_plan("show me my photos of boats")
    assert restored.plan == evaluated.plan
    assert cache._ram, "the saved state was not loaded"
    # A different request reuses the shared instructions and still plans correctly.
    other = Planner(second, tools, 8).make_plan("draw a red boat")
    assert [s.tool for s in other.plan.steps] == ["generate_image"]


def test_one_call_answers_plain_chat_and_plans_tool_requests(real_planner: Path, shared_llm: object) -> None:
    from agent.planning.planner import Planner

    planner = Planner(shared_llm, ToolRegistry.default().available(), 8)  # type: ignore[arg-type]
    assert planner.one_call and "then your answer to the user" in planner.system
    chat = planner.make_plan("What is the capital of France?", keep_answer=True)
    assert chat.plan is not None and chat.plan.steps == [] and chat.answer is not None
    assert "Paris" in "".join(chat.answer)
    boats = planner.make_plan("show me my photos of boats")
    assert boats.plan is not None and [s.tool for s in boats.plan.steps] == ["search_images"]
    # Planning only: a chat answer is stopped at once, and the model is free for the next call
    # (a generation left open would hold its lock, and this call would never return).
    thanks = planner.make_plan("thanks a lot!")
    assert thanks.plan is not None and thanks.plan.steps == [] and thanks.answer is None
    draw = planner.make_plan("draw a red boat")
    assert draw.plan is not None and [s.tool for s in draw.plan.steps] == ["generate_image"]
