"""Finding the right photos: metadata in the index, filters in the Chroma query, composed queries and
an honest "no match", on shapes renders that carry real EXIF dates, GPS positions and cameras."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import ToolInputError
from agent.core.settings import load_settings
from memory.photo_filters import PhotoFilters, parse_day
from memory.place_names import place_keys
from tests.cli_runner import run_cli
from tests.exif_photos import CITIES, build_metadata_library, save_photo
from tools.context import RunContext
from tools.search_images import SearchImagesArgs, SearchImagesTool

IN_2021 = {"start": date(2021, 1, 1), "end": date(2021, 12, 31)}


def _shape(path: str) -> tuple[str, str]:
    """The truth of a library photo, from the record written with it."""
    return RECORDS_BY_PATH[path]["colour"], RECORDS_BY_PATH[path]["shape"]  # type: ignore[return-value]


RECORDS_BY_PATH: dict[str, dict[str, object]] = {}


@pytest.fixture(scope="module")
def metadata_library(shapes_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("trips")
    records = build_metadata_library(shapes_world, folder)
    RECORDS_BY_PATH.update({str(Path(str(r["path"])).resolve()): r for r in records})
    return folder, records


@pytest.fixture(scope="module")
def metadata_app(
    metadata_library: tuple[Path, list], shapes_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppContext]:
    data = tmp_path_factory.mktemp("trips-data")
    app = AppContext(load_settings(data_dir=data, device="cpu", models={"clip": str(shapes_clip_dir)}))
    report = app.image_index.index([metadata_library[0]])
    assert report.embedded == len(metadata_library[1]) and not report.skipped
    yield app
    app.image_index.close()


def _expected(records: list, **truth: object) -> set[str]:
    return {
        str(Path(str(r["path"])).resolve())
        for r in records
        if all(r[key] == value for key, value in truth.items())
    }


# ----------------------------------------------------------------------------- filters


def test_filter_values_are_folded_and_dates_are_whole_days() -> None:
    where = PhotoFilters(place="LISBOA").where()
    assert where == {
        "$or": [
            {key: name}
            for key in ("city_key", "county_key", "region_key", "country_key", "country_code_key")
            for name in ("lisboa", "lisbon")  # as typed, and the city GeoNames knows by that name
        ]
    }
    assert PhotoFilters(place="USA").where()["$or"][0] == {"city_key": "united states"}  # type: ignore[index]
    both = PhotoFilters(start=parse_day("2019"), end=parse_day("2019-02", end=True), camera="iPhone 12")
    clauses = both.where()["$and"]  # type: ignore[index]
    assert {"taken_day": {"$gte": 20190101}} in clauses and {"taken_day": {"$lte": 20190228}} in clauses
    assert {"camera_words": {"$contains": "iphone"}} in clauses
    assert PhotoFilters(file_type="JPEG").where() == {"file_type": {"$in": ["jpg", "jpeg", "jpe", "jfif"]}}
    assert PhotoFilters(folder="Trips/Été").where() == {
        "$and": [{"folder_names": {"$contains": "trips"}}, {"folder_names": {"$contains": "ete"}}]
    }
    assert PhotoFilters().where() is None and PhotoFilters().empty
    with pytest.raises(ToolInputError, match="empty"):
        PhotoFilters(start=date(2020, 1, 2), end=date(2020, 1, 1))
    with pytest.raises(ToolInputError, match="not a date"):
        parse_day("2019-02-30")


def test_red_circles_from_paris_in_2021_are_exactly_those(
    metadata_app: AppContext, metadata_library: tuple[Path, list]
) -> None:
    records = metadata_library[1]
    wanted = _expected(records, colour="red", shape="circle", city="paris", year=2021)
    near_misses = _expected(records, colour="red", shape="circle") - wanted
    assert wanted and near_misses  # the library has red circles elsewhere and at other times
    outcome = metadata_app.image_index.search(
        text="a red circle", filters=PhotoFilters(place="Paris", **IN_2021), k=10
    )
    assert {hit.path for hit in outcome.hits} == wanted
    for hit in outcome.hits:
        assert hit.place == "Paris, Île-de-France, France" and hit.taken and hit.taken.startswith("2021-")
        assert not hit.taken_guess


def test_filters_run_inside_the_query_so_k_results_come_back(
    metadata_app: AppContext, metadata_library: tuple[Path, list]
) -> None:
    """Photos from New York taken with the Canon, none of them red circles: taking the top k by
    likeness first and filtering after would return nothing; the filter is in the Chroma query."""
    records = metadata_library[1]
    allowed = _expected(records, city="new york", make="Canon")
    assert len(allowed) >= 5
    index = metadata_app.image_index
    unfiltered = {hit.path for hit in index.search(text="a red circle", k=5, judge_match=False).hits}
    assert not unfiltered & allowed
    outcome = index.search(
        text="a red circle", filters=PhotoFilters(place="new york", camera="canon"), k=5, judge_match=False
    )
    assert len(outcome.hits) == 5 and {hit.path for hit in outcome.hits} <= allowed


def test_a_place_named_in_another_language_finds_the_same_photos(metadata_app: AppContext) -> None:
    index = metadata_app.image_index
    tokyo = {hit.path for hit in index.search(filters=PhotoFilters(place="Tokyo"), k=200).hits}
    assert tokyo
    for name in ("東京", "东京", "Tokio", "TYO"):
        assert {hit.path for hit in index.search(filters=PhotoFilters(place=name), k=200).hits} == tokyo, name
    lisbon = {hit.path for hit in index.search(filters=PhotoFilters(place="lisbon"), k=200).hits}
    assert (
        lisbon
        and {hit.path for hit in index.search(filters=PhotoFilters(place="Lisboa"), k=200).hits} == lisbon
    )
    # A city's own name keeps meaning that city, though GeoNames also lists bigger Bordeaux as "Porto".
    assert place_keys("Porto") == ("porto",) and place_keys("Oporto") == ("oporto", "porto")
    assert place_keys("New York") == ("new york", "new york city")  # the state, and the city
    assert not index.search(filters=PhotoFilters(place="Atlantis"), k=200).hits


def test_filters_alone_give_the_newest_first(
    metadata_app: AppContext, metadata_library: tuple[Path, list]
) -> None:
    records = metadata_library[1]
    index = metadata_app.image_index
    outcome = index.search(filters=PhotoFilters(place="japan", start=date(2020, 1, 1)), k=200)
    expected = {p for p in _expected(records, city="tokyo") if RECORDS_BY_PATH[p]["year"] >= 2020}
    assert not outcome.visual and {hit.path for hit in outcome.hits} == expected
    taken = [hit.taken for hit in outcome.hits]
    assert taken == sorted(taken, reverse=True)  # type: ignore[type-var]
    folder = index.search(filters=PhotoFilters(folder="New-York"), k=200)
    assert {hit.path for hit in folder.hits} == _expected(records, city="new york")


def test_a_missing_subject_is_no_match_and_a_present_one_is_found(
    shapes_world: Path, shapes_clip_dir: Path, tmp_path: Path
) -> None:
    """A library without red or purple circles: asking for them says so."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for source in sorted((shapes_world / "heldout").iterdir()):
        if "red-circle" not in source.name and "purple-circle" not in source.name:
            shutil.copy2(source, folder / source.name)
    app = AppContext(
        load_settings(data_dir=tmp_path / "data", device="cpu", models={"clip": str(shapes_clip_dir)})
    )
    app.image_index.index([folder])
    for absent in ("a red circle", "a purple circle"):
        outcome = app.image_index.search(text=absent, k=5)
        assert outcome.no_match and not outcome.hits and len(outcome.closest) == 3, absent
    for present in ("a red square", "a blue circle", "a green cross"):
        outcome = app.image_index.search(text=present, k=5)
        assert not outcome.no_match and outcome.hits, present
        colour, shape = present.split()[1:]
        assert all(f"{colour}-{shape}" in Path(hit.path).name for hit in outcome.hits), present
    result = SearchImagesTool().run(SearchImagesArgs(query="a red circle"), RunContext(app))
    assert result.text.startswith("No photos look like 'a red circle'") and not result.artifacts
    assert result.data["no_match"] is True and len(result.data["closest"]) == 3
    app.image_index.close()


def test_a_composed_query_moves_the_example_toward_the_words(
    metadata_app: AppContext, heldout_folder: Path
) -> None:
    """rclip's arithmetic: like this red circle, but blue and not red -> blue circles."""
    example = next(heldout_folder.glob("*-red-circle.png"))
    index = metadata_app.image_index
    alone = index.search(image=example, k=3).hits
    assert all(_shape(hit.path) == ("red", "circle") for hit in alone)
    moved = index.search(image=example, text="a blue circle", without=["a red circle"], k=3).hits
    assert moved and all(_shape(hit.path) == ("blue", "circle") for hit in moved)
    with pytest.raises(ToolInputError, match="cancel"):
        index.search(text="a red circle", without=["a red circle"], k=3)


def test_the_tool_says_when_and_where(metadata_app: AppContext, metadata_library: tuple[Path, list]) -> None:
    args = SearchImagesArgs(query="a red circle", place="lisbon", date_from="2019", date_to="2019", k=3)
    result = SearchImagesTool().run(args, RunContext(metadata_app))
    assert result.artifacts, result.text
    first = result.data["results"][0]
    truth = RECORDS_BY_PATH[first["path"]]
    # GeoNames' nearest place to the centre of Lisbon is its Intendente quarter; Lisbon is its county.
    assert first["place"] == "Intendente, Lisbon, Portugal" and first["taken"].startswith(str(truth["day"]))
    month = date.fromisoformat(str(truth["day"])).strftime("%B")
    assert f"{month} " in result.text and "Lisbon, Portugal" in result.text and "from lisbon" in result.text
    alone = SearchImagesTool().run(SearchImagesArgs(place="Tokyo", k=4), RunContext(metadata_app))
    assert alone.text.startswith("Found 4 photos from Tokyo (newest first):") and "score" not in alone.text
    assert len(alone.artifacts) == 4 and all(row["region"] == "Tokyo" for row in alone.data["results"])


# ----------------------------------------------------------------------------- metadata in the index


def test_an_old_index_gains_metadata_without_embedding_again(
    shapes_world: Path, shapes_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "trips"
    records = build_metadata_library(shapes_world, folder)[:12]
    keep = {Path(str(r["path"])).name for r in records}
    for path in folder.rglob("*.jpg"):
        if path.name not in keep:
            path.unlink()
    app = AppContext(
        load_settings(data_dir=tmp_path / "data", device="cpu", models={"clip": str(shapes_clip_dir)})
    )
    index = app.image_index
    # An index as an older modalgraph wrote it: vectors, paths and sizes, no photo metadata.
    with monkeypatch.context() as patched:
        patched.setattr("memory.image_index.photo_record", lambda meta, root: {})
        assert index.index([folder]).embedded == 12
    with sqlite3.connect(index.manifest.path) as conn:
        conn.execute("DELETE FROM photos")
    _model, collection = index._searchable()
    ids = sorted(index.store.all_ids(collection))
    before = index.store.vectors(collection, ids)
    assert not index.search(filters=PhotoFilters(place="paris"), k=50).hits

    report = index.index()
    assert report.embedded == 0 and report.metadata_filled == 12
    after = index.store.vectors(collection, ids)
    assert all(np.array_equal(before[i], after[i]) for i in ids)
    paris = {hit.path for hit in index.search(filters=PhotoFilters(place="paris"), k=50).hits}
    assert paris == _expected(records, city="paris") and paris
    assert index.index().metadata_filled == 0  # read once
    index.close()


def test_untrustworthy_metadata_is_left_empty_and_listed(
    shapes_clip_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "odd"
    save_photo(
        Image.new("RGB", (60, 40), "red"), folder / "no-fix.jpg", taken="2020:05:01 10:00:00", gps=(0.0, 0.0)
    )
    save_photo(
        Image.new("RGB", (40, 60), "blue"),
        folder / "future.jpg",
        taken="2099:01:01 00:00:00",
        gps=CITIES["tokyo"],
    )
    save_photo(
        Image.new("RGB", (50, 50), "green"),
        folder / "fine.jpg",
        taken="2018:07:04 09:00:00",
        gps=CITIES["new york"],
    )
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(shapes_clip_dir))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(["index", str(folder)], capsys, monkeypatch)
    assert code == 0 and "3 new or changed images indexed" in out, err
    code, out, _ = run_cli(["index", "--status"], capsys, monkeypatch)
    assert code == 0 and "2 metadata field(s) left empty" in out
    assert (
        "no-fix.jpg: GPS position (0, 0)" in out
        and "future.jpg: EXIF date '2099:01:01 00:00:00' is in the future" in out
    )
    code, out, _ = run_cli(["search", "--json", "--place", "tokyo"], capsys, monkeypatch)
    results = json.loads(out)["results"]
    assert [Path(r["path"]).name for r in results] == ["future.jpg"]
    assert results[0]["taken_is_file_date"] is True  # the future date was refused: the file's date stands in
    code, out, _ = run_cli(["search", "--before", "2019", "--orientation", "square"], capsys, monkeypatch)
    assert code == 0 and "fine.jpg" in out and "2018-07-04" in out and "New York" in out
    code, _out, err = run_cli(["search", "--after", "2019-02-30"], capsys, monkeypatch)
    assert code == 2 and "not a date" in err and err.count("\n") == 1


def test_search_after_place_on_the_command_line(
    metadata_app: AppContext,
    metadata_library: tuple[Path, list],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's check: `modalgraph search --after 2021-01-01 --place paris "red"`."""
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(metadata_app.settings.models["clip"]))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    monkeypatch.setenv("MODALGRAPH_DATA_DIR", str(metadata_app.settings.data_dir))
    code, out, err = run_cli(
        ["search", "--after", "2021-01-01", "--place", "paris", "red", "--json"], capsys, monkeypatch
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results
    for item in results:
        truth = RECORDS_BY_PATH[item["path"]]
        assert truth["city"] == "paris" and truth["year"] >= 2021 and truth["colour"] == "red", truth
