"""Mask-guided generation (DESIGN §2 stage 5): CFG DDIM from z_T with latent correction inside the
mask (claims 10–12) and the source trajectory pasted back outside it (claim 13)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.diffusion.conditioning import Conditioning
from engine.diffusion.ddim import Ladder, ddim_step, predict_eps, predict_x0
from engine.diffusion.latent_correction import FeatureTap, correct_latents
from engine.runtime.progress import Reporter


@torch.no_grad()
def generate(unet: torch.nn.Module, trajectory: list[torch.Tensor], target: Conditioning, negative: Conditioning,
             mask: torch.Tensor, ladder: Ladder, prediction_type: str, guidance_scale: float,
             correction_weights: tuple[float, float, float] | None, correction_block: int,
             reporter: Reporter | None = None,
             on_x0: Callable[[int, torch.Tensor], None] | None = None, preview_every: int = 0) -> torch.Tensor:
    """Returns clean latents (frames, c, h, w).

    trajectory: the source inversion, trajectory[k] at ladder.levels[k]; mask: (frames, 1, h, w) in
    [0, 1], 1 = generate. `negative`: the CFG baseline (empty prompt or the source). `correction_weights=None`
    turns latent correction off.
    """
    reporter = reporter or Reporter()
    frames = trajectory[0].shape[0]
    guided = guidance_scale != 1.0
    cond = negative.cat(target) if guided else target
    z = trajectory[0]
    tap = FeatureTap(unet, correction_block) if correction_weights is not None else None
    try:
        for k, t in enumerate(ladder.timesteps):
            z_in = torch.cat([z, z]) if guided else z
            eps = predict_eps(unet, z_in, t, cond.text, cond.class_labels, ladder.levels[k], prediction_type,
                              frames)
            if guided:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            # the first step previews at once (an editor sees something within a step), then every N
            if on_x0 is not None and preview_every and (k == 0 or (k + 1) % preview_every == 0) \
                    and k + 1 < len(ladder):
                x0 = predict_x0(z, eps, ladder.levels[k])
                on_x0(k + 1, mask * x0 + (1 - mask) * trajectory[-1])
            z = ddim_step(z, eps, ladder.levels[k], ladder.levels[k + 1])
            if tap is not None and frames > 1:
                feats = tap.features[-frames:]  # the conditional branch, (frames, c', h', w')
                z = correct_latents(z, feats, mask, correction_weights)
            z = mask * z + (1 - mask) * trajectory[k + 1]
            reporter.step("generate", k + 1, len(ladder))
    finally:
        if tap is not None:
            tap.close()
    return z
