"""Loads an SD-unCLIP model folder offline, safetensors only, and swaps PNDM for DDIM.

The shipped `shapes` model and a real SD-2.1-unCLIP folder go through exactly this code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import ModelError

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # its torchvision fallback notice is noise here

SHIPPED_MODELS_DIR = Path(__file__).parents[1] / "models"
DEFAULT_MODEL = "shapes"
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "image_encoder", "feature_extractor",
            "image_normalizer", "image_noising_scheduler", "scheduler")


@dataclass
class LoadedModel:
    """The components the stages use, already on `device` in `dtype`, in eval mode."""

    name: str
    folder: Path
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    image_encoder: torch.nn.Module
    feature_extractor: object
    image_normalizer: torch.nn.Module
    image_noising_scheduler: object
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def downsample(self) -> int:
        """Total pixel downsampling: the working size must be a multiple of this."""
        return self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale


def resolve_model_folder(model: str | os.PathLike | None) -> Path:
    """A folder path, a shipped model name, or a Hugging Face cache id (`org/name`), offline."""
    name = str(model) if model is not None else DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    shipped = SHIPPED_MODELS_DIR / name
    if shipped.is_dir():
        return shipped
    if "/" in name and not path.exists():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - any miss in the offline cache is the same user error
            raise ModelError(f"model '{name}' is not a folder and not in the local Hugging Face cache "
                             f"(offline): download it elsewhere and pass its folder to --model") from exc
    raise ModelError(f"model '{name}' not found: pass a diffusers SD-unCLIP folder or one of "
                     f"{sorted(p.name for p in SHIPPED_MODELS_DIR.glob('*') if p.is_dir()) or ['(none shipped)']}")


def check_model_folder(folder: Path) -> dict:
    """Refuse anything but an SD-unCLIP diffusers layout with safetensors weights."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelError(f"{folder} has no model_index.json: not a diffusers model folder")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{index_path} is not valid JSON ({exc.msg})") from exc
    if "UnCLIP" not in str(index.get("_class_name", "")):
        raise ModelError(f"{folder} is a {index.get('_class_name')!r} model; Recast needs an SD-unCLIP "
                         f"layout (StableUnCLIPImg2ImgPipeline)")
    missing = [c for c in REQUIRED if c not in index or not (folder / c).is_dir()]
    if missing:
        raise ModelError(f"{folder} lacks SD-unCLIP components: {', '.join(missing)}")
    pickles = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(f"{folder} holds pickle weights ({pickles[0]}); Recast loads safetensors only: "
                         f"convert them to .safetensors")
    for comp in ("unet", "vae", "text_encoder", "image_encoder"):
        if not list((folder / comp).glob("*.safetensors")):
            raise ModelError(f"{folder / comp} has no .safetensors weights")
    return index


def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """CPU fp32 by default; CUDA in bf16 (fp16 where bf16 is missing)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


def load_model(model: str | os.PathLike | None = None, device: str | None = None,
               dtype: torch.dtype | None = None) -> LoadedModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = resolve_model_folder(model)
    check_model_folder(folder)
    from diffusers import StableUnCLIPImg2ImgPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    dev, default_dtype = pick_device(device)
    dtype = dtype or default_dtype
    try:
        pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"could not load {folder}: {str(exc).splitlines()[0]}") from exc
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.image_encoder, pipe.image_normalizer):
        module.to(dev).eval().requires_grad_(False)
    if dev.type == "cuda":
        pipe.vae.enable_slicing()
    return LoadedModel(
        name=folder.name, folder=folder, unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer, image_encoder=pipe.image_encoder, feature_extractor=pipe.feature_extractor,
        image_normalizer=pipe.image_normalizer, image_noising_scheduler=pipe.image_noising_scheduler,
        scheduler_config=dict(pipe.scheduler.config), device=dev, dtype=dtype,
    )


def ddim_schedulers(config: dict, steps: int):
    """DDIM and DDIM-inverse built from the model's own scheduler config, set to `steps`."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    forward = DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)
    inverse = DDIMInverseScheduler.from_config(config, clip_sample=False)
    forward.set_timesteps(steps)
    inverse.set_timesteps(steps)
    return forward, inverse
