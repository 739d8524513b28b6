"""describe_image: the transformers LLaVA path on a tiny random LLaVA, the llama.cpp GGUF path on a
stand-in, the CLIP zero-shot fall-back on the shapes world, bad inputs, and chains through the graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from agent.context import AppContext
from agent.core.errors import ConfigError, ModelMissingError
from agent.core.settings import load_settings
from agent.llm.scripted import ScriptedChatModel
from agent.planning.plan import Step
from agent.turns import TurnRunner, turn_json
from graphs.executor import run_step
from memory.artifacts import Artifact
from tests.gguf_stub import tiny_gguf
from tests.test_sessions import ROOT, cli_env
from tests.tiny_llava import IMAGE_TOKEN, build_tiny_llava
from tools.context import RunContext
from tools.describe_image import DescribeImageArgs, DescribeImageTool

MAX_POSITIONS = 128
IMAGE_TOKENS = (32 // 8) ** 2  # a 32-pixel image in 8-pixel patches, CLS dropped


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "llava", max_positions=MAX_POSITIONS)


@pytest.fixture(scope="module")
def tiny_llava_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model saved without a chat template: the llava-1.5 prompt format is used."""
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava-plain") / "llava", chat_template=False)


@pytest.fixture
def red_image(tmp_path: Path) -> Path:
    path = tmp_path / "red square.png"
    image = Image.new("RGB", (120, 90), (240, 240, 240))
    image.paste((210, 30, 30), (30, 20, 90, 70))
    image.save(path)
    return path


def vlm_app(monkeypatch: pytest.MonkeyPatch, model: Path, **settings: Any) -> AppContext:
    monkeypatch.setenv("MODALGRAPH_MODEL_VLM", str(model))
    return AppContext(load_settings(device="cpu", **settings))


def describe(app: AppContext, image: Path, question: str | None = None) -> Any:
    ctx = RunContext(app=app, trusted_paths=[image])
    return DescribeImageTool().run(DescribeImageArgs(image=str(image), question=question), ctx)


# ------------------------------------------------------------------ transformers LLaVA


def test_tiny_llava_loads_through_the_catalogue_and_answers(
    tiny_llava: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = vlm_app(monkeypatch, tiny_llava)
    result = describe(app, red_image)
    assert result.data["backend"] == "transformers" and result.data["model"] == str(tiny_llava)
    assert result.text.startswith(f"red square.png ({tiny_llava}, transformers): ")
    assert result.data["question_truncated"] is False
    again = describe(app, red_image, "What colour is it?")
    assert again.text.startswith("Answer to 'What colour is it?' about red square.png")
    assert [k for k in app.model_cache.keys() if k.startswith("vlm:")] == [  # noqa: SIM118 (a ModelCache, not a dict)
        f"vlm:{tiny_llava}:cpu:torch.float32"
    ]
    assert app.model_cache.used("cpu") > 200_000  # its weights count against the memory budget
    # Random weights write gibberish, but never control characters that could drive a terminal.
    assert all(ch.isprintable() or ch in "\n\t" for ch in again.text)


def _image_token_id(vlm: Any) -> int:
    return int(vlm.model.config.image_token_id)


def test_prompt_uses_the_chat_template_with_one_image_of_the_right_size(
    tiny_llava: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.vision.vlm import load_vlm, prepare_inputs

    vlm = load_vlm(vlm_app(monkeypatch, tiny_llava), tiny_llava)
    inputs, used, truncated, new_tokens = prepare_inputs(vlm, Image.open(red_image), "What is red?", 32)
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 32, 32)
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(_image_token_id(vlm)) == IMAGE_TOKENS
    text = vlm.tokenizer.decode([i for i in ids if i != _image_token_id(vlm)])
    assert text == "<|im_start|>user\n\nWhat is red?<|im_end|>\n<|im_start|>assistant\n"
    assert used == "What is red?" and not truncated and new_tokens == 32


def test_a_processor_without_a_template_gets_the_llava_15_prompt(
    tiny_llava_plain: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.vision.vlm import load_vlm, prepare_inputs

    vlm = load_vlm(vlm_app(monkeypatch, tiny_llava_plain), tiny_llava_plain)
    inputs, *_ = prepare_inputs(vlm, Image.open(red_image), "", 16)
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(_image_token_id(vlm)) == IMAGE_TOKENS
    text = vlm.tokenizer.decode([i for i in ids if i != _image_token_id(vlm)])
    assert text == "USER: \nDescribe this image in one or two sentences. ASSISTANT:"


def test_a_long_question_with_image_tokens_in_it_is_cut_to_fit_the_context(
    tiny_llava: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.vision.vlm import load_vlm, prepare_inputs

    app = vlm_app(monkeypatch, tiny_llava, vlm_max_new_tokens=24)
    question = f"What colour {IMAGE_TOKEN} is <|im_end|> the square? " * 5000  # 225,000 characters
    vlm = load_vlm(app, tiny_llava)
    inputs, used, truncated, new_tokens = prepare_inputs(vlm, Image.open(red_image), question, 24)
    ids = inputs["input_ids"][0].tolist()
    assert truncated and new_tokens == 24
    assert len(ids) <= MAX_POSITIONS - new_tokens
    assert len(ids) >= MAX_POSITIONS - new_tokens - 8, "the question was cut far more than needed"
    assert ids.count(_image_token_id(vlm)) == IMAGE_TOKENS  # the typed <image> is not a second image
    assert (
        IMAGE_TOKEN not in used and "<|im_end|>" not in used and used.startswith("What colour is the square?")
    )
    result = describe(app, red_image, question)  # and the whole tool runs: no index error, no crash
    assert result.data["question_truncated"] is True and "only its start was used" in result.text


def test_a_context_too_small_for_the_image_is_a_clear_error(
    tmp_path: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.core.errors import ToolUnavailableError

    model = build_tiny_llava(tmp_path / "short", max_positions=40)
    app = vlm_app(monkeypatch, model)
    with pytest.raises(ToolUnavailableError, match="context \\(40 tokens\\) has no room"):
        describe(app, red_image)


def test_a_vlm_folder_without_a_model_is_a_load_error(
    tmp_path: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.core.errors import ModelLoadError

    (tmp_path / "empty").mkdir()
    app = vlm_app(monkeypatch, tmp_path / "empty")
    with pytest.raises(ModelLoadError, match=r"not a transformers model folder .*MODALGRAPH_MODEL_VLM"):
        describe(app, red_image)


# ------------------------------------------------------------------ llama.cpp GGUF backend


class FakeHandler:
    def __init__(self, clip_model_path: str, verbose: bool = True) -> None:
        self.clip_model_path = clip_model_path


class FakeLlama:
    """Stands in for llama_cpp.Llama (no LLaVA GGUF can be had here): records what it is given."""

    instances: ClassVar[list[FakeLlama]] = []

    def __init__(self, model_path: str, chat_handler: Any, n_ctx: int, **kwargs: Any) -> None:
        self.model_path, self.chat_handler, self._n_ctx = model_path, chat_handler, n_ctx
        self.requests: list[dict[str, Any]] = []
        FakeLlama.instances.append(self)

    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True) -> list[int]:
        return list(text)

    def detokenize(self, tokens: list[int]) -> bytes:
        return bytes(tokens)

    def create_chat_completion(self, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self.requests.append({"messages": messages, **kwargs})
        return {"choices": [{"message": {"content": "A red square.\x1b[2J"}}]}


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> type[FakeLlama]:
    import llama_cpp
    import llama_cpp.llama_chat_format as chat_format

    FakeLlama.instances = []
    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    for name in ("Llava15ChatHandler", "Llava16ChatHandler"):
        monkeypatch.setattr(chat_format, name, type(name, (FakeHandler,), {}))
    return FakeLlama


def _gguf(path: Path) -> Path:
    path.write_bytes(tiny_gguf())
    return path


def test_a_gguf_vlm_runs_through_the_llava_chat_handler_with_its_mmproj(
    tmp_path: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch, fake_llama: type[FakeLlama]
) -> None:
    model = _gguf(tmp_path / "llava-v1.5-7b-Q4_K_M.gguf")
    mmproj = _gguf(tmp_path / "mmproj-model-f16.gguf")
    app = vlm_app(monkeypatch, model, n_ctx=2048, vlm_max_new_tokens=100)
    result = describe(app, red_image, "x" * 5000)
    llama = fake_llama.instances[0]
    assert llama.model_path == str(model)
    assert type(llama.chat_handler).__name__ == "Llava15ChatHandler"
    assert llama.chat_handler.clip_model_path == str(mmproj)
    content = llama.requests[0]["messages"][0]["content"]
    assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
    assert len(content[1]["text"]) == 2048 - 1200 - 100 - 64  # cut to the context left beside the image
    assert llama.requests[0]["max_tokens"] == 100 and llama.requests[0]["temperature"] == 0.0
    assert result.data["backend"] == "llama.cpp" and result.data["question_truncated"] is True
    assert result.text.endswith(
        "A red square.[2J (The question was longer than the model's context allows; only its start was used.)"
    )


def test_a_gguf_vlm_needs_its_mmproj_and_the_handler_is_a_setting(
    tmp_path: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch, fake_llama: type[FakeLlama]
) -> None:
    model = _gguf(tmp_path / "llava.gguf")
    with pytest.raises(ConfigError, match=r"needs its vision projector .*MODALGRAPH_VLM_MMPROJ="):
        describe(vlm_app(monkeypatch, model), red_image)
    with pytest.raises(ConfigError, match=r"MODALGRAPH_VLM_MMPROJ points to .*not a file"):
        describe(vlm_app(monkeypatch, model, vlm_mmproj=tmp_path / "missing.gguf"), red_image)
    projector = _gguf(tmp_path / "elsewhere-projector.gguf")
    app = vlm_app(monkeypatch, model, vlm_mmproj=projector, vlm_chat_handler="llava-1.6")
    describe(app, red_image)
    llama = fake_llama.instances[-1]
    assert type(llama.chat_handler).__name__ == "Llava16ChatHandler"
    assert llama.chat_handler.clip_model_path == str(projector)


def test_a_gguf_that_is_not_one_is_a_load_error(
    tmp_path: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch, fake_llama: type[FakeLlama]
) -> None:
    from agent.core.errors import ModelLoadError

    model = tmp_path / "broken.gguf"
    model.write_bytes(b"<html>not found</html>")
    _gguf(tmp_path / "mmproj.gguf")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        describe(vlm_app(monkeypatch, model), red_image)


# ------------------------------------------------------------------ bad inputs


def test_files_that_are_not_images_are_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODALGRAPH_MODEL_VLM", str(tmp_path / "never-loaded"))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    fake_png = tmp_path / "photo.png"
    fake_png.write_text("this is text with an image name")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = {
        notes: "notes.txt is not an image (text/plain)",
        fake_png: "photo.png cannot be used as an image: not an image",
        empty: "empty.jpg cannot be used as an image: empty file",
        tmp_path / "gone.png": "file not found",
    }
    app = AppContext(load_settings())
    for path, message in cases.items():
        ctx = RunContext(app=app, trusted_paths=[path])
        result = run_step(
            Step(id=1, tool="describe_image", args={"image": str(path)}), DescribeImageTool, {}, ctx
        )
        assert result.status == "failed" and message in (result.error or ""), result.error


def test_no_vlm_and_no_clip_names_both_fixes(red_image: Path) -> None:
    app = AppContext(load_settings())
    with pytest.raises(ModelMissingError) as raised:
        describe(app, red_image)
    message = str(raised.value)
    assert "modalgraph models pull vlm" in message and "modalgraph models pull clip" in message


# ------------------------------------------------------------------ graph chains


def test_describe_an_attached_picture_and_read_the_description_aloud(
    tiny_llava: Path, red_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_speak import needs_piper

    if needs_piper.args[0]:
        pytest.skip(needs_piper.kwargs["reason"])
    app = vlm_app(monkeypatch, tiny_llava, tts_engine="piper")
    plan = {
        "steps": [
            {"id": 1, "tool": "describe_image", "args": {"image": str(red_image)}, "depends_on": []},
            {"id": 2, "tool": "speak", "args": {"text": "<step-1>"}, "depends_on": [1]},
        ]
    }
    llm = ScriptedChatModel(replies=[json.dumps(plan), "Here it is, read aloud."])
    attached = Artifact(path=str(red_image), mime="image/png")
    values = TurnRunner(app, llm).run(
        "chain", "describe this picture and read it aloud", [attached], lambda e: None
    )
    steps = turn_json(values)["steps"]
    assert [s["status"] for s in steps] == ["done", "done"], steps
    assert steps[0]["output"].startswith("red square.png")
    assert steps[1]["artifacts"][0]["mime"] == "audio/wav" and "Spoken by piper" in steps[1]["output"]


def test_chat_attach_then_ask_and_a_text_attachment_fails_clearly(
    tiny_llava: Path, red_image: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting at noon")

    def describe_plan(path: Path) -> dict[str, Any]:
        step = {"id": 1, "tool": "describe_image", "args": {"image": str(path), "question": "What colour?"}}
        return {"steps": [{**step, "depends_on": []}]}

    script = [describe_plan(red_image), "It is red.", describe_plan(notes), "That did not work."]
    env = cli_env(tmp_path, script, "chat")
    env["MODALGRAPH_MODEL_VLM"] = str(tiny_llava)
    chat = subprocess.run(
        [sys.executable, "-m", "agent", "chat", "--session", "look"],
        input=f"/attach {red_image}\nwhat colour is this?\n/attach {notes}\ndescribe it\n/attach nope.png\n",
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert chat.returncode == 0, chat.stderr
    out = " ".join(chat.stdout.split())  # undo rich's line wrapping
    assert "(image/png) for the next message" in out and "(text/plain) for the next message" in out
    assert "step 1 describe_image done" in out
    assert "step 1 describe_image failed" in out and "notes.txt is not an image (text/plain)" in out
    assert "attachment not found: nope.png" in out
    assert "Traceback" not in chat.stderr


# ------------------------------------------------------------------ CLIP zero-shot fall-back


def test_zero_shot_names_the_right_colour_and_shape_well_above_chance(
    shapes_clip_dir: Path, shapes_records: list[dict[str, Any]]
) -> None:
    from agent.vision.clip_encoder import load_clip_dir
    from agent.vision.zero_shot import label_vectors, rank_labels

    encoder = load_clip_dir(shapes_clip_dir)
    labels, _ = label_vectors(encoder)
    # Only the 30 colour-shape labels are spellable by the world's word-level tokenizer.
    assert len(labels) == 30 and {label.kind for label in labels} == {"shape"}
    heldout = [r for r in shapes_records if r["heldout"]]
    images = [Image.open(str(r["path"])).convert("RGB") for r in heldout]
    ranked = rank_labels(encoder, images)
    truth = [f"{r['colour']} {r['shape']}" for r in heldout]
    exact = sum(top[0].label.text == t for top, t in zip(ranked, truth, strict=True)) / len(truth)
    colour = sum(top[0].label.text.split()[0] == t.split()[0] for top, t in zip(ranked, truth, strict=True))
    shape = sum(top[0].label.text.split()[1] == t.split()[1] for top, t in zip(ranked, truth, strict=True))
    print(
        f"zero-shot on {len(truth)} held-out renders: colour+shape {exact:.3f} (chance 1/30), "
        f"colour {colour / len(truth):.3f} (chance 1/6), shape {shape / len(truth):.3f} (chance 1/5)"
    )
    # Chance is 1/30 for colour+shape and 1/6 for colour; 0.2 is six times chance, which 120 random
    # guesses reach with a probability below 1e-12.
    assert exact >= 0.2, exact
    assert colour / len(truth) >= 0.6, colour / len(truth)


def test_without_a_vlm_the_tool_says_it_is_only_a_label_guess(
    library_app: AppContext, shapes_records: list[dict[str, Any]]
) -> None:
    record = next(
        r for r in shapes_records if r["heldout"] and r["colour"] == "red" and r["shape"] == "circle"
    )
    image = Path(str(record["path"]))
    result = describe(library_app, image, "What is the circle doing?")
    assert result.data["backend"] == "clip-zero-shot"
    assert "Label guess only, not a description" in result.text
    assert "I cannot answer 'What is the circle doing?'" in result.text
    assert "modalgraph models pull vlm" in result.text
    labels = result.data["labels"]
    assert (
        len(labels) == 3 and labels[0]["probability"] >= labels[1]["probability"] >= labels[2]["probability"]
    )
    assert labels[0]["label"].startswith("red ")  # colour is what even a small CLIP gets right


def test_search_then_describe_chain_on_the_indexed_world(indexed_world: AppContext) -> None:
    plan = {
        "steps": [
            {"id": 1, "tool": "search_images", "args": {"query": "a blue star", "k": 3}, "depends_on": []},
            {"id": 2, "tool": "describe_image", "args": {"image": "<step-1>"}, "depends_on": [1]},
        ]
    }
    llm = ScriptedChatModel(replies=[json.dumps(plan), "Found one."])
    values = TurnRunner(indexed_world, llm).run(
        "search-describe", "find a blue star and describe it", [], lambda e: None
    )
    steps = turn_json(values)["steps"]
    assert [s["status"] for s in steps] == ["done", "done"], steps
    found = Path(steps[0]["artifacts"][0]["path"])
    assert steps[1]["output"].startswith(found.name)  # it looked at the photo step 1 found
    assert "Label guess only" in steps[1]["output"]
    # Renders are named NNNNN-colour-shape.png: the guess names the colour of the photo it was given.
    colour = found.stem.split("-")[1]
    assert f"Best matches: {colour} " in steps[1]["output"], steps[1]["output"]
