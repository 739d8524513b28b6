"""Looking at images with LLaVA-family models through transformers (`AutoModelForImageTextToText`).

The weights come from the catalogue's `vlm` entry (a small llava-hf model on CPU, llava-1.5-7b on
GPU), load on first use and stay in the model cache. When the `vlm` entry points at a `.gguf` file,
`agent.vision.vlm_gguf` runs it through llama.cpp instead (see `describe`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.errors import ModelLoadError, ToolUnavailableError
from agent.models.loading_logs import quiet_transformers
from agent.models.transformers_folder import cached_on_device, loading_folder
from agent.vision.vlm_common import VLM_MODEL, VlmAnswer, clean_question, printable
from agent.vision.vlm_gguf import describe_with_llamacpp

if TYPE_CHECKING:
    from PIL import Image

    from agent.models.host import ModelHost

# The llava-1.5 conversation format, for a processor saved without a chat template.
LLAVA_15_TEMPLATE = "USER: {image}\n{question} ASSISTANT:"


@dataclass
class LoadedVlm:
    model: Any
    processor: Any
    device: str
    dtype: Any
    model_dir: Path

    # What the model cache counts against its memory budget (see devices.module_bytes).
    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def image_token(self) -> str:
        return str(getattr(self.processor, "image_token", None) or "<image>")

    @property
    def max_positions(self) -> int:
        config = self.model.config
        text_config = getattr(config, "text_config", None) or config
        return int(getattr(text_config, "max_position_embeddings", None) or 4096)


def _load(model_dir: Path, device: str, dtype: Any) -> LoadedVlm:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    fix = (
        "run `modalgraph models pull vlm`, or point MODALGRAPH_MODEL_VLM at a LLaVA folder (or a .gguf, with "
        "MODALGRAPH_VLM_MMPROJ)"
    )
    with loading_folder(model_dir, "vlm", fix):
        processor = AutoProcessor.from_pretrained(model_dir)
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise ModelLoadError(f"the vlm at {model_dir} has no image processor and tokenizer to go with it")
    model.to(device).eval()
    return LoadedVlm(model, processor, device, dtype, model_dir)


def load_vlm(app: ModelHost, model_dir: Path) -> LoadedVlm:
    return cached_on_device(app, "vlm", model_dir, _load)


def build_prompt(processor: Any, question: str, image_token: str) -> str:
    """The model's own chat template with one image then the question; llava-1.5's format without one."""
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return str(processor.apply_chat_template(messages, add_generation_prompt=True))
    return LLAVA_15_TEMPLATE.format(image=image_token, question=question)


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _cut_to_tokens(tokenizer: Any, text: str, limit: int) -> str:
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return (
        text if len(ids) <= limit else str(tokenizer.decode(ids[: max(limit, 0)], skip_special_tokens=True))
    )


def prepare_inputs(
    vlm: LoadedVlm, image: Image.Image, question: str, max_new_tokens: int
) -> tuple[Any, str, bool, int]:
    """Processor inputs whose length leaves room for the answer: (inputs, question used, truncated,
    new-token budget). The image's placeholder tokens are never cut; only the question is."""
    reserved = [vlm.image_token, *getattr(vlm.tokenizer, "all_special_tokens", [])]
    question = clean_question(question, reserved)
    limit = vlm.max_positions

    def encode(text: str) -> Any:
        # Quiet: a long question first tokenises past the model's length, and is cut below.
        with quiet_transformers():
            prompt = build_prompt(vlm.processor, text, vlm.image_token)
            return vlm.processor(images=image, text=prompt, return_tensors="pt")

    # One processor call in the common case (the question fits); the image's token count comes from
    # the processor itself, since some families expand an image by its size.
    inputs = encode(question)
    total = int(inputs.input_ids.shape[1])
    fixed = total - _token_count(vlm.tokenizer, question)  # template and image placeholders
    room = limit - fixed
    if room < 16:
        raise ToolUnavailableError(
            f"the vlm's context ({limit} tokens) has no room for a question next to one image ({fixed} tokens)"
        )
    new_tokens = max(8, min(max_new_tokens, room // 2))
    if total <= limit - new_tokens:
        return inputs, question, False, new_tokens
    used = _cut_to_tokens(vlm.tokenizer, question, room - new_tokens)
    truncated = True
    inputs = encode(used)
    # Tokenising the cut text again can merge differently at the cut: trim until it fits.
    while inputs.input_ids.shape[1] > limit - new_tokens and used:
        overflow = int(inputs.input_ids.shape[1]) - (limit - new_tokens)
        used = _cut_to_tokens(vlm.tokenizer, used, _token_count(vlm.tokenizer, used) - overflow - 1)
        inputs = encode(used)
    return inputs, used, truncated, new_tokens


def _cancel_criteria(cancelled: Any) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), bool(cancelled()), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([Cancelled()])


def _pad_id(tokenizer: Any) -> int | None:
    pad = getattr(tokenizer, "pad_token_id", None)
    return pad if pad is not None else getattr(tokenizer, "eos_token_id", None)


def describe_with_transformers(
    app: ModelHost, model_dir: Path, image: Image.Image, question: str | None, cancelled: Any = lambda: False
) -> VlmAnswer:
    import torch

    started = time.perf_counter()
    vlm = load_vlm(app, model_dir)
    inputs, used, truncated, new_tokens = prepare_inputs(
        vlm, image, question or "", app.settings.vlm_max_new_tokens
    )
    inputs = inputs.to(vlm.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(vlm.dtype)
    with torch.inference_mode():
        output = vlm.model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            do_sample=False,
            stopping_criteria=_cancel_criteria(cancelled),
            pad_token_id=_pad_id(vlm.tokenizer),
        )
    prompt_length = inputs["input_ids"].shape[1]
    text = printable(str(vlm.processor.decode(output[0, prompt_length:], skip_special_tokens=True)))
    return VlmAnswer(
        text=text,
        backend="transformers",
        model=app.catalogue.model_id(VLM_MODEL),
        seconds=time.perf_counter() - started,
        question=used,
        truncated=truncated,
    )


def describe(
    app: ModelHost, image: Image.Image, question: str | None, cancelled: Any = lambda: False
) -> VlmAnswer:
    """Run the configured vlm on one image. Raises ModelMissingError when no vlm weights are present."""
    weights = Path(app.catalogue.resolve(VLM_MODEL))
    if weights.is_file() and weights.suffix.lower() == ".gguf":
        return describe_with_llamacpp(app, weights, image, question)
    return describe_with_transformers(app, weights, image, question, cancelled)
