"""SD-2.1-unCLIP's architecture from its published configs, with random weights (nothing downloaded).

Time and memory do not depend on weight values, so `bench scale` measures the real model's cost with
these. `FULL` is the published architecture; `SCALED` keeps its topology (head counts 5/10/20/20, linear
projection, "projection" class embedding of 2 × the image projection, the normalizer, 23 text and 32
vision layers, an f8 VAE, the 49,408-entry tokenizer) at widths small enough for a CI test.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from pathlib import Path

import torch

VOCAB_SIZE = 49_408  # OpenCLIP's: 512 byte tokens (with and without </w>) + 48,894 merges + 2 specials
WEIGHTED = ("unet", "vae", "text_encoder", "image_encoder")


@dataclass(frozen=True)
class Sd21Spec:
    unet_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    unet_heads: tuple[int, ...] = (5, 10, 20, 20)  # diffusers' attention_head_dim: heads per level here
    unet_sample: int = 96  # latents at the native 768²
    norm_groups: int = 32
    vae_channels: tuple[int, ...] = (128, 256, 512, 512)  # 4 levels: f8
    vae_groups: int = 32
    text_hidden: int = 1024
    text_heads: int = 16
    text_layers: int = 23  # OpenCLIP-H has 24; SD 2.x uses the penultimate layer, so 23 are kept
    vision_hidden: int = 1280
    vision_heads: int = 16
    vision_layers: int = 32
    vision_image: int = 224
    vision_patch: int = 14
    projection_dim: int = 1024  # image and text projection; the class input is 2 × this


FULL = Sd21Spec()
# Same topology, small widths: channels (c, 2c, 4c, 4c) as the full model's, each a multiple of its level's
# head count (5/10/20/20) with at least 8 per head, so T-Attn gets the same head counts too.
SCALED = Sd21Spec(unet_channels=(40, 80, 160, 160), unet_sample=16, norm_groups=8, vae_channels=(8, 16, 32, 32),
                  vae_groups=8, text_hidden=32, vision_hidden=32, vision_image=28, projection_dim=16)


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 bytes (CLIP's base vocabulary, in its order)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def write_tokenizer(folder: Path, max_length: int = 77) -> Path:
    """A made-up CLIP BPE tokenizer of the real shape: 49,408 entries, 48,894 merges (letters only)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _byte_symbols()
    tokens = base + [b + "</w>" for b in base]
    merges: list[tuple[str, str]] = []
    n_merges = VOCAB_SIZE - len(tokens) - 2
    prefixes = list(string.ascii_lowercase)
    while len(merges) < n_merges:  # grow words letter by letter: p+c and p+c</w>, breadth first
        longer = []
        for p in prefixes:
            for c in string.ascii_lowercase:
                for suffix in ("", "</w>"):
                    if len(merges) < n_merges:
                        merges.append((p, c + suffix))
                        tokens.append(p + c + suffix)
                longer.append(p + c)
        prefixes = longer
    vocab = {t: i for i, t in enumerate([*tokens, "<|startoftext|>", "<|endoftext|>"])}
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "do_lower_case": True,
              "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "pad_token": "!"}  # SD 2.x pads with "!"
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def build_components(spec: Sd21Spec = FULL, tokenizer_dir: Path | None = None, seed: int = 0) -> dict:
    """Random components keyed as `StableUnCLIPImg2ImgPipeline` expects, configs as SD-2.1-unCLIP's."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(
        write_tokenizer(tokenizer_dir or Path(tempfile.mkdtemp(prefix="recast-sd21-tok-"))))
    levels = len(spec.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=spec.unet_sample, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        block_out_channels=spec.unet_channels, layers_per_block=2, attention_head_dim=spec.unet_heads,
        cross_attention_dim=spec.text_hidden, norm_num_groups=spec.norm_groups, use_linear_projection=True,
        upcast_attention=True, class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * spec.projection_dim,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        block_out_channels=spec.vae_channels, norm_num_groups=spec.vae_groups,
        sample_size=spec.unet_sample * 2 ** (len(spec.vae_channels) - 1), scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=VOCAB_SIZE, hidden_size=spec.text_hidden, intermediate_size=4 * spec.text_hidden,
        num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads, max_position_embeddings=77,
        projection_dim=spec.projection_dim, hidden_act="gelu", bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads, image_size=spec.vision_image,
        patch_size=spec.vision_patch, projection_dim=spec.projection_dim, hidden_act="gelu", layer_norm_eps=1e-5))
    feature_extractor = CLIPImageProcessor(
        size={"shortest_edge": spec.vision_image},
        crop_size={"height": spec.vision_image, "width": spec.vision_image},
        do_center_crop=True, do_resize=True, do_normalize=True, resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    return dict(
        feature_extractor=feature_extractor, image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=spec.projection_dim),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000),
        tokenizer=tokenizer, text_encoder=text_encoder, unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                                prediction_type="v_prediction", num_train_timesteps=1000),
        vae=vae)


def save_model(components: dict, folder: Path, fp16_variant: bool = True) -> Path:
    """diffusers layout, safetensors; then (converting in place, so memory shrinks) the fp16 variant."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    StableUnCLIPImg2ImgPipeline(**components).save_pretrained(folder, safe_serialization=True)
    if fp16_variant:
        for name in WEIGHTED:
            components[name].half().save_pretrained(folder / name, safe_serialization=True, variant="fp16")
    return folder


def hf_cache_layout(folder: Path, cache_root: Path, repo_id: str = "recast/sd21-unclip-random") -> Path:
    """The Hugging Face cache's layout over `folder`: blobs/ (hard links, or copies across devices),
    snapshots/<hash>/… symlinks to them, refs/main; returns the snapshot folder."""
    import hashlib

    repo = cache_root / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha1("".join(f"{p.relative_to(folder)}:{p.stat().st_size}" for p in files).encode())
    snapshot = repo / "snapshots" / digest.hexdigest()
    for p in files:
        blob = repo / "blobs" / hashlib.sha256(str(p.relative_to(folder)).encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            try:
                os.link(p, blob)
            except OSError:
                import shutil

                shutil.copyfile(p, blob)
        link = snapshot / p.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(digest.hexdigest())
    return snapshot


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
