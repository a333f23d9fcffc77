"""Inflation keeps the 2D model's behaviour on one frame; tuning moves only the DESIGN §2 parameters."""

from __future__ import annotations

import copy

import numpy as np
import torch

from engine.diffusion.conditioning import encode_images, encode_text, image_class_labels
from engine.diffusion.inflate import inflate_unet, is_trainable, load_trainable_state, trainable_state
from engine.diffusion.tuning import denoising_loss, training_scheduler, tune
from engine.runtime.model_loading import load_model


def test_fresh_inflation_equals_2d_model_on_one_frame(tiny_model_dir):
    model = load_model(tiny_model_dir)
    flat = copy.deepcopy(model.unet)
    inflate_unet(model.unet, anchor_first=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=g)
    text = torch.randn(1, 16, 32, generator=g)
    labels = torch.randn(1, 32, generator=g)
    with torch.no_grad():
        a = flat(x, torch.tensor([500]), encoder_hidden_states=text, class_labels=labels).sample
        b = model.unet(x, torch.tensor([500]), encoder_hidden_states=text, class_labels=labels).sample
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    # and the inflation is real: with trained T-Attn the same call differs
    for name, p in model.unet.named_parameters():
        if ".temporal_attn.attn.to_out" in name:
            p.data.normal_(0, 0.5)
    with torch.no_grad():
        c = model.unet(x, torch.tensor([500]), encoder_hidden_states=text, class_labels=labels).sample
    assert not torch.allclose(a, c, atol=1e-3)


def test_frames_attend_to_each_other(tiny_model_dir):
    """With ST-Attn, changing frame 0 changes frame 1's output; per-frame mode keeps them independent."""
    model = load_model(tiny_model_dir)
    ctx = inflate_unet(model.unet)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, 8, generator=g)
    text = torch.randn(1, 16, 32, generator=g).expand(3, -1, -1)
    labels = torch.randn(1, 32, generator=g).expand(3, -1)
    x2 = x.clone()
    x2[0] += 1.0

    def run(inp):
        with torch.no_grad():
            return model.unet(inp, torch.tensor([400] * 3), encoder_hidden_states=text, class_labels=labels).sample

    ctx.frames = 3
    assert not torch.allclose(run(x)[1], run(x2)[1], atol=1e-5)
    ctx.per_frame = True
    assert torch.allclose(run(x)[1], run(x2)[1], atol=1e-6)
    ctx.per_frame = False


def test_tuning_changes_only_trainable_parameters_and_lowers_the_loss(tiny_model_dir):
    model = load_model(tiny_model_dir)
    inflate_unet(model.unet)
    rng = np.random.RandomState(0)
    images = (rng.rand(4, 32, 32, 3) * 255).astype(np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = model.vae.encode(x).latent_dist.mean * model.vae.config.scaling_factor
    text = encode_text(model, "a red circle on a plain gray background")
    labels = image_class_labels(model, encode_images(model, images), 0, torch.Generator().manual_seed(0))
    sched = training_scheduler(model.scheduler_config)
    g = torch.Generator().manual_seed(7)
    probes = [(torch.randn(latents.shape, generator=g), torch.tensor([t])) for t in (100, 400, 700, 900)]

    def eval_loss() -> float:
        with torch.no_grad():
            return float(sum(denoising_loss(model.unet, latents, text, labels[:1], n, t, sched) for n, t in probes))

    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    loss_before = eval_loss()
    state, losses = tune(model.unet, latents, text, labels, model.scheduler_config, steps=40, lr=1e-3, window=4, seed=0)
    loss_after = eval_loss()
    changed = {n for n, p in model.unet.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n in before if is_trainable(n)}
    assert changed, "tuning changed nothing"
    assert changed <= trainable, f"frozen parameters moved: {sorted(changed - trainable)[:5]}"
    assert any(".attn1.to_q." in n for n in changed) and any(".attn2.to_q." in n for n in changed)
    assert any(".temporal_attn." in n for n in changed)
    assert set(state) == trainable
    assert loss_after < loss_before, (loss_before, loss_after)
    assert len(losses) == 40
    assert not any(p.requires_grad for p in model.unet.parameters())
    # tuned weights round-trip
    load_trainable_state(model.unet, {k: torch.zeros_like(v) for k, v in state.items()})
    load_trainable_state(model.unet, state)
    assert all(torch.equal(v, trainable_state(model.unet)[k]) for k, v in state.items())


def test_inflation_draws_the_same_temporal_weights_whatever_the_global_rng(tiny_model_dir):
    """A clip must tune to the same weights in every process: T-Attn's random start is seeded."""
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        unet = copy.deepcopy(load_model(tiny_model_dir).unet)
        inflate_unet(unet)
        states.append({n: v for n, v in trainable_state(unet).items() if ".temporal_attn." in n})
        after = torch.rand(1)
        torch.manual_seed(seed)
        assert torch.equal(after, torch.rand(1))  # the caller's RNG stream is left as it was
    assert states[0] and all(torch.equal(states[0][n], states[1][n]) for n in states[0])
