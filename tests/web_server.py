"""`modalgraph serve` in a subprocess and a headless Chromium on it, for the browser tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local_servers import free_port
from tests.test_sessions import ROOT

STARTUP_S = 180
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def serve_env(data: Path, script: Path, clip_dir: Path, config: Path, **extra: str) -> dict[str, str]:
    """The server's environment: its own data dir, the scripted LLM, the given CLIP, no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODALGRAPH_", "GRADIO_"))}
    env.update(
        MODALGRAPH_DATA_DIR=str(data),
        MODALGRAPH_CONFIG=str(config),
        MODALGRAPH_LLM_BACKEND="scripted",
        MODALGRAPH_LLM_SCRIPT=str(script),
        MODALGRAPH_MODEL_CLIP=str(clip_dir),
        MODALGRAPH_DEVICE="cpu",
        MODALGRAPH_PLAY_AUDIO="false",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


@contextlib.contextmanager
def running_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """Start `modalgraph serve`, wait until it answers, yield its URL; stop it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"modalgraph serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"modalgraph serve did not answer in {STARTUP_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        if log.is_file():
            sys.stderr.write(f"--- server log (last lines) ---\n{log.read_text()[-2000:]}\n")


def browser_api() -> Any:
    """Playwright's sync API; without Debian's Chromium or Playwright, the calling test module is
    skipped (call it at module level), saying what to install."""
    if CHROMIUM is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)",
            allow_module_level=True,
        )
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )


def screenshot(page: Any, name: str, *folders: Path) -> None:
    """The whole page as NAME.png into each of `folders`, and into $MODALGRAPH_TEST_SCREENSHOTS
    when set, for people to look at."""
    wanted = list(folders)
    if os.environ.get("MODALGRAPH_TEST_SCREENSHOTS"):
        wanted.append(Path(os.environ["MODALGRAPH_TEST_SCREENSHOTS"]))
    for folder in wanted:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@contextlib.contextmanager
def chromium_page(sync_api: Any, url: str) -> Iterator[Any]:
    """A 1280x900 page of the system's Chromium, opened on `url` once the sessions have loaded."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(url, wait_until="load")  # not networkidle: Gradio keeps a heartbeat open
            page.locator("#session-info").get_by_text("default").wait_for()
            yield page
        finally:
            browser.close()
