"""The timeline: a strip of thumbnails, the in/out range, the playhead, and which frames have
masks and results. Click or drag to move the playhead."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.imaging import to_qimage
from desktop.model.document import Document

_RULER = 16
_MARKS = 8


class Timeline(QWidget):
    seek = Signal(int)

    def __init__(self, doc: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self._thumbs: dict[int, object] = {}
        self.setMinimumHeight(96)
        self.setMaximumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        doc.clipChanged.connect(self._reset)
        doc.frameLoaded.connect(self._on_thumb)
        for sig in (doc.playheadChanged, doc.rangeChanged, doc.resultChanged, doc.previewChanged,
                    doc.masks.masksChanged):
            sig.connect(lambda *_: self.update())

    def _reset(self) -> None:
        self._thumbs.clear()
        self.update()

    def _on_thumb(self, index: int) -> None:
        t = self.doc.thumbs[index]
        if t is not None:
            self._thumbs[index] = to_qimage(t)
        self.update()

    # --- geometry ------------------------------------------------------------------------------------

    def frame_width(self) -> float:
        n = self.doc.frame_count
        return self.width() / n if n else 0.0

    def frame_at(self, x: float) -> int:
        fw = self.frame_width()
        return int(x / fw) if fw else 0

    def frame_x(self, index: int) -> float:
        return index * self.frame_width()

    # --- drawing -------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(32, 32, 38))
        n = self.doc.frame_count
        if not n:
            p.setPen(QColor(140, 140, 150))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No clip")
            return
        fw = self.frame_width()
        strip = QRectF(0, _RULER, self.width(), self.height() - _RULER - _MARKS)
        self._draw_thumbs(p, strip, fw)
        # in/out range: dim outside it
        a, b = self.frame_x(self.doc.in_point), self.frame_x(self.doc.out_point + 1)
        dim = QColor(0, 0, 0, 150)
        p.fillRect(QRectF(0, strip.top(), a, strip.height()), dim)
        p.fillRect(QRectF(b, strip.top(), self.width() - b, strip.height()), dim)
        p.setPen(QPen(QColor(250, 200, 40), 2))
        p.drawRect(QRectF(a, strip.top() + 1, b - a, strip.height() - 2))
        p.drawText(QRectF(a + 3, 0, 60, _RULER), Qt.AlignmentFlag.AlignVCenter, f"in {self.doc.in_point}")
        p.drawText(QRectF(b - 63, 0, 60, _RULER), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                   f"out {self.doc.out_point}")
        # which frames have masks (magenta), previews (pale green) and results (green)
        y = self.height() - _MARKS
        for f in self.doc.masks.frames:
            p.fillRect(QRectF(self.frame_x(f), y, max(1.0, fw), 3), QColor(255, 60, 200))
        for f in self.doc.previews:
            p.fillRect(QRectF(self.frame_x(f), y + 4, max(1.0, fw), 3), QColor(60, 220, 90, 90))
        for f in self.doc.results:
            p.fillRect(QRectF(self.frame_x(f), y + 4, max(1.0, fw), 3), QColor(60, 220, 90))
        # playhead
        x = self.frame_x(self.doc.playhead) + fw / 2
        p.setPen(QPen(QColor(240, 60, 60), 2))
        p.drawLine(int(x), 0, int(x), self.height())
        p.drawText(QRectF(x + 4, 0, 80, _RULER), Qt.AlignmentFlag.AlignVCenter, str(self.doc.playhead))
        p.end()

    def _draw_thumbs(self, p: QPainter, strip: QRectF, fw: float) -> None:
        clip = self.doc.clip
        tw = max(8.0, strip.height() * clip.width / max(1, clip.height))
        every = max(1, int(round(tw / max(fw, 1e-6))))
        for i in range(0, self.doc.frame_count, every):
            img = self._thumbs.get(i)
            r = QRectF(self.frame_x(i), strip.top(), min(tw, self.width() - self.frame_x(i)), strip.height())
            if img is None:
                p.fillRect(r.adjusted(1, 1, -1, -1), QColor(50, 50, 58))
            else:
                p.drawImage(r, img, QRectF(0, 0, img.width() * r.width() / tw, img.height()))

    # --- input ---------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.doc.frame_count:
            self.seek.emit(self.frame_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton and self.doc.frame_count:
            self.seek.emit(self.frame_at(event.position().x()))
