"""Text and image conditioning, built exactly as StableUnCLIPImg2ImgPipeline builds it."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from engine.runtime.model_loading import LoadedModel


@dataclass
class Conditioning:
    """What one UNet branch is conditioned on, per frame."""

    text: torch.Tensor  # (frames, tokens, dim)
    class_labels: torch.Tensor  # (frames, 2 * projection_dim)

    def cat(self, other: Conditioning) -> Conditioning:
        return Conditioning(torch.cat([self.text, other.text]), torch.cat([self.class_labels, other.class_labels]))


@torch.no_grad()
def encode_text(model: LoadedModel, prompt: str) -> torch.Tensor:
    """(1, tokens, dim) last hidden state of the text encoder."""
    tok = model.tokenizer(prompt, padding="max_length", max_length=model.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt")
    return model.text_encoder(tok.input_ids.to(model.device))[0].to(model.dtype)


@torch.no_grad()
def encode_images(model: LoadedModel, images: list[np.ndarray] | np.ndarray, batch: int = 16) -> torch.Tensor:
    """(n, projection_dim) CLIP image embeddings of RGB uint8 images."""
    out = []
    for i in range(0, len(images), batch):
        pil = [Image.fromarray(np.asarray(im)) for im in images[i : i + batch]]
        pixels = model.feature_extractor(images=pil, return_tensors="pt").pixel_values
        out.append(model.image_encoder(pixels.to(model.device, model.dtype)).image_embeds)
    return torch.cat(out)


@torch.no_grad()
def image_class_labels(model: LoadedModel, image_embeds: torch.Tensor, noise_level: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """normalize → noise at `noise_level` → unscale → concat the noise level's timestep embedding.

    Calls diffusers' own `noise_image_embeddings` so the class vector matches the pipeline bit for bit.
    One noise vector serves every image, so identical images get identical class vectors.
    """
    from diffusers import StableUnCLIPImg2ImgPipeline

    holder = SimpleNamespace(image_normalizer=model.image_normalizer,
                             image_noising_scheduler=model.image_noising_scheduler)
    noise = torch.randn((1, image_embeds.shape[1]), generator=generator, dtype=torch.float32)
    noise = noise.to(image_embeds).expand_as(image_embeds)
    return StableUnCLIPImg2ImgPipeline.noise_image_embeddings(holder, image_embeds, noise_level, noise=noise)


def unconditional(model: LoadedModel, frames: int) -> Conditioning:
    """Empty prompt and a zero class vector: the CFG baseline."""
    text = encode_text(model, "")
    dim = model.unet.config.projection_class_embeddings_input_dim
    return Conditioning(text.expand(frames, -1, -1), torch.zeros(frames, dim, device=model.device, dtype=model.dtype))


def branch(text: torch.Tensor, class_labels: torch.Tensor, frames: int) -> Conditioning:
    """Broadcast one prompt (1, tokens, dim) and one or per-frame class vectors to `frames`."""
    labels = class_labels if class_labels.shape[0] == frames else class_labels.expand(frames, -1)
    return Conditioning(text.expand(frames, -1, -1), labels)
