"""One-shot tuning of the inflated UNet on the source clip (DESIGN §2 stage 2).

Only Q of ST-Attn, Q of cross-attention and T-Attn learn; everything else stays frozen, so the
tuned weights are small enough to cache per clip.
"""

from __future__ import annotations

import torch

from engine.diffusion.inflate import is_trainable, trainable_state
from engine.runtime.progress import Reporter


def denoising_loss(unet: torch.nn.Module, latents: torch.Tensor, text: torch.Tensor, class_labels: torch.Tensor,
                   noise: torch.Tensor, timestep: torch.Tensor, scheduler) -> torch.Tensor:
    """MSE against the scheduler's own target (ε or v) for (frames, c, h, w) latents at one timestep."""
    frames = latents.shape[0]
    unet.recast_video_context.frames = frames
    noisy = scheduler.add_noise(latents, noise, timestep)
    t = timestep.expand(frames)
    out = unet(noisy, t, encoder_hidden_states=text.expand(frames, -1, -1),
               class_labels=class_labels.expand(frames, -1)).sample
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timestep)
    else:
        target = noise
    return torch.nn.functional.mse_loss(out.float(), target.float())


def training_scheduler(scheduler_config: dict):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config)


# Gradient checkpointing pays (recomputes each block's forward in the backward pass) once a tuning batch's
# first-level activations (frames × latent cells × channels) reach this: SD's 320 channels at 64×64 latents
# are 1.3 M per frame; the shipped shapes model's whole 16-frame window is about 0.07 M, so it never does.
CHECKPOINT_ELEMENTS = 1 << 20


def wants_checkpointing(unet: torch.nn.Module, window: int, latent_hw: tuple[int, int]) -> bool:
    return window * latent_hw[0] * latent_hw[1] * unet.config.block_out_channels[0] >= CHECKPOINT_ELEMENTS


def tune(unet: torch.nn.Module, latents: torch.Tensor, text: torch.Tensor, frame_labels: torch.Tensor,
         scheduler_config: dict, steps: int, lr: float, window: int, seed: int,
         reporter: Reporter | None = None,
         checkpointing: bool | None = None) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Tune in place on latents (frames, c, h, w); returns the trainable state and the loss per step.

    Each step takes a random window of consecutive frames, one random timestep and one random source
    frame's image embedding (frame_labels: (frames, dim)) for the whole window.
    `checkpointing`: gradient checkpointing of the UNet's blocks (same result within float tolerance,
    activations kept per block instead of per layer); None: on above CHECKPOINT_ELEMENTS.
    """
    reporter = reporter or Reporter()
    scheduler = training_scheduler(scheduler_config)
    params = [p for n, p in unet.named_parameters() if is_trainable(n)]
    for n, p in unet.named_parameters():
        p.requires_grad_(is_trainable(n))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    frames = latents.shape[0]
    window = max(1, min(window, frames))
    if checkpointing is None:
        checkpointing = wants_checkpointing(unet, window, tuple(latents.shape[2:]))
    losses: list[float] = []
    unet.train()
    if checkpointing:
        unet.enable_gradient_checkpointing()
    try:
        for step in range(steps):
            start = int(torch.randint(0, frames - window + 1, (1,), generator=gen))
            clip = latents[start : start + window]
            noise = torch.randn(clip.shape, generator=gen).to(clip)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=gen).to(clip.device)
            label = frame_labels[int(torch.randint(0, frames, (1,), generator=gen))][None]
            loss = denoising_loss(unet, clip, text, label, noise, t, scheduler)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            reporter.step("tune", step + 1, steps)
    finally:
        if checkpointing:
            unet.disable_gradient_checkpointing()
        unet.eval()
        unet.requires_grad_(False)
    return trainable_state(unet), losses
