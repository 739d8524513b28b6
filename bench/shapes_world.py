"""Build the synthetic shapes world: `python bench/shapes_world.py DIR`.

Writes DIR/train/*.png and DIR/heldout/*.png, DIR/captions.jsonl (one {"path", "caption", "colour",
"shape", "size", "background", "heldout"} per render), the trained tiny CLIP in DIR/clip and
DIR/world.json with its held-out retrieval metrics. Point MODALGRAPH_MODEL_CLIP at DIR/clip and
every command (index, search, the search_images tool) uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.training.clip_trainer import TinyClipConfig
from agent.training.shapes_world import WorldConfig
from agent.training.world_builder import build_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to build the world in")
    defaults_world, defaults_clip = WorldConfig(), TinyClipConfig()
    parser.add_argument(
        "--per-combo",
        type=int,
        default=defaults_world.train_per_combo,
        help="training renders per colour/shape pair",
    )
    parser.add_argument("--heldout-per-combo", type=int, default=defaults_world.heldout_per_combo)
    parser.add_argument("--steps", type=int, default=defaults_clip.steps, help="training steps")
    parser.add_argument("--seed", type=int, default=defaults_world.seed)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    world = replace(
        defaults_world,
        train_per_combo=args.per_combo,
        heldout_per_combo=args.heldout_per_combo,
        seed=args.seed,
    )
    clip = replace(defaults_clip, steps=args.steps)
    info = build_world(args.out, world, clip, log=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps({k: info[k] for k in sorted(info) if not isinstance(info[k], dict)}, indent=2))
    print(f"export MODALGRAPH_MODEL_CLIP={(args.out / 'clip').resolve()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
