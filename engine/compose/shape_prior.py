"""Shape prior: where the new object stands, per frame, from the target image and the source object.

The diffusion masks know where the edit happens but the model at hand draws the new object inside the
old outline (a star comes out as a star-coloured circle). The target image already shows the new
shape, so its silhouette, scaled to the source object's size and centred on it each frame, says
where the new object stands. A target of the source's own shape (a recolour) keeps the old object's
exact outline instead, which follows its rotation; a different shape keeps the target image's
orientation. The pipeline uses the outline twice: the edit region grows to hold it, and at
compositing only the outline takes generated pixels while the rest of the region the old object
leaves takes the clean plate (engine/compose/layers.py, engine/compose/clean_plate.py).

The silhouette is found against the target image's border colours: a reference image shows the
object on a background that reaches its edges (a product shot, a shapes-world target).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from engine.compose.clean_plate import grow

BORDER = 0.03  # × the shorter side: the band whose colours are the target image's background
BORDER_SHARE = 0.01  # a colour is the background's when at least this share of the border band has it
COLOUR_GAP = 48.0  # RGB distance from every border colour that makes a pixel the object's
OBJECT_GAP = 30  # max channel difference to the clean plate that makes a source pixel the old object's
SAME_SHAPE = 0.9  # best overlap over turns above which the target has the source's shape
ANGLES = tuple(range(-45, 46, 5))  # turns tried by `same_shape`, degrees
WORK_SIDE = 256  # silhouettes are found at most at this size (the border search is quadratic)



def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union; two empty masks agree perfectly (1.0)."""
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)

def _largest_filled(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    keep = labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    return ndimage.binary_fill_holes(keep)


def _opened(mask: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def _half_contrast(contrast: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Re-cut a found object where its contrast falls to half its typical value: an antialiased edge pixel
    counts when the object covers half of it, as a renderer counts it, so sizes come out unbiased (a fixed
    low cut grows a 20-pixel object by a pixel all round, which its new shape inherits)."""
    if not found.any():
        return found
    level = 0.5 * float(np.percentile(contrast[found], 75))
    near = cv2.dilate(found.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return _largest_filled(near & (contrast > level))


def target_silhouette(image: np.ndarray) -> np.ndarray | None:
    """RGB uint8 (h, w, 3) → bool (h, w) silhouette of its object, or None when none stands out of the
    border colours (an object touching every edge, a busy photo)."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image
    sh, sw = small.shape[:2]
    b = max(1, round(BORDER * min(sh, sw)))
    ring = np.ones((sh, sw), bool)
    ring[b:-b, b:-b] = False
    colours, counts = np.unique(small[ring].astype(np.int32) // 4, axis=0, return_counts=True)
    # the background's colours are the ring's common ones: an object touching the edge puts a few of
    # its own pixels there, which must not make the whole object 'background'
    border = colours[counts >= BORDER_SHARE * ring.sum()] * 4 + 2  # (K, 3)
    if len(border) == 0:  # no colour is common along the edges: a busy photo, nothing to cut against
        return None
    px = small.reshape(-1, 3).astype(np.float32)
    nearest = np.full(len(px), np.inf, np.float32)
    for chunk in np.array_split(border.astype(np.float32), max(1, len(border) // 256)):
        d = np.sqrt(((px[:, None, :] - chunk[None]) ** 2).sum(-1)).min(1)
        nearest = np.minimum(nearest, d)
    nearest = nearest.reshape(sh, sw)
    sil = _half_contrast(nearest, _largest_filled(_opened((nearest > COLOUR_GAP) & ~ring)))
    if sil.sum() < 16 or sil.mean() > 0.9:
        return None
    if scale < 1:
        sil = cv2.resize(sil.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return sil


def source_objects(frames: np.ndarray, plates: np.ndarray, masks: np.ndarray, reach: float = 0.02) -> np.ndarray:
    """The old object per frame: pixels that differ from the clean plate, within the mask grown by `reach`
    × the shorter side (a mask's edge may fall short of the object's), (frames, H, W) bool. A frame where
    none differ keeps its whole mask (a mask painted over an object the plate kept)."""
    near = grow(masks, reach)  # (frames, H, W)
    out = np.zeros(masks.shape, bool)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(near[i])
        if len(xs) == 0:
            continue
        box = np.s_[max(ys.min() - 1, 0) : ys.max() + 2, max(xs.min() - 1, 0) : xs.max() + 2]  # the work's extent
        diff = np.abs(frames[i][box].astype(np.int16) - plates[i][box].astype(np.int16)).max(-1) * near[i][box]
        obj = _half_contrast(diff, _largest_filled(diff > OBJECT_GAP))
        out[i][box] = obj if obj.any() else m[box] > 0
    return out


def _reach(mask: np.ndarray) -> tuple[float, float, float]:
    """Centre (of the smallest enclosing circle) and size of the mask's pixels: the geometric mean of the
    bounding box's longer side and the enclosing circle's diameter. Neither alone measures a shape's size
    the way a viewer does: per unit of the shapes world's radius, the box's side runs from 1.56 (square)
    to 2.0 (diamond) and the circle's diameter from 1.8 (circle) to 2.2 (square); their mean runs 1.8–2.0.
    An oversized new object covers the old one's thin parts (a star's tips) that should become background."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    edge = np.concatenate([c[:, 0] for c in contours])  # (K, 2) x, y: the outline bounds every pixel
    pts = np.concatenate([edge + (dx, dy) for dx in (0, 1) for dy in (0, 1)]).astype(np.float32)  # corners
    (cx, cy), r = cv2.minEnclosingCircle(pts)
    x0, y0 = edge.min(0)
    x1, y1 = edge.max(0) + 1
    side = max(x1 - x0, y1 - y0)
    return float(cx), float(cy), float(np.sqrt(2 * r * side))


def place(silhouette: np.ndarray, objects: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """The silhouette scaled to each frame's object's size, centred on it (`_reach`) and turned by `angle`
    degrees: (frames, H, W) bool. Frames without an object get an empty silhouette."""
    sx, sy, size = _reach(silhouette)
    cut = silhouette.astype(np.float32)
    n, H, W = objects.shape
    out = np.zeros((n, H, W), bool)
    for i, obj in enumerate(objects):
        if not obj.any():
            continue
        cx, cy, reach = _reach(obj)
        warp = cv2.getRotationMatrix2D((sx, sy), angle, reach / max(size, 1e-6))
        warp[:, 2] += (cx - sx, cy - sy)
        out[i] = cv2.warpAffine(cut, warp, (W, H), flags=cv2.INTER_LINEAR) > 0.5
    return out


def same_shape(silhouette: np.ndarray, objects: np.ndarray, frames: int = 4) -> bool:
    """Whether the target has the source object's shape: the silhouette, turned to its best angle,
    overlaps the old object by SAME_SHAPE (median over a few frames): different shapes overlap less
    even turned to their best angle, the same shape more, whatever its rotation."""
    have = np.flatnonzero(objects.reshape(len(objects), -1).any(1))
    if len(have) == 0:
        return False
    picks = objects[have[np.linspace(0, len(have) - 1, min(frames, len(have))).round().astype(int)]]
    best = [max(iou(place(silhouette, obj[None], a)[0], obj) for a in ANGLES) for obj in picks]
    return float(np.median(best)) >= SAME_SHAPE


def new_outlines(silhouette: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Where the new object stands, per frame: the old object's own outline when the target has its
    shape (a recolour: the outline then follows rotation and size exactly, which the placed silhouette
    does not), else the silhouette placed at the old object's pose. (frames, H, W) bool."""
    if same_shape(silhouette, objects):
        return objects.copy()
    return place(silhouette, objects)

