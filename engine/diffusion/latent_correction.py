"""Latent correction between consecutive frames (DESIGN §2 stage 5; claims 10–12).

Nearest-neighbour fields map each feature location of frame i to its most similar location in frame
i±1; inside the mask, each latent is blended with its neighbours' latents fetched through those fields.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_neighbour_field(f_a: torch.Tensor, f_b: torch.Tensor, allowed_b: torch.Tensor | None = None,
                            chunk: int = 4096) -> torch.Tensor:
    """For each location p of f_a (c, h, w): argmax_q cos(f_a[p], f_b[q]) as a flat index into f_b.

    `allowed_b` (h, w) bool restricts q to those locations (an all-False mask allows all)."""
    c, h, w = f_a.shape
    a = F.normalize(f_a.reshape(c, -1).float(), dim=0).T  # (h*w, c)
    b = F.normalize(f_b.reshape(c, -1).float(), dim=0)  # (c, h*w)
    penalty = None
    if allowed_b is not None and allowed_b.any():
        penalty = torch.where(allowed_b.reshape(-1), 0.0, -4.0).to(a)  # cosines lie in [-1, 1]
    rows = []
    for i in range(0, a.shape[0], chunk):
        sim = a[i : i + chunk] @ b
        rows.append((sim if penalty is None else sim + penalty).argmax(dim=1))
    return torch.cat(rows).view(h, w)


def upsample_field(field: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an index field from the feature grid to the latent grid (h, w) → (H, W).

    Each latent cell takes its feature cell's match and keeps its own offset inside the cell, so the
    identity field stays the identity.
    """
    h, w = field.shape
    H, W = size
    ys = torch.arange(H, device=field.device)
    xs = torch.arange(W, device=field.device)
    cy, cx = (ys * h // H).clamp(max=h - 1), (xs * w // W).clamp(max=w - 1)
    match = field[cy[:, None], cx[None, :]]  # (H, W) indices into the (h, w) grid
    my, mx = match // w, match % w
    oy = ys[:, None] - cy[:, None] * H // h
    ox = xs[None, :] - cx[None, :] * W // w
    ty = (my * H // h + oy).clamp(0, H - 1)
    tx = (mx * W // w + ox).clamp(0, W - 1)
    return ty * W + tx


def correct_latents(latents: torch.Tensor, features: torch.Tensor, masks: torch.Tensor,
                    weights: tuple[float, float, float] = (0.25, 0.5, 0.25)) -> torch.Tensor:
    """z̃_i = M_i·(w₋₁·z_{i−1}[NN_{i−}] + w₀·z_i + w₁·z_{i+1}[NN_{i+}]) + (1−M_i)·z_i.

    latents (frames, c, H, W); features (frames, c', h, w); masks (frames, 1, H, W) in [0, 1].
    End frames renormalise the weights they have. Fields are computed one consecutive pair at a time
    and only their indices are kept. Matches are searched inside the neighbour's mask only: the
    generated object is corrected by the generated object next door, never by background it happens to
    resemble at some step (which can turn single frames of an object dark).
    """
    w_prev, w_self, w_next = weights
    if min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"correction weights must be non-negative and sum to 1, got {weights}")
    frames, c, H, W = latents.shape
    if frames < 2 or w_self == 1.0:
        return latents
    flat = latents.reshape(frames, c, H * W)
    allowed = F.adaptive_max_pool2d(masks.float(), features.shape[-2:])[:, 0] > 0  # (frames, h, w)
    forward = [upsample_field(nearest_neighbour_field(features[i], features[i + 1], allowed[i + 1]), (H, W))
               .reshape(-1) for i in range(frames - 1)]  # frame i → matches in i+1
    backward = [upsample_field(nearest_neighbour_field(features[i + 1], features[i], allowed[i]), (H, W))
                .reshape(-1) for i in range(frames - 1)]  # frame i+1 → matches in i
    out = torch.empty_like(latents)
    for i in range(frames):
        acc = w_self * latents[i]
        total = w_self
        if i > 0 and w_prev > 0:
            acc = acc + w_prev * flat[i - 1][:, backward[i - 1]].view(c, H, W)
            total += w_prev
        if i < frames - 1 and w_next > 0:
            acc = acc + w_next * flat[i + 1][:, forward[i]].view(c, H, W)
            total += w_next
        out[i] = masks[i] * (acc / total) + (1 - masks[i]) * latents[i]
    return out


class FeatureTap:
    """Forward hook that keeps the latest output of one UNet up-block (the features for the fields)."""

    def __init__(self, unet: torch.nn.Module, block_index: int):
        blocks = unet.up_blocks
        if not 0 <= block_index < len(blocks):
            raise ValueError(f"correction block {block_index} is outside 0..{len(blocks) - 1}")
        self.features: torch.Tensor | None = None
        self._handle = blocks[block_index].register_forward_hook(self._keep)

    def _keep(self, module, args, output) -> None:
        self.features = output[0] if isinstance(output, tuple) else output

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
