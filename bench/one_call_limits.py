"""Why a one-call chat turn still evaluates the whole plan opening and the whole no-tool step: the
cheaper ways, measured with the default local planner.

    python bench/one_call_limits.py [--only suffix|first-token]

- suffix: 25 factual questions answered through the one-call planner, once per way of closing the
  no-tool step before the answer (the shipped one, and shorter ones that evaluate fewer tokens);
  an answer is right when it holds the expected word ("Paris", "391", "buenas noches"). Also the
  seconds to the first answer token of each, on the same questions.
- first-token: deciding "tool or not" on the reply's first token instead of at the first tool's
  name, which would skip the 13-token plan opening. For every labelled request (planner_eval.jsonl,
  planner_history.jsonl) plus 30 more plain-chat questions, the probability of the first token
  that means "tool", under (a) the planner's prompt told to answer plain chat directly (the token
  is `{`, a plan's start) and (b) a short router prompt listing the tools (the token is `TOOL`).
  A usable decision needs a cut-off with every tool request above it and the chat below.

It needs the planner GGUF (`modalgraph models pull planner`) and takes about 10 minutes on two
cores; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELLED = ROOT / "tests" / "data" / "planner_eval.jsonl"
HISTORY = ROOT / "tests" / "data" / "planner_history.jsonl"
PARTS = ("suffix", "first-token")

FACTS = [
    ("What is the capital of France?", ["paris"]),
    ("translate 'good night' into Spanish", ["buenas noches"]),
    ("who wrote Pride and Prejudice?", ["austen"]),
    ("what's 17 times 23?", ["391"]),
    ("What is 12 times 12?", ["144"]),
    ("how many days are in a leap year?", ["366"]),
    ("what does HTTP stand for?", ["hypertext transfer protocol"]),
    ("who painted the Mona Lisa?", ["vinci"]),
    ("what is the boiling point of water at sea level?", ["100"]),
    ("what's the square root of 144?", ["12"]),
    ("what is the chemical symbol for gold?", ["au"]),
    ("how many legs does a spider have?", ["eight", "8"]),
    ("what is the largest planet in our solar system?", ["jupiter"]),
    ("translate 'thank you' into French", ["merci"]),
    ("what is the capital of Japan?", ["tokyo"]),
    ("who developed the theory of relativity?", ["einstein"]),
    ("what is 2 to the power of 10?", ["1024"]),
    ("what is the freezing point of water in Fahrenheit?", ["32"]),
    ("what language is spoken in Brazil?", ["portuguese"]),
    ("how many continents are there?", ["seven", "7"]),
    ("what gas do plants absorb from the air?", ["carbon dioxide", "co2"]),
    ("what is the longest river in Africa?", ["nile"]),
    ("in which year did World War II end?", ["1945"]),
    ("what is the capital of Australia?", ["canberra"]),
    ("translate 'cat' into German", ["katze"]),
]
# Plain chat beyond the labelled set's ten, for the first-token decision.
MORE_CHAT = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "What is 12 times 12?",
    "how are you today?",
    "explain photosynthesis to a ten year old",
    "what's the difference between a list and a tuple in python?",
    "write a short email declining a meeting",
    "who painted the Mona Lisa?",
    "how many days are in a leap year?",
    "summarise the plot of Hamlet in three sentences",
    "what's a good name for a golden retriever puppy?",
    "convert 100 fahrenheit to celsius",
    "recommend a book about the history of science",
    "what does HTTP stand for?",
    "tell me a joke about programmers",
    "how do I make a cup of green tea?",
    "what is the speed of light?",
    "write a limerick about a cat",
    "why is the sky blue?",
    "can you help me plan a weekend trip to the mountains?",
    "good morning!",
    "what should I cook tonight with rice and eggs?",
    "what's the square root of 144?",
    "describe the water cycle",
    "how do vaccines work?",
    "what's your name?",
    "what can you do?",
    "is a tomato a fruit or a vegetable?",
    "give me a synonym for happy",
    "write a sql query that counts rows in a table called users",
]
# (a): the one-call prompt's three variable parts, reworded so plain chat is answered in words at once.
DIRECT_ANSWER = {
    "{role}": "You are modalgraph, a helpful assistant that runs on the user's own computer. Read the "
    'user\'s request. When it needs tools, reply with a plan as one JSON object: {"steps": [...]}. When '
    "it needs no tool, reply with your answer itself, briefly, in plain text and without any JSON.",
    "{no_tool_line}": "- answer_in_words(): no tool is needed; better, write no plan and simply answer in "
    "plain text (chat, facts, explanations, advice, writing, translation, code, maths).\n",
    "{no_tool_rule}": "no plan: answer directly in plain text.",
}
# (b): a short prompt whose only job is the decision (the tools are listed as the planner lists them).
ROUTER = (
    "You are modalgraph, a helpful assistant that runs on the user's own computer. It has these "
    "tools:\n{tools}\n\nIf answering the user's request needs any of these tools (their photos, an "
    "attached or earlier file, making an image, video, sound or speech, reading aloud, listening to a "
    "recording, or another tool above), reply with the single word TOOL and nothing else. Otherwise "
    "answer the user directly and briefly, in plain text."
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=PARTS)
    opts = parser.parse_args()

    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.planning.planner import Planner

    with tempfile.TemporaryDirectory() as scratch:
        model_path = str(AppContext(load_settings()).catalogue.resolve("planner"))
        settings = load_settings(data_dir=scratch)  # the prompt states of this run stay in scratch
        app = AppContext(settings)
        llm = LlamaCppChatModel(
            model_path=model_path,
            n_threads=settings.n_threads,
            max_tokens=60,
            state_cache_dir=str(Path(scratch) / "states"),
        )
        planner = Planner(llm, app.registry.available(), settings.max_steps)
        print(f"model: {Path(model_path).name}")
        if opts.only in (None, "suffix"):
            suffix_part(llm, planner)
        if opts.only in (None, "first-token"):
            first_token_part(llm, planner)


def suffix_part(llm: Any, planner: Any) -> None:
    from agent.llm.one_call import PlanFork
    from agent.planning.planner import _FORK_PREFIX, _FORK_SUFFIX, NO_TOOL

    suffixes = {
        "shipped": _FORK_SUFFIX,
        "without depends_on": '", "args": {}}]}\n',
        "name only": '"}]}\n',
    }
    llm.warm_up(planner.messages(""))
    print(f"\nfactual questions answered in one call ({len(FACTS)}), by how the no-tool step is closed")
    print(f"  {'closing':20s} {'right':>7s} {'first token s (median)':>24s}  wrong")
    for name, suffix in suffixes.items():
        fork = PlanFork(_FORK_PREFIX, (NO_TOOL, *planner.tools), NO_TOOL, suffix)
        right, firsts, wrong = 0, [], []
        for question, words in FACTS:
            started = time.perf_counter()
            first = None
            pieces = []
            for kind, text in llm.plan_or_answer(planner.messages(question), planner.schema, 512, fork):
                if first is None:
                    first = time.perf_counter() - started
                pieces.append((kind, text))
            answer = "".join(text for _, text in pieces).lower()
            if pieces and pieces[0][0] == "answer" and any(word in answer for word in words):
                right += 1
            else:
                wrong.append(question)
            firsts.append(first or 0.0)
        firsts.sort()
        print(f"  {name:20s} {right:3d}/{len(FACTS)} {firsts[len(firsts) // 2]:24.2f}  {'; '.join(wrong)}")


def _rows() -> list[tuple[bool, str, list[str], list[str]]]:
    """(needs a tool, request, attachments, history lines) for every labelled request and more chat."""
    from agent.planning.plan_eval import load_history_rows, load_labelled
    from graphs.chat import history_lines

    rows = [(bool(r.steps), r.request, list(r.attachments), []) for r in load_labelled(LABELLED)]
    rows += [(bool(r.steps), r.request, [], history_lines(r.history, 2)) for r in load_history_rows(HISTORY)]
    rows += [(False, request, [], []) for request in MORE_CHAT]
    return rows


def first_token_part(llm: Any, planner: Any) -> None:
    import numpy as np
    from langchain_core.messages import HumanMessage, SystemMessage

    from agent.llm.llamacpp import _next_logits
    from agent.planning.planner import _EXAMPLE_ANSWER, load_prompt, request_block, tool_docs

    llama = llm.llama()
    docs = tool_docs(planner.tools)
    direct = load_prompt("planner").replace("{tools}", docs)
    for key, value in DIRECT_ANSWER.items():
        direct = direct.replace(key, value)
    direct = _EXAMPLE_ANSWER.sub(lambda m: m.group(1), direct)  # plain-chat examples: the answer only
    # Every token that begins a plan, and the first token of "TOOL".
    brace = np.array([t for t in range(llama.n_vocab()) if llama.detokenize([t]).startswith(b"{")])
    tool = llama.tokenize(b"TOOL", add_bos=False, special=False)[0]
    rows = _rows()
    print(
        f"\nfirst-token decision: {sum(r[0] for r in rows)} tool requests, {sum(not r[0] for r in rows)} chat"
    )
    for label, system, tokens in (
        ("(a) planner prompt, chat answered directly: P(plan start)", direct, brace),
        ("(b) router prompt: P(TOOL)", ROUTER.replace("{tools}", docs), np.array([tool])),
    ):
        chances: dict[bool, list[float]] = {True: [], False: []}
        for needs_tool, request, attachments, history in rows:
            messages = [SystemMessage(system), HumanMessage(request_block(request, attachments, history))]
            prompt = llm._prompt_tokens(llama, messages)
            llm._restore(llama, prompt)
            logits = _next_logits(llama, prompt).astype(np.float64)
            llm._keep(llama)
            p = np.exp(logits - logits.max())
            chances[needs_tool].append(float(p[tokens].sum() / p.sum()))
        low_tool, high_chat = min(chances[True]), max(chances[False])
        below = sum(c < low_tool for c in chances[False])
        print(f"  {label}")
        print(
            f"    tool requests {low_tool:.4f}-{max(chances[True]):.4f}, chat {min(chances[False]):.4f}-"
            f"{high_chat:.4f}; chat below every tool request: {below}/{len(chances[False])}"
        )


if __name__ == "__main__":
    main()
