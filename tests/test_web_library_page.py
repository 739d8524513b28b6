"""The Library tab in a real headless Chromium: the photo grid, its filters, a photo's view, and
found photos as a grid in the chat.

The library is 18 shapes renders enlarged to 640x480 JPEGs with EXIF dates, places and cameras,
indexed before `modalgraph serve` starts (the shapes-world CLIP, the scripted LLM).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.settings import load_settings
from tests.exif_photos import CITIES, save_photo
from tests.web_server import browser_api, chromium_page, running_server, screenshot, serve_env

pytestmark = pytest.mark.slow

sync_api = browser_api()

TURN_MS = 120_000
PHOTOS = 18
SIZE = (640, 480)
PLACES = ("lisbon", "paris", "tokyo")
# The country each place's GPS position is geocoded to (the town may be a quarter of the city).
COUNTRIES = {"lisbon": "Portugal", "paris": "France", "tokyo": "Japan"}
CAMERAS = (("Apple", "iPhone 12 Pro"), ("Canon", "Canon EOS 80D"))
ANSWER_FOUND = "Here are your photos from Lisbon."
ANSWER_ASKED = "It is one of your photos."


def _library(world: Path, folder: Path) -> list[dict[str, Any]]:
    """The photos, and the truth about each: place, year, camera make, day."""
    truth = []
    renders = sorted((world / "heldout").iterdir())[:PHOTOS]
    for i, source in enumerate(renders):
        place, camera = PLACES[i % 3], CAMERAS[i % 2]
        year, month, day = 2019 + i % 3, 1 + i % 12, 1 + i
        path = folder / f"IMG_{i:04d}.jpg"
        with Image.open(source) as image:
            save_photo(
                image.resize(SIZE),
                path,
                taken=f"{year}:{month:02d}:{day:02d} 10:00:00",
                gps=CITIES[place],
                camera=camera,
            )
        truth.append({"name": path.name, "place": place, "year": year, "make": camera[0]})
    return truth


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_world: Path, shapes_clip_dir: Path
) -> Iterator[tuple[str, Path, list[dict[str, Any]]]]:
    root = tmp_path_factory.mktemp("web-library")
    data, folder = root / "data", root / "Pictures"
    truth = _library(shapes_world, folder)
    app = AppContext(load_settings(data_dir=data, device="cpu", models={"clip": str(shapes_clip_dir)}))
    try:
        report = app.image_index.index([folder])
        assert report.embedded == PHOTOS and not report.skipped
    finally:
        app.image_index.close()
    script = root / "script.json"
    find = {
        "steps": [{"id": 1, "tool": "search_images", "args": {"place": "Lisbon", "k": 10}, "depends_on": []}]
    }
    script.write_text(json.dumps([{"steps": []}, ANSWER_ASKED, find, ANSWER_FOUND]))  # in the visit's order
    env = serve_env(data, script, shapes_clip_dir, root / "no-config.toml")
    with running_server(env, root / "server.log") as url:
        yield url, folder, truth


@pytest.fixture(scope="module")
def page(
    server: tuple[str, Path, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    with chromium_page(sync_api, server[0]) as page:
        page.get_by_role("tab", name="Library").click()
        yield page


def tiles(page: Any) -> Any:
    return page.locator("#results img")


def grid_of(page: Any, count: int) -> list[int]:
    """Wait until the grid holds `count` loaded images (the previous grid's are gone); their
    natural widths."""
    page.wait_for_function(
        """(count) => {
            const imgs = [...document.querySelectorAll('#results img')];
            return imgs.length === count && imgs.every(img => img.complete && img.naturalWidth > 0);
        }""",
        arg=count,
    )
    return page.eval_on_selector_all("#results img", "imgs => imgs.map(img => img.naturalWidth)")


def test_the_grid_shows_the_newest_photos_as_small_thumbnails_and_loads_more(page: Any) -> None:
    per_page = page.locator("#search-k input[type=number]")
    per_page.fill("12")
    per_page.press("Tab")
    page.wait_for_function("() => document.querySelector('#search-k input[type=range]').value === '12'")
    page.locator("#browse-button").click()
    page.locator("#search-note").get_by_text("12 results for the whole library").wait_for()
    widths = grid_of(page, 12)
    assert max(widths) <= 256, widths  # thumbnails, while the originals are 640 wide
    captions = page.locator("#results").inner_text()
    assert "2021-" in captions and "2019-" not in captions.split("\n")[0]  # newest first
    page.locator("#load-more").click()
    page.locator("#search-note").get_by_text(f"{PHOTOS} results").wait_for()
    grid_of(page, PHOTOS)
    assert not page.locator("#load-more").is_visible()  # nothing follows
    screenshot(page, "library-grid")


def test_filters_narrow_the_grid(page: Any, server: tuple[str, Path, list[dict[str, Any]]]) -> None:
    truth = server[2]
    page.locator("#filter-place").get_by_role("textbox").fill("Tokyo")
    page.locator("#filter-camera").get_by_role("textbox").fill("canon")
    page.locator("#browse-button").click()
    expected = [t for t in truth if t["place"] == "tokyo" and t["make"] == "Canon"]
    page.locator("#search-note").get_by_text(f"{len(expected)} results for from Tokyo").wait_for()
    assert len(grid_of(page, len(expected))) < PHOTOS
    text = page.locator("#results").inner_text()
    assert all(t["name"] in text for t in expected), text
    page.locator("#filter-camera").get_by_role("textbox").fill("")
    page.locator("#filter-place").get_by_role("textbox").fill("")
    page.locator("#filter-after").get_by_role("textbox").fill("2021")
    page.locator("#browse-button").click()
    in_2021 = [t for t in truth if t["year"] == 2021]
    page.locator("#search-note").get_by_text(f"{len(in_2021)} results").wait_for()
    grid_of(page, len(in_2021))
    page.locator("#filter-after").get_by_role("textbox").fill("")


def test_a_photos_view_shows_when_where_and_with_what_and_finds_similar(
    page: Any, server: tuple[str, Path, list[dict[str, Any]]]
) -> None:
    truth = {t["name"]: t for t in server[2]}
    page.locator("#browse-button").click()
    page.locator("#search-note").get_by_text("12 results for the whole library").wait_for()
    grid_of(page, 12)
    tiles(page).first.click()
    details = page.locator("#view-details")
    details.get_by_text("Taken:").wait_for()
    text = details.inner_text()
    name = next(n for n in truth if n in text)
    photo = truth[name]
    assert str(photo["year"]) in text and COUNTRIES[photo["place"]] in text, text
    assert ("iPhone 12 Pro" if photo["make"] == "Apple" else "Canon EOS 80D") in text, text
    page.wait_for_function(
        "() => { const img = document.querySelector('#view-image img'); return img && img.naturalWidth > 0 }"
    )
    full = page.eval_on_selector("#view-image img", "img => img.naturalWidth")
    assert full == SIZE[0]  # the view shows the original
    screenshot(page, "library-view")
    page.locator("#view-similar").click()
    page.locator("#search-note").get_by_text(f"for photos like {name}").wait_for()
    assert not page.locator("#photo-view").is_visible()
    count = int(page.locator("#search-note").inner_text().split()[0])
    assert count >= 1 and len(grid_of(page, count)) == count
    assert name not in page.locator("#results").inner_text()  # the photo itself is not "similar"


def test_ask_about_this_photo_attaches_it_to_a_chat_message(page: Any) -> None:
    tiles(page).first.click()
    page.locator("#view-details").get_by_text("Taken:").wait_for()
    page.locator("#view-ask").click()
    page.locator("#chat-input img").first.wait_for()  # the photo, attached to the next message
    box = page.locator("#chat-input textarea")
    assert box.input_value() == "What is in this picture?"
    box.press("Enter")
    page.locator("#chat").get_by_text(ANSWER_ASKED).first.wait_for(timeout=TURN_MS)
    assert page.locator("#chat img").count() >= 1  # the attached photo, in the question


def test_found_photos_come_as_a_grid_of_thumbnails_in_the_chat(
    page: Any, server: tuple[str, Path, list[dict[str, Any]]]
) -> None:
    box = page.locator("#chat-input textarea")
    box.fill("show me my photos from Lisbon")
    box.press("Enter")
    page.locator("#chat").get_by_text(ANSWER_FOUND).first.wait_for(timeout=TURN_MS)
    grid = page.locator("#chat .photo-grid").last
    grid.wait_for()
    lisbon = [t["name"] for t in server[2] if t["place"] == "lisbon"]
    links = [a.get_attribute("href") or "" for a in grid.locator("a").all()]
    assert len(links) == len(lisbon) and all(any(n in h for h in links) for n in lisbon), links
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chat .photo-grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = page.eval_on_selector_all("#chat .photo-grid img", "imgs => imgs.map(img => img.naturalWidth)")
    assert widths and max(widths) <= 256, widths
    boxes = [grid.locator("img").nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"]  # side by side, not one under another
    screenshot(page, "chat-grid")
    # A thumbnail opens the full-size photo.
    with page.context.expect_page() as opened:
        grid.locator("a").first.click()
    full = opened.value
    full.wait_for_load_state()
    assert full.evaluate("() => document.images[0].naturalWidth") == SIZE[0]
    full.close()
