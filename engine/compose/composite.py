"""VAE encode/decode at the working size and compositing at the full source size (DESIGN §2 stage 6).

Compositing is integer arithmetic on 8-bit masks, so where the mask is 0 the output is the source
pixel byte for byte.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def working_size(height: int, width: int, native: int, multiple: int) -> tuple[int, int]:
    """Keep the aspect ratio, fit the long side within the model's native size, snap to `multiple`."""
    scale = min(1.0, native / max(height, width))

    def snap(v: float) -> int:
        return max(multiple, int(round(v * scale / multiple)) * multiple)

    return snap(height), snap(width)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    interp = cv2.INTER_AREA if h * w < frames.shape[1] * frames.shape[2] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


@torch.no_grad()
def encode_frames(vae: torch.nn.Module, frames: np.ndarray, device, dtype, chunk: int = 8) -> torch.Tensor:
    """RGB uint8 (frames, h, w, 3) → scaled latent means (frames, c, h/s, w/s)."""
    out = []
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(frames[i : i + chunk]).permute(0, 3, 1, 2).to(device=device, dtype=dtype)
        out.append(vae.encode(x / 127.5 - 1).latent_dist.mean * vae.config.scaling_factor)
    return torch.cat(out)


@torch.no_grad()
def decode_latents(vae: torch.nn.Module, latents: torch.Tensor, chunk: int = 8) -> np.ndarray:
    """Latents → float RGB in [0, 1], (frames, h, w, 3)."""
    out = []
    for i in range(0, len(latents), chunk):
        x = vae.decode(latents[i : i + chunk] / vae.config.scaling_factor).sample
        out.append(((x.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def compositing_mask(mask: np.ndarray, feather: float) -> np.ndarray:
    """Binary region mask (H, W) → 8-bit weight of the generated pixels, feathered by `feather` × short side."""
    if feather <= 0:
        return np.where(mask > 0, 255, 0).astype(np.uint8)
    radius = max(1, round(feather * min(mask.shape)))
    soft = cv2.GaussianBlur((mask > 0).astype(np.float32), (2 * radius + 1, 2 * radius + 1), radius / 2)
    out = np.round(soft * 255).astype(np.uint8)
    out[mask > 0] = np.maximum(out[mask > 0], 128)  # the region itself stays mostly generated
    return out


def _to8(generated: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float [0, 1] at any size → uint16 values 0..255 at (height, width)."""
    generated = generated.astype(np.float32, copy=False)
    if generated.shape[:2] != (height, width):
        generated = cv2.resize(generated, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.round(generated * 255), 0, 255).astype(np.uint16)


def _blend(top: np.ndarray, bottom: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Integer blend of uint16 `top` over uint8 `bottom` by uint8 `weight`; where the weight is 0 the
    result is `bottom`, byte for byte."""
    m = weight.astype(np.uint16)[..., None]
    out = ((top * m + bottom.astype(np.uint16) * (255 - m) + 127) // 255).astype(np.uint8)
    out[weight == 0] = bottom[weight == 0]
    return out


def composite(source: np.ndarray, generated: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """source uint8 (H, W, 3); generated float [0, 1] at any size; weight uint8 (H, W). Returns uint8."""
    return _blend(_to8(generated, *source.shape[:2]), source, weight)


def composite_layers(source: np.ndarray, plate: np.ndarray, generated: np.ndarray, region: np.ndarray,
                     obj: np.ndarray) -> np.ndarray:
    """Like `composite`, but inside the region the generated pixels show only through `obj` (uint8 weight of
    the new object) and the clean plate shows elsewhere. Outside the region: the source, byte for byte."""
    inner = _blend(_to8(generated, *source.shape[:2]), plate, obj)
    return _blend(inner.astype(np.uint16), source, region)
