"""Deterministic DDIM steps shared by inversion, masks and generation.

All three walk the same ladder of noise levels, so the inversion trajectory lines up with every
sampling step: `levels[k]` is ᾱ at `timesteps[k]`, and `levels[-1]` is the clean end of the ladder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.runtime.model_loading import ddim_schedulers


@dataclass
class Ladder:
    timesteps: list[int]  # descending, as sampling visits them
    levels: list[float]  # ᾱ per rung; len(timesteps) + 1

    def __len__(self) -> int:
        return len(self.timesteps)


def make_ladder(scheduler_config: dict, steps: int) -> Ladder:
    forward, _ = ddim_schedulers(scheduler_config, steps)
    ac = forward.alphas_cumprod
    ts = [int(t) for t in forward.timesteps]
    return Ladder(ts, [float(ac[t]) for t in ts] + [float(forward.final_alpha_cumprod)])


def to_epsilon(model_output: torch.Tensor, sample: torch.Tensor, alpha: float, prediction_type: str) -> torch.Tensor:
    """ε from the UNet's output; for v-prediction ε = √ᾱ·v + √(1−ᾱ)·z_t."""
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        return alpha**0.5 * model_output + (1 - alpha) ** 0.5 * sample
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")


def predict_x0(sample: torch.Tensor, eps: torch.Tensor, alpha: float) -> torch.Tensor:
    return (sample - (1 - alpha) ** 0.5 * eps) / alpha**0.5


def ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_from: float, alpha_to: float) -> torch.Tensor:
    """Move `sample` from noise level ᾱ_from to ᾱ_to along ε (either direction: η = 0)."""
    x0 = predict_x0(sample, eps, alpha_from)
    return alpha_to**0.5 * x0 + (1 - alpha_to) ** 0.5 * eps


def predict_eps(unet: torch.nn.Module, sample: torch.Tensor, timestep: int, text: torch.Tensor,
                class_labels: torch.Tensor, alpha: float, prediction_type: str, frames: int) -> torch.Tensor:
    """One UNet pass over (groups * frames, c, h, w) latents, returned as ε."""
    context = getattr(unet, "recast_video_context", None)
    if context is not None:
        context.frames = frames
    t = torch.full((sample.shape[0],), timestep, device=sample.device, dtype=torch.long)
    out = unet(sample, t, encoder_hidden_states=text, class_labels=class_labels).sample
    return to_epsilon(out, sample, alpha, prediction_type)
