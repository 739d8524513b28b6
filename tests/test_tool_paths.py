"""The shared path guard: a path from the LLM is read only inside the library roots or the artifact
store; paths the user attached are trusted. Checked directly, through RunContext, and through every
tool that reads a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import ToolInputError
from agent.core.settings import load_settings
from agent.planning.plan import Step
from graphs.executor import run_step
from tools.context import RunContext
from tools.paths import resolve_tool_path
from tools.registry import ToolRegistry


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """library/sub/cat.png inside the root; outside/secret.png and a look-alike folder outside it."""
    library = tmp_path / "library"
    (library / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    lookalike = tmp_path / "library-evil"
    lookalike.mkdir()
    cat = library / "sub" / "cat.png"
    secret = outside / "secret.png"
    for path in (cat, secret, lookalike / "x.png"):
        Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    (library / "escape.png").symlink_to(secret)
    (library / "linked-dir").symlink_to(outside, target_is_directory=True)
    (outside / "into-library.png").symlink_to(cat)
    return {"library": library, "outside": outside, "cat": cat, "secret": secret, "lookalike": lookalike}


def test_inside_the_root_is_accepted_with_dotdot_that_stays_inside(tree: dict[str, Path]) -> None:
    roots = [tree["library"]]
    assert resolve_tool_path(tree["cat"], roots) == tree["cat"].resolve()
    assert resolve_tool_path(f"{tree['library']}/sub/../sub/cat.png", roots) == tree["cat"].resolve()


@pytest.mark.parametrize(
    "raw",
    [
        "/etc/passwd",
        "{library}/../outside/secret.png",
        "{library}/sub/../../outside/secret.png",
        "{library}/escape.png",  # a symlink inside the root to a file outside it
        "{library}/linked-dir/secret.png",  # a symlinked folder inside the root
        "{lookalike}/x.png",  # a sibling whose name starts with the root's
        "{secret}",
    ],
)
def test_outside_the_roots_is_refused(tree: dict[str, Path], raw: str) -> None:
    path = raw.format(library=tree["library"], lookalike=tree["lookalike"], secret=tree["secret"])
    with pytest.raises(ToolInputError, match=r"refused to read .*outside the image library"):
        resolve_tool_path(path, [tree["library"]])


def test_a_symlink_from_outside_that_lands_inside_is_judged_by_its_target(tree: dict[str, Path]) -> None:
    assert resolve_tool_path(tree["outside"] / "into-library.png", [tree["library"]]) == tree["cat"]


def test_relative_and_home_paths_are_resolved_before_the_check(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree["library"] / "sub")
    assert resolve_tool_path("cat.png", [tree["library"]]) == tree["cat"]
    with pytest.raises(ToolInputError, match="refused"):
        resolve_tool_path("../../outside/secret.png", [tree["library"]])
    monkeypatch.setenv("HOME", str(tree["outside"]))
    with pytest.raises(ToolInputError, match="refused"):
        resolve_tool_path("~/secret.png", [tree["library"]])


def test_trusted_attachments_are_read_wherever_they_are(tree: dict[str, Path]) -> None:
    assert resolve_tool_path(tree["secret"], [tree["library"]], trusted=[tree["secret"]]) == tree["secret"]
    # Trust covers that file, not its folder.
    with pytest.raises(ToolInputError, match="refused"):
        resolve_tool_path(tree["outside"] / "into-library.png", [], trusted=[tree["secret"]])


def test_missing_files_and_folders_inside_the_root_are_clear_errors(tree: dict[str, Path]) -> None:
    with pytest.raises(ToolInputError, match="file not found"):
        resolve_tool_path(tree["library"] / "nope.png", [tree["library"]])
    with pytest.raises(ToolInputError, match="not a file"):
        resolve_tool_path(tree["library"] / "sub", [tree["library"]])
    with pytest.raises(ToolInputError, match="empty file path"):
        resolve_tool_path("  ", [tree["library"]])


@pytest.fixture
def app(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> AppContext:
    app = AppContext(load_settings())
    monkeypatch.setattr(AppContext, "library_roots", lambda self: [tree["library"]])
    return app


def test_run_context_allows_library_artifacts_and_attachments_only(
    app: AppContext, tree: dict[str, Path]
) -> None:
    made = app.artifacts.put_bytes(b"\x89PNG fake", ".png", "image/png")
    ctx = RunContext(app=app, trusted_paths=[tree["secret"]])
    assert ctx.resolve_path(tree["cat"]) == tree["cat"]
    assert ctx.resolve_path(made.path) == Path(made.path).resolve()
    assert ctx.resolve_path(str(tree["secret"])) == tree["secret"]
    escape = f"{app.settings.artifacts_dir}/../../outside/secret.png"
    with pytest.raises(ToolInputError, match="refused"):
        RunContext(app=app).resolve_path(escape)
    with pytest.raises(ToolInputError, match="refused"):
        RunContext(app=app).resolve_path(tree["secret"])


def _file_tools() -> list[tuple[str, str]]:
    registry = ToolRegistry.default()
    pairs = [(name, field) for name in registry.names() for field in registry.get(name).artifact_inputs]
    assert ("describe_image", "image") in pairs and ("search_images", "image") in pairs
    return pairs


@pytest.mark.parametrize(("tool", "field"), _file_tools())
@pytest.mark.parametrize("raw", ["/etc/passwd", "{library}/../outside/secret.png", "{library}/escape.png"])
def test_every_tool_that_reads_a_file_refuses_paths_outside(
    app: AppContext, tree: dict[str, Path], tool: str, field: str, raw: str
) -> None:
    tool_cls = app.registry.get(tool)
    path = raw.format(library=tree["library"])
    result = run_step(Step(id=1, tool=tool, args={field: path}), tool_cls, {}, RunContext(app=app))
    assert result.status == "failed"
    assert result.error and result.error.startswith(f"refused to read {path}"), result.error
    assert "modalgraph index FOLDER" in result.error


def test_the_guard_sees_the_indexed_roots_without_a_patch(tmp_path: Path) -> None:
    """Sanity check of the unpatched wiring: with nothing indexed, only the artifact store is allowed."""
    app = AppContext(load_settings())
    assert app.library_roots() == []
    with pytest.raises(ToolInputError, match="refused"):
        RunContext(app=app).resolve_path(os.devnull)
