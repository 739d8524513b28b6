"""The real planner in front of a library with EXIF dates, GPS and cameras: questions that mix what,
where and when come back with photos that match all three, and an absent subject says "no match"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.turns import TurnRunner, turn_json
from tests.exif_photos import build_metadata_library

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]


@pytest.fixture(scope="module")
def trips(shapes_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """The metadata library without its purple circles; the truth of each photo, by path."""
    records = build_metadata_library(shapes_world, tmp_path_factory.mktemp("trips"))
    kept = {}
    for record in records:
        path = Path(str(record["path"]))
        if (record["colour"], record["shape"]) == ("purple", "circle"):
            path.unlink()
        else:
            kept[str(path.resolve())] = record
    return kept


@pytest.fixture
def trips_app(
    trips: dict[str, dict[str, object]], shapes_clip_dir: Path, real_planner: Path, tmp_path: Path
) -> Iterator[AppContext]:
    app = AppContext(
        load_settings(
            data_dir=tmp_path / "data",
            device="cpu",
            models={"clip": str(shapes_clip_dir), "planner": str(real_planner)},
        )
    )
    folder = Path(next(iter(trips))).parents[1]
    app.image_index.index([folder])
    yield app
    app.image_index.close()


def _turn(app: AppContext, llm: object, request: str) -> dict:
    values = TurnRunner(app, llm).run("trips", request, [], lambda event: None)  # type: ignore[arg-type]
    return turn_json(values)


def test_what_where_and_when_through_a_real_planner_turn(
    trips_app: AppContext, trips: dict[str, dict[str, object]], shared_llm: object
) -> None:
    out = _turn(trips_app, shared_llm, "show me my red circles from Paris in 2021")
    searches = [s for s in out["steps"] if s["tool"] == "search_images"]
    assert searches and searches[0]["status"] == "done", json.dumps(out)
    args = out["plan"]["steps"][0]["args"]
    assert (args.get("place") or "").lower() == "paris", args
    assert str(args.get("date_from", "")).startswith("2021") and str(args.get("date_to", "")).startswith(
        "2021"
    )
    found = [a["path"] for a in searches[0]["artifacts"]]
    assert found, json.dumps(out)
    right = [
        p for p in found if (trips[p]["colour"], trips[p]["city"], trips[p]["year"]) == ("red", "paris", 2021)
    ]
    assert len(right) / len(found) >= 0.9, [trips[p] for p in found]


def test_an_absent_subject_is_said_to_be_absent(trips_app: AppContext, shared_llm: object) -> None:
    out = _turn(trips_app, shared_llm, "find my photos of purple circles")
    searches = [s for s in out["steps"] if s["tool"] == "search_images"]
    assert searches, json.dumps(out["plan"])
    assert searches[0]["output"].startswith("No photos look like"), searches[0]["output"]
    assert not searches[0]["artifacts"]
