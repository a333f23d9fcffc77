"""Metric functions on constructed cases whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.shapes_world.clips import ClipSpec, render_clip
from engine.shapes_world.metrics import (
    PSNR_CAP,
    bg_psnr,
    clip_metrics,
    color_acc,
    dilate,
    flicker,
    mask_iou,
    removal,
    shape_iou,
    track_err,
)
from engine.shapes_world.render import Background
from engine.shapes_world.vocabulary import OBJECT_COLOURS

H = W = 100


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def plate() -> np.ndarray:
    return np.full((H, W, 3), 128, np.uint8)


def test_mask_iou_known_values() -> None:
    a, b = box(0, 10, 0, 10), box(0, 10, 5, 15)
    assert mask_iou(a, b) == pytest.approx(50 / 150)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, box(50, 60, 50, 60)) == 0.0


def test_bg_psnr_ignores_dilated_edit_region_and_measures_outside() -> None:
    src = plate()
    edit = box(40, 60, 40, 60)
    out = src.copy()
    out[38:62, 38:62] = 0  # changes within 3 px of the region: ignored
    assert bg_psnr(out, src, edit) == PSNR_CAP
    out[0:10, 0:10] = 128 + 10  # 100 px off by 10 in every channel, outside
    keep = int((~dilate(edit, 3)).sum())
    assert H * W - 26**2 <= keep < H * W - 20**2
    mse = 100 * 100 / keep
    assert bg_psnr(out, src, edit) == pytest.approx(10 * math.log10(255**2 / mse), abs=0.05)


def test_color_acc_counts_target_colour_inside_eroded_footprint() -> None:
    fp = box(20, 80, 20, 80)
    out = plate()
    out[fp] = OBJECT_COLOURS["red"]
    assert color_acc(out, fp, plate(), "red") == 1.0
    assert color_acc(out, fp, plate(), "blue") == 0.0
    out[20:50, 20:80] = (130, 126, 128)  # near the plate pixel → counts as background, not red
    assert color_acc(out, fp, plate(), "red") == pytest.approx(28 / 56, abs=1e-9)  # eroded by 2 px


def test_shape_iou_uses_difference_to_clean_plate() -> None:
    fp = box(20, 60, 20, 60)
    out = plate()
    out[20:60, 40:80] = 200  # half overlap
    assert shape_iou(out, plate(), fp) == pytest.approx(800 / 2400)
    out2 = plate()
    out2[20:60, 40:80] = 128 + 40  # exactly at the threshold: not object
    assert shape_iou(out2, plate(), fp) == 0.0


def test_removal_share_of_source_only_pixels_restored() -> None:
    src_fp, trg_fp = box(0, 20, 0, 20), box(0, 20, 0, 10)
    out = plate()
    assert removal(out, plate(), src_fp, trg_fp) == 1.0
    out[0:10, 10:20] = 255  # half of the source-only region still shows the old object
    assert removal(out, plate(), src_fp, trg_fp) == pytest.approx(0.5)


def test_flicker_mean_colour_change() -> None:
    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[0], frames[1], frames[2] = 100, 103, 103
    masks = np.ones((3, H, W), bool)
    assert flicker(frames, masks) == pytest.approx((math.sqrt(27) + 0) / 2)
    assert flicker(frames[[1, 2]], masks[:2]) == 0.0


def test_track_err_in_percent_of_diagonal() -> None:
    frames = np.repeat(plate()[None], 2, 0)
    frames[0, 10:20, 10:20] = 255  # centroid (14.5, 14.5)
    frames[1, 10:20, 10:20] = 255
    gt = np.array([[14.5, 14.5], [14.5 + 30, 14.5 + 40]])
    assert track_err(frames, plate(), gt) == pytest.approx((0 + 100 * 50 / math.hypot(H, W)) / 2)
    frames[1] = 128  # object vanished → worst case
    assert track_err(frames, plate(), gt) == pytest.approx(50.0)


def test_clip_metrics_perfect_edit_and_untouched_source() -> None:
    spec = ClipSpec(
        "red",
        "circle",
        Background("navy", "striped", 30.0, 0.2),
        "translate",
        (0.3, 0.5),
        (0.4, 0.0),
        radius=(0.15, 0.2),
        target_colour="yellow",
        target_shape="star",
    )
    clip = render_clip(spec, 6, 96, 96)
    truth = render_clip(
        ClipSpec(
            "yellow",
            "star",
            spec.background,
            "translate",
            (0.3, 0.5),
            (0.4, 0.0),
            radius=(0.15, 0.2),
            target_colour="yellow",
            target_shape="circle",
        ),
        6,
        96,
        96,
    )
    assert (truth.masks == clip.target_footprints).all()
    m = clip_metrics(
        truth.frames,
        clip.frames,
        clip.edit_regions,
        clip.clean_plate,
        clip.masks,
        clip.target_footprints,
        "yellow",
        clip.target_centroids,
    )
    assert m["mask_iou"] == 1.0 and m["bg_psnr"] == PSNR_CAP and m["color_acc"] == 1.0
    assert m["shape_iou"] > 0.9 and m["removal"] > 0.9 and m["track_err"] < 1.0 and m["flicker"] < 6.0
    bad = clip_metrics(
        clip.frames,
        clip.frames,
        np.zeros_like(clip.masks),
        clip.clean_plate,
        clip.masks,
        clip.target_footprints,
        "yellow",
        clip.target_centroids,
    )
    assert bad["color_acc"] < 0.2 and bad["removal"] < 0.1 and bad["mask_iou"] == 0.0
