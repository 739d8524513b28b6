"""What the two VLM backends (transformers in `vlm`, llama.cpp in `vlm_gguf`) share: the answer
type, the default question and how a question and an answer are cleaned."""

from __future__ import annotations

from dataclasses import dataclass

VLM_MODEL = "vlm"
DEFAULT_QUESTION = "Describe this image in one or two sentences."
# Long questions are cut in characters before they are tokenised (tokenising megabytes is slow),
# then in tokens to fit the context next to the image.
MAX_QUESTION_CHARS = 20_000


@dataclass(frozen=True)
class VlmAnswer:
    text: str
    backend: str  # "transformers" or "llama.cpp"
    model: str
    seconds: float
    question: str  # as given to the model, after cleaning and truncation
    truncated: bool = False


def printable(text: str) -> str:
    """Model output without control characters (which could drive the user's terminal)."""
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()


def clean_question(question: str | None, reserved: list[str]) -> str:
    """The question as plain text: no image placeholder or other special token the user typed (an extra
    `<image>` would no longer match the one image's features), whitespace tidied, length capped."""
    text = (question or "").strip() or DEFAULT_QUESTION
    for token in reserved:
        if token:
            text = text.replace(token, " ")
    text = " ".join(text[:MAX_QUESTION_CHARS].split())
    return text or DEFAULT_QUESTION
