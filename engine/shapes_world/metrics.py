"""Benchmark metrics of DESIGN.md §4, as pure numpy functions on uint8 RGB frames and bool masks.

All work at source resolution. Choices the design leaves open are fixed here and documented:
"frame size" for the bg_psnr dilation is max(H, W); the colour-accuracy erosion is 2 % of min(H, W);
PSNR of identical images is capped at 100 dB; a frame with no detected object counts as a tracking
error of 100 % of the diagonal.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.compose.shape_prior import iou
from engine.shapes_world.vocabulary import OBJECT_COLOURS

OBJECT_THRESHOLD = 40  # max channel difference to the clean plate that makes a pixel "object"
PSNR_CAP = 100.0


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.astype(bool)
    return cv2.dilate(mask.astype(np.uint8), _disk(radius)).astype(bool)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.astype(bool)
    return cv2.erode(mask.astype(np.uint8), _disk(radius), borderValue=0).astype(bool)


def object_pixels(
    image: np.ndarray, clean_plate: np.ndarray, threshold: int = OBJECT_THRESHOLD
) -> np.ndarray:
    """Pixels whose max channel difference to the clean plate exceeds the threshold."""
    diff = np.abs(image.astype(np.int16) - clean_plate.astype(np.int16)).max(axis=-1)
    return diff > threshold


def mask_iou(pred: np.ndarray, edit_region: np.ndarray) -> float:
    """Predicted mask vs the edit region (source footprint ∪ target footprint)."""
    return iou(pred, edit_region)


def bg_psnr(
    output: np.ndarray, source: np.ndarray, edit_region: np.ndarray, dilate_frac: float = 0.03
) -> float:
    """PSNR (dB) between output and source outside the edit region dilated by 3 % of max(H, W)."""
    h, w = edit_region.shape
    keep = ~dilate(edit_region, int(round(dilate_frac * max(h, w))))
    if not keep.any():
        return PSNR_CAP
    err = (output.astype(np.float64) - source.astype(np.float64))[keep]
    mse = float((err**2).mean())
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def color_acc(
    output: np.ndarray,
    target_footprint: np.ndarray,
    clean_plate: np.ndarray,
    target_colour: str,
    erode_frac: float = 0.02,
) -> float:
    """Share of eroded-footprint pixels whose nearest colour (8 object colours + the clean-plate pixel)
    is the target colour. An empty footprint scores 1.0 (nothing to get wrong)."""
    h, w = target_footprint.shape
    region = erode(target_footprint, int(round(erode_frac * min(h, w))))
    if not region.any():
        region = target_footprint.astype(bool)
    if not region.any():
        return 1.0
    names = list(OBJECT_COLOURS)
    palette = np.array([OBJECT_COLOURS[n] for n in names], np.float32)  # (8, 3)
    px = output[region].astype(np.float32)  # (P, 3)
    plate = clean_plate[region].astype(np.float32)
    d_obj = ((px[:, None, :] - palette[None]) ** 2).sum(-1)  # (P, 8)
    d_plate = ((px - plate) ** 2).sum(-1, keepdims=True)  # (P, 1)
    nearest = np.concatenate([d_obj, d_plate], 1).argmin(1)
    return float((nearest == names.index(target_colour)).mean())


def shape_iou(output: np.ndarray, clean_plate: np.ndarray, target_footprint: np.ndarray) -> float:
    """Object pixels (differ from the clean plate by > 40) vs the target footprint."""
    return iou(object_pixels(output, clean_plate), target_footprint)


def removal(
    output: np.ndarray, clean_plate: np.ndarray, source_fp: np.ndarray, target_fp: np.ndarray
) -> float:
    """Share of source-footprint pixels outside the target footprint that match the clean plate."""
    region = source_fp.astype(bool) & ~target_fp.astype(bool)
    if not region.any():
        return 1.0
    return float((~object_pixels(output, clean_plate))[region].mean())


def flicker(frames: np.ndarray, masks: np.ndarray) -> float:
    """Mean over consecutive frames of the Euclidean change in the object's mean RGB colour (0–255).
    `masks` selects the object's pixels per frame; frames with an empty mask are skipped."""
    means = [
        f[m].astype(np.float64).mean(0) if m.any() else None for f, m in zip(frames, masks, strict=False)
    ]
    steps = [
        float(np.linalg.norm(a - b))
        for a, b in zip(means, means[1:], strict=False)
        if a is not None and b is not None
    ]
    return float(np.mean(steps)) if steps else 0.0


def track_err(frames: np.ndarray, clean_plate: np.ndarray, gt_centroids: np.ndarray) -> float:
    """Mean distance between the detected object's centroid and the ground truth, in % of the diagonal."""
    h, w = frames.shape[1:3]
    diag = math.hypot(h, w)
    errs = []
    for f, (gx, gy) in zip(frames, gt_centroids, strict=False):
        ys, xs = np.nonzero(object_pixels(f, clean_plate))
        errs.append(100.0 if len(xs) == 0 else 100.0 * math.hypot(xs.mean() - gx, ys.mean() - gy) / diag)
    return float(np.mean(errs))


def clip_metrics(
    output: np.ndarray,
    source: np.ndarray,
    pred_masks: np.ndarray,
    clean_plate: np.ndarray,
    source_fps: np.ndarray,
    target_fps: np.ndarray,
    target_colour: str,
    target_centroids: np.ndarray,
) -> dict[str, float]:
    """Every §4 metric for one clip (frame metrics averaged over frames)."""
    edit = source_fps | target_fps
    n = len(output)

    def avg(fn) -> float:
        return float(np.mean([fn(i) for i in range(n)]))

    return {
        "mask_iou": avg(lambda i: mask_iou(pred_masks[i], edit[i])),
        "bg_psnr": avg(lambda i: bg_psnr(output[i], source[i], edit[i])),
        "color_acc": avg(lambda i: color_acc(output[i], target_fps[i], clean_plate, target_colour)),
        "shape_iou": avg(lambda i: shape_iou(output[i], clean_plate, target_fps[i])),
        "removal": avg(lambda i: removal(output[i], clean_plate, source_fps[i], target_fps[i])),
        "flicker": flicker(
            output,
            np.stack(
                [
                    object_pixels(f, clean_plate) & dilate(t, 2)
                    for f, t in zip(output, target_fps, strict=False)
                ]
            ),
        ),
        "track_err": track_err(output, clean_plate, target_centroids),
    }
