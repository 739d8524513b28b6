"""The Library tab's Duplicates view in a real headless Chromium: planted copies of one photo form
a group with the kept copy marked, a different photo is in no group, the tiles are thumbnails, a
click opens the photo's view, and the page offers no way to move or delete anything.

The library: a real sample photo, an exact copy of it in another folder and a smaller, later copy;
and two other photos. Indexed before `modalgraph serve` starts (the shapes-world CLIP).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.context import AppContext
from agent.core.settings import load_settings
from tests.exif_photos import save_photo
from tests.web_server import browser_api, chromium_page, running_server, screenshot, serve_env

pytestmark = pytest.mark.slow

sync_api = browser_api()

SIZE = (640, 480)
SMALL = (320, 240)
OTHERS = ("coffee.jpg", "rocket.jpg")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, sample_photos: dict, shapes_clip_dir: Path
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web-duplicates")
    data, folder = root / "data", root / "Pictures"
    cat = sample_photos["chelsea"].convert("RGB").resize(SIZE)
    original = save_photo(cat, folder / "cat.jpg", taken="2019:06:14 10:00:00")
    (folder / "backup").mkdir()
    copy = folder / "backup" / "cat.jpg"
    copy.write_bytes(original.read_bytes())
    # The copy's file is newer: with one content and one date, the older file is the one kept.
    os.utime(copy, (original.stat().st_mtime + 60, original.stat().st_mtime + 60))
    save_photo(cat.resize(SMALL), folder / "cat-small.jpg", taken="2021:01:01 10:00:00")
    for name in OTHERS:
        save_photo(
            sample_photos[name.removesuffix(".jpg")].resize(SIZE), folder / name, taken="2020:01:01 10:00:00"
        )
    app = AppContext(load_settings(data_dir=data, device="cpu", models={"clip": str(shapes_clip_dir)}))
    try:
        assert app.image_index.index([folder]).processed == 5
    finally:
        app.image_index.close()
    script = root / "script.json"
    script.write_text(json.dumps([]))
    env = serve_env(data, script, shapes_clip_dir, root / "no-config.toml")
    with running_server(env, root / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    with chromium_page(sync_api, server) as page:
        page.get_by_role("tab", name="Library").click()
        yield page


def test_copies_of_one_photo_form_a_group_with_the_kept_one_marked(page: Any) -> None:
    page.locator("#find-duplicates").click()
    page.locator("#duplicates-note").get_by_text("1 group of duplicates among 4 photos").wait_for()
    assert "--move-to" in page.locator("#duplicates-note").inner_text()  # the way to act on it
    groups = page.locator("#duplicate-groups .duplicate-group")
    groups.first.wait_for()
    assert groups.count() == 1
    page.wait_for_function(
        """() => {
            const imgs = [...document.querySelectorAll('#duplicate-groups .duplicate-group img')];
            return imgs.length === 3 && imgs.every(img => img.complete && img.naturalWidth > 0);
        }"""
    )
    widths = page.eval_on_selector_all(
        "#duplicate-groups .duplicate-group img", "imgs => imgs.map(img => img.naturalWidth)"
    )
    assert max(widths) <= 256, widths  # thumbnails, while the largest original is 640 wide
    text = page.locator("#duplicate-groups").inner_text()
    assert "keep · Pictures/cat.jpg · 640 × 480 · 2019-06-14" in text, text
    assert "Pictures/cat-small.jpg · 320 × 240 · 2021-01-01 · " in text and " bits" in text, text
    assert (
        "backup/cat.jpg · 640 × 480 · 2019-06-14 · 0 bits" in text
        and "keep: cat.jpg (largest, earliest)" in text
    ), text
    assert not any(name in text for name in OTHERS), text  # different photos are in no group
    screenshot(page, "library-duplicates")
    buttons = page.locator("#duplicate-groups button, #duplicate-groups a").all_inner_texts()
    assert not any(word in b.lower() for b in buttons for word in ("delete", "move", "remove")), buttons


def test_a_duplicate_opens_the_photo_view(page: Any) -> None:
    tiles = page.locator("#duplicate-groups .duplicate-group img")
    tiles.nth(tiles.count() - 1).click()  # the last: a copy, not the kept one
    details = page.locator("#view-details")
    details.get_by_text("Taken:").wait_for()
    text = details.inner_text()
    assert "cat-small.jpg" in text and "320 × 240" in text and "2021" in text, text
    page.wait_for_function(
        "() => { const img = document.querySelector('#view-image img'); return img && img.naturalWidth > 0 }"
    )
    assert page.eval_on_selector("#view-image img", "img => img.naturalWidth") == SMALL[0]  # the original
