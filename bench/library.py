"""Image library measurements, as ratios taken in one run.

    python bench/library.py [--images 256] [--vectors 10000,100000] [--queries 200]
                            [--memory-images 10000] [--memory-model tiny|same] [--model DIR]
                            [--caps-images 50] [--skip throughput,queries,memory,caps]
                            [--only scale] [--scale-count 100000]

    python bench/library.py --skip throughput,queries,memory     # the oversized-file part alone
    python bench/library.py --skip throughput,queries,metadata,nomatch,memory,caps   # filters alone

Prints, and writes to bench/out/library.json:
1. Indexing throughput of `ImageIndex.index` (what `modalgraph index` runs: scan, hash, decode,
   preprocess, embed, write Chroma and the manifest) against the bare batched CLIP forward pass over
   the same images already preprocessed, same model and batch size (goal >= 0.9x); and against a
   naive loop that decodes and embeds one batch after another.
2. Query latency p50/p95 of the Chroma collection at each --vectors size, against an exact numpy
   dot-product search over the same unit vectors; Chroma's recall@10 against the exact top 10
   (goal >= 0.99). Two kinds of vectors: `lowrank`, shaped like real CLIP embeddings, and `random`
   (uniform on the sphere), the worst case for any graph index.
3. Peak memory (max RSS) of `modalgraph index` over --memory-images photos, in a child process, and
   over a tenth as many: memory must stay flat as the library grows.
2b. Filtered search (`filters`): p50/p95 of queries with a date, place, camera or folder filter in the
   Chroma `where` at each --vectors size, against the unfiltered query on the same collection;
   recall@10 against the exact filtered top 10, and how many queries came back short of k (a
   filter applied after the top k would starve); and a filter-only search, newest first.
2c. Metadata cost (`metadata`): `index` of --images photos carrying EXIF dates, GPS and cameras, with
   the metadata read against with it switched off, alternating --rounds rounds (goal <= 1.1x); the
   offline geocoder's one-off data load is reported apart.
2d. Honest "no match" (`nomatch`): on the shapes world, a library missing a third of the colour x
   shape combinations; the share of absent queries answered "no match", and Recall@1 of the rest.
4. Peak memory of `modalgraph index` over --caps-images photos plus one 3 GB file (sparse, so it
   costs no disk) and one 169-megapixel PNG of ~500 KB, against the same photos alone (goal: ratio
   ~1.0, both misfits skipped with a reason); then with each cap raised out of the way in turn: the
   3 GB file is hashed in chunks (goal ~1.0 still) and the PNG is decoded (what its cap saves).

5. Scale (`scale`): --scale-count small photos (32x32 JPEGs with EXIF dates spread over ten years,
   default 100,000) indexed with the tiny CLIP (time reported), against a 1,000-photo library built
   the same way in the same run. On each, in a fresh child process: the library page's first
   screen (`start_listing`, what the page calls when it opens: a page of 24, newest first, with its
   thumbnails made), cold (no thumbnails yet, a new process) and warm (called again); and the start
   check of watch mode on the unchanged library (`LibraryWatcher.catch_up(first=True)`, what
   `modalgraph index --watch` runs before it watches). Printed as ratios to the baseline, with each
   child's peak RSS (VmHWM) against the baseline's: memory must stay flat.

    python bench/library.py --only scale                       # run only with --only
    python bench/library.py --only scale --scale-count 3000    # a quick check of the part

Without --model, the CLIP is a randomly initialised ViT-B/32 built from `CLIPConfig()`: the same
architecture and cost as openai/clip-vit-base-patch32, which cannot be downloaded everywhere.
Photos are real sample photos (scikit-image, scikit-learn, matplotlib) cropped, flipped and
re-toned into distinct 1280x960 JPEGs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def _sample_photos() -> list[Any]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_image

    photos = [Image.fromarray(f()) for f in (data.astronaut, data.chelsea, data.coffee, data.rocket)]
    photos += [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(Image.open(handle).convert("RGB"))
    return photos


def make_photos(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`count` distinct JPEGs: random crops of real photos, resized, mirrored and re-toned."""
    from PIL import Image, ImageEnhance

    rng = random.Random(seed)
    bases = _sample_photos()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        base = rng.choice(bases)
        w, h = base.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = base.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
        path = folder / f"photo-{n:06d}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def make_vit_b32(out: Path) -> Path:
    """A randomly initialised CLIP ViT-B/32 with a processor, saved like a hub checkpoint."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from agent.training.clip_trainer import TinyClipConfig, build_tokenizer
    from agent.training.shapes_world import vocabulary

    if (out / "config.json").is_file():
        return out
    import torch

    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig())
    from transformers import CLIPImageProcessor

    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(),
        tokenizer=build_tokenizer(vocabulary(), TinyClipConfig().max_text_tokens),
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_clip(out: Path) -> Path:
    """The shapes-world CLIP when it is cached, otherwise an untrained one of the same size."""
    from agent.training.clip_trainer import TinyClipConfig, build_model, build_processor
    from agent.training.shapes_world import WorldConfig, vocabulary
    from agent.training.world_builder import cache_key, default_cache_root

    cached = default_cache_root() / f"shapes-world-{cache_key(WorldConfig(), TinyClipConfig())}" / "clip"
    if (cached / "config.json").is_file():
        return cached
    if not (out / "config.json").is_file():
        processor = build_processor(vocabulary(), TinyClipConfig())
        build_model(len(processor.tokenizer), TinyClipConfig()).save_pretrained(out)
        processor.save_pretrained(out)
    return out


def _app(data_dir: Path, model_dir: Path) -> Any:
    from agent.context import AppContext
    from agent.core.settings import load_settings

    return AppContext(load_settings(data_dir=data_dir, device="cpu", models={"clip": str(model_dir)}))


# --------------------------------------------------------------------------- 1. throughput


def bench_throughput(work: Path, model_dir: Path, count: int, rounds: int) -> dict[str, Any]:
    """Bare forward and `index` alternate for `rounds` rounds; medians are compared, so a burst of
    load from elsewhere on the machine does not land on one side only."""
    from memory.image_files import decode_image

    photos = make_photos(work / "photos", count, (1280, 960), seed=1)
    apps = [_app(work / f"data-throughput-{n}", model_dir) for n in range(rounds)]
    encoder = apps[0].image_index.encoder()
    for app in apps[1:]:  # one loaded model for every round: loading is not what is measured
        app.__dict__["model_cache"] = apps[0].model_cache
    batch = apps[0].settings.clip_batch_size

    def decode_prepare(path: Path) -> Any:
        return encoder.prepare(decode_image(path.read_bytes(), encoder.image_side).image)

    prepared = [decode_prepare(p) for p in photos]
    encoder.encode_prepared(prepared[:batch])  # warm-up: first-call allocations
    bare_rates, index_rates, model_seconds = [], [], []
    for app in apps:
        started = time.perf_counter()
        for start in range(0, count, batch):
            encoder.encode_prepared(prepared[start : start + batch])
        bare_rates.append(count / (time.perf_counter() - started))
        report = app.image_index.index([work / "photos"])
        assert report.embedded == count, report
        index_rates.append(count / report.seconds)
        model_seconds.append(report.embed_seconds / report.seconds)
        app.image_index.close()
        print(
            f"round: bare {bare_rates[-1]:.2f}/s, index {index_rates[-1]:.2f}/s", file=sys.stderr, flush=True
        )
    del prepared

    started = time.perf_counter()
    for start in range(0, count, batch):
        encoder.encode_prepared([decode_prepare(p) for p in photos[start : start + batch]])
    naive = count / (time.perf_counter() - started)
    bare, indexed = statistics.median(bare_rates), statistics.median(index_rates)
    return {
        "images": count,
        "batch_size": batch,
        "rounds": rounds,
        "bare_forward_images_per_s": round(bare, 2),
        "index_images_per_s": round(indexed, 2),
        "index_vs_bare_forward": round(indexed / bare, 3),
        "naive_decode_then_embed_images_per_s": round(naive, 2),
        "index_vs_naive": round(indexed / naive, 3),
        "index_share_of_time_in_model": round(statistics.median(model_seconds), 3),
        "all_rounds": {
            "bare": [round(r, 2) for r in bare_rates],
            "index": [round(r, 2) for r in index_rates],
        },
    }


# --------------------------------------------------------------------------- 2. queries


def _unit(vectors: Any) -> Any:
    import numpy as np

    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_vectors(kind: str, rng: Any, n: int, dim: int, basis: Any = None, mean: Any = None) -> Any:
    """`random`: uniform on the sphere, the hardest case for a graph index (no structure at all).
    `lowrank`: like real CLIP embeddings, which share a common direction (two unrelated photos
    have cosine ~0.3) and vary mostly within a few dozen dimensions."""
    if kind == "random":
        return _unit(rng.standard_normal((n, dim)))
    spread = rng.standard_normal((n, basis.shape[0])) @ basis / basis.shape[0] ** 0.5
    return _unit(0.7 * mean + spread + 0.15 * rng.standard_normal((n, dim)) / dim**0.5)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_queries(
    work: Path, sizes: list[int], kinds: list[str], queries: int, dim: int = 512, k: int = 10
) -> list[dict[str, Any]]:
    import numpy as np

    from agent.core.settings import load_settings
    from memory.chroma_store import ChromaStore, EmbeddingModel

    results = []
    for kind in kinds:
        for size in sizes:
            rng = np.random.default_rng(size)
            basis = np.linalg.qr(rng.standard_normal((dim, 64)))[0].T
            mean = _unit(rng.standard_normal((1, dim)))
            data = make_vectors(kind, rng, size, dim, basis, mean)
            probes = make_vectors(kind, rng, queries, dim, basis, mean)
            store = ChromaStore(load_settings(data_dir=work / f"data-query-{kind}-{size}"))
            model = EmbeddingModel(f"bench/{kind}-unit-vectors", dim, f"{size:016d}")
            collection = store.open(model, create=True)
            started = time.perf_counter()
            store.upsert(collection, [str(i) for i in range(size)], data, [{"n": i} for i in range(size)])
            insert_seconds = time.perf_counter() - started

            chroma_ms, exact_ms, recalls = [], [], []
            for probe in probes[:5]:  # warm-up
                store.query(collection, model, probe, k)
            for probe in probes:
                t0 = time.perf_counter()
                found = store.query(collection, model, probe, k)
                t1 = time.perf_counter()
                scores = data @ probe
                top = np.argpartition(-scores, k)[:k]
                top = top[np.argsort(-scores[top])]
                t2 = time.perf_counter()
                chroma_ms.append((t1 - t0) * 1000)
                exact_ms.append((t2 - t1) * 1000)
                recalls.append(len({int(n.id) for n in found} & set(top.tolist())) / k)
            results.append(
                {
                    "vectors": size,
                    "kind": kind,
                    "dim": dim,
                    "queries": queries,
                    "insert_seconds": round(insert_seconds, 1),
                    "chroma_p50_ms": round(statistics.median(chroma_ms), 3),
                    "chroma_p95_ms": round(_percentile(chroma_ms, 0.95), 3),
                    "exact_p50_ms": round(statistics.median(exact_ms), 3),
                    "exact_p95_ms": round(_percentile(exact_ms, 0.95), 3),
                    "chroma_recall_at_10": round(float(np.mean(recalls)), 4),
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


# --------------------------------------------------------------------------- 2b. filtered queries

CITIES = [f"city-{n:02d}" for n in range(50)]


def _photo_metadata(rng: Any, n: int) -> list[dict[str, Any]]:
    """Metadata shaped like a real library's: 10 years of dates, 50 places, 4 cameras, 20 folders."""
    cameras = [["apple", "iphone", "12"], ["canon", "eos", "80d"], ["google", "pixel", "7"], ["sony", "a7"]]
    rows = []
    for i in range(n):
        year, day = 2015 + int(rng.integers(10)), int(rng.integers(1, 29))
        month = int(rng.integers(1, 13))
        rows.append(
            {
                "n": i,
                "taken_day": year * 10000 + month * 100 + day,
                "taken": f"{year}-{month:02d}-{day:02d}T12:00:00",
                "city_key": CITIES[int(rng.integers(len(CITIES)))],
                "camera_words": cameras[int(rng.integers(len(cameras)))],
                "folder_names": ["photos", f"folder-{int(rng.integers(20)):02d}"],
            }
        )
    return rows


def bench_filters(
    work: Path, sizes: list[int], queries: int, dim: int = 512, k: int = 10
) -> list[dict[str, Any]]:
    """Filtered search p50/p95 against the unfiltered search on the same collection, and whether a
    filtered query still returns k of the filter's true top k (no starvation, recall)."""
    import numpy as np

    from agent.core.settings import load_settings
    from memory.chroma_store import ChromaStore, EmbeddingModel
    from memory.photo_filters import PhotoFilters

    filters = {
        "year (1/10)": PhotoFilters(start=date(2019, 1, 1), end=date(2019, 12, 31)),
        "place (1/50)": PhotoFilters(place="city-07"),
        "place+year (1/500)": PhotoFilters(place="city-07", start=date(2019, 1, 1), end=date(2019, 12, 31)),
        "camera+folder (1/80)": PhotoFilters(camera="pixel", folder="folder-03"),
    }
    results = []
    for size in sizes:
        rng = np.random.default_rng(size)
        basis = np.linalg.qr(rng.standard_normal((dim, 64)))[0].T
        mean = _unit(rng.standard_normal((1, dim)))
        data = make_vectors("lowrank", rng, size, dim, basis, mean)
        probes = make_vectors("lowrank", rng, queries, dim, basis, mean)
        metadata = _photo_metadata(rng, size)
        store = ChromaStore(load_settings(data_dir=work / f"data-filters-{size}"))
        model = EmbeddingModel("bench/filtered", dim, f"{size:016d}")
        collection = store.open(model, create=True)
        store.upsert(collection, [str(i) for i in range(size)], data, metadata)
        row: dict[str, Any] = {"vectors": size, "queries": queries}
        unfiltered = _timed_queries(store, collection, model, probes, k, None)
        row["unfiltered_p50_ms"], row["unfiltered_p95_ms"] = unfiltered
        for name, flt in filters.items():
            where = flt.where()
            allowed = np.array([_allowed(m, flt) for m in metadata])
            ms, recalls, short = [], [], 0
            for probe in probes[:3]:
                store.query(collection, model, probe, k, where=where)
            for probe in probes:
                t0 = time.perf_counter()
                found = store.query(collection, model, probe, k, where=where)
                ms.append((time.perf_counter() - t0) * 1000)
                scores = np.where(allowed, data @ probe, -np.inf)
                want = min(k, int(allowed.sum()))
                top = set(np.argsort(-scores)[:want].tolist())
                short += len(found) < want
                recalls.append(len({int(n.id) for n in found} & top) / max(1, want))
            row[name] = {
                "matching": int(allowed.sum()),
                "p50_ms": round(statistics.median(ms), 3),
                "p95_ms": round(_percentile(ms, 0.95), 3),
                "p50_vs_unfiltered": round(statistics.median(ms) / unfiltered[0], 2),
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "queries_short_of_k": short,
            }
        # Filters alone ("photos from city-07"): every match's metadata, sorted newest first.
        t0 = time.perf_counter()
        for _ in range(5):
            records = store.matching(collection, filters["place (1/50)"].where() or {})
            records.sort(key=lambda r: str(r[1].get("taken")), reverse=True)
        row["filter_only_place_ms"] = round((time.perf_counter() - t0) / 5 * 1000, 1)
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def _timed_queries(
    store: Any, collection: Any, model: Any, probes: Any, k: int, where: Any
) -> tuple[float, float]:
    for probe in probes[:3]:
        store.query(collection, model, probe, k, where=where)
    ms = []
    for probe in probes:
        t0 = time.perf_counter()
        store.query(collection, model, probe, k, where=where)
        ms.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(ms), 3), round(_percentile(ms, 0.95), 3)


def _allowed(meta: dict[str, Any], flt: Any) -> bool:
    """The filter's meaning, computed independently of Chroma: the truth recall is measured on."""
    day = meta["taken_day"]
    if flt.start and day < flt.start.year * 10000 + flt.start.month * 100 + flt.start.day:
        return False
    if flt.end and day > flt.end.year * 10000 + flt.end.month * 100 + flt.end.day:
        return False
    if flt.place and meta["city_key"] != flt.place:
        return False
    if flt.camera and flt.camera not in meta["camera_words"]:
        return False
    return not (flt.folder and flt.folder not in meta["folder_names"])


# --------------------------------------------------------------------------- 2c. metadata cost


def bench_metadata(work: Path, model_dir: Path, count: int, rounds: int) -> dict[str, Any]:
    """`index` with photo metadata (EXIF date, GPS -> place, camera) against the same run with the
    metadata reading switched off, alternating rounds and comparing medians. The geocoder's one-off
    data load (once per process) is measured apart: it is paid by the first index run only."""
    from PIL import Image

    import memory.image_index as image_index
    from memory.photo_metadata import add_places, read_photo_metadata
    from tests.exif_photos import CITIES as REAL_CITIES
    from tests.exif_photos import exif_for

    photos = make_photos(work / "meta-photos", count, (1280, 960), seed=2)
    places = list(REAL_CITIES.values())
    for n, path in enumerate(photos):  # rewrite each with an EXIF date, a real city and a camera
        with Image.open(path) as image:
            image.load()
            exif = exif_for(
                taken=f"20{10 + n % 14}:06:01 12:00:00",
                gps=places[n % len(places)],
                camera=("Apple", "iPhone 12"),
            )
            image.save(path, "JPEG", quality=90, exif=exif)
    t0 = time.perf_counter()
    stub = read_photo_metadata(None, (1, 1), photos[0])
    stub.latitude, stub.longitude = places[0]
    add_places([stub])
    geocoder_load = time.perf_counter() - t0

    apps = {
        mode: [_app(work / f"data-meta-{mode}-{n}", model_dir) for n in range(rounds)]
        for mode in ("with", "without")
    }
    encoder = apps["with"][0].image_index.encoder()
    for app in [*apps["with"][1:], *apps["without"]]:
        app.image_index.encoder = lambda encoder=encoder: encoder
    times: dict[str, list[float]] = {"with": [], "without": []}
    real_read = image_index.read_photo_metadata
    real_fill = image_index.ImageIndex._fill_metadata
    for n in range(rounds):
        for mode in ("without", "with"):
            if mode == "without":
                image_index.read_photo_metadata = lambda *a, **kw: None  # type: ignore[assignment]
                image_index.ImageIndex._fill_metadata = lambda *a, **kw: None  # type: ignore[method-assign]
            try:
                t0 = time.perf_counter()
                report = apps[mode][n].image_index.index([work / "meta-photos"])
                times[mode].append(time.perf_counter() - t0)
                assert report.embedded == count, report
            finally:
                image_index.read_photo_metadata = real_read  # type: ignore[assignment]
                image_index.ImageIndex._fill_metadata = real_fill  # type: ignore[method-assign]
    with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
    return {
        "photos": count,
        "rounds": rounds,
        "index_with_metadata_s": round(with_s, 2),
        "index_without_metadata_s": round(without_s, 2),
        "ratio_with_vs_without": round(with_s / without_s, 3),
        "geocoder_first_load_s": round(geocoder_load, 2),
    }


# --------------------------------------------------------------------------- 2d. honest "no match"


def bench_no_match(work: Path, draws: int = 3) -> dict[str, Any]:
    """On the shapes world: a library of the held-out renders without a third of the colour x shape
    combinations (a different third per draw). Queries for absent combinations should say "no match";
    present ones must still find their combination first (Recall@1)."""
    import shutil

    from agent.training.shapes_world import read_captions
    from agent.training.world_builder import default_cache_root, ensure_shapes_world

    world = ensure_shapes_world(default_cache_root(), log=lambda m: print(m, file=sys.stderr))
    held = [r for r in read_captions(world) if r["heldout"]]
    combos = sorted({(str(r["colour"]), str(r["shape"])) for r in held})
    absent_total = absent_no_match = present_total = present_r1 = present_no_match = 0
    for draw in range(draws):
        absent = set(random.Random(draw).sample(combos, len(combos) // 3))
        library = work / f"no-match-{draw}"
        library.mkdir()
        truth = {}
        for r in held:
            if (r["colour"], r["shape"]) not in absent:
                target = library / Path(str(r["path"])).name
                shutil.copy2(world / str(r["path"]), target)
                truth[str(target.resolve())] = (r["colour"], r["shape"])
        app = _app(work / f"data-no-match-{draw}", world / "clip")
        app.image_index.index([library])
        for combo in combos:
            outcome = app.image_index.search(text=f"a {combo[0]} {combo[1]}", k=5)
            if combo in absent:
                absent_total += 1
                absent_no_match += outcome.no_match
            else:
                present_total += 1
                present_no_match += outcome.no_match
                present_r1 += bool(outcome.hits) and truth.get(outcome.hits[0].path) == combo
        app.image_index.close()
    return {
        "draws": draws,
        "absent_queries": absent_total,
        "absent_no_match_rate": round(absent_no_match / absent_total, 3),
        "present_queries": present_total,
        "present_recall_at_1": round(present_r1 / present_total, 3),
        "present_said_no_match": present_no_match,
    }


# --------------------------------------------------------------------------- 3. memory


def _peak_rss_of_index(
    folder: Path, data_dir: Path, model_dir: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, its report) of `python -m agent index FOLDER` in a fresh child."""
    env = {
        **os.environ,
        "MODALGRAPH_DATA_DIR": str(data_dir),
        "MODALGRAPH_MODEL_CLIP": str(model_dir),
        "MODALGRAPH_DEVICE": "cpu",
        "MODALGRAPH_CONFIG": str(data_dir / "no-config.toml"),
        "COLUMNS": "300",  # one report line per skipped file, however long its path
        **(extra_env or {}),
    }
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child forked from this
    # (large) bench process would report the parent's memory. VmHWM belongs to the new image alone.
    code = (
        "import resource, runpy, sys\n"
        "sys.argv = ['modalgraph', 'index', sys.argv[1], '--quiet']\n"
        "def peak_kb():\n"
        "    try:\n"
        "        for line in open('/proc/self/status'):\n"
        "            if line.startswith('VmHWM:'):\n"
        "                return int(line.split()[1])\n"
        "    except OSError:\n"
        "        pass\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    runpy.run_module('agent', run_name='__main__')\n"
        "finally:\n"
        "    print('PEAK_KB', peak_kb(), file=sys.stderr)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"modalgraph index failed: {result.stderr[-2000:]}")
    peak_kb = int(result.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return peak_kb / 1024, seconds, result.stdout


def bench_memory(work: Path, model_dir: Path, count: int) -> dict[str, Any]:
    small = max(1, count // 10)
    photos = make_photos(work / "memory-photos", count, (1024, 768), seed=2)
    few = work / "memory-photos-few"
    few.mkdir(exist_ok=True)
    for path in photos[:small]:
        os.link(path, few / path.name)
    peak_small, seconds_small, _ = _peak_rss_of_index(few, work / "data-memory-few", model_dir)
    peak, seconds, _ = _peak_rss_of_index(work / "memory-photos", work / "data-memory", model_dir)
    weights = sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix == ".safetensors")
    return {
        "model": str(model_dir),
        "model_weights_mb": round(weights / 2**20, 1),
        "images": count,
        "peak_rss_mb": round(peak, 1),
        "seconds": round(seconds, 1),
        f"peak_rss_mb_at_{small}_images": round(peak_small, 1),
        "seconds_small": round(seconds_small, 1),
        "growth_ratio": round(peak / peak_small, 3),
    }


# --------------------------------------------------------------------------- 5. scale

SCALE_BASELINE = 1000
SCALE_PAGE = 24  # the page's "Photos per page" default
SCALE_FOLDER_SIZE = 1000  # photos per subfolder: no directory of 100k entries
SCALE_YEARS = 10


def make_small_photos(folder: Path, count: int, seed: int) -> float:
    """`count` distinct 32x32 JPEGs under `folder` (1,000 to a subfolder), each with an EXIF date
    taken at random in the last ten years, so the newest-first page has to find the newest. A
    random 4x4 colour patch enlarged: distinct content (no two share an embedding) that compresses
    to about a kilobyte. Returns the seconds taken."""
    import numpy as np
    from PIL import Image

    from tests.exif_photos import exif_for

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, size=(count, 4, 4, 3), dtype=np.uint8)
    seconds_back = rng.integers(0, SCALE_YEARS * 365 * 86400, size=count)
    now = time.time()
    for n in range(count):
        sub = folder / f"{n // SCALE_FOLDER_SIZE:04d}"
        if n % SCALE_FOLDER_SIZE == 0:
            sub.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(patches[n]).resize((32, 32), Image.Resampling.BILINEAR)
        taken = time.strftime("%Y:%m:%d %H:%M:%S", time.localtime(now - int(seconds_back[n])))
        image.save(sub / f"IMG_{n:06d}.jpg", "JPEG", quality=85, exif=exif_for(taken=taken).tobytes())
    return time.perf_counter() - started


def scale_probe(what: str, data_dir: str, model_dir: str, folder: str) -> None:
    """In a fresh process: time `what` ("page" or "watch") on an indexed library and print one JSON
    line with the seconds and this process's memory (RSS after imports, peak RSS after the work)."""
    from agent.web.photo_grid import start_listing
    from agent.web.serving import ServedFiles
    from memory.library_watch import LibraryWatcher

    before = _proc_status_mb("VmRSS")
    # Opened lazily, as the server does: the cold page includes opening the manifest and Chroma.
    app = _app(Path(data_dir), Path(model_dir))
    index = app.image_index
    result: dict[str, Any] = {}
    if what == "page":
        files = ServedFiles(app.settings)
        for label in ("cold", "warm"):
            started = time.perf_counter()
            grid = start_listing(app, files, SCALE_PAGE)
            result[f"{label}_seconds"] = round(time.perf_counter() - started, 4)
            taken = [str(p.details.get("taken")) for p in grid.photos]
            if len(grid.photos) != SCALE_PAGE or taken != sorted(taken, reverse=True):
                raise SystemExit(f"the first screen is wrong: {len(grid.photos)} photos, {taken}")
        result["thumbnails_made"] = sum(1 for _ in app.settings.thumbnails_dir.glob("??/*.jpg"))
    else:
        watcher = LibraryWatcher(index, [folder])
        started = time.perf_counter()
        report = watcher.catch_up(first=True)
        result["seconds"] = round(time.perf_counter() - started, 3)
        assert report is not None
        if report.embedded or report.removed or not report.unchanged:
            raise SystemExit(f"the library was not unchanged: {report}")
        result["unchanged"] = report.unchanged
    result["rss_after_imports_mb"] = round(before, 1)
    result["peak_rss_mb"] = round(_proc_status_mb("VmHWM"), 1)
    index.close()
    print("SCALE_PROBE " + json.dumps(result), flush=True)


def _proc_status_mb(field: str) -> float:
    """A /proc/self/status memory figure in MB (ru_maxrss for VmHWM where there is no /proc)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_probe(what: str, data_dir: Path, model_dir: Path, folder: Path) -> dict[str, Any]:
    # A fresh child: cold caches of this process, and its own peak RSS (see _peak_rss_of_index).
    code = "import sys\nfrom bench.library import scale_probe\nscale_probe(*sys.argv[1:])\n"
    env = {**os.environ, "MODALGRAPH_CONFIG": str(data_dir / "no-config.toml")}
    result = subprocess.run(
        [sys.executable, "-c", code, what, str(data_dir), str(model_dir), str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or "SCALE_PROBE " not in result.stdout:
        raise SystemExit(f"the {what} probe failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.rsplit("SCALE_PROBE ", 1)[1].splitlines()[0]))


def _scale_library(work: Path, model_dir: Path, name: str, count: int, seed: int) -> dict[str, Any]:
    folder, data_dir = work / f"scale-{name}", work / f"data-scale-{name}"
    generated = make_small_photos(folder, count, seed)
    app = _app(data_dir, model_dir)
    try:
        report = app.image_index.index([folder], batch_size=256)
    finally:
        app.image_index.close()
    if report.embedded != count:
        raise SystemExit(f"indexed {report.embedded} of {count} photos: {report.skipped[:3]}")
    figures: dict[str, Any] = {
        "photos": count,
        "generate_seconds": round(generated, 1),
        "index_seconds": round(report.seconds, 1),
        "index_images_per_second": round(report.images_per_second, 1),
    }
    figures["page"] = _run_probe("page", data_dir, model_dir, folder)
    figures["watch_start"] = _run_probe("watch", data_dir, model_dir, folder)
    print(json.dumps({name: figures}), file=sys.stderr, flush=True)
    return figures


def bench_scale(work: Path, model_dir: Path, count: int) -> dict[str, Any]:
    baseline = _scale_library(work, model_dir, "baseline", SCALE_BASELINE, seed=5)
    large = _scale_library(work, model_dir, "large", count, seed=6)

    def ratio(a: float, b: float) -> float:
        return round(a / b, 2) if b else float("inf")

    return {
        "model": str(model_dir),
        "baseline": baseline,
        "large": large,
        "photos_ratio": ratio(count, SCALE_BASELINE),
        "page_cold_ratio": ratio(large["page"]["cold_seconds"], baseline["page"]["cold_seconds"]),
        "page_warm_ratio": ratio(large["page"]["warm_seconds"], baseline["page"]["warm_seconds"]),
        "watch_start_ratio": ratio(large["watch_start"]["seconds"], baseline["watch_start"]["seconds"]),
        "page_peak_rss_ratio": ratio(large["page"]["peak_rss_mb"], baseline["page"]["peak_rss_mb"]),
        "watch_peak_rss_ratio": ratio(
            large["watch_start"]["peak_rss_mb"], baseline["watch_start"]["peak_rss_mb"]
        ),
        "goals": "page cold < 1 s at the large size; watch start in seconds; peak RSS ratios ~1",
    }


# --------------------------------------------------------------------------- 4. oversized files


def make_pixel_bomb(path: Path, side: int = 13000) -> Path:
    """A side x side grey RGB PNG, written row by row so that its pixels are never held: 13000 gives
    169 megapixels in about 500 KB, which decodes to half a gigabyte."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" + b"\x80" * (3 * side)  # filter type 0, then the row's pixels
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        for _ in range(side):
            data = compressor.compress(row)
            if data:
                handle.write(chunk(b"IDAT", data))
        handle.write(chunk(b"IDAT", compressor.flush()))
        handle.write(chunk(b"IEND", b""))
    return path


def make_sparse_file(path: Path, size: int = 3 * 2**30) -> Path:
    """A file of `size` bytes that takes no disk space: what a 3 GB video renamed .jpg costs to read."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def bench_caps(work: Path, model_dir: Path, count: int) -> dict[str, Any]:
    """Peak RSS over normal photos, then over the same photos with a huge file and a pixel bomb."""
    photos = make_photos(work / "caps-normal", count, (1024, 768), seed=3)
    odd = work / "caps-odd"
    odd.mkdir(exist_ok=True)
    for path in photos:
        os.link(path, odd / path.name)
    make_sparse_file(odd / "huge.jpg")
    make_pixel_bomb(odd / "bomb.png")
    bomb_kb = (odd / "bomb.png").stat().st_size / 1024
    normal, normal_s, _ = _peak_rss_of_index(work / "caps-normal", work / "data-caps-normal", model_dir)
    capped, capped_s, report = _peak_rss_of_index(odd, work / "data-caps-odd", model_dir)
    skipped = {
        name: next((line.split(": ", 1)[1] for line in report.splitlines() if f"/{name}: " in line), None)
        for name in ("huge.jpg", "bomb.png")
    }
    # Each cap raised out of the way in turn: the 3 GB file is then read, hashed in chunks (memory
    # must stay flat) and found not to be an image; the PNG is decoded (what its cap saves).
    file_env = {"MODALGRAPH_INDEX_MAX_FILE_MB": "8192"}
    file_raised, file_s, _ = _peak_rss_of_index(odd, work / "data-caps-file", model_dir, file_env)
    pixel_env = {"MODALGRAPH_INDEX_MAX_MEGAPIXELS": "178"}  # just under PIL's own bomb limit
    pixel_raised, pixel_s, _ = _peak_rss_of_index(odd, work / "data-caps-pixels", model_dir, pixel_env)
    return {
        "photos": count,
        "huge_file_bytes": 3 * 2**30,
        "pixel_bomb": "13000x13000 RGB PNG",
        "pixel_bomb_kb": round(bomb_kb),
        "peak_rss_mb_normal_photos": round(normal, 1),
        "peak_rss_mb_with_misfits": round(capped, 1),
        "with_misfits_vs_normal": round(capped / normal, 3),
        "skipped_reasons": skipped,
        "peak_rss_mb_file_cap_raised": round(file_raised, 1),
        "file_cap_raised_vs_normal": round(file_raised / normal, 3),
        "peak_rss_mb_pixel_cap_raised": round(pixel_raised, 1),
        "pixel_cap_raised_vs_normal": round(pixel_raised / normal, 3),
        "seconds": {
            "normal": round(normal_s, 1),
            "with_misfits": round(capped_s, 1),
            "file_cap_raised": round(file_s, 1),
            "pixel_cap_raised": round(pixel_s, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Image library measurements.")
    parser.add_argument("--images", type=int, default=256, help="photos for the throughput comparison")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/index rounds (medians compared)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--vectors", default="10000,100000", help="collection sizes for query latency")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vector-kinds", default="lowrank,random", help="lowrank (CLIP-like) and/or random")
    parser.add_argument(
        "--memory-images", type=int, default=10000, help="photos for the peak-memory run (0: skip)"
    )
    parser.add_argument(
        "--memory-model",
        choices=("tiny", "same"),
        default="tiny",
        help="tiny: the shapes-world CLIP (fast, shows the pipeline's own memory); same: the throughput model",
    )
    parser.add_argument(
        "--caps-images", type=int, default=50, help="normal photos beside the oversized files (0: skip)"
    )
    parser.add_argument("--model", type=Path, help="a CLIP checkpoint folder (default: random ViT-B/32)")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of parts to skip: throughput,queries,filters,metadata,nomatch,memory,caps,scale",
    )
    parser.add_argument(
        "--scale-count",
        type=int,
        default=100_000,
        help="small photos for the scale part, which runs only with --only scale (0: skip)",
    )
    parser.add_argument(
        "--only", default="", help="comma list of parts to run, the others skipped (e.g. scale)"
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "library.json")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    parts = {"throughput", "queries", "filters", "metadata", "nomatch", "memory", "caps", "scale"}
    only = set(filter(None, args.only.split(",")))
    if only - parts or skip - parts:
        parser.error(
            f"unknown part(s): {', '.join(sorted((only | skip) - parts))}; parts: {', '.join(sorted(parts))}"
        )
    if only:
        skip = parts - only
    elif "scale" not in skip:
        # Opt-in: it writes 100k files and takes minutes, so the commands that name the parts to
        # skip (written before it existed) do not start it.
        skip.add("scale")
    if args.scale_count < 0:
        parser.error("--scale-count is a number of photos, 0 or more")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)

        def big_model() -> Path:  # built only for the parts that use it: it takes a while
            return args.model or make_vit_b32(work / "clip-vit-b32-random")

        results["model"] = str(args.model or "random ViT-B/32 (CLIPConfig defaults)")
        if "throughput" not in skip:
            results["throughput"] = bench_throughput(work, big_model(), args.images, args.rounds)
            print(json.dumps(results["throughput"]), file=sys.stderr, flush=True)
        if "queries" not in skip:
            sizes = [int(s) for s in args.vectors.split(",") if s]
            kinds = [k for k in args.vector_kinds.split(",") if k]
            results["queries"] = bench_queries(work, sizes, kinds, args.queries)
        if "filters" not in skip:
            sizes = [int(s) for s in args.vectors.split(",") if s]
            results["filters"] = bench_filters(work, sizes, args.queries)
        if "metadata" not in skip:
            results["metadata"] = bench_metadata(work, big_model(), args.images, args.rounds)
            print(json.dumps(results["metadata"]), file=sys.stderr, flush=True)
        if "nomatch" not in skip:
            results["no_match"] = bench_no_match(work)
            print(json.dumps(results["no_match"]), file=sys.stderr, flush=True)
        if "memory" not in skip and args.memory_images > 0:
            memory_model = big_model() if args.memory_model == "same" else tiny_clip(work / "clip-tiny")
            results["memory"] = bench_memory(work, memory_model, args.memory_images)
            print(json.dumps(results["memory"]), file=sys.stderr, flush=True)
        if "caps" not in skip and args.caps_images > 0:
            results["caps"] = bench_caps(work, tiny_clip(work / "clip-tiny"), args.caps_images)
            print(json.dumps(results["caps"]), file=sys.stderr, flush=True)
        if "scale" not in skip and args.scale_count > 0:
            results["scale"] = bench_scale(work, tiny_clip(work / "clip-tiny"), args.scale_count)
            print(json.dumps(results["scale"]), file=sys.stderr, flush=True)
    results["self_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
