"""The one-call fork without weights: how a plan's opening and its choices map to tokens."""

from __future__ import annotations

import pytest

from agent.llm.llamacpp import _fork_tokens
from agent.llm.one_call import PlanFork
from agent.planning.plan import NO_TOOL
from agent.planning.planner import _FORK_PREFIX, _FORK_SUFFIX

FORK = PlanFork(_FORK_PREFIX, (NO_TOOL, "search_images", "speak", "describe_image"), NO_TOOL, _FORK_SUFFIX)


class CharTokenizer:
    """One token per character: every boundary is clean."""

    def tokenize(self, data: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return [ord(c) for c in data.decode("utf-8")]


class MergingTokenizer(CharTokenizer):
    """Merges a quote with the letter after it, as some BPE vocabularies do."""

    def tokenize(self, data: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        text, out, i = data.decode("utf-8"), [], 0
        while i < len(text):
            if text[i] == '"' and i + 1 < len(text) and text[i + 1].isalpha():
                out.append(1000 + ord(text[i + 1]))
                i += 2
            else:
                out.append(ord(text[i]))
                i += 1
        return out


def test_the_fork_is_the_first_token_of_each_choice_after_the_plans_opening() -> None:
    cut = _fork_tokens(CharTokenizer(), FORK)
    assert "".join(map(chr, cut.prefix)) == '{"steps": [{"id": 1, "tool": "'
    assert cut.answer_first == ord("a")
    assert cut.tool_firsts == [ord("d"), ord("s")]  # search_images and speak share their first token
    assert "".join(map(chr, cut.answer)) == NO_TOOL + '", "args": {}, "depends_on": []}]}\n'


def test_a_no_tool_choice_that_begins_like_a_tool_cannot_branch() -> None:
    fork = PlanFork(_FORK_PREFIX, (NO_TOOL, "annotate_image"), NO_TOOL, _FORK_SUFFIX)
    with pytest.raises(NotImplementedError, match="one token cannot tell"):
        _fork_tokens(CharTokenizer(), fork)


def test_a_tokenizer_that_merges_across_the_fork_cannot_branch() -> None:
    with pytest.raises(NotImplementedError, match="merges"):
        _fork_tokens(MergingTokenizer(), FORK)


def test_the_no_tool_choice_must_be_among_the_choices() -> None:
    with pytest.raises(ValueError, match="not among"):
        PlanFork(_FORK_PREFIX, ("search_images",), NO_TOOL, _FORK_SUFFIX)


def test_the_plan_grammar_keeps_the_schemas_property_order() -> None:
    # The model decides in the order it writes: a grammar with sorted keys made it write a step's
    # arguments before choosing its tool, and the plans went wrong.
    from agent.llm.llamacpp import LlamaCppChatModel

    schema = {
        "type": "object",
        "properties": {"tool": {"const": "speak"}, "args": {"type": "object"}},
        "required": ["tool", "args"],
    }
    grammar = LlamaCppChatModel(model_path="unused.gguf")._grammar(schema)
    root = next(line for line in grammar._grammar.splitlines() if line.startswith("root ::="))
    assert root.index("tool") < root.index("args"), root
