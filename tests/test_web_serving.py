"""The running page's file route, attacked over plain HTTP: only artifacts, library images and the
page's own cache are sent; traversal, encoded traversal, symlinks, secrets and URLs are refused."""

from __future__ import annotations

import http.client
import io
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.turns import TurnRunner
from memory.library_manifest import LibraryManifest
from memory.library_roots import manifest_path

pytest.importorskip("gradio", reason="the web page needs gradio (pip install -e .)")

SECRET = f"TOP-SECRET-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written: http.client does not normalise `..` or `%2e`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Site:
    port: int
    data: Path
    artifacts: Path
    artifact: Path
    photo: Path
    photos: Path
    config: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from agent.web.app import launch

    root = tmp_path_factory.mktemp("web-site")
    data, photos, config = root / "data", root / "photos", root / "config.toml"
    patch = pytest.MonkeyPatch()
    patch.setenv("MODALGRAPH_DATA_DIR", str(data))
    patch.setenv("MODALGRAPH_CONFIG", str(config))
    # launch() sets these for Gradio; registering them here restores them after the module.
    patch.setenv("GRADIO_TEMP_DIR", str(data / "web-cache"))
    patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    config.write_text(f"# {SECRET}\nmax_steps = 8\n")
    app = AppContext(load_settings(web_max_upload_mb=1))
    app.settings.ensure_data_dir()
    artifact = Path(app.artifacts.put_bytes(png(), ".png", "image/png").path)
    (data / "secret.txt").write_text(SECRET)
    (root / "secret-outside.txt").write_text(SECRET)
    (app.settings.artifacts_dir / "link.png").symlink_to(data / "secret.txt")
    Path(app.artifacts.put_bytes(f"<script>{SECRET}</script>".encode(), ".html", "text/html").path)
    (photos / ".hidden").mkdir(parents=True)
    photo = photos / "cat.png"
    photo.write_bytes(png())
    (photos / "notes.txt").write_text(SECRET)
    (photos / ".hidden" / "cat.png").write_bytes(png())
    LibraryManifest(manifest_path(app.settings)).add_root(str(photos.resolve()))
    runner = TurnRunner(app, ScriptedChatModel(replies=[]))
    runner.checkpointer.conn.execute("CREATE TABLE IF NOT EXISTS secrets (v TEXT)")
    runner.checkpointer.conn.execute("INSERT INTO secrets VALUES (?)", (SECRET,))
    runner.checkpointer.conn.commit()
    port = free_port()
    page = launch(app, runner, "127.0.0.1", port, block=False, quiet=True)
    try:
        yield Site(port, data, app.settings.artifacts_dir, artifact, photo, photos, config)
    finally:
        page.close()
        patch.undo()


def test_an_artifact_and_a_library_photo_are_served(site: Site) -> None:
    for path in (site.artifact, site.photo):
        status, body = get(site.port, f"/gradio_api/file={path}")
        assert status == 200 and body == png(), path


ATTACKS = {
    "etc passwd": "/gradio_api/file=/etc/passwd",
    "dot-dot from the artifact store": "/gradio_api/file={artifacts}/../secret.txt",
    "deep dot-dot to /etc": "/gradio_api/file={artifacts}/ab/../../../../../../../../etc/passwd",
    "encoded dot-dot": "/gradio_api/file={artifacts}/%2e%2e/secret.txt",
    "encoded slashes and dots": "/gradio_api/file={artifacts}%2F%2E%2E%2Fsecret.txt",
    "double-encoded dot-dot": "/gradio_api/file={artifacts}/%252e%252e/secret.txt",
    "deprecated route": "/gradio_api/file/{artifacts}/../secret.txt",
    "the sessions database": "/gradio_api/file={data}/sessions.sqlite",
    "the config file": "/gradio_api/file={config}",
    "a symlink out of the store": "/gradio_api/file={artifacts}/link.png",
    "an html artifact": "/gradio_api/file={html}",
    "a non-image in the library": "/gradio_api/file={photos}/notes.txt",
    "a hidden folder in the library": "/gradio_api/file={photos}/.hidden/cat.png",
    "dot-dot out of the library": "/gradio_api/file={photos}/../secret-outside.txt",
    "a remote url": "/gradio_api/file=http://127.0.0.1:9/secret",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_traversal_and_secrets_are_refused(site: Site, name: str) -> None:
    html = next(site.artifacts.rglob("*.html"))
    path = ATTACKS[name].format(
        artifacts=site.artifacts, data=site.data, config=site.config, photos=site.photos, html=html
    )
    status, body = get(site.port, path)
    assert 400 <= status < 500, (status, body[:200])
    assert SECRET.encode() not in body and b"root:" not in body


def test_gradio_refuses_uploads_over_the_limit(site: Site) -> None:
    boundary = "modalgraphboundary"
    payload = b"\x00" * (2 * 2**20)  # the site allows 1 MB
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/gradio_api/upload",
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        response = conn.getresponse()
        assert response.status == 413, response.read()[:200]
    finally:
        conn.close()
