"""Image-space work inside the edit region's box, for large frames (DESIGN §2 stage 6).

Layers, clean plates, outlines and compositing only ever change pixels inside the (feathered) edit
region, so on a large frame they run on the box around every frame's mask, grown by the feather's
reach, and the result is pasted into a copy of the source: outside the box the output is the source
byte for byte, and the cost follows the region, not the frame. Frames whose shorter side is at most
REGION_FROM (every benchmark size) keep the whole-frame path, so their results are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.compose.compositor import Compositor

REGION_FROM = 512  # frames with a shorter side above this work inside the region's box
MARGIN = 16  # pixels around the region's box beyond the feather's reach (blur tails, outline growth)
MAX_SHARE = 0.6  # a box covering more of the frame than this gains nothing: the whole frame is used


Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def region_box(masks: np.ndarray, feather: float, align: tuple[int, int] = (1, 1)) -> Box | None:
    """The box (y0, y1, x0, x1) around every frame's mask grown by the feather's reach and MARGIN, with
    its edges on multiples of `align` (rows, columns); None where the whole frame should be used."""
    n, H, W = masks.shape
    if min(H, W) <= REGION_FROM:
        return None
    rows, cols = np.flatnonzero((masks > 0).any(axis=(0, 2))), np.flatnonzero((masks > 0).any(axis=(0, 1)))
    if len(rows) == 0:
        return None
    reach = 4 * max(1, round(feather * min(H, W))) + MARGIN
    ay, ax = align
    y0, x0 = max(0, (rows[0] - reach) // ay * ay), max(0, (cols[0] - reach) // ax * ax)
    y1, x1 = min(H, -(-(rows[-1] + 1 + reach) // ay) * ay), min(W, -(-(cols[-1] + 1 + reach) // ax) * ax)
    if (y1 - y0) * (x1 - x0) > MAX_SHARE * H * W:
        return None
    return int(y0), int(y1), int(x0), int(x1)


def box_feather(feather: float, shape: tuple[int, int], box: Box) -> float:
    """The feather fraction that gives the box the frame's feather in pixels (fractions are of the short side)."""
    y0, y1, x0, x1 = box
    return feather * min(shape) / min(y1 - y0, x1 - x0)


def grow_in_box(frames: np.ndarray, masks: np.ndarray, feather: float,
                grow: Callable[[np.ndarray, np.ndarray, float], np.ndarray]) -> np.ndarray:
    """`grow(frames, masks, feather)` (a mask growth, e.g. layers.grow_masks) run inside the region's box."""
    box = region_box(masks, feather)
    if box is None:
        return grow(frames, masks, feather)
    y0, y1, x0, x1 = box
    out = masks.copy()
    out[:, y0:y1, x0:x1] = grow(frames[:, y0:y1, x0:x1], masks[:, y0:y1, x0:x1],
                                box_feather(feather, masks.shape[1:], box))
    return out


class BoxedCompositor:
    """A Compositor of the box's crops that pastes into the whole frames; the model still edits the whole
    frames (`clip`), and each generated frame's matching part goes to the inner compositor."""

    boxes = None

    def __init__(self, frames: np.ndarray, masks: np.ndarray, inner: Compositor, box: Box):
        self.frames, self.clip, self.clip_masks = frames, frames, masks
        self.inner, self.box = inner, box
        y0, y1, x0, x1 = box
        self.weights = np.zeros(masks.shape, np.uint8)
        self.weights[:, y0:y1, x0:x1] = inner.weights

    def frame(self, i: int, generated: np.ndarray, final: bool = True) -> np.ndarray:
        """Output frame i: the source with the box composited from the generated pixels (any size)."""
        H, W = self.frames.shape[1:3]
        gh, gw = generated.shape[:2]
        y0, y1, x0, x1 = self.box
        part = generated[y0 * gh // H: -(-y1 * gh // H), x0 * gw // W: -(-x1 * gw // W)]
        out = self.frames[i].copy()
        out[y0:y1, x0:x1] = self.inner.frame(i, part, final)
        return out
