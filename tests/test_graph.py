"""The chat graph with a scripted LLM: plans, references, parallel steps, failures and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.turns import TurnRunner, turn_json
from tests import fake_tools
from tools.registry import ToolRegistry


def plan(*steps: dict[str, Any]) -> str:
    return json.dumps({"steps": list(steps)})


def step(i: int, tool: str, deps: list[int] | None = None, **args: Any) -> dict[str, Any]:
    return {"id": i, "tool": tool, "args": args, "depends_on": deps or []}


@pytest.fixture
def app() -> AppContext:
    app = AppContext(load_settings(max_steps=4))
    app.__dict__["registry"] = ToolRegistry(fake_tools.ALL)
    fake_tools.CALLS.clear()
    return app


def run_turn(app: AppContext, replies: list[Any], request: str = "do it", session: str = "t") -> tuple:
    llm = ScriptedChatModel(replies=replies)
    events: list[dict[str, Any]] = []
    values = TurnRunner(app, llm).run(session, request, [], events.append)
    return values, events, llm


def test_plain_chat_is_a_plan_without_steps(app: AppContext) -> None:
    values, events, _ = run_turn(app, [plan(), "Hello there, friend."])
    out = turn_json(values)
    assert out["plan"] == {"steps": []}
    assert out["steps"] == []
    assert out["answer"]["text"] == "Hello there, friend."
    assert "".join(e["text"] for e in events if e["type"] == "token").strip() == "Hello there, friend."


def test_a_two_call_backend_plans_then_answers_with_the_no_tool_choice_offered(app: AppContext) -> None:
    values, _, llm = run_turn(app, [plan(), "Hello there, friend."])
    assert turn_json(values)["answer"]["text"] == "Hello there, friend."
    assert len(llm.prompts) == 2  # the plan call, then the responder
    assert "answer_in_words" in llm.prompts[0][0].content
    assert llm.call_kwargs[0].get("json_schema") is not None


def test_a_one_call_backend_answers_plain_chat_from_the_planning_call(app: AppContext) -> None:
    llm = ScriptedChatModel(replies=["Paris is the capital of France."], one_call=True)
    events: list[dict[str, Any]] = []
    values = TurnRunner(app, llm).run("t", "What is the capital of France?", [], events.append)
    out = turn_json(values)
    assert out["plan"] == {"steps": []} and out["answer"]["text"] == "Paris is the capital of France."
    assert len(llm.prompts) == 1  # no second, responder call
    system = llm.prompts[0][0].content
    assert "then your answer to the user" in system  # the one-call instructions
    kinds = [e["type"] for e in events]
    assert kinds.index("plan") < kinds.index("token")  # the front ends learn "no tool" first
    assert "".join(e["text"] for e in events if e["type"] == "token") == "Paris is the capital of France."
    # The next turn starts clean: the answer is not carried into a tool turn.
    llm.replies += [plan(step(1, "echo", text="hi")), "Echoed."]
    values = TurnRunner(app, llm).run("t", "echo hi", [], events.append)
    assert turn_json(values)["answer"]["text"] == "Echoed." and len(llm.prompts) == 3


def test_a_one_call_backend_still_plans_and_responds_for_tools(app: AppContext) -> None:
    llm = ScriptedChatModel(replies=[plan(step(1, "echo", text="hi")), "Done."], one_call=True)
    values = TurnRunner(app, llm).run("t", "do it", [], lambda event: None)
    out = turn_json(values)
    assert out["steps"][0]["status"] == "done" and out["answer"]["text"] == "Done."
    assert len(llm.prompts) == 2


class _NoTemplateModel(ScriptedChatModel):
    """Claims one call but cannot format a prompt for it, as a GGUF without a chat template."""

    @property
    def supports_one_call(self) -> bool:
        return True

    def plan_or_answer(self, messages: Any, schema: Any, plan_max_tokens: int, fork: Any = None) -> Any:
        raise NotImplementedError("no chat template")
        yield  # a generator, like the real one: the error comes on the first read


def test_a_backend_that_cannot_branch_falls_back_to_two_calls(app: AppContext) -> None:
    llm = _NoTemplateModel(replies=[plan(), "Hello."])
    values = TurnRunner(app, llm).run("t", "hi", [], lambda event: None)
    assert turn_json(values)["answer"]["text"] == "Hello."
    assert len(llm.prompts) == 2 and "answer_in_words" in llm.prompts[0][0].content


def test_when_every_step_fails_the_answer_says_what_and_how_to_fix_it(app: AppContext) -> None:
    # One scripted reply only: a responder call would find the script empty and fail the turn.
    values, _, llm = run_turn(
        app, [plan(step(1, "boom", kind="missing"), step(2, "echo", [1], text="<step-1>"))]
    )
    answer = turn_json(values)["answer"]["text"]
    assert answer == "I could not look at it: model 'vlm' is not present; run `modalgraph models pull vlm`."
    assert len(llm.prompts) == 1


def test_single_step_result_reaches_the_responder(app: AppContext) -> None:
    values, _, llm = run_turn(app, [plan(step(1, "echo", text="hi")), "Done."])
    out = turn_json(values)
    assert out["steps"][0] | {"artifacts": []} == {
        "id": 1,
        "tool": "echo",
        "status": "done",
        "output": "echo: hi",
        "error": None,
        "artifacts": [],
    }
    responder_prompt = llm.prompts[1][-1].content
    assert "echo: hi" in responder_prompt


def test_step_reference_passes_an_artifact_path_and_text(app: AppContext) -> None:
    replies = [
        plan(
            step(1, "make_file", content="purple"),
            step(2, "read_file", path="<step-1>"),
            step(3, "echo", text="then <step-2>!"),
        ),
        "ok",
    ]
    values, _, _ = run_turn(app, replies)
    out = turn_json(values)
    assert [s["status"] for s in out["steps"]] == ["done", "done", "done"]
    assert out["steps"][1]["output"] == "the file says purple"
    assert out["steps"][2]["output"] == "echo: then the file says purple!"
    # references imply dependencies even when the LLM leaves depends_on empty
    assert out["plan"]["steps"][2]["depends_on"] == [2]
    assert out["answer"]["artifacts"][0]["path"] == out["steps"][0]["artifacts"][0]["path"]
    assert out["answer"]["artifacts"][0]["mime"] == "text/plain"


def test_independent_steps_run_side_by_side(app: AppContext) -> None:
    replies = [plan(step(1, "echo", text="a", delay=0.6), step(2, "echo", text="b", delay=0.6)), "ok"]
    run_turn(app, replies)
    (_, _, s1, e1), (_, _, s2, e2) = fake_tools.CALLS
    assert s1 < e2 and s2 < e1, "the two sleeps did not overlap"


def test_dependent_step_waits_for_its_dependency(app: AppContext) -> None:
    replies = [plan(step(1, "echo", text="a", delay=0.3), step(2, "echo", [1], text="b <step-1>")), "ok"]
    run_turn(app, replies)
    first, second = fake_tools.CALLS
    assert first[1]["text"] == "a" and second[2] >= first[3]


def test_invalid_json_then_valid_plan_is_retried_with_the_error(app: AppContext) -> None:
    values, _, llm = run_turn(app, ["{not json", plan(step(1, "echo", text="x")), "ok"])
    assert turn_json(values)["steps"][0]["status"] == "done"
    retry_prompt = llm.prompts[1][-1].content
    assert "invalid" in retry_prompt and "JSON" in retry_prompt


def test_unknown_tool_twice_is_reported_not_raised(app: AppContext) -> None:
    bad = plan(step(1, "teleport", where="moon"))
    values, _, llm = run_turn(app, [bad, bad])
    out = turn_json(values)
    assert out["steps"] == []
    assert "unknown tool 'teleport'" in out["plan_error"]
    assert "valid plan" in out["answer"]["text"]
    assert len(llm.prompts) == 2  # two planner calls, no responder call


def test_failing_tool_skips_dependents_and_answer_names_the_fix(app: AppContext) -> None:
    replies = [
        plan(
            step(1, "boom", kind="missing"),
            step(2, "echo", [1], text="<step-1>"),
            step(3, "echo", text="free"),
        ),
        "Partly done.",
    ]
    values, _, _ = run_turn(app, replies)
    out = turn_json(values)
    assert [s["status"] for s in out["steps"]] == ["failed", "skipped", "done"]
    assert "modalgraph models pull vlm" in out["steps"][0]["error"]
    assert "modalgraph models pull vlm" in out["answer"]["text"]
    assert "Step 2 (echo) was skipped" in out["answer"]["text"]


def test_a_tool_bug_becomes_a_failed_step(app: AppContext) -> None:
    values, _, _ = run_turn(app, [plan(step(1, "boom")), "sorry"])
    error = turn_json(values)["steps"][0]["error"]
    assert "RuntimeError" in error and "kaboom" in error


def test_bad_arguments_fail_the_plan_validation(app: AppContext) -> None:
    values, _, _ = run_turn(
        app, [plan(step(1, "make_file", content="")), plan(step(1, "make_file", content="a")), "ok"]
    )
    assert turn_json(values)["steps"][0]["status"] == "done"


def test_step_limit(app: AppContext) -> None:
    too_many = plan(*(step(i, "echo", text=str(i)) for i in range(1, 6)))
    values, _, _ = run_turn(app, [too_many, too_many])
    assert "at most 4" in turn_json(values)["plan_error"]
    assert fake_tools.CALLS == []


def test_cycles_and_dangling_references_are_refused(app: AppContext) -> None:
    cyclic = plan(step(1, "echo", [2], text="<step-2>"), step(2, "echo", [1], text="<step-1>"))
    dangling = plan(step(1, "echo", text="<step-7>"))
    values, _, llm = run_turn(app, [cyclic, dangling])
    assert "cycle" in llm.prompts[1][-1].content
    assert "step 7" in turn_json(values)["plan_error"]


def test_history_is_kept_across_turns_and_shown_to_the_planner(app: AppContext) -> None:
    llm = ScriptedChatModel(replies=[plan(), "first answer", plan(), "second answer"])
    runner = TurnRunner(app, llm)
    runner.run("s", "my name is Ada", [], lambda e: None)
    runner.run("s", "what is my name?", [], lambda e: None)
    assert "my name is Ada" in llm.prompts[2][-1].content
    history = runner.history("s")
    assert [h["text"] for h in history] == [
        "my name is Ada",
        "first answer",
        "what is my name?",
        "second answer",
    ]


def test_cancel_stops_new_steps_and_leaves_a_clean_session(app: AppContext) -> None:
    replies = [plan(step(1, "echo", text="x", delay=30), step(2, "echo", [1], text="<step-1>")), plan(), "a2"]
    runner = TurnRunner(app, ScriptedChatModel(replies=replies))
    seen: list[str] = []

    def interrupt(event: dict[str, Any]) -> None:
        seen.append(event["type"])
        if event["type"] == "step_start":
            raise KeyboardInterrupt  # what Ctrl-C raises in the front end's thread

    values = runner.run("c", "first", [], interrupt)
    out = turn_json(values)
    assert "cancelling" in seen
    assert out["answer"]["text"] == "(cancelled by the user)"
    assert [s["status"] for s in out["steps"]] == ["done", "skipped"]
    assert fake_tools.CALLS[0][3] - fake_tools.CALLS[0][2] < 5, "the running tool did not stop early"
    assert runner.interrupted("c") is None
    values = runner.run("c", "second", [], lambda e: None)
    assert values["answer"]["text"] == "a2"
    assert [h["text"] for h in runner.history("c")][:2] == ["first", "(cancelled by the user)"]


def test_backend_failure_in_the_worker_reaches_the_caller(app: AppContext) -> None:
    from agent.core.errors import BackendError

    with pytest.raises(BackendError, match="server down"):
        run_turn(app, [{"raise": "server down"}])


def test_tool_notes_are_carried_into_the_answer(app: AppContext) -> None:
    from tools.base import ToolArgs, ToolResult

    class NotedTool(fake_tools.EchoTool):
        name = "noted"

        def run(self, args: ToolArgs, ctx: Any) -> ToolResult:
            return ToolResult(text="spoke", note="(Spoken by piper, voice joe.)")

    app.registry.register(NotedTool)
    values, _, _ = run_turn(app, [plan(step(1, "noted", text="hi")), "Here is your audio."])
    assert turn_json(values)["answer"]["text"] == "Here is your audio.\n\n(Spoken by piper, voice joe.)"
