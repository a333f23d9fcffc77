"""Object framing: crop boxes from masks, and an object-framed render on the tiny model."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import moving_disc_clip
from test_pipeline import FAST, SRC, TRG, target_image

from engine.compose import framing
from engine.settings import EditSettings


def disc_masks(centres: list[tuple[int, int] | None], radius: int, size: int = 128) -> np.ndarray:
    out = np.zeros((len(centres), size, size), np.uint8)
    for m, c in zip(out, centres, strict=True):
        if c is not None:
            cv2.circle(m, c, radius, 255, -1)
    return out


def test_a_box_centres_the_region_at_the_fill_share():
    boxes = framing.crop_boxes(disc_masks([(60, 50)] * 3, radius=10))
    x0, y0, side = boxes[1]
    # the disc's bounding box is 21 px: side = 10.5 / 0.3 = 35, centred on the disc
    assert side == 35
    assert abs(x0 + side / 2 - 60.5) <= 1 and abs(y0 + side / 2 - 50.5) <= 1


def test_boxes_stay_inside_the_frame_and_fill_frames_without_a_mask():
    boxes = framing.crop_boxes(disc_masks([(6, 6), None, (120, 120)], radius=5))
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= 128).all()
    assert boxes[0, 0] == 0 and boxes[0, 1] == 0  # pushed inside at the top-left border
    mid = boxes[1, :2] + boxes[1, 2] / 2
    assert 40 < mid[0] < 90 and 40 < mid[1] < 90  # the empty frame lies between its neighbours
    assert framing.crop_boxes(np.zeros((2, 16, 16), np.uint8)) is None


def test_crop_then_paste_returns_the_box_content():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    box = np.array([[10, 20, 32]])
    crop = framing.crop(img, box, 32)[0]
    assert np.array_equal(crop, img[0, 20:52, 10:42])
    canvas, inside = framing.paste(crop.astype(np.float32) / 255, box[0], 64, 64)
    assert inside.sum() == 32 * 32 and inside[20, 10] and not inside[19, 10]
    assert np.abs(canvas[inside] * 255 - img[0][inside]).max() < 1


def test_an_object_framed_render_keeps_everything_outside_the_mask(tiny_pipeline):
    clip = moving_disc_clip(3, 64, 96)
    painted = np.zeros(clip.shape[:3], np.uint8)
    for i in range(3):
        cv2.circle(painted[i], (30 + 5 * i, 32), 7, 255, -1)
    seen: list[int] = []
    settings = EditSettings(framing="object", **FAST)
    result = tiny_pipeline.render(clip, target_image(), SRC, TRG, settings, masks=painted,
                                  on_frame=lambda i, rgb, m: seen.append((i, rgb.shape)))
    assert seen == [(i, clip.shape[1:]) for i in range(3)]
    assert result.frames.shape == clip.shape and np.array_equal(result.region_masks, painted)
    outside = result.masks == 0
    assert np.array_equal(result.frames[outside], clip[outside])
    inside = painted > 0
    assert not np.array_equal(result.frames[inside], clip[inside])
    # the crop was rendered at the model's native size: the working size is the crop's, not the frame's
    native = tiny_pipeline.model.native_size
    assert tiny_pipeline.last_working_size == (native, native)
    whole = tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(**FAST), masks=painted)
    assert not np.array_equal(whole.frames[inside], result.frames[inside])
