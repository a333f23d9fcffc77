"""Pixels between the engine (PNG bytes), numpy (RGB / grey uint8) and Qt (QImage).

Why one module: every conversion copies or shares memory in a specific way; keeping them together
keeps the rule visible — a QImage made here always owns its bytes, so the numpy array may die.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage


def decode_png(data: bytes, grey: bool = False) -> np.ndarray:
    """PNG/JPEG bytes → RGB (h, w, 3) or grey (h, w) uint8."""
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise ValueError("the engine sent an image that cannot be decoded")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_png(img: np.ndarray) -> bytes:
    """RGB or grey uint8 → PNG bytes."""
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("could not encode PNG")
    return buf.tobytes()


def to_qimage(img: np.ndarray) -> QImage:
    """RGB/RGBA/grey uint8 → a QImage that owns a copy of the pixels."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if img.ndim == 2:
        fmt, bpl = QImage.Format.Format_Grayscale8, w
    elif img.shape[2] == 4:
        fmt, bpl = QImage.Format.Format_RGBA8888, 4 * w
    else:
        fmt, bpl = QImage.Format.Format_RGB888, 3 * w
    return QImage(img.data, w, h, bpl, fmt).copy()


def overlay(rgb: np.ndarray, mask: np.ndarray | None, opacity: float, colour=(255, 60, 200)) -> np.ndarray:
    """Source frame with the mask tinted on top (opacity 0..1)."""
    if mask is None or opacity <= 0:
        return rgb
    if mask.shape[:2] != rgb.shape[:2]:
        mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    out = rgb.copy()
    sel = mask > 127
    tint = np.array(colour, np.float32)
    out[sel] = (rgb[sel].astype(np.float32) * (1 - opacity) + tint * opacity).astype(np.uint8)
    edges = cv2.morphologyEx(sel.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = colour
    return out


def fit_size(w: int, h: int, max_size: int) -> tuple[int, int]:
    if max_size <= 0 or max(w, h) <= max_size:
        return w, h
    s = max_size / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def thumbnail(rgb: np.ndarray, max_size: int) -> np.ndarray:
    w, h = fit_size(rgb.shape[1], rgb.shape[0], max_size)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != rgb.shape[1::-1] else rgb
