"""Builds SD-unCLIP-shaped models from scratch: the tiny random test model and the `shapes` model.

Both are saved in exact `StableUnCLIPImg2ImgPipeline` diffusers layout (safetensors) and loaded back
through `engine.runtime.model_loading`, the same path real SD-2.1-unCLIP weights take.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.shapes_world.tokenizer_build import write_clip_tokenizer
from engine.shapes_world.vocabulary import words


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of every component. `image_size` is the model's native pixel size."""

    image_size: int = 32
    vae_channels: tuple[int, ...] = (16, 32)
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (16, 32)
    unet_down: tuple[str, ...] = ("CrossAttnDownBlock2D", "DownBlock2D")
    unet_up: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D")
    unet_heads: int = 2
    layers_per_block: int = 1
    norm_groups: int = 8
    text_hidden: int = 32
    text_layers: int = 2
    text_max_length: int = 16
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_patch: int = 4
    vision_image_size: int = 32
    projection_dim: int = 16
    prediction_type: str = "v_prediction"
    # "scale_shift": the time+class embedding scales and shifts each ResNet's normalised features
    # (a per-channel gain the image embedding can use) instead of adding a bias before the norm.
    unet_time_scale_shift: str = "default"
    # SD sets this so latents have about unit variance; the inversion bound depends on it.
    vae_scaling_factor: float = 1.0


TINY = ModelSpec()


def load_spec(path: Path) -> ModelSpec:
    """A `ModelSpec` from a `recast_spec.json` (what training writes beside a model)."""
    import json

    data = json.loads(Path(path).read_text())
    known = set(ModelSpec.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown spec fields {unknown}")
    return ModelSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_components(spec: ModelSpec = TINY, seed: int = 0, tokenizer_dir: Path | None = None) -> dict:
    """Random-initialised components, keyed as `StableUnCLIPImg2ImgPipeline` expects."""
    from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    tok_dir = tokenizer_dir or Path(tempfile.mkdtemp(prefix="recast-tok-"))
    write_clip_tokenizer(words(), tok_dir, spec.text_max_length)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        block_out_channels=spec.vae_channels,
        latent_channels=spec.latent_channels,
        norm_num_groups=spec.norm_groups,
        sample_size=spec.image_size,
        layers_per_block=1,
        scaling_factor=spec.vae_scaling_factor,
    )
    vae_scale = 2 ** (len(spec.vae_channels) - 1)
    unet = UNet2DConditionModel(
        sample_size=spec.image_size // vae_scale,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        down_block_types=spec.unet_down,
        up_block_types=spec.unet_up,
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.layers_per_block,
        cross_attention_dim=spec.text_hidden,
        attention_head_dim=spec.unet_heads,
        norm_num_groups=spec.norm_groups,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * spec.projection_dim,
        resnet_time_scale_shift=spec.unet_time_scale_shift,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_hidden * 4,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=max(1, spec.text_hidden // 16),
            max_position_embeddings=spec.text_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_hidden * 4,
            num_hidden_layers=spec.vision_layers,
            num_attention_heads=max(1, spec.vision_hidden // 16),
            image_size=spec.vision_image_size,
            patch_size=spec.vision_patch,
            projection_dim=spec.projection_dim,
        )
    )
    feature_extractor = CLIPImageProcessor(
        size={"shortest_edge": spec.vision_image_size},
        crop_size={"height": spec.vision_image_size, "width": spec.vision_image_size},
        do_center_crop=True,
        do_resize=True,
        do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    image_normalizer = StableUnCLIPImageNormalizer(embedding_dim=spec.projection_dim)
    image_noising_scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=spec.prediction_type,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
        num_train_timesteps=1000,
    )
    return dict(
        feature_extractor=feature_extractor,
        image_encoder=image_encoder,
        image_normalizer=image_normalizer,
        image_noising_scheduler=image_noising_scheduler,
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=scheduler,
        vae=vae,
    )


def save_unclip_folder(components: dict, folder: str | Path) -> Path:
    """Save components in diffusers layout with safetensors weights only."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    folder = Path(folder)
    pipe = StableUnCLIPImg2ImgPipeline(**components)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_model(folder: str | Path, seed: int = 0, spec: ModelSpec = TINY) -> Path:
    """A tiny random SD-unCLIP checkpoint for tests and `recast-engine tiny-model`."""
    folder = Path(folder)
    comps = build_components(spec, seed=seed, tokenizer_dir=folder / "tokenizer")
    save_unclip_folder(comps, folder)
    (folder / "recast_spec.json").write_text(__import__("json").dumps(asdict(spec), indent=2))
    return folder


def add_arguments(parser) -> None:
    parser.add_argument("out", help="folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from engine.errors import InputError

    out = Path(args.out)
    if out.exists():
        raise InputError("out", f"{out} exists; choose a new folder")
    build_tiny_model(out, seed=args.seed)
    print(f"tiny SD-unCLIP model written to {out}")
    return 0
