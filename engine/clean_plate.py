"""Temporal clean plates: the background behind the source object, taken from the frames where it is seen.

When the new object is smaller than the old one, or another shape, part of the old object's footprint
must become background again. The model at hand draws that background poorly (a smudge of the old
object's colour), but a moving object uncovers it in other frames: with a still camera, the median of
the other frames' unmasked pixels is the background itself, byte for byte. What no frame uncovers is
filled from its surroundings (OpenCV's Telea inpainting). A moving camera breaks the median, so a
frame whose unmasked pixels disagree with the clip's median is inpainted alone.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

PAD = 0.02  # masks are grown by this × the shorter side: a mask's edge may miss the object's antialiasing
STILL_TOLERANCE = 6.0  # median |frame − clip median| on unmasked pixels above which the camera moved


def grow(masks: np.ndarray, pad: float) -> np.ndarray:
    """(frames, H, W) masks → bool, each dilated by `pad` × the shorter side (at least one pixel)."""
    r = max(1, round(pad * min(masks.shape[1:3])))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.stack([cv2.dilate((m > 0).astype(np.uint8), disk) > 0 for m in masks])


def clean_plates(frames: np.ndarray, masks: np.ndarray, pad: float = PAD) -> np.ndarray:
    """(frames, H, W, 3) uint8 and (frames, H, W) masks → (frames, H, W, 3) uint8 plates: each frame with
    its masked pixels replaced by the background other frames show there (unmasked pixels unchanged)."""
    grown = grow(masks, pad)  # (frames, H, W) bool: pixels that may show the object
    stack = frames.astype(np.float32)
    stack[grown] = np.nan
    with warnings.catch_warnings():  # all-NaN columns are expected: pixels no frame uncovers
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(stack, axis=0)  # (H, W, 3); NaN where every frame is masked
    seen = ~np.isnan(median[..., 0])
    plates = frames.copy()
    for i, frame in enumerate(frames):
        keep = ~grown[i] & seen
        still = not keep.any() or float(np.median(np.abs(frame[keep] - median[keep]))) <= STILL_TOLERANCE
        fill = grown[i] & seen if still else np.zeros_like(seen)
        plates[i][fill] = np.round(median[fill]).astype(np.uint8)
        hole = grown[i] & ~fill
        if hole.any():
            plates[i] = cv2.inpaint(plates[i], hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    return plates

