"""Tiny random-weight diffusers pipelines, saved like the real ones: for tests and the bench.

Each builder makes the same kind of folder a hub download gives (model_index.json plus one
subfolder per component), so the tools load it through the catalogue and `from_pretrained` exactly
as they load Stable Diffusion, Zeroscope or AudioLDM. The configs follow diffusers' own tiny test
components; the weights are random, so the outputs are noise with the right shapes and formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.training.text_to_image import unchecked_sd_pipeline
from agent.training.tiny_llm import TINY_WORDS


def _tokenizer(max_tokens: int) -> Any:
    from agent.training.clip_trainer import build_tokenizer

    return build_tokenizer(TINY_WORDS, max_tokens)


def _clip_text_encoder(vocab_size: int, width: int = 32) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=width * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    return CLIPTextModel(config).eval()


def _vae(channels: int = 3, blocks: tuple[int, ...] = (8, 16), groups: int = 4) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=list(blocks),
        in_channels=channels,
        out_channels=channels,
        down_block_types=["DownEncoderBlock2D"] * len(blocks),
        up_block_types=["UpDecoderBlock2D"] * len(blocks),
        latent_channels=4,
        norm_num_groups=groups,
    )


# The image and the video U-Nets differ only in their block types: 32x32 latents, 4 channels.
TINY_UNET: dict[str, Any] = {
    "block_out_channels": (8, 16),
    "layers_per_block": 1,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 4,
}


def build_tiny_sd(out_dir: Path) -> Path:
    """A StableDiffusionPipeline: 64x64 images from 32x32 latents, no safety checker."""
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    tokenizer = _tokenizer(16)
    unet = UNet2DConditionModel(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **TINY_UNET,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = unchecked_sd_pipeline(_vae(), _clip_text_encoder(len(tokenizer)), tokenizer, unet, scheduler)
    pipe.save_pretrained(out_dir)
    return out_dir


def _tiny_video_components() -> dict[str, Any]:
    import torch
    from diffusers import DDIMScheduler, UNet3DConditionModel

    torch.manual_seed(0)
    tokenizer = _tokenizer(16)
    unet = UNet3DConditionModel(
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        **TINY_UNET,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return {
        "vae": _vae(),
        "text_encoder": _clip_text_encoder(len(tokenizer)),
        "tokenizer": tokenizer,
        "unet": unet,
        "scheduler": scheduler,
    }


def build_tiny_video(out_dir: Path) -> Path:
    """A TextToVideoSDPipeline (Zeroscope's class) at 64x64."""
    from diffusers import TextToVideoSDPipeline

    TextToVideoSDPipeline(**_tiny_video_components()).save_pretrained(out_dir)
    return out_dir


def build_tiny_video_upscale(out_dir: Path) -> Path:
    """A VideoToVideoSDPipeline (Zeroscope XL's class)."""
    from diffusers import VideoToVideoSDPipeline

    VideoToVideoSDPipeline(**_tiny_video_components()).save_pretrained(out_dir)
    return out_dir


def build_tiny_audioldm(out_dir: Path, sampling_rate: int = 16000) -> Path:
    """An AudioLDMPipeline: CLAP text encoder, class-embedding U-Net, 1-channel VAE, HiFi-GAN vocoder.

    The vocoder upsamples 64x, so a mel frame is 4 ms at 16 kHz and a second of sound is 250 frames.
    """
    import torch
    from diffusers import AudioLDMPipeline, DDIMScheduler, UNet2DConditionModel
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(0)
    tokenizer = _tokenizer(16)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(8, 16),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=8,
        class_embeddings_concat=True,
        norm_num_groups=8,
    )
    text_encoder = ClapTextModelWithProjection(
        ClapTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=1,
            max_position_embeddings=32,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            projection_dim=8,
        )
    ).eval()
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=16,
            sampling_rate=sampling_rate,
            upsample_initial_channel=16,
            upsample_rates=[8, 8],
            upsample_kernel_sizes=[16, 16],
            resblock_kernel_sizes=[3, 7],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            normalize_before=False,
        )
    ).eval()
    with torch.no_grad():
        # Random weights give a waveform around 1e-5, which 16-bit PCM rounds to silence.
        vocoder.conv_post.weight.mul_(1e4)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = AudioLDMPipeline(
        vae=_vae(channels=1, blocks=(8, 16), groups=8),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
    )
    pipe.save_pretrained(out_dir)
    return out_dir


BUILDERS = {
    "image-gen": build_tiny_sd,
    "video-gen": build_tiny_video,
    "video-upscale": build_tiny_video_upscale,
    "audio-gen": build_tiny_audioldm,
}


def build_all(root: Path) -> dict[str, Path]:
    """Every tiny pipeline under `root/<catalogue name>`, built once (a folder with model_index.json is kept)."""
    built = {}
    for name, build in BUILDERS.items():
        folder = root / name
        if not (folder / "model_index.json").is_file():
            build(folder)
        built[name] = folder
    return built
