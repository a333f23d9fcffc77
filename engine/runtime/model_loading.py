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
    offloaded: tuple[str, ...] = ()  # components kept on the CPU between calls (CUDA only)
    variant: str = ""  # the weight files' variant read ("fp16" or "": the full-precision files)

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


WEIGHTED = ("unet", "vae", "text_encoder", "image_encoder")
LARGE_NATIVE = 512  # models native at this size or more slice their VAE batches (memory, not results)


def has_fp16_variant(folder: Path) -> bool:
    return all(list((folder / c).glob("*.fp16.safetensors")) for c in WEIGHTED)


def offload_between_calls(module: torch.nn.Module, device: torch.device) -> None:
    """Keep `module` on the CPU and move it to `device` only for each forward call (model CPU offload,
    per component): what the device holds while the UNet works is the UNet."""
    module.to("cpu")
    module.register_forward_pre_hook(lambda mod, args: mod.to(device))

    def back(mod, args, out):
        mod.to("cpu")
        return out

    module.register_forward_hook(back)


def load_model(model: str | os.PathLike | None = None, device: str | None = None,
               dtype: torch.dtype | None = None, offload: bool = False) -> LoadedModel:
    """Load `model` onto `device`. On CUDA: the fp16 variant's files when the folder has them (half the
    bytes read), the text and image encoders stay on the CPU between their (few) calls, and with
    `offload` the VAE's encoder and decoder too (for 8–12 GB cards). On the CPU everything is in RAM
    already, so `offload` changes nothing there."""
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
    variant = "fp16" if dtype in (torch.float16, torch.bfloat16) and has_fp16_variant(folder) else None
    try:
        pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, dtype=dtype, variant=variant)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"could not load {folder}: {str(exc).splitlines()[0]}") from exc
    offloaded = {"text_encoder": pipe.text_encoder, "image_encoder": pipe.image_encoder}
    if offload:
        offloaded.update({"vae.encoder": pipe.vae.encoder, "vae.decoder": pipe.vae.decoder})
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.image_encoder, pipe.image_normalizer):
        module.eval().requires_grad_(False)
        if dev.type != "cuda" or module not in (pipe.text_encoder, pipe.image_encoder):  # encoders: never moved
            module.to(dev)
    if dev.type == "cuda":
        for module in offloaded.values():
            offload_between_calls(module, dev)
    native = int(pipe.unet.config.sample_size) * 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if dev.type == "cuda" or native >= LARGE_NATIVE:
        # one image at a time through the VAE; tiles only above the VAE's sample size, which the working
        # size never exceeds: a safety net for larger inputs, a no-op otherwise
        pipe.vae.enable_slicing()
        pipe.vae.enable_tiling()
    return LoadedModel(
        name=folder.name, folder=folder, unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer, image_encoder=pipe.image_encoder, feature_extractor=pipe.feature_extractor,
        image_normalizer=pipe.image_normalizer, image_noising_scheduler=pipe.image_noising_scheduler,
        scheduler_config=dict(pipe.scheduler.config), device=dev, dtype=dtype,
        offloaded=tuple(offloaded) if dev.type == "cuda" else (), variant=variant or "",
    )


def ddim_schedulers(config: dict, steps: int):
    """DDIM and DDIM-inverse built from the model's own scheduler config, set to `steps`."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    forward = DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)
    inverse = DDIMInverseScheduler.from_config(config, clip_sample=False)
    forward.set_timesteps(steps)
    inverse.set_timesteps(steps)
    return forward, inverse
