"""Layered compositing: temporal clean plates, the target's silhouette, its placement at the source pose,
and the pipeline's layered render, checked against the shapes world's ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_pipeline import FAST, SRC, TRG

from engine.compose.clean_plate import PAD, clean_plates, grow
from engine.compose.composite import composite_layers
from engine.compose.shape_prior import new_outlines, place, same_shape, source_objects, target_silhouette
from engine.settings import EditSettings
from engine.shapes_world.clips import ClipSpec, render_clip
from engine.shapes_world.metrics import iou
from engine.shapes_world.render import Background, Pose, render_target_image


def clip_of(shape: str = "circle", target_shape: str = "star", velocity=(0.5, 0.0), frames: int = 8,
            pattern: str = "striped"):
    spec = ClipSpec(colour="red", shape=shape, background=Background("navy", pattern), motion="translate",
                    start=(0.3, 0.5), velocity=velocity, curve=0.0, radius=(0.15, 0.15), rotation=(0.0, 0.0),
                    target_colour="blue", target_shape=target_shape)
    return spec, render_clip(spec, frames, 96, 96)


def test_a_moving_object_uncovers_its_own_clean_plate():
    _, clip = clip_of()
    masks = clip.masks.astype(np.uint8) * 255
    plates = clean_plates(clip.frames, masks)
    outside = ~cv2.dilate(masks.max(0), np.ones((9, 9), np.uint8)).astype(bool)  # far from every object
    assert np.array_equal(plates[:, outside], clip.frames[:, outside])  # nothing else is touched
    err = np.abs(plates.astype(int) - clip.clean_plate.astype(int)).max(-1)  # (frames, H, W)
    assert (err[clip.masks] <= 2).mean() > 0.99  # the background itself, where the object stood
    assert (np.abs(clip.frames.astype(int) - clip.clean_plate.astype(int)).max(-1)[clip.masks] > 40).mean() > 0.9


def test_what_no_frame_uncovers_is_inpainted_and_a_moving_camera_is_not_medianed():
    _, still = clip_of(velocity=(0.0, 0.0), pattern="plain")
    plates = clean_plates(still.frames, still.masks.astype(np.uint8) * 255)
    err = np.abs(plates.astype(int) - still.clean_plate.astype(int)).max(-1)
    assert (err[still.masks] <= 40).mean() > 0.95  # a plain background inpaints well; the red disc is gone

    _, clip = clip_of()
    frames = clip.frames.copy()
    frames[3] = np.roll(frames[3], (7, 7), axis=(0, 1))  # one frame's camera jumps
    masks = clip.masks.astype(np.uint8) * 255
    masks[3] = np.roll(masks[3], (7, 7), axis=(0, 1))
    plates = clean_plates(frames, masks)
    hole = grow(masks[3:4], PAD)[0].astype(np.uint8) * 255
    assert np.array_equal(plates[3], cv2.inpaint(frames[3], hole, 3, cv2.INPAINT_TELEA))  # its own pixels only
    err = np.abs(plates.astype(int) - clip.clean_plate.astype(int)).max(-1)
    assert (err[[0, 7]][clip.masks[[0, 7]]] <= 2).mean() > 0.99  # the still frames keep the true background


@pytest.mark.parametrize("pattern", ["plain", "gradient", "striped", "checkered"])
@pytest.mark.parametrize("shape", ["star", "cross", "triangle"])
def test_the_target_silhouette_is_the_drawn_object(pattern, shape):
    image, truth = render_target_image("white", shape, 120, 90, np.random.default_rng(1),
                                       background=Background("beige", pattern))
    found = target_silhouette(image)
    assert found is not None and iou(found, truth) > 0.93


def test_an_image_without_an_object_has_no_silhouette():
    image, _ = render_target_image("red", "circle", 64, 64, pose=Pose(0.5, 0.5, 0.0, 0.0),
                                   background=Background("gray", "plain"))
    assert target_silhouette(image) is None
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # no common border colour
    assert target_silhouette(noise) is None


@pytest.mark.parametrize("source,target,expect", [("circle", "circle", 0.95), ("square", "square", 0.95),
                                                  ("circle", "star", 0.85), ("star", "circle", 0.85),
                                                  ("diamond", "cross", 0.8)])
def test_the_silhouette_lands_on_the_target_footprint_at_the_source_pose(source, target, expect):
    _, clip = clip_of(source, target)
    masks = np.stack([cv2.dilate(m.astype(np.uint8) * 255, np.ones((5, 5), np.uint8)) for m in clip.masks])
    plates = clean_plates(clip.frames, masks)
    old = source_objects(clip.frames, plates, masks)
    assert np.mean([iou(o, m) for o, m in zip(old, clip.masks, strict=True)]) > 0.9  # a 14-px star's tips are thin
    image, _ = render_target_image("blue", target, 80, 80, pose=Pose(0.4, 0.6, 0.3, 0.0),
                                   background=Background("olive", "checkered"))
    placed = place(target_silhouette(image), old)
    score = np.mean([iou(p, t) for p, t in zip(placed, clip.target_footprints, strict=True)])
    assert score > expect
    assert placed.sum() > 0 and not np.array_equal(placed, clip.masks)


@pytest.mark.parametrize("source,target,same", [("star", "star", True), ("cross", "cross", True),
                                                ("square", "circle", False), ("diamond", "square", False),
                                                ("triangle", "star", False)])
def test_a_recolour_keeps_the_old_outline_even_turned(source, target, same):
    spec = ClipSpec(colour="red", shape=source, background=Background("navy", "plain"), velocity=(0.3, 0.1),
                    radius=(0.15, 0.2), rotation=(0.0, 25.0), target_shape=target)
    clip = render_clip(spec, 6, 96, 96)
    image, _ = render_target_image("blue", target, 80, 80, pose=Pose(0.5, 0.5, 0.3, 0.0),
                                   background=Background("beige", "striped"))
    silhouette = target_silhouette(image)
    assert same_shape(silhouette, clip.masks) is same
    outlines = new_outlines(silhouette, clip.masks)
    if same:  # the old outline, turned with the object, which the upright silhouette is not
        assert np.array_equal(outlines, clip.masks)
        assert iou(place(silhouette, clip.masks)[-1], clip.masks[-1]) < 0.9
    else:
        assert np.array_equal(outlines, place(silhouette, clip.masks))


def test_layers_composite_object_plate_and_source():
    source = np.full((4, 4, 3), 10, np.uint8)
    plate = np.full((4, 4, 3), 100, np.uint8)
    generated = np.full((4, 4, 3), 1.0, np.float32)  # white
    region = np.zeros((4, 4), np.uint8)
    region[1:, 1:] = 255
    obj = np.zeros((4, 4), np.uint8)
    obj[2:, 2:] = 255
    obj[0, 0] = 255  # outside the region: no effect
    out = composite_layers(source, plate, generated, region, obj)
    assert (out[0] == 10).all() and (out[:, 0] == 10).all()
    assert (out[1, 1:] == 100).all() and (out[2:, 1] == 100).all()
    assert (out[2:, 2:] == 255).all()


def test_a_layered_render_keeps_the_source_outside_and_the_plate_off_the_new_object(tiny_pipeline):
    spec, clip = clip_of("circle", "square", frames=4)
    image, _ = render_target_image("blue", "square", 64, 64, pose=Pose(0.5, 0.5, 0.3, 0.0),
                                   background=Background("gray", "plain"))
    masks = np.stack([cv2.dilate(m.astype(np.uint8) * 255, np.ones((7, 7), np.uint8)) for m in clip.masks])
    on = tiny_pipeline.render(clip.frames, image, SRC, TRG, EditSettings(feather=0, color_match=0, **FAST),
                              masks=masks)
    off = tiny_pipeline.render(clip.frames, image, SRC, TRG, EditSettings(feather=0, layered=False, **FAST),
                               masks=masks)
    outside = masks == 0
    assert np.array_equal(on.frames[outside], clip.frames[outside])
    plates = clean_plates(clip.frames, masks)
    placed = place(target_silhouette(image), source_objects(clip.frames, plates, masks)) & (masks > 0)
    vacated = (masks > 0) & ~placed
    assert vacated.any() and placed.any()
    assert np.array_equal(on.frames[vacated], plates[vacated])  # the old object's place is background again
    assert np.array_equal(on.frames[placed], off.frames[placed])  # the new object is the generated one
    assert not np.array_equal(on.frames[vacated], off.frames[vacated])
    # colour match: one shift per clip moves the new object's median colour onto the target image's
    matched = tiny_pipeline.render(clip.frames, image, SRC, TRG, EditSettings(feather=0, **FAST), masks=masks)
    assert np.array_equal(matched.frames[vacated], on.frames[vacated])
    first = placed[0]  # with feather 0 the whole silhouette is interior
    assert np.abs(np.median(matched.frames[0][first], axis=0) - (40, 80, 220)).max() <= 3
    assert np.abs(np.median(on.frames[0][first], axis=0) - (40, 80, 220)).max() > 20  # the model's own colour
    shift = matched.frames.astype(int) - on.frames.astype(int)  # (frames, H, W, 3)
    unclipped = placed & np.all([(f > 2).all(-1) & (f < 253).all(-1) for f in (matched.frames, on.frames)], 0)
    assert len({tuple(v) for v in shift[unclipped]}) <= 8  # one shift (± rounding), not one per frame
    # a target image with nothing to cut out renders the whole region, as without layers
    blank = np.full((32, 32, 3), 128, np.uint8)
    assert np.array_equal(tiny_pipeline.render(clip.frames, blank, SRC, TRG, EditSettings(feather=0, **FAST),
                                               masks=masks).frames,
                          tiny_pipeline.render(clip.frames, blank, SRC, TRG,
                                               EditSettings(feather=0, layered=False, **FAST), masks=masks).frames)


def test_masks_grow_to_hold_the_new_shape_and_the_whole_old_object(tiny_pipeline):
    _, clip = clip_of("circle", "cross", frames=3)
    image, _ = render_target_image("blue", "cross", 64, 64, pose=Pose(0.5, 0.5, 0.35, 0.0),
                                   background=Background("gray", "plain"))
    layered = tiny_pipeline.compute_masks(clip.frames, image, SRC, TRG, EditSettings(**FAST)) > 0
    plain = tiny_pipeline.compute_masks(clip.frames, image, SRC, TRG, EditSettings(layered=False, **FAST)) > 0
    assert (layered >= plain).all()  # only ever grows
    assert layered[clip.masks].all()  # the old object is inside, rim and all
    assert layered[clip.target_footprints].mean() > 0.9 > plain[clip.target_footprints & ~clip.masks].mean()
