"""Speech to text on spoken requests: word error rate and real-time factor per engine, and what
mishearing costs the planner, measured in one run.

    python bench/asr.py [--limit 30] [--planner] [--json]

30 varied requests (plain chat, photo searches, generation, reading aloud, as in the labelled
planner set) are spoken by the offline Piper voice, then transcribed by each engine that can run
here: PocketSphinx always, Whisper (the catalogue's `asr`) whenever its weights are present. For
each engine it prints the word error rate over all requests (word-level edit distance, after
lower-casing and dropping punctuation) and the real-time factor (seconds of work per second of
audio; below 1 is faster than real time; the first request, which loads the model, is left out).
With --planner the default local planner also plans every request as typed and as each engine
heard it, and the tool-node and dependency-edge F1 against the labels are printed side by side.
Runs in a temporary data dir unless MODALGRAPH_DATA_DIR is set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENGINES = ("pocketsphinx", "whisper")


def _steps(*tools: str, chain: bool = False) -> list[dict[str, Any]]:
    """Labelled steps: independent, or each depending on the one before (`chain`)."""
    return [{"tool": t, "depends_on": [i] if chain and i else []} for i, t in enumerate(tools)]


# (request, labelled plan). Numbers are written as words: the engines spell them either way.
REQUESTS: list[tuple[str, list[dict[str, Any]]]] = [
    ("hello there, how are you today?", []),
    ("what is the capital of Italy?", []),
    ("write a short poem about the sea", []),
    ("give me three tips for a good night's sleep", []),
    ("explain how a rainbow forms", []),
    ("thank you, that was very helpful", []),
    ("translate good morning into French", []),
    ("how far away is the moon?", []),
    ("show me my photos of the beach", _steps("search_images")),
    ("find pictures of my dog in the garden", _steps("search_images")),
    ("do I have any photos of mountains covered in snow?", _steps("search_images")),
    ("show me my pictures from Paris last summer", _steps("search_images")),
    ("find photos of birthday cakes in my library", _steps("search_images")),
    ("search my photos for red cars", _steps("search_images")),
    ("draw a castle on a hill at sunset", _steps("generate_image")),
    ("make a picture of a cat wearing a hat", _steps("generate_image")),
    ("create an image of a lighthouse in a storm", _steps("generate_image")),
    ("make a short video of waves on a beach", _steps("generate_video")),
    ("generate a clip of fireworks over a city", _steps("generate_video")),
    ("make the sound of rain on a tin roof", _steps("generate_audio")),
    ("create some calm piano music", _steps("generate_audio")),
    ("read this aloud: the train leaves at seven", _steps("speak")),
    ("say happy birthday Maria out loud", _steps("speak")),
    ("read this slowly: the meeting starts at noon", _steps("speak")),
    ("draw a red balloon and make the sound of wind", _steps("generate_image", "generate_audio")),
    (
        "find my photos of dogs and tell me what breed they are",
        _steps("search_images", "describe_image", chain=True),
    ),
    (
        "draw a dragon and describe the picture you made",
        _steps("generate_image", "describe_image", chain=True),
    ),
    (
        "find my pictures of the lake and read the description aloud",
        _steps("search_images", "describe_image", "speak", chain=True),
    ),
    ("make a video of a rocket launch", _steps("generate_video")),
    ("what is seventeen times three?", []),
]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept inside words: "night's")."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def word_edits(reference: Sequence[str], heard: Sequence[str]) -> int:
    """Word-level Levenshtein distance: substitutions, deletions and insertions."""
    previous = list(range(len(heard) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, heard_word in enumerate(heard, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != heard_word))
            )
        previous = current
    return previous[-1]


def word_error_rate(pairs: Sequence[tuple[str, str]]) -> float:
    """Edits over reference words, summed over all (reference, heard) pairs (as jiwer does)."""
    edits = sum(word_edits(words(ref), words(heard)) for ref, heard in pairs)
    return edits / max(1, sum(len(words(ref)) for ref, _ in pairs))


def speak_all(app: Any, requests: Sequence[str]) -> list[Path]:
    from agent.tts import speak_text

    out = []
    for n, request in enumerate(requests, 1):
        print(f"\rspeaking {n}/{len(requests)}", end="", file=sys.stderr, flush=True)
        out.append(Path(speak_text(app, request, engines=("piper",)).artifact.path))
    print(file=sys.stderr)
    return out


def transcribe_all(engine: str, data_dir: str, recordings: Sequence[Path]) -> dict[str, Any]:
    """One engine's transcripts and timings, or why it cannot run here."""
    from agent.asr import transcribe_file
    from agent.context import AppContext
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings

    app = AppContext(load_settings(data_dir=data_dir, asr_engine=engine))
    texts, works, audio = [], [], []
    try:
        for n, path in enumerate(recordings, 1):
            print(f"\r{engine}: {n}/{len(recordings)}", end="", file=sys.stderr, flush=True)
            started = time.perf_counter()
            transcript = transcribe_file(app, path)
            works.append(time.perf_counter() - started)
            audio.append(transcript.audio_seconds)
            texts.append(transcript.text)
    except ModalgraphError as exc:
        print(file=sys.stderr)
        return {"available": False, "reason": str(exc).splitlines()[0]}
    print(file=sys.stderr)
    warm = list(zip(works[1:], audio[1:], strict=True)) or list(zip(works, audio, strict=True))
    return {
        "available": True,
        "model": transcript.model,
        "texts": texts,
        "rtf": statistics.median(work / max(seconds, 1e-9) for work, seconds in warm),
        "first_call_s": round(works[0], 2),
        "audio_s": round(sum(audio), 1),
    }


def planner_scores(
    data_dir: str, labelled: Sequence[list[dict]], inputs: dict[str, list[str]]
) -> dict[str, str]:
    """Tool-node and edge F1 of the default planner on each list of request texts."""
    from agent.context import AppContext
    from agent.core.settings import load_settings
    from agent.llm.llamacpp import LlamaCppChatModel
    from agent.models.catalogue import Catalogue
    from agent.planning.plan_eval import score_all
    from agent.planning.planner import Planner

    # The user's pulled planner (the data dir here is a scratch one).
    planner_path = Catalogue.load(load_settings()).resolve("planner")
    app = AppContext(load_settings(data_dir=data_dir))
    llm = LlamaCppChatModel(model_path=str(planner_path), max_tokens=256)
    planner = Planner(llm, app.registry.available(), app.settings.max_steps)
    out = {}
    for name, texts in inputs.items():
        pairs = []
        for n, (text, gold) in enumerate(zip(texts, labelled, strict=True), 1):
            print(f"\rplanning ({name}) {n}/{len(texts)}", end="", file=sys.stderr, flush=True)
            outcome = planner.make_plan(text)
            predicted = [s.model_dump() for s in outcome.plan.steps] if outcome.plan else []
            pairs.append((text, predicted, gold))
        print(file=sys.stderr)
        scores = score_all(pairs)
        out[name] = f"tool-node F1 {scores.node.score:.3f}, edge F1 {scores.edge.score:.3f}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=len(REQUESTS), help="use only the first N requests")
    parser.add_argument("--planner", action="store_true", help="also score the planner (needs its GGUF)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    if opts.limit < 1:
        parser.error("--limit must be at least 1")
    data_dir = os.environ.get("MODALGRAPH_DATA_DIR") or tempfile.mkdtemp(prefix="bench-asr-")

    from agent.context import AppContext
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings

    chosen = REQUESTS[: opts.limit]
    typed = [request for request, _ in chosen]
    recordings = speak_all(AppContext(load_settings(data_dir=data_dir)), typed)
    rows = {engine: transcribe_all(engine, data_dir, recordings) for engine in ENGINES}
    for row in rows.values():
        if row["available"]:
            row["wer"] = word_error_rate(list(zip(typed, row["texts"], strict=True)))
    if opts.planner:
        heard = {engine: row["texts"] for engine, row in rows.items() if row["available"]}
        try:
            plans = planner_scores(data_dir, [gold for _, gold in chosen], {"typed": typed, **heard})
        except ModalgraphError as exc:
            print(f"error: --planner: {exc}", file=sys.stderr)
            return 1
    else:
        plans = {}
    if opts.json:
        print(json.dumps({"requests": len(chosen), "engines": rows, "planner": plans}, indent=2))
        return 0
    audio_s = next((row["audio_s"] for row in rows.values() if row["available"]), 0.0)
    print(f"{len(chosen)} requests spoken by Piper ({audio_s:.0f} s of audio)")
    print(f"  {'engine':13s} {'WER':>6s} {'RTF':>7s} {'first call':>10s}  model")
    for engine, row in rows.items():
        if not row["available"]:
            print(f"  {engine:13s} not available here: {row['reason']}")
            continue
        print(
            f"  {engine:13s} {row['wer']:6.3f} {row['rtf']:7.3f} {row['first_call_s']:9.1f}s  {row['model']}"
        )
    for name, summary in plans.items():
        print(f"  planner on {'typed requests' if name == 'typed' else name + ' transcripts'}: {summary}")
    worst = rows["pocketsphinx"]
    if worst["available"]:
        print("  pocketsphinx, first misheard requests:")
        misheard = [(t, h) for t, h in zip(typed, worst["texts"], strict=True) if words(t) != words(h)]
        for said, heard_text in misheard[:5]:
            print(f"    said {said!r}, heard {heard_text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
