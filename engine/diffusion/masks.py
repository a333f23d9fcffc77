"""Target-aware masks from source/target noise differences (DESIGN §2 stage 4; claims 6–8).

From z_T, a source branch and a target branch are sampled side by side with deterministic DDIM; where
their ε disagree is where the edit must happen, both on the source object and where the target's
different shape will stand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from scipy import ndimage

from engine.diffusion.conditioning import Conditioning
from engine.diffusion.ddim import Ladder, ddim_step, predict_eps
from engine.runtime.progress import Reporter


@torch.no_grad()
def noise_difference(unet: torch.nn.Module, z_T: torch.Tensor, source: Conditioning, target: Conditioning,
                     ladder: Ladder, prediction_type: str, reporter: Reporter | None = None,
                     on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Mean over timesteps and channels of |ε_src − ε_trg|: (frames, h, w) at latent resolution.
    `on_step(k, mean so far)` after each of the k steps: a provisional difference to show early."""
    reporter = reporter or Reporter()
    frames = z_T.shape[0]
    both = source.cat(target)
    z = torch.cat([z_T, z_T])  # (2 * frames, c, h, w): source branch, then target branch
    total = torch.zeros(frames, *z_T.shape[2:], device=z_T.device, dtype=torch.float32)
    for k, t in enumerate(ladder.timesteps):
        eps = predict_eps(unet, z, t, both.text, both.class_labels, ladder.levels[k], prediction_type, frames)
        total += (eps[:frames] - eps[frames:]).abs().float().mean(dim=1)
        z = ddim_step(z, eps, ladder.levels[k], ladder.levels[k + 1])
        reporter.step("masks", k + 1, len(ladder))
        if on_step is not None:
            on_step(k + 1, total / (k + 1))
    return total / len(ladder)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold for values in [0, 1]."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * omega - mu) ** 2 / np.clip(omega * (1 - omega), 1e-12, None)
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau: take its middle
    return float(edges[int(round(best.mean())) + 1])


def _disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


STRONG = 0.7  # share of the clip's peak difference above which the diffusion mask is kept as it is
WEAK_FRAME = 0.5  # a frame whose own peak is under half the clip's is cut relative to twice its own
OBJECT_CONTRAST = 3.0  # a frame's peak over its median cell: below this the frame shows no object
BUSY_FLOOR = 0.2  # a frame whose median cell differs by this share of the clip's peak has no quiet background
KEEP_SHARE = 0.05  # refinement that keeps less of the coarse mask than this lost the object: keep the coarse one
BAND = 0.1  # how far (× the shorter side) refinement may grow a mask to reach the object's true edge
REGION_FROM = 512  # frames with a shorter side above this refine inside the mask's box, not the whole frame
REGION_WORK = 512  # longer side of that box's working image: GrabCut's cost stays bounded at any frame size


def grabcut_refine(frame: np.ndarray, mask: np.ndarray, band: int, iterations: int = 3) -> np.ndarray:
    """Snap a coarse mask to the edges of the source frame: GrabCut seeded with the mask as probable
    foreground, a `band`-pixel ring around it as probable background, definite background beyond. The
    latent-grid mask is blocky and often a little small; the ring lets the refined mask reach the object's
    true outline without ever spilling far from the diffusion signal.

    Frames whose shorter side is above REGION_FROM are refined inside the box of the mask and its ring
    (everything outside the ring is definite background anyway), scaled to at most REGION_WORK px, and
    the result is pasted back: the cost follows the region, not the frame. Smaller frames (every
    benchmark size) take the whole-frame path, so their masks are unchanged."""
    if mask.sum() == 0 or mask.all():
        return mask > 0
    if min(mask.shape) > REGION_FROM:
        return _region_refine(frame, mask, band, iterations)
    gc = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    gc[cv2.dilate(mask.astype(np.uint8), _disk(band)) > 0] = cv2.GC_PR_BGD
    gc[mask > 0] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means on OpenCV's global RNG: without this a
    # mask would depend on every GrabCut run before it in the process
    try:
        cv2.grabCut(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask > 0
    kept = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    kept = cv2.morphologyEx(kept, cv2.MORPH_OPEN, _disk(min(mask.shape) // 128)) > 0  # 1–2 px slivers
    labels, _ = ndimage.label(kept)  # pieces the ring picked up that do not touch the mask are not its object
    touching = np.unique(labels[kept & (mask > 0)])
    return np.isin(labels, touching[touching > 0])


def _region_refine(frame: np.ndarray, mask: np.ndarray, band: int, iterations: int) -> np.ndarray:
    """grabcut_refine inside the box of the mask grown by twice the band, at ≤ REGION_WORK px."""
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    pad = 2 * band
    y0, y1 = max(0, int(ys.min()) - pad), min(H, int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(W, int(xs.max()) + pad + 1)
    scale = min(1.0, REGION_WORK / max(y1 - y0, x1 - x0))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    crop_f = cv2.resize(frame[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    crop_m = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    if crop_m.sum() == 0 or crop_m.all():
        return mask > 0
    kept = grabcut_refine(crop_f, crop_m, max(1, round(band * scale)), iterations)
    out = np.zeros(mask.shape, bool)
    out[y0:y1, x0:x1] = cv2.resize(kept.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0
    return out


def masks_from_difference(diff: np.ndarray, size: tuple[int, int], threshold: float | str = 0.3,
                          dilate: float = 0.0, frames: np.ndarray | None = None,
                          refine: bool = False) -> np.ndarray:
    """(frames, h, w) float difference → (frames, H, W) uint8 masks 0/255 at frame size.

    Normalised per clip, upsampled, binarised (a fraction of the clip max, or 'otsu'), holes filled,
    opened and closed, dilated by `dilate` × the shorter side. With `refine`, the mask is snapped to the
    source frame's edges (`grabcut_refine`) and unioned with the strongest part of the diffusion mask
    (≥ STRONG × peak): that keeps the target-aware region outside the source object, where the new shape
    will stand and which the source frame's edges know nothing about.

    The cut is a fraction of the clip's peak, so the object's mask keeps one scale across frames, but a
    frame is never held to more than twice its own peak, so one frame with an outsized difference cannot
    blank out its neighbours.

    On a busy background the two branches can drift apart everywhere, so a frame's typical cell already
    differs by a quarter of the peak and a fraction-of-peak cut takes the whole frame. Such frames (median
    ≥ BUSY_FLOOR × peak) are measured above their median instead; frames with a quiet background are
    untouched. What each of these rules measured is in engine/models/shapes/TRAINING.md.
    """
    H, W = size
    out = np.zeros((len(diff), H, W), np.uint8)
    if diff.size == 0:
        return out
    floor = np.median(diff, axis=(1, 2), keepdims=True)  # (frames, 1, 1)
    busy = floor >= BUSY_FLOOR * float(diff.max())
    diff = np.where(busy, np.clip(diff - floor, 0, None), diff)
    flat = diff.reshape(len(diff), -1)  # (frames, h * w)
    per_frame = flat.max(1)
    peak = float(per_frame.max())
    if peak <= 1e-6:  # identical conditioning: nothing to edit
        return out
    # each frame is cut relative to the clip's peak, but never to more than 1 / WEAK_FRAME of its own,
    # if its own peak stands out of its background at all (a frame without the object stays empty)
    stands_out = per_frame >= OBJECT_CONTRAST * np.median(flat, axis=1)
    scale = np.where(stands_out, np.minimum(peak, per_frame / WEAK_FRAME), peak)[:, None, None]  # (frames, 1, 1)
    norm = np.clip(diff / np.maximum(scale, 1e-12), 0, 1)
    cut = otsu_threshold(norm) if threshold == "otsu" else float(threshold)
    short = min(H, W)

    def one(i: int) -> None:
        up = cv2.resize(norm[i].astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
        binary = ndimage.binary_fill_holes(up > cut)
        binary = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, _disk(short // 64))
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _disk(short // 32))
        if refine and frames is not None:
            kept = grabcut_refine(frames[i], binary, max(1, round(BAND * short)))
            if (kept & (binary > 0)).sum() < KEEP_SHARE * binary.sum():  # an empty frame in a clip is a flash
                # of the old object, so the coarse mask is the better error
                kept = binary > 0
            strong = cv2.morphologyEx((up > STRONG).astype(np.uint8), cv2.MORPH_OPEN, _disk(short // 32))
            binary = (kept | ((strong & binary) > 0)).astype(np.uint8)
        if dilate > 0:
            binary = cv2.dilate(binary, _disk(round(dilate * short)))
        out[i] = binary * 255

    # frames are independent and OpenCV releases the GIL (GrabCut seeds its RNG per thread), so they run
    # side by side on the cores and give the masks of a serial loop
    with ThreadPoolExecutor(max(1, min(len(norm), len(os.sched_getaffinity(0))))) as pool:
        list(pool.map(one, range(len(norm))))
    return out


def latent_masks(masks: np.ndarray, latent_size: tuple[int, int], device, dtype) -> torch.Tensor:
    """(frames, H, W) uint8 → (frames, 1, h, w) {0, 1}: any covered pixel marks its latent cell."""
    h, w = latent_size
    small = np.stack([cv2.resize((m > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
                      for m in masks])
    return torch.from_numpy((small > 0).astype(np.float32))[:, None].to(device=device, dtype=dtype)
