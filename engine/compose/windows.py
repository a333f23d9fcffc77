"""Overlapping frame windows, so memory is bounded by the window and not the clip."""

from __future__ import annotations

import numpy as np


def plan_windows(frames: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows covering `frames`, consecutive ones sharing `overlap` frames."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"window {size} with overlap {overlap}: need size >= 1 and 0 <= overlap < size")
    if frames <= size:
        return [(0, frames)]
    stride = size - overlap
    starts = list(range(0, frames - size, stride)) + [frames - size]
    return [(s, s + size) for s in dict.fromkeys(starts)]


def blend_weights(windows: list[tuple[int, int]], frames: int) -> list[np.ndarray]:
    """Per-window frame weights: linear ramps across overlaps, summing to 1 on every frame."""
    raw = []
    for start, end in windows:
        w = np.ones(end - start, np.float64)
        for other_start, other_end in windows:
            if (other_start, other_end) == (start, end):
                continue
            lo, hi = max(start, other_start), min(end, other_end)
            if hi <= lo:
                continue
            ramp = (np.arange(lo, hi) - lo + 1) / (hi - lo + 1)
            w[lo - start : hi - start] *= ramp if other_start < start else ramp[::-1]
        raw.append(w)
    total = np.zeros(frames)
    for (start, end), w in zip(windows, raw):
        total[start:end] += w
    return [w / total[start:end] for (start, end), w in zip(windows, raw)]
