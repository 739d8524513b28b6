"""A tiny LLaVA with random weights, built from configs and saved like a hub checkpoint.

No LLaVA weights can be assumed in tests or CI, so the transformers path (catalogue folder ->
AutoProcessor + AutoModelForImageTextToText -> chat template -> image tokens -> generate) is run
on this model instead. Its text is gibberish: it tests plumbing, not meaning.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN]
# The llava-interleave-qwen chat format (the cpu profile's default vlm), reduced to what we send.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "a red circle on a white background",
    "what colour is the shape in this picture?",
    "describe this image in one or two sentences.",
    "a photo of a cat sitting on a sofa",
]


def build_tiny_llava(
    out: Path,
    max_positions: int = 128,
    image_side: int = 32,
    patch: int = 8,
    chat_template: bool = True,
    seed: int = 0,
) -> Path:
    """Save a LlavaForConditionalGeneration (CLIP vision tower, Qwen2 text model) and its processor."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=max_positions,
    )
    images = CLIPImageProcessor(
        size={"shortest_edge": image_side}, crop_size={"height": image_side, "width": image_side}
    )
    processor = LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE if chat_template else None,
        # The CLIP tower's CLS token, which the "default" strategy then drops again.
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_side,
        patch_size=patch,
        projection_dim=32,
    )
    text = Qwen2Config(
        vocab_size=core.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(image_side // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
