"""Text-to-speech speed per engine, as real-time factors measured in one run.

    python bench/tts.py [--repeats 3] [--chars 600]

For each engine (edge-tts, Piper with the configured voice, espeak-ng) it speaks the same
paragraph --repeats times and prints the real-time factor (seconds of work per second of audio;
below 1 is faster than real time), the first call's extra cost (loading the voice), and the ratio to
espeak-ng measured in the same run. An engine that cannot run here is listed with its reason and
how long it took to give up: for edge-tts offline that is the fall-back delay the chain adds.
Runs in a temporary data dir unless MODALGRAPH_DATA_DIR is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARAGRAPH = (
    "The museum opens at nine in the morning and closes at six in the evening. Tickets cost twelve "
    "dollars for adults and six for children, and the first Sunday of every month is free. The "
    "permanent collection covers three floors: ancient sculpture on the ground floor, European "
    "painting on the first, and modern design at the top, where a small cafe looks over the river. "
    "Guided tours leave from the main hall every hour and last about forty minutes. "
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chars", type=int, default=600, help="length of the text spoken each time")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    if "MODALGRAPH_DATA_DIR" not in os.environ:
        os.environ["MODALGRAPH_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-tts-")

    from agent.context import AppContext
    from agent.core.errors import ModalgraphError
    from agent.core.settings import load_settings
    from agent.tts import ENGINE_ORDER, speak_text

    text = (PARAGRAPH * (opts.chars // len(PARAGRAPH) + 1))[: opts.chars]
    app = AppContext(load_settings())
    rows: dict[str, dict[str, object]] = {}
    for engine in ENGINE_ORDER:
        timings: list[tuple[float, float]] = []
        started = time.perf_counter()
        try:
            for _ in range(opts.repeats + 1):  # the first call loads the voice
                begin = time.perf_counter()
                spoken = speak_text(app, text, engines=(engine,))
                timings.append((time.perf_counter() - begin, spoken.output.seconds))
        except ModalgraphError as exc:
            rows[engine] = {
                "available": False,
                "reason": str(exc),
                "gave_up_after_s": time.perf_counter() - started,
            }
            continue
        warm = timings[1:]
        rtf = statistics.median(work / audio for work, audio in warm)
        rows[engine] = {
            "available": True,
            "engine": spoken.output.engine,
            "voice": spoken.output.voice,
            "audio_s": round(statistics.median(audio for _, audio in warm), 2),
            "rtf": rtf,
            "first_call_s": round(timings[0][0], 3),
            "warm_call_s": round(statistics.median(work for work, _ in warm), 3),
        }
    baseline = rows.get("espeak", {})
    for row in rows.values():
        if row.get("available") and baseline.get("available"):
            row["rtf_vs_espeak"] = float(row["rtf"]) / float(baseline["rtf"])  # type: ignore[arg-type]
    if opts.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{len(text)} characters, median of {opts.repeats} warm calls (first call reported apart)")
    for name, row in rows.items():
        if not row["available"]:
            print(
                f"  {name:7s} not available here, gave up after {row['gave_up_after_s']:.2f}s: {row['reason']}"
            )
            continue
        ratio = f", {row['rtf_vs_espeak']:.1f}x espeak-ng" if "rtf_vs_espeak" in row else ""
        print(
            f"  {name:7s} {row['voice']}: real-time factor {row['rtf']:.4f}{ratio}; "
            f"{row['audio_s']}s of audio in {row['warm_call_s']}s warm, first call {row['first_call_s']}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
