"""The renderer's ground truth matches what it draws; captions parse back to the scene."""

from __future__ import annotations

import numpy as np
import pytest

from engine.shapes_world.clips import MOTIONS, clip_target_image, random_clip_spec, render_clip
from engine.shapes_world.metrics import dilate, iou, object_pixels
from engine.shapes_world.render import (
    Background,
    Pose,
    Scene,
    coverage,
    fits,
    object_mask,
    parse_caption,
    random_scene,
    render_background,
    render_scene,
    render_target_image,
    second_tone,
)
from engine.shapes_world.vocabulary import BACKGROUND_COLOURS, OBJECT_COLOURS, PATTERNS, SHAPES


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_matches_drawn_object(shape: str) -> None:
    scene = Scene("red", shape, Pose(0.45, 0.55, 0.25, 20.0), Background("navy", "plain"))
    img = render_scene(scene, 96, 128)
    plate = render_scene(Scene("red", shape, Pose(0.45, 0.55, 0.0), Background("navy", "plain")), 96, 128)
    drawn = object_pixels(img, plate, threshold=100)  # more than half-covered pixels
    assert iou(drawn, object_mask(shape, scene.pose, 96, 128)) > 0.97
    inside = object_mask(shape, scene.pose, 96, 128) & (coverage(shape, scene.pose, 96, 128) > 0.99)
    assert (img[inside] == OBJECT_COLOURS["red"]).all()


def test_shapes_differ_from_each_other() -> None:
    pose = Pose(0.5, 0.5, 0.35)
    masks = {s: object_mask(s, pose, 64, 64) for s in SHAPES}
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert iou(masks[a], masks[b]) < 0.85, (a, b)


def test_antialiased_edges() -> None:
    cov = coverage("circle", Pose(0.5, 0.5, 0.3), 64, 64)
    partial = (cov > 0.05) & (cov < 0.95)
    assert partial.sum() > 20


def test_area_scales_with_resolution() -> None:
    pose = Pose(0.4, 0.6, 0.2, 10.0)
    small = object_mask("star", pose, 64, 64).mean()
    large = object_mask("star", pose, 256, 256).mean()
    assert abs(small - large) < 0.01


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_uses_two_tones_from_background(pattern: str) -> None:
    bg = render_background(Background("teal", pattern, 30.0, 0.2, 0.1), 64, 64)
    base = np.array(BACKGROUND_COLOURS["teal"], np.float32)
    tone = second_tone("teal")
    # every pixel is a blend of the two tones
    t = ((bg - base) @ (tone - base)) / ((tone - base) @ (tone - base))
    assert np.allclose(base + t[..., None] * (tone - base), bg, atol=1e-3)
    assert (t.max() - t.min() > 0.9) == (pattern != "plain")


def test_captions_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = random_scene(rng, 64, 64)
        assert parse_caption(scene.caption) == (
            scene.colour,
            scene.shape,
            scene.background.pattern,
            scene.background.colour,
        )
    assert parse_caption("a red circle on a striped navy background") == ("red", "circle", "striped", "navy")
    for bad in ["a red circle on a navy background", "a pink circle on a plain navy background", ""]:
        with pytest.raises(ValueError):
            parse_caption(bad)


@pytest.mark.parametrize("motion", MOTIONS)
def test_clip_ground_truth(motion: str) -> None:
    rng = np.random.default_rng(MOTIONS.index(motion))
    for _ in range(3):
        spec = random_clip_spec(rng, shape_change=True, motion=motion)
        clip = render_clip(spec, 16, 72, 128)
        assert clip.frames.shape == (16, 72, 128, 3) and clip.frames.dtype == np.uint8
        for i, pose in enumerate(clip.poses):
            assert fits(spec.shape, pose, 72, 128) and fits(spec.target_shape, pose, 72, 128)
            f, plate = clip.frames[i].astype(float), clip.clean_plate.astype(float)
            obj = np.array(OBJECT_COLOURS[spec.colour], float)
            closer = (
                np.linalg.norm(f - obj, axis=-1) <= np.linalg.norm(f - plate, axis=-1) + 2
            )  # coverage ≥ ½
            assert iou(closer, clip.masks[i]) > 0.97
            assert iou(clip.target_footprints[i], object_mask(spec.target_shape, pose, 72, 128)) == 1.0
            far = ~dilate(clip.masks[i], 2)
            assert (clip.frames[i][far] == clip.clean_plate[far]).all()
        # smooth motion: centroids move by less than a tenth of the diagonal per frame
        step = np.linalg.norm(np.diff(clip.centroids, axis=0), axis=1)
        assert step.max() < 0.1 * np.hypot(72, 128) and step.sum() > 1.0
        r = [p.radius for p in clip.poses]
        assert max(r) / min(r) <= 2.0 + 1e-9


def test_target_image_shows_target_object() -> None:
    img, mask = render_target_image("cyan", "cross", 64, 64, np.random.default_rng(3))
    inner = mask & (coverage("cross", Pose(0, 0, 0), 64, 64) == 0)
    assert mask.sum() > 50 and (img[mask] == OBJECT_COLOURS["cyan"]).all(axis=1).mean() > 0.8
    assert inner.any()
    spec = random_clip_spec(np.random.default_rng(5))
    target = clip_target_image(spec, 64, 64)
    assert target.shape == (64, 64, 3)
