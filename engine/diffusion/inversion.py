"""DDIM inversion of the source latents (DESIGN §2 stage 3).

The whole trajectory is kept: z_T starts every sampling, and each rung is the background reference
that generation pastes back outside the mask.
"""

from __future__ import annotations

import torch

from engine.diffusion.conditioning import Conditioning
from engine.diffusion.ddim import Ladder, ddim_step, predict_eps
from engine.runtime.progress import Reporter


@torch.no_grad()
def invert(unet: torch.nn.Module, latents: torch.Tensor, cond: Conditioning, ladder: Ladder,
           prediction_type: str, reporter: Reporter | None = None, refine: int = 0) -> list[torch.Tensor]:
    """Returns the trajectory: traj[k] is at noise level ladder.levels[k]; traj[-1] is the clean latents.

    latents: (frames, c, h, w); traj[0] is z_T. `refine` fixed-point iterations per rung re-evaluate ε
    at the new latent, so each rung becomes the exact inverse of the sampling step it mirrors.
    """
    reporter = reporter or Reporter()
    frames = latents.shape[0]
    z = latents
    traj = [z]
    n = len(ladder)
    for i, k in enumerate(reversed(range(n))):
        # ε at rung k is approximated from the latent one rung cleaner (the usual DDIM inversion).
        eps = predict_eps(unet, z, ladder.timesteps[k], cond.text, cond.class_labels,
                          ladder.levels[k], prediction_type, frames)
        z_next = ddim_step(z, eps, ladder.levels[k + 1], ladder.levels[k])
        for _ in range(refine):
            eps = predict_eps(unet, z_next, ladder.timesteps[k], cond.text, cond.class_labels,
                              ladder.levels[k], prediction_type, frames)
            z_next = ddim_step(z, eps, ladder.levels[k + 1], ladder.levels[k])
        z = z_next
        traj.append(z)
        reporter.step("invert", i + 1, n)
    return traj[::-1]


@torch.no_grad()
def sample(unet: torch.nn.Module, z_T: torch.Tensor, cond: Conditioning, ladder: Ladder,
           prediction_type: str, reporter: Reporter | None = None) -> torch.Tensor:
    """Plain deterministic DDIM sampling without guidance (the inverse of `invert`)."""
    reporter = reporter or Reporter()
    z = z_T
    for k, t in enumerate(ladder.timesteps):
        eps = predict_eps(unet, z, t, cond.text, cond.class_labels, ladder.levels[k], prediction_type, z.shape[0])
        z = ddim_step(z, eps, ladder.levels[k], ladder.levels[k + 1])
        reporter.step("sample", k + 1, len(ladder))
    return z
