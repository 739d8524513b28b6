"""`modalgraph index` / `modalgraph search` and the search_images tool, end to end on the shapes world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.context import AppContext
from agent.core.errors import ToolInputError
from tests.cli_runner import run_cli
from tools.context import RunContext
from tools.search_images import SearchImagesArgs, SearchImagesTool


@pytest.fixture
def world_env(shapes_clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_CLIP", str(shapes_clip_dir))
    monkeypatch.setenv("MODALGRAPH_DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def small_library(shapes_world: Path, tmp_path: Path) -> Path:
    """30 held-out renders (one of each colour and shape) plus one unreadable file."""
    folder = tmp_path / "my photos"
    folder.mkdir()
    for source in sorted((shapes_world / "heldout").iterdir())[::4]:
        shutil.copy2(source, folder / source.name)
    (folder / "broken.png").write_text("not a png")
    return folder


def test_index_then_status_then_search(
    world_env: None,
    small_library: Path,
    shapes_world: Path,
    shapes_clip_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run_cli(["index", str(small_library)], capsys, monkeypatch)
    assert code == 0, err
    assert "30 new or changed images indexed" in out
    assert "images/s" in out
    assert "skipped 1 unreadable file" in out and "broken.png: not an image" in out

    code, out, _ = run_cli(["index"], capsys, monkeypatch)
    assert code == 0 and "0 new or changed images indexed" in out and "30 unchanged" in out

    code, out, _ = run_cli(["index", "--status"], capsys, monkeypatch)
    assert code == 0
    assert str(small_library.resolve()) in out
    assert str(shapes_clip_dir) in out and "30 vectors" in out
    assert "embedded Chroma" in out
    row = next(line for line in out.splitlines() if "my photos" in line)
    assert "30" in row and "1" in row and "20" in row  # files, skipped, a date in 20xx

    # The library holds one red circle: the other nearest renders are not red circles, so they are
    # not presented as results.
    code, out, _ = run_cli(["search", "a red circle", "-k", "3"], capsys, monkeypatch)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    score, _size, unit, dims, taken, path = lines[0].split(maxsplit=5)
    assert float(score) > 0 and unit in ("B", "KB") and dims == "96x96"
    assert taken.endswith("~")  # no EXIF date: the file's date, marked as a guess
    assert "red-circle" in Path(path.strip()).name

    code, out, _ = run_cli(["search", "a blue star", "--json", "-k", "2"], capsys, monkeypatch)
    assert code == 0
    payload = json.loads(out)
    assert list(payload) == ["results", "no_match", "closest"] and len(payload["results"]) == 1
    assert {"path", "score", "taken", "place", "camera"} <= set(payload["results"][0])
    assert "blue-star" in payload["results"][0]["path"] and payload["no_match"] is False

    # Another render of a green triangle, not in the library: its one green triangle should rank high.
    in_library = {p.name for p in small_library.iterdir()}
    example = next(
        p for p in sorted((shapes_world / "heldout").glob("*-green-triangle.png")) if p.name not in in_library
    )
    code, out, _ = run_cli(["search", "--image", str(example), "--json", "-k", "3"], capsys, monkeypatch)
    assert code == 0
    assert any("green-triangle" in item["path"] for item in json.loads(out)["results"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search"], "give search text"),
        (["search", "a cat", "--image", "x.png"], "image not found: x.png"),
        (["search", "a red circle"], "modalgraph index FOLDER"),
        (["index", "/definitely/not/here"], "folder not found"),
        (["index", "--status", "/tmp"], "one at a time"),
    ],
)
def test_cli_errors_are_one_line(
    world_env: None,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _out, err = run_cli(args, capsys, monkeypatch)
    assert code != 0
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_status_before_anything_was_indexed(
    world_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["index", "--status"], capsys, monkeypatch)
    assert code == 0 and "no folders indexed yet" in out


# ----------------------------------------------------------------------------- the tool


def test_tool_arguments_are_checked() -> None:
    assert SearchImagesArgs(query="a red circle").k == 5
    assert SearchImagesArgs(image="<step-1>", k=50).image == "<step-1>"
    composed = SearchImagesArgs(query="at night", image="a.jpg", without=["people"])
    assert composed.without == ["people"]
    # The filters' own words leave the CLIP query; a query that was nothing else goes.
    assert SearchImagesArgs(query="food in Italy", place="italy").query == "food"
    assert SearchImagesArgs(query="my photos from Rome", place="Rome").query is None
    assert SearchImagesArgs(query="Rome", place="Rome", without=["people"]).query == "Rome"
    by_date = SearchImagesArgs(date_from="2019", date_to="2019-06").filters()
    assert (str(by_date.start), str(by_date.end)) == ("2019-01-01", "2019-06-30")
    for bad in (
        {},
        {"without": ["people"]},
        {"query": "x", "without": [" "]},
        {"date_from": "2019-13-01"},
        {"date_from": "2020", "date_to": "2019"},
        {"place": "Lisbon", "orientation": "diagonal"},
        {"query": "x", "k": 0},
        {"query": "x", "k": 51},
        {"qurey": "x"},
    ):
        with pytest.raises(ValidationError):
            SearchImagesArgs(**bad)
    assert SearchImagesTool.artifact_inputs == ("image",)
    assert (
        "OWN photo library" in SearchImagesTool.description
        and "never for creating" in SearchImagesTool.description
    )


def test_tool_finds_photos_by_text(indexed_world: AppContext) -> None:
    result = SearchImagesTool().run(SearchImagesArgs(query="a red circle", k=3), RunContext(indexed_world))
    assert len(result.artifacts) == 3
    assert result.artifacts[0].mime == "image/png" and "red-circle" in result.artifacts[0].path
    assert isinstance(result.artifacts[0].meta["score"], float)
    first = result.data["results"][0]
    assert (first["path"], first["score"]) == (result.artifacts[0].path, result.artifacts[0].meta["score"])
    assert result.artifacts[0].path in result.text


def test_tool_by_image_accepts_library_and_attached_files_but_not_others(
    indexed_world: AppContext, heldout_folder: Path, tmp_path: Path
) -> None:
    tool = SearchImagesTool()
    in_library = next(heldout_folder.glob("*-yellow-square.png"))
    result = tool.run(SearchImagesArgs(image=str(in_library), k=2), RunContext(indexed_world))
    assert "yellow-square" in result.artifacts[0].path

    attachment = tmp_path / "attached.png"
    shutil.copy2(in_library, attachment)
    with pytest.raises(ToolInputError, match="outside the image library"):
        tool.run(SearchImagesArgs(image=str(attachment)), RunContext(indexed_world))
    result = tool.run(
        SearchImagesArgs(image=str(attachment)), RunContext(indexed_world, trusted_paths=[attachment])
    )
    assert "yellow-square" in result.artifacts[0].path

    with pytest.raises(ToolInputError, match="outside the image library"):
        tool.run(SearchImagesArgs(image="/etc/passwd"), RunContext(indexed_world))
    with pytest.raises(ToolInputError, match="produced no image"):
        tool.run(SearchImagesArgs(image="<step-2>"), RunContext(indexed_world))


def test_tool_is_registered_for_the_planner() -> None:
    from tools.registry import ToolRegistry

    registry = ToolRegistry.default()
    assert registry.get("search_images") is SearchImagesTool
    assert "search_images" in registry.available()


@pytest.mark.real_llm
@pytest.mark.slow
def test_chat_turn_plans_search_and_shows_the_matches(
    real_planner: Path,
    world_env: None,
    small_library: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's check: "show me pictures of a red circle" goes through the real planner to
    search_images, and the answer carries the matching photos of the library."""
    code, _out, err = run_cli(["index", str(small_library)], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run_cli(["ask", "show me pictures of a red circle", "--json"], capsys, monkeypatch)
    assert code == 0, err
    turn = json.loads(out)
    tools = [step["tool"] for step in turn["plan"]["steps"]]
    assert tools == ["search_images"], turn["plan"]
    step = turn["steps"][0]
    assert step["status"] == "done", step
    paths = [Path(a["path"]) for a in turn["answer"]["artifacts"]]
    assert paths and all(p.parent == small_library.resolve() for p in paths), paths
    assert "red-circle" in paths[0].name, paths
