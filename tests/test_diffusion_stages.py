"""Inversion, masks and latent correction on the tiny model and constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion.conditioning import branch, encode_images, encode_text, image_class_labels
from engine.diffusion.ddim import make_ladder, to_epsilon
from engine.diffusion.inflate import inflate_unet
from engine.diffusion.inversion import invert, sample
from engine.diffusion.latent_correction import correct_latents, nearest_neighbour_field, upsample_field
from engine.diffusion.masks import grabcut_refine, masks_from_difference, noise_difference, otsu_threshold
from engine.diffusion.tuning import training_scheduler
from engine.runtime.model_loading import load_model

PROMPT = "a red circle on a plain gray background"


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    m = load_model(tiny_model_dir)
    inflate_unet(m.unet)
    return m


@pytest.fixture(scope="module")
def clip(model):
    rng = np.random.RandomState(0)
    images = (rng.rand(4, 32, 32, 3) * 255).astype(np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = model.vae.encode(x).latent_dist.mean * model.vae.config.scaling_factor
    labels = image_class_labels(model, encode_images(model, images), 0, torch.Generator().manual_seed(0))
    return images, latents, labels


def test_inversion_then_sampling_reconstructs_the_source_latents(model, clip):
    """Bound: relative L2 error < 2 % with 25 steps and 2 fixed-point refinements (plain DDIM inversion,
    refine=0, is much looser on a random model: about 15 %)."""
    _, latents, labels = clip
    cond = branch(encode_text(model, PROMPT), labels, 4)
    ladder = make_ladder(model.scheduler_config, 25)
    traj = invert(model.unet, latents, cond, ladder, model.prediction_type, refine=2)
    assert len(traj) == 26 and torch.equal(traj[-1], latents)
    rec = sample(model.unet, traj[0], cond, ladder, model.prediction_type)
    rel = float((rec - latents).norm() / latents.norm())
    assert rel < 0.02, rel
    # z_T is really noised: far from the source
    assert float((traj[0] - latents).norm() / latents.norm()) > 0.5


def test_v_to_epsilon_matches_the_scheduler_definitions(model):
    sched = training_scheduler(model.scheduler_config)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    for t in (1, 250, 999):
        tt = torch.tensor([t, t])
        z_t = sched.add_noise(x0, noise, tt)
        v = sched.get_velocity(x0, noise, tt)
        eps = to_epsilon(v, z_t, float(sched.alphas_cumprod[t]), "v_prediction")
        assert torch.allclose(eps, noise, atol=1e-4), (t, (eps - noise).abs().max())
    assert to_epsilon(noise, z_t, 0.5, "epsilon") is noise


def test_identical_conditioning_gives_an_empty_mask(model):
    static = np.repeat((np.random.RandomState(3).rand(1, 32, 32, 3) * 255).astype(np.uint8), 3, axis=0)
    x = torch.from_numpy(static).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = model.vae.encode(x).latent_dist.mean
    text = encode_text(model, PROMPT)
    src_labels = image_class_labels(model, encode_images(model, static), 0, torch.Generator().manual_seed(0))
    trg_labels = image_class_labels(model, encode_images(model, static[:1]), 0, torch.Generator().manual_seed(0))
    ladder = make_ladder(model.scheduler_config, 5)
    diff = noise_difference(model.unet, z, branch(text, src_labels, 3), branch(text, trg_labels, 3), ladder,
                            model.prediction_type)
    masks = masks_from_difference(diff.numpy(), (40, 56))
    assert masks.shape == (3, 40, 56) and masks.max() == 0
    # a different target prompt does light the mask up
    other = branch(encode_text(model, "a blue star on a checkered olive background"), trg_labels, 3)
    diff2 = noise_difference(model.unet, z, branch(text, src_labels, 3), other, ladder, model.prediction_type)
    assert float(diff2.max()) > 1e-3


def test_mask_postprocessing_on_a_constructed_difference():
    diff = np.zeros((2, 16, 16), np.float32)
    diff[:, 4:12, 4:12] = 1.0
    diff[:, 7:9, 7:9] = 0.0  # a hole that must be filled
    masks = masks_from_difference(diff, (64, 64), threshold=0.5, dilate=0.0)
    assert masks[0, 32, 32] == 255 and masks[0, 2, 2] == 0
    inside = masks[0, 20:44, 20:44] > 0
    assert inside.all()
    assert set(np.unique(masks)) <= {0, 255}
    assert 0.3 < otsu_threshold(np.r_[np.zeros(50), np.ones(50)]) <= 1.0
    dilated = masks_from_difference(diff, (64, 64), threshold=0.5, dilate=0.1)
    assert (dilated > 0).sum() > (masks > 0).sum()


def test_a_frame_that_differs_everywhere_is_measured_above_its_own_floor():
    """Branches that drifted apart on a busy background: every cell differs by ~0.3 of the peak, the object
    a little more. The cut must find the object, not the whole frame; a quiet frame keeps its mask."""
    rng = np.random.default_rng(0)
    busy = 0.3 + 0.1 * rng.random((16, 16), np.float32)
    busy[5:10, 5:10] += 0.45
    quiet = np.zeros((16, 16), np.float32)
    quiet[5:10, 5:10] = 1.0
    masks = masks_from_difference(np.stack([busy, quiet]), (64, 64), threshold=0.3) > 0
    square = np.zeros((64, 64), bool)
    square[20:40, 20:40] = True
    for m in masks:
        assert (m & square).sum() / (m | square).sum() > 0.75  # without the floor: 0.10 (the whole frame)
    assert np.array_equal(masks[1], masks_from_difference(quiet[None], (64, 64), threshold=0.3)[0] > 0)


def test_one_outsized_frame_does_not_blank_its_neighbours():
    """Frame 0's difference peaks at 1.0, frame 1's object only at 0.25 (under the 0.3 cut of the clip's
    peak): frame 1 still gets its object. Frame 2 has no object, only a faint even texture: it stays empty."""
    rng = np.random.default_rng(1)
    diff = 0.02 * rng.random((3, 16, 16)).astype(np.float32)
    diff[0, 5:10, 5:10] = 1.0
    diff[1, 6:11, 6:11] = 0.25
    diff[2] += 0.03
    masks = masks_from_difference(diff, (64, 64), threshold=0.3) > 0
    square = np.zeros((64, 64), bool)
    square[24:44, 24:44] = True
    assert (masks[1] & square).sum() / (masks[1] | square).sum() > 0.75  # before: an empty mask
    assert masks[0].any() and not masks[2].any()


def test_refinement_that_loses_the_object_keeps_the_coarse_mask():
    """On a frame where nothing stands out from its surroundings GrabCut keeps nothing; an empty mask would
    leave the old object showing in that frame, so the diffusion mask is kept."""
    frame = np.full((64, 64, 3), 128, np.uint8) + np.random.default_rng(0).integers(0, 3, (64, 64, 3)).astype(np.uint8)
    diff = np.zeros((1, 16, 16), np.float32)
    diff[0, 5:10, 5:10] = 0.6
    diff[0, 0, 15] = 1.0
    coarse = masks_from_difference(diff, (64, 64), threshold=0.3)[0] > 0
    assert not grabcut_refine(frame, coarse.astype(np.uint8), 6).any()
    refined = masks_from_difference(diff, (64, 64), threshold=0.3, frames=frame[None], refine=True)[0] > 0
    assert np.array_equal(refined, coarse)


def test_refinement_snaps_a_coarse_mask_to_the_object_and_keeps_the_target_aware_part():
    """A blocky, too-small latent mask of a drawn disc grows to the disc's outline; a strong difference
    outside the disc (where a different target shape will stand) survives; a weak one does not."""
    import cv2

    frame = np.full((128, 128, 3), (20, 30, 90), np.uint8)
    cv2.circle(frame, (48, 64), 24, (220, 40, 40), -1, lineType=cv2.LINE_AA)
    frame[90:93, 40:56] = (220, 40, 40)  # a separate strip of the object's colour, 2 px below it, in the ring
    disc = np.zeros((128, 128), np.uint8)
    cv2.circle(disc, (48, 64), 24, 1, -1)
    diff = np.zeros((1, 16, 16), np.float32)
    diff[0, 6:10, 5:8] = 1.0  # the disc's core only (latent cells of 8 px)
    diff[0, 7:9, 10:12] = 0.9  # strong, outside the disc: target-aware
    diff[0, 2:4, 12:14] = 0.5  # weaker, far away
    coarse = masks_from_difference(diff, (128, 128), threshold=0.3)[0] > 0
    refined = masks_from_difference(diff, (128, 128), threshold=0.3, frames=frame[None], refine=True)[0] > 0

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    d = disc > 0
    assert iou(refined & (np.arange(128)[None, :] < 74), d) > 0.9 > iou(coarse & (np.arange(128)[None, :] < 74), d)
    assert refined[64, 88]  # the strong target-aware region outside the disc stays
    assert not refined[90:93, 40:56].any()  # the look-alike strip that does not touch the mask is not added
    assert not refined[24, 104] and coarse[24, 104]  # the weak one on plain background is dropped


def test_refinement_does_not_depend_on_earlier_runs():
    """GrabCut draws from OpenCV's global RNG; a mask must not change because another clip ran first."""
    import cv2

    from engine.bench.quality import bench_clips
    from engine.diffusion.masks import grabcut_refine

    (_, clip, _), (_, other, _) = bench_clips(24, 8, 128, 0)[13], bench_clips(24, 8, 128, 0)[12]
    seed = cv2.dilate(clip.masks[5].astype(np.uint8), np.ones((5, 5), np.uint8))
    seed[40:60, 40:60] = 1  # a stray block the refinement has to judge
    alone = grabcut_refine(clip.frames[5], seed, 12)
    grabcut_refine(other.frames[3], cv2.dilate(other.masks[3].astype(np.uint8), np.ones((9, 9), np.uint8)), 12)
    cv2.randu(np.zeros((10, 10)), 0, 1)
    assert np.array_equal(grabcut_refine(clip.frames[5], seed, 12), alone)


def test_nearest_neighbour_field_recovers_a_known_shift():
    g = torch.Generator().manual_seed(0)
    f_a = torch.randn(16, 8, 10, generator=g)
    f_b = torch.roll(f_a, shifts=(2, -3), dims=(1, 2))
    field = nearest_neighbour_field(f_a, f_b)
    ys, xs = field // 10, field % 10
    assert torch.equal((ys - torch.arange(8)[:, None]) % 8, torch.full((8, 10), 2))
    assert torch.equal((xs - torch.arange(10)[None, :]) % 10, torch.full((8, 10), 7))
    identity = torch.arange(80).view(8, 10)
    assert torch.equal(upsample_field(identity, (16, 20)), torch.arange(320).view(16, 20))


def test_fields_search_only_inside_the_neighbours_mask():
    """A background cell that resembles the object better than the object next door must not be picked."""
    f_a = torch.zeros(2, 4, 4)
    f_a[0, 1, 1] = 1.0  # the object cell in frame a
    f_b = torch.zeros(2, 4, 4)
    f_b[0, 3, 3] = 1.0  # background in frame b, identical to the object's feature
    f_b[:, 2, 2] = torch.tensor([0.8, 0.6])  # the object in frame b, less similar
    allowed = torch.zeros(4, 4, dtype=torch.bool)
    allowed[2, 2] = True
    assert int(nearest_neighbour_field(f_a, f_b)[1, 1]) == 15  # unrestricted: the look-alike background
    assert int(nearest_neighbour_field(f_a, f_b, allowed)[1, 1]) == 10  # restricted: the object
    assert torch.equal(nearest_neighbour_field(f_a, f_b, torch.zeros(4, 4, dtype=torch.bool)),
                       nearest_neighbour_field(f_a, f_b))  # an empty mask restricts nothing


def test_latent_correction_weights():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 4, 8, 8, generator=g)
    feats = torch.randn(3, 6, 4, 4, generator=g)
    ones = torch.ones(3, 1, 8, 8)
    assert torch.equal(correct_latents(z, feats, ones, (0.0, 1.0, 0.0)), z)  # w0 = 1 is the identity
    assert torch.equal(correct_latents(z, feats, torch.zeros(3, 1, 8, 8), (0.25, 0.5, 0.25)), z)  # outside M
    # identical frames: every field is the identity, so any weights reproduce the frames
    same = z[:1].repeat(3, 1, 1, 1)
    out = correct_latents(same, feats[:1].repeat(3, 1, 1, 1), ones, (0.25, 0.5, 0.25))
    assert torch.allclose(out, same, atol=1e-6)
    # end frames renormalise: frame 0 = (0.5 z0 + 0.25 z1[NN]) / 0.75
    out = correct_latents(z, feats, ones, (0.25, 0.5, 0.25))
    assert not torch.allclose(out, z)
    with pytest.raises(ValueError):
        correct_latents(z, feats, ones, (0.5, 0.6, 0.1))
