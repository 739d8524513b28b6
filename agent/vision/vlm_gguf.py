"""LLaVA-family GGUF models through llama.cpp's multimodal chat handlers (the second vlm backend).

Chosen when the `vlm` entry points at a `.gguf` file. Such a model needs its vision projector
(`mmproj-*.gguf`): MODALGRAPH_VLM_MMPROJ names it, or the one mmproj file beside the model is used.
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ConfigError, ModelLoadError, one_line
from agent.models.sources import has_gguf_magic
from agent.vision.vlm_common import DEFAULT_QUESTION, VlmAnswer, clean_question, printable

if TYPE_CHECKING:
    from PIL import Image

    from agent.models.host import ModelHost

# settings.vlm_chat_handler -> the llama_cpp.llama_chat_format class that formats that family's prompt.
CHAT_HANDLERS: dict[str, str] = {
    "llava-1.5": "Llava15ChatHandler",
    "llava-1.6": "Llava16ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
}
# llava-1.5 turns one image into 576 tokens; later families use more, so leave generous room.
IMAGE_TOKEN_ALLOWANCE = 1200
MAX_IMAGE_SIDE = 1024


def find_mmproj(setting: Path | None, model: Path) -> Path:
    if setting is not None:
        if not setting.is_file():
            raise ConfigError(f"MODALGRAPH_VLM_MMPROJ points to {setting}, which is not a file")
        return setting
    beside = sorted(p for p in model.parent.glob("*.gguf") if "mmproj" in p.name.lower() and p != model)
    if len(beside) == 1:
        return beside[0]
    found = f"{len(beside)} mmproj files beside it" if beside else "no mmproj file beside it"
    raise ConfigError(
        f"the vlm GGUF {model} needs its vision projector ({found}); "
        "set MODALGRAPH_VLM_MMPROJ=/path/to/mmproj.gguf"
    )


def image_data_uri(image: Image.Image) -> str:
    """The image as a PNG data URI, shrunk to at most MAX_IMAGE_SIDE (the projector resizes anyway)."""
    copy = image.copy()
    copy.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buffer = io.BytesIO()
    copy.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _load(app: ModelHost, model: Path, mmproj: Path) -> Any:
    import llama_cpp.llama_chat_format as chat_format
    from llama_cpp import Llama

    for path in (model, mmproj):
        if not has_gguf_magic(path):
            raise ModelLoadError(
                f"{path} is not a GGUF file (bad magic); point MODALGRAPH_MODEL_VLM at a .gguf"
            )
    settings = app.settings
    handler_class = getattr(chat_format, CHAT_HANDLERS[settings.vlm_chat_handler])
    try:
        handler = handler_class(clip_model_path=str(mmproj), verbose=False)
        return Llama(
            model_path=str(model),
            chat_handler=handler,
            n_ctx=max(settings.n_ctx, IMAGE_TOKEN_ALLOWANCE + 512),
            n_threads=settings.n_threads or os.cpu_count() or 1,
            n_gpu_layers=settings.n_gpu_layers,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"cannot load the vlm GGUF {model} with {mmproj.name}: {one_line(exc)}"
        ) from None


def describe_with_llamacpp(
    app: ModelHost, model: Path, image: Image.Image, question: str | None
) -> VlmAnswer:
    started = time.perf_counter()
    mmproj = find_mmproj(app.settings.vlm_mmproj, model)
    key = f"vlm-gguf:{model}:{mmproj}:{app.settings.vlm_chat_handler}"
    # llama.cpp manages its own memory; the file size is what it maps.
    size = model.stat().st_size + mmproj.stat().st_size
    llama = app.model_cache.get(key, lambda: _load(app, model, mmproj), "cpu", nbytes=size)
    text = clean_question(question, ["<image>"]) or DEFAULT_QUESTION
    new_tokens = app.settings.vlm_max_new_tokens
    budget = max(16, int(llama.n_ctx()) - IMAGE_TOKEN_ALLOWANCE - new_tokens - 64)
    tokens = llama.tokenize(text.encode("utf-8"), add_bos=False)
    truncated = len(tokens) > budget
    if truncated:
        text = llama.detokenize(tokens[:budget]).decode("utf-8", errors="ignore")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_data_uri(image)}},
                {"type": "text", "text": text},
            ],
        }
    ]
    reply = llama.create_chat_completion(messages=messages, max_tokens=new_tokens, temperature=0.0)
    answer = printable(str(reply["choices"][0]["message"]["content"] or ""))
    return VlmAnswer(
        text=answer,
        backend="llama.cpp",
        model=f"{model.name} + {mmproj.name}",
        seconds=time.perf_counter() - started,
        question=text,
        truncated=truncated,
    )
