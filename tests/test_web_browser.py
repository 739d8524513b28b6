"""The web page end to end, in a real headless Chromium driven by Playwright.

`modalgraph serve` runs in a subprocess with the scripted LLM, the shapes-world CLIP (for the
library and describe_image's label guess), the tiny image pipeline and a real speech engine. The
browser says hello and watches the planning entry count its seconds until the answer, uploads an
image and asks about it, watches the plan's steps appear, finds an image and an audio player in the
answer, switches sessions and back, indexes and searches the library, asks about a search result from its view,
and takes screenshots (also into $MODALGRAPH_TEST_SCREENSHOTS when set, for people to look at).

The tests run in order on one page, as one user's visit.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.test_speak import _fallback_engine
from tests.web_server import browser_api, chromium_page, running_server, screenshot, serve_env

pytestmark = pytest.mark.slow

sync_api = browser_api()

TURN_MS = 120_000
ANSWER_A = "I looked at your picture, drew a new one, made a clip and read the description aloud."
ANSWER_B = "Hello from the second session."
# No responder reply for the refused step: with nothing done, the code writes the answer.
ANSWER_C = "I could not look at the image:"
ANSWER_CHAT = "Hi! Ask me about your photos, or for a picture or a sound."
PLANNING_DELAY_S = 2.5


def _upload_png() -> bytes:
    """A red circle on white, like the shapes world's pictures."""
    image = Image.new("RGB", (96, 96), (245, 245, 245))
    ImageDraw.Draw(image).ellipse((18, 18, 78, 78), fill=(220, 30, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _script(uploaded_artifact: Path) -> list[Any]:
    """The planner's and responder's replies, in the order the visit asks for them."""

    def step(i: int, tool: str, deps: list[int], **args: Any) -> dict[str, Any]:
        return {"id": i, "tool": tool, "args": args, "depends_on": deps}

    look_draw_speak = {
        "steps": [
            step(1, "describe_image", [], image=str(uploaded_artifact), question="What is in this picture?"),
            step(2, "generate_image", [], prompt="a red circle", width=64, height=64, steps=2, seed=7),
            step(3, "speak", [1], text="<step-1>"),
            step(4, "generate_video", [], prompt="waves", width=64, height=64, frames=3, steps=2, seed=7),
        ]
    }
    # The library result is copied in under a name the script cannot know: this plan names a file
    # the path guard refuses instead, so the visit also sees a failed step and its message.
    refused = {"steps": [step(1, "describe_image", [], image="/etc/passwd")]}
    # The first turn's planner takes its time, so the page's planning entry can be watched.
    slow_chat_plan = {"delay_s": PLANNING_DELAY_S, "content": {"steps": []}}
    return [
        slow_chat_plan,
        ANSWER_CHAT,
        look_draw_speak,
        ANSWER_A,
        {"steps": []},
        ANSWER_B,
        refused,
    ]


class Visit:
    """The page, the server's data dir, and where screenshots go."""

    def __init__(self, page: Any, url: str, data: Path, shots: Path, upload: Path) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        self.url = url
        self.data = data
        self.shots = shots
        self.upload = upload

    def screenshot(self, name: str) -> None:
        screenshot(self.page, name, self.shots)

    def chat_text(self) -> str:
        return str(self.page.locator("#chat").inner_text())


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    shapes_clip_dir: Path,
    tiny_models: dict[str, Path],
) -> Iterator[tuple[str, Path, Path]]:
    """`modalgraph serve` in a subprocess; yields (url, data dir, the image the visit uploads)."""
    root = tmp_path_factory.mktemp("web-browser")
    data = root / "data"
    upload = root / "red circle.png"
    upload.write_bytes(_upload_png())
    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    artifact = data / "artifacts" / digest[:2] / f"{digest}.png"  # where the page will store it
    script = root / "script.json"
    script.write_text(json.dumps(_script(artifact)))
    env = serve_env(
        data, script, shapes_clip_dir, root / "no-config.toml", MODALGRAPH_TTS_ENGINE=_fallback_engine()[0]
    )
    for name, folder in tiny_models.items():
        env["MODALGRAPH_MODEL_" + name.upper().replace("-", "_")] = str(folder)
    with running_server(env, root / "server.log") as url:
        yield url, data, upload


@pytest.fixture(scope="module")
def visit(server: tuple[str, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Visit]:
    url, data, upload = server
    with chromium_page(sync_api, url) as page:
        yield Visit(page, url, data, tmp_path_factory.mktemp("screenshots"), upload)


def _wait_text(visit: Visit, text: str, timeout: float = TURN_MS) -> None:
    visit.page.locator("#chat").get_by_text(text, exact=False).first.wait_for(timeout=timeout)


def test_a_file_that_only_claims_to_be_an_image_is_refused(visit: Visit, tmp_path: Path) -> None:
    page = visit.page
    visit.screenshot("01-empty")
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture at all\n" * 10)
    page.locator("#chat-input input[type=file]").set_input_files(str(fake))
    box = page.locator("#chat-input textarea")
    box.fill("what is this?")
    box.press("Enter")
    page.get_by_text("photo.png is neither an image nor audio").first.wait_for()
    page.wait_for_timeout(600)  # the toast fades in
    visit.screenshot("01b-upload-refused")
    assert "what is this?" not in visit.chat_text()  # nothing reached the assistant
    page.reload(wait_until="load")
    page.locator("#session-info").get_by_text("default").wait_for()


def test_planning_shows_at_once_and_counts_until_a_plain_answer_streams(visit: Visit) -> None:
    page = visit.page
    box = page.locator("#chat-input textarea")
    box.fill("hi there")
    box.press("Enter")
    _wait_text(visit, "planning…", timeout=1_000)  # life on the page within a second of sending
    visit.screenshot("01c-planning")
    # The seconds count while the (scripted, slow) planner works: updates come with no event.
    page.locator("#chat").get_by_text(re.compile(r"planning… [12]\.\d s")).first.wait_for(timeout=5_000)
    _wait_text(visit, ANSWER_CHAT)
    text = visit.chat_text()
    assert "planning…" not in text, text  # a plan without steps: the entry is gone, the answer shows
    assert "Plan:" not in text, text


def test_upload_an_image_ask_and_see_steps_an_image_an_audio_and_a_video_player(visit: Visit) -> None:
    page = visit.page
    page.locator("#chat-input input[type=file]").set_input_files(str(visit.upload))
    page.locator("#chat-input img").first.wait_for()  # the upload's thumbnail in the input box
    box = page.locator("#chat-input textarea")
    box.fill("What is in this picture? Draw me another one and read the description aloud.")
    box.press("Enter")

    # The plan and its steps appear while the turn runs, before the answer.
    _wait_text(visit, "Plan: 4 steps")
    _wait_text(visit, "step 1 · describe_image")
    _wait_text(visit, "step 3 · speak")
    _wait_text(visit, ANSWER_A)
    _wait_text(visit, "✓ step 3 · speak: done")
    page.locator("#chat audio").first.wait_for(state="attached")
    page.wait_for_timeout(500)  # let the waveform draw for the screenshot
    visit.screenshot("02-answer-with-image-and-audio")

    text = visit.chat_text()
    for done in (
        "✓ step 1 · describe_image: done",
        "✓ step 2 · generate_image: done",
        "✓ step 4 · generate_video",
    ):
        assert done in text, text
    page.locator("#chat video").first.wait_for(state="attached")
    generated = [
        p.name for p in (visit.data / "artifacts").rglob("*.png") if p.name != visit_upload_name(visit)
    ]
    assert len(generated) == 1, (generated, text)
    sources = [
        page.locator("#chat img").nth(i).get_attribute("src") or ""
        for i in range(page.locator("#chat img").count())
    ]
    # The generated picture: a thumbnail in the answer's grid, linking the full-size file.
    links = [link.get_attribute("href") or "" for link in page.locator("#chat .photo-grid a").all()]
    assert any(generated[0] in href for href in links), links
    assert any(generated[0].split(".")[0] + "-256.jpg" in src for src in sources), sources
    assert any(visit_upload_name(visit) in src for src in sources), sources  # the upload, in the question
    assert page.locator("#chat audio").count() >= 1
    assert "Spoken by" in text, text


def visit_upload_name(visit: Visit) -> str:
    return hashlib.sha256(visit.upload.read_bytes()).hexdigest() + ".png"


def test_new_session_with_a_spoken_answer_then_back_to_the_first(visit: Visit) -> None:
    page = visit.page
    page.locator("#session-name").get_by_role("textbox").fill("../etc")
    page.locator("#session-new").click()
    page.get_by_text("invalid session name '../etc'").first.wait_for()  # a toast; nothing else changes
    assert ANSWER_A in visit.chat_text()
    page.locator("#session-name").get_by_role("textbox").fill("second")
    page.locator("#session-new").click()
    page.locator("#session-info").get_by_text("second").wait_for()
    assert ANSWER_A not in visit.chat_text()  # a fresh, empty conversation
    page.locator("#speak input[type=checkbox]").check()
    box = page.locator("#chat-input textarea")
    box.fill("hello")
    box.press("Enter")
    _wait_text(visit, ANSWER_B)
    page.locator("#chat audio").first.wait_for(state="attached", timeout=TURN_MS)  # read aloud
    page.locator("#speak input[type=checkbox]").uncheck()
    visit.screenshot("03-second-session-spoken")

    page.locator("#session input").click()
    page.get_by_role("option", name="default", exact=True).click()
    page.locator("#session-info").get_by_text("default").wait_for()
    _wait_text(visit, ANSWER_A, timeout=30_000)  # the first session's history, reloaded
    assert ANSWER_B not in visit.chat_text()
    assert page.locator("#chat img").count() >= 2 and page.locator("#chat audio").count() >= 1
    visit.screenshot("04-back-to-first-session")

    # Delete the second session (the browser asks first); it leaves the list, the first stays.
    page.locator("#session input").click()
    page.get_by_role("option", name="second", exact=True).click()
    page.locator("#session-info").get_by_text("second").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#session-delete").click()
    page.locator("#session-info").get_by_text("deleted second").wait_for()
    page.locator("#session input").click()
    # The session list's options only: the microphone's device menu has options of its own.
    listed = page.locator("#session").get_by_role("option").all_inner_texts()
    options = [text.split()[-1] for text in listed]  # "✓ default"
    assert options == ["default"]
    page.keyboard.press("Escape")


def test_index_and_search_the_library_then_ask_about_a_result(visit: Visit, heldout_folder: Path) -> None:
    page = visit.page
    page.get_by_role("tab", name="Library").click()
    page.locator("#index-folder").get_by_role("textbox").fill(str(heldout_folder))
    page.locator("#index-button").click()
    page.locator("#index-report").get_by_text("Indexed").wait_for(timeout=TURN_MS)
    assert "120 new or changed images" in page.locator("#index-report").inner_text()
    page.locator("#library-status").get_by_text("120 images indexed").wait_for()

    page.locator("#search-text").get_by_role("textbox").fill("a red circle")
    page.locator("#search-button").click()
    # The library holds 4 red circles: the other renders are not presented as results.
    page.locator("#search-note").get_by_text("4 results").wait_for()
    thumbnails = page.locator("#results img")
    # The grid held the newest photos until now: wait for the search's results to replace them.
    page.wait_for_function("() => document.querySelectorAll('#results img').length === 4")
    captions = page.locator("#results").inner_text()
    assert "· " in captions and ".png" in captions  # "0.312 · name.png · date": score and file
    visit.screenshot("05-library-search")

    # A filter goes with the search: none of these renders was taken before 2000.
    page.locator("#filter-before").get_by_role("textbox").fill("2000")
    page.locator("#search-button").click()
    page.locator("#search-note").get_by_text("0 results").wait_for()
    assert "taken on or before 1999-12-31" in page.locator("#search-note").inner_text()
    page.locator("#filter-before").get_by_role("textbox").fill("")
    page.locator("#search-button").click()
    page.locator("#search-note").get_by_text("4 results").wait_for()

    thumbnails.first.click()
    page.locator("#view-ask").click()  # from the photo's view
    page.locator("#chat-input img").first.wait_for()  # the result, attached to the next message
    box = page.locator("#chat-input textarea")
    assert box.input_value() == "What is in this picture?"
    box.press("Enter")
    _wait_text(visit, "✗ step 1 · describe_image: failed")
    _wait_text(visit, ANSWER_C)
    assert "refused to read /etc/passwd" in visit.chat_text()  # the failed step's message shows
    visit.screenshot("06-failed-step")


def test_models_tab_lists_present_and_missing_models(visit: Visit) -> None:
    page = visit.page
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#models-table")
    table.get_by_text("image-gen").first.wait_for()
    text = table.inner_text()
    assert "clip" in text and "vlm" in text and "modalgraph models pull" in text
    visit.screenshot("07-models")


def test_the_page_fetched_nothing_from_outside_this_machine(visit: Visit) -> None:
    assert len(visit.requests) > 20
    elsewhere = [url for url in visit.requests if not url.startswith((visit.url, "data:", "blob:"))]
    assert elsewhere == []  # no fonts, scripts or telemetry from the internet
