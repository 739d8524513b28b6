"""Invented search filters taken out of a plan: cameras and folders nobody named, and places that are
no place (a query word, a date, a place with words around it)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from agent.planning.plan import Plan, Step
from agent.planning.plan_filters import filters_from_conversation, place_named
from memory.place_names import is_place, place_within

TODAY = date(2026, 11, 29)


def _search(request: str, args: dict[str, Any], history: tuple[str, ...] = ()) -> dict[str, Any]:
    plan = Plan(
        steps=[
            Step(id=1, tool="search_images", args=dict(args)),
            Step(id=2, tool="speak", args={"text": "x"}),
        ]
    )
    out = filters_from_conversation(plan, request, TODAY, history)
    assert out.steps[1].args == {"text": "x"}  # only searches are touched
    return out.steps[0].args


def test_a_camera_or_folder_nobody_named_is_dropped() -> None:
    assert _search("search my library for red cars", {"query": "red cars", "camera": "camera"}) == {
        "query": "red cars"
    }
    assert _search("photos of snow before 2020", {"query": "snow", "camera": "Sony"}) == {"query": "snow"}
    assert _search("photos of snow", {"query": "snow", "folder": "Holidays/2019"}) == {"query": "snow"}
    # Named in the request, or earlier in the conversation: kept as the model wrote it.
    assert (
        _search("the iPhone pictures of my cat", {"query": "cat", "camera": "iPhone 12"})["camera"]
        == "iPhone 12"
    )
    said_before = ("User: my photos taken with the Canon", "Assistant: Found 3 photos.")
    assert (
        _search("only the ones of dogs", {"query": "dogs", "camera": "Canon"}, said_before)["camera"]
        == "Canon"
    )
    assert _search("pictures in my Trips folder", {"folder": "trips"})["folder"] == "trips"


@pytest.mark.parametrize(
    ("request_", "args", "expected"),
    [
        # A query word as a place goes back into the query.
        ("show me photos of the lake since 2022", {"place": "Lake"}, {"query": "Lake"}),
        ("photos of the lake at dusk", {"query": "dusk", "place": "Lake"}, {"query": "dusk Lake"}),
        # A date as a place: the query already holds it.
        (
            "the Christmas tree at Christmas 2021",
            {"query": "Christmas tree", "place": "Christmas"},
            {"query": "Christmas tree"},
        ),
        # A place with words around it is cut to the place.
        (
            "as minhas fotos de cães no Porto do verão passado",
            {"query": "dogs", "place": "Porto do Verão"},
            {"query": "dogs", "place": "Porto"},
        ),
        # Real places stay, in any language, with their region or country.
        ("我在东京拍的照片", {"place": "东京"}, {"place": "东京"}),
        ("Lisbon, Portugal photos", {"place": "Lisbon, Portugal"}, {"place": "Lisbon, Portugal"}),
        ("my photos from Tuscany", {"place": "Tuscany"}, {"place": "Tuscany"}),
        ("photos from Óbidos", {"place": "Óbidos"}, {"place": "Óbidos"}),  # a town of 3,000
    ],
)
def test_a_place_that_is_no_place_goes_back_into_the_query(
    request_: str, args: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert _search(request_, args) == expected


def test_place_names_known_to_the_index() -> None:
    assert all(is_place(name) for name in ("Japan", "USA", "東京", "Lisboa", "Bavaria", "New York"))
    assert not any(is_place(name) for name in ("Lake", "camera", "Porto do Verão", "red cars"))
    assert place_within("Porto do Verão") == "Porto" and place_within("the kitchen table") is None


@pytest.mark.parametrize(
    ("request_", "place"),
    [
        ("all my photos from Japan", "Japan"),
        ("find photos of mountains in Switzerland without snow", "Switzerland"),
        ("帮我找一下去年在东京拍的照片", "东京"),
        ("mostra-me as minhas fotos de cães no Porto do verão passado", "Porto"),
        ("photos from Rio de Janeiro", "Rio de Janeiro"),  # a month inside a name is still a place
        ("my photos from Lisbon, Portugal.", "Lisbon"),
        ("photos from St. Petersburg", "St. Petersburg"),
        # No place: lower case, a date, a run of capitals that is no place, or two places.
        ("photos in nice weather", None),
        ("the Christmas tree at Christmas 2021", None),
        ("photos I took in March", None),
        ("my photos in Van Gogh style", None),
        ("compare my photos from Lisbon and from Porto", None),
    ],
)
def test_a_place_the_request_names_is_found(request_: str, place: str | None) -> None:
    assert place_named(request_, TODAY) == place


def test_a_search_the_model_left_without_its_place_gets_it() -> None:
    assert _search("all my photos from Japan", {"query": "Japan"}) == {"query": "Japan", "place": "Japan"}
    # The model's own place wins.
    assert _search("photos of sushi from Tokyo", {"query": "sushi", "place": "Tokyo"})["place"] == "Tokyo"
