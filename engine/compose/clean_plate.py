"""Temporal clean plates: the background behind the source object, taken from the frames where it is seen.

When the new object is smaller than the old one, or another shape, part of the old object's footprint
must become background again. The model at hand draws that background poorly (a smudge of the old
object's colour), but a moving object uncovers it in other frames: with a still camera, the median of
the other frames' unmasked pixels is the background itself, byte for byte. What no frame uncovers is
filled from its surroundings (OpenCV's Telea inpainting). A moving camera breaks the median, so a
frame whose unmasked pixels around the edit disagree with the clip's median is inpainted alone.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

PAD = 0.02  # masks are grown by this × the shorter side: a mask's edge may miss the object's antialiasing
CHECK_BAND = 0.05  # × the shorter side: the band around the edit in which the camera must be still
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
    # the median is only needed near the edit: where plates are filled, and a band around it in which
    # a frame is checked against the others (a twentieth of the full-frame median's time at 256²)
    near = grow(grown.any(0)[None], CHECK_BAND)[0]  # (H, W)
    stack = frames[:, near].astype(np.float32)  # (frames, P, 3)
    stack[grown[:, near]] = np.nan
    median = np.full(frames.shape[1:], np.nan, np.float32)  # (H, W, 3); NaN where every frame is masked
    with warnings.catch_warnings():  # all-NaN columns are expected: pixels no frame uncovers
        warnings.simplefilter("ignore", RuntimeWarning)
        median[near] = np.nanmedian(stack, axis=0)
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

