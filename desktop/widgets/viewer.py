"""The frame viewer: source, mask overlay, result and wipe compare; mask painting happens here.

A stroke is drawn straight into the frame's mask (so it shows at once) and handed to the window
as (frame, before, after) when the button is released: one stroke, one undo step.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.imaging import overlay, to_qimage
from desktop.model.document import Document

MODES = ("source", "overlay", "result", "wipe")
MIN_BRUSH, MAX_BRUSH = 1, 400


class Viewer(QWidget):
    modeChanged = Signal(str)
    toolChanged = Signal(str)
    brushChanged = Signal(int)
    opacityChanged = Signal(float)
    strokeFinished = Signal(int, object, object)  # frame, mask before, mask after
    notice = Signal(str)

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.mode = "source"
        self.tool = "brush"
        self.brush = 12
        self.opacity = 0.45
        self.wipe = 0.5
        self._cache: QImage | None = None
        self._rgb: np.ndarray | None = None  # the composed picture behind _cache
        self._stroke: tuple[int, np.ndarray] | None = None  # frame, mask before the stroke
        self._last: tuple[int, int] | None = None
        self._hover: QPointF | None = None
        self._dragging_wipe = False
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        doc.playheadChanged.connect(self._invalidate)
        doc.clipChanged.connect(self._invalidate)
        doc.frameLoaded.connect(self._on_frame)
        doc.resultChanged.connect(self._on_frame)
        doc.previewChanged.connect(self._on_frame)
        doc.masks.masksChanged.connect(self._on_frame)

    # --- settings ------------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        if mode != self.mode:
            self.mode = mode
            self._invalidate()
            self.modeChanged.emit(mode)

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        if self.mode not in ("overlay",):
            self.set_mode("overlay")
        self.toolChanged.emit(tool)
        self.update()

    def set_brush(self, size: int) -> None:
        size = max(MIN_BRUSH, min(MAX_BRUSH, int(size)))
        if size != self.brush:
            self.brush = size
            self.brushChanged.emit(size)
            self.update()

    def grow_brush(self, bigger: bool) -> None:
        """`[` and `]`: 25 % steps, at least one pixel."""
        b = self.brush
        self.set_brush(max(b + 1, round(b * 1.25)) if bigger else min(b - 1, round(b / 1.25)))

    def set_opacity(self, value: float) -> None:
        value = max(0.0, min(1.0, float(value)))
        if abs(value - self.opacity) > 1e-6:
            self.opacity = value
            self._invalidate()
            self.opacityChanged.emit(value)

    # --- composition ---------------------------------------------------------------------------------

    def _on_frame(self, index: int) -> None:
        if index in (-1, self.doc.playhead):
            self._invalidate()

    def _invalidate(self, *_: object) -> None:
        self._cache = None
        self.update()

    def _result(self, frame: int, base: np.ndarray) -> np.ndarray | None:
        img = self.doc.results.get(frame)
        if img is None:
            img = self.doc.previews.get(frame)
        if img is not None and img.shape[:2] != base.shape[:2]:
            img = cv2.resize(img, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
        return img

    def composed(self) -> QImage | None:
        """The picture for the current frame and mode (cached until something changes)."""
        if self._cache is not None:
            return self._cache
        f = self.doc.playhead
        base = self.doc.frame(f)
        if base is None:
            return None
        mask = self.doc.masks.mask(f)
        if self.mode == "overlay":
            img = overlay(base, mask, self.opacity)
        elif self.mode == "result":
            res = self._result(f, base)
            img = res if res is not None else (base // 3)
        elif self.mode == "wipe":
            res = self._result(f, base)
            img = base.copy()
            if res is not None:
                x = int(round(self.wipe * base.shape[1]))
                img[:, x:] = res[:, x:]
        else:
            img = base
        self._rgb = img if img is not base else None
        self._cache = to_qimage(img)
        return self._cache

    def image_rect(self) -> QRectF:
        """Where the frame is drawn: fitted, centred, aspect kept."""
        clip = self.doc.clip
        if clip is None:
            return QRectF()
        s = min(self.width() / clip.width, self.height() / clip.height)
        w, h = clip.width * s, clip.height * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_image(self, pos: QPointF) -> tuple[int, int]:
        r, clip = self.image_rect(), self.doc.clip
        return (int((pos.x() - r.x()) * clip.width / r.width()), int((pos.y() - r.y()) * clip.height / r.height()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 24, 28))
        img = self.composed()
        if img is None:
            p.setPen(QColor(150, 150, 160))
            text = "Open a clip (File ▸ Open, or drop a video here)" if self.doc.clip is None else "Loading frame…"
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, text)
            return
        r = self.image_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(r, img)
        f = self.doc.playhead
        if self.mode == "result" and f not in self.doc.results and f not in self.doc.previews:
            p.setPen(QColor(220, 220, 220))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "No result for this frame yet")
        if self.mode == "wipe":
            x = r.x() + self.wipe * r.width()
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
            p.drawText(QRectF(r.x() + 6, r.y() + 4, 120, 18), "source")
            p.drawText(QRectF(r.right() - 60, r.y() + 4, 60, 18), "result")
        if self.mode == "overlay" and self._hover is not None and self.doc.clip:
            radius = self.brush / 2 * r.width() / self.doc.clip.width
            colour = QColor(255, 255, 255) if self.tool == "brush" else QColor(255, 120, 120)
            p.setPen(QPen(colour, 1, Qt.PenStyle.DashLine if self.tool == "eraser" else Qt.PenStyle.SolidLine))
            p.drawEllipse(self._hover, radius, radius)
        p.end()

    # --- painting ------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton or self.doc.clip is None:
            return
        if self.mode == "wipe":
            self._dragging_wipe = True
            self._move_wipe(event.position())
            return
        if self.mode != "overlay":
            return
        f = self.doc.playhead
        if not self.doc.masks.can_paint(f):
            self.notice.emit("No mask on this frame to paint on: compute masks for the range first (Ctrl+M).")
            return
        self._stroke = (f, self.doc.masks.mask(f).copy())
        self._last = None
        self._paint_to(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._hover = event.position()
        if self._dragging_wipe:
            self._move_wipe(event.position())
        elif self._stroke is not None:
            self._paint_to(event.position())
        else:
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._dragging_wipe = False
        if self._stroke is None:
            return
        frame, before = self._stroke
        self._stroke, self._last = None, None
        after = self.doc.masks.mask(frame)
        if after is not None and not np.array_equal(before, after):
            self.strokeFinished.emit(frame, before, after.copy())

    def leaveEvent(self, event: object) -> None:  # noqa: N802
        self._hover = None
        self.update()

    def _paint_to(self, pos: QPointF) -> None:
        frame, _ = self._stroke
        mask = self.doc.masks.mask(frame)
        pt = self.to_image(pos)
        value = 255 if self.tool == "brush" else 0
        thickness = max(1, self.brush)
        last = self._last or pt
        if self._last is None:
            cv2.circle(mask, pt, max(1, thickness // 2), value, -1, lineType=cv2.LINE_8)
        else:
            cv2.line(mask, self._last, pt, value, thickness, lineType=cv2.LINE_8)
        self._last = pt
        r = thickness // 2 + 2
        self._recompose(frame, min(last[0], pt[0]) - r, min(last[1], pt[1]) - r,
                        max(last[0], pt[0]) + r + 1, max(last[1], pt[1]) + r + 1)

    def _recompose(self, frame: int, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw only the rectangle a stroke segment touched, so painting stays fluid on large
        frames (the whole frame is recomposed once, when the stroke ends)."""
        base, mask, rgb = self.doc.frame(frame), self.doc.masks.mask(frame), self._rgb
        if (self.mode != "overlay" or base is None or rgb is None or self._cache is None
                or base.shape[:2] != mask.shape[:2] or rgb.shape != base.shape):
            self._invalidate()
            return
        h, w = mask.shape
        m = 2  # the outline needs a pixel of context around the rectangle
        ox0, oy0, ox1, oy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            return
        part = overlay(base[oy0:oy1, ox0:ox1], mask[oy0:oy1, ox0:ox1], self.opacity)
        rgb[y0:y1, x0:x1] = part[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0]
        self._cache = to_qimage(rgb)
        self.update()

    def _move_wipe(self, pos: QPointF) -> None:
        r = self.image_rect()
        if r.width() > 0:
            self.wipe = max(0.0, min(1.0, (pos.x() - r.x()) / r.width()))
            self._invalidate()
