"""What the place names cost a process: folded in memory (the baseline, as every process did before
the table was saved), folded and written to the cache folder (once per package version), and the
saved table opened (every later process). Each runs in a fresh process: seconds to have the names
ready and the process's peak memory, as ratios to the baseline. Medians of --runs.

    python bench/place_table.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# In the child: the names made ready as chat and serve make them ready, then one lookup of each kind.
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
from memory import place_names
place_names.load_place_names()
ready = time.perf_counter() - started
assert place_names.place_keys("Lisboa") == ("lisboa", "lisbon") and place_names.is_place("Bavaria")
print(json.dumps({"seconds": ready, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "table": type(place_names._table()).__name__}))
"""


def _probe(cache_dir: Path) -> dict[str, float | str]:
    env = {**os.environ, "MODALGRAPH_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    rows: dict[str, list[dict[str, float | str]]] = {"folded in memory": [], "built": [], "opened": []}
    with tempfile.TemporaryDirectory() as scratch:
        blocker = Path(scratch) / "a-file"
        blocker.write_text("")
        for run in range(opts.runs):
            cache = Path(scratch) / f"cache-{run}"
            rows["folded in memory"].append(_probe(blocker / "cache"))  # a folder that cannot exist
            rows["built"].append(_probe(cache))
            rows["opened"].append(_probe(cache))
    base = {
        key: statistics.median(float(r[key]) for r in rows["folded in memory"])
        for key in ("seconds", "peak_mb")
    }
    print(f"place names made ready in a new process, medians of {opts.runs}")
    print(f"  {'':18s} {'seconds':>8s} {'ratio':>7s} {'peak MB':>8s} {'ratio':>7s}  table")
    for name, runs in rows.items():
        seconds = statistics.median(float(r["seconds"]) for r in runs)
        peak = statistics.median(float(r["peak_mb"]) for r in runs)
        print(
            f"  {name:18s} {seconds:8.2f} {seconds / base['seconds']:6.2f}x {peak:8.0f} "
            f"{peak / base['peak_mb']:6.2f}x  {runs[0]['table']}"
        )


if __name__ == "__main__":
    main()
