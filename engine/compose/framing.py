"""Object framing: edit a square crop that follows the object instead of the whole frame.

At a small model's native size a small object is a few latent cells across, too few for the
UNet to draw a different outline or for a mask to follow one. Cropping every frame to a square
around its edit region, editing the crops at the native size and pasting the results back gives the
object several times the cells, and puts it where a model trained on such crops draws best: near
the middle, at radius ≈ `FILL` of the crop (engine/shapes_world/data.py draws its training frames so).
Outside the edit region the output is still the source, byte for byte.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.compose.composite import resize_frames

FILL = 0.3  # half the edit region's extent, as a share of the crop side
SMOOTH = 1  # box sides are averaged over ±SMOOTH frames: a mask's jitter in size should not zoom the crop


def crop_boxes(masks: np.ndarray, fill: float = FILL) -> np.ndarray | None:
    """(frames, H, W) uint8 masks → (frames, 3) int boxes (x0, y0, side), squares inside the frame
    whose middle is the mask's bounding box middle and whose side is the box's longer half / `fill`
    (averaged over neighbouring frames; the middle is not, so a moving region never leaves its crop).
    Frames without a mask take their neighbours' box; None when no frame has one (nothing to frame)."""
    n, H, W = masks.shape
    cx, cy, half = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs):
            cx[i], cy[i] = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
            half[i] = max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) / 2
    have = np.flatnonzero(~np.isnan(half))
    if len(have) == 0:
        return None
    idx = np.arange(n)
    cx, cy, half = (np.interp(idx, have, v[have]) for v in (cx, cy, half))
    k = np.ones(2 * SMOOTH + 1) / (2 * SMOOTH + 1)
    half = np.convolve(np.pad(half, SMOOTH, mode="edge"), k, mode="valid")
    side = np.clip(np.round(half / fill), 8, min(H, W)).astype(int)
    x0 = np.clip(np.round(cx - side / 2), 0, W - side).astype(int)
    y0 = np.clip(np.round(cy - side / 2), 0, H - side).astype(int)
    return np.stack([x0, y0, side], 1)


def crop(images: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(frames, H, W[, 3]) uint8 → (frames, size, size[, 3]): each frame's box resized to `size`."""
    return np.concatenate([resize_frames(img[None, y0 : y0 + s, x0 : x0 + s], (size, size))
                           for img, (x0, y0, s) in zip(images, boxes, strict=True)])


def crop_masks(masks: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Masks cropped like the frames and binarised again (0/255)."""
    return np.where(crop(masks, boxes, size) > 127, 255, 0).astype(np.uint8)


def paste(generated: np.ndarray, box: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A generated crop (size, size, 3) float [0, 1] → (full-frame float image, bool: inside the box)."""
    x0, y0, s = (int(v) for v in box)
    canvas = np.zeros((height, width, 3), np.float32)
    canvas[y0 : y0 + s, x0 : x0 + s] = cv2.resize(generated.astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    inside = np.zeros((height, width), bool)
    inside[y0 : y0 + s, x0 : x0 + s] = True
    return np.clip(canvas, 0, 1), inside
