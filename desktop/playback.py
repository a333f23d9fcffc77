"""Playback and J/K/L shuttle: a timer stepping the document's playhead at the clip's rate."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.model.document import Document

SPEEDS = (1, 2, 4, 8)


class Playback(QObject):
    stateChanged = Signal(int)  # speed: negative backwards, 0 stopped

    def __init__(self, doc: Document) -> None:
        super().__init__()
        self.doc = doc
        self.speed = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        doc.clipChanged.connect(self.stop)

    @property
    def playing(self) -> bool:
        return self.speed != 0

    def play(self, speed: int = 1) -> None:
        if self.doc.clip is None:
            return
        if speed > 0 and self.doc.playhead >= self.doc.frame_count - 1:
            self.doc.set_playhead(0)  # play from the start again, as players do
        self.speed = speed
        fps = self.doc.clip.fps or 24.0
        self.timer.start(max(5, int(1000 / (fps * min(abs(speed), 2)))))
        self.stateChanged.emit(speed)

    def stop(self) -> None:
        self.timer.stop()
        if self.speed:
            self.speed = 0
            self.stateChanged.emit(0)

    def toggle(self) -> None:
        self.stop() if self.playing else self.play(1)

    def shuttle(self, direction: int) -> None:
        """L / J: start at 1×, each further press doubles (up to 8×); the other way slows down first."""
        if self.speed == 0 or (self.speed > 0) != (direction > 0):
            self.play(direction)
            return
        i = SPEEDS.index(abs(self.speed))
        self.play(direction * SPEEDS[min(i + 1, len(SPEEDS) - 1)])

    def _tick(self) -> None:
        step = self.speed // 2 if abs(self.speed) > 2 else (1 if self.speed > 0 else -1)
        target = self.doc.playhead + step
        if target < 0 or target > self.doc.frame_count - 1:
            self.doc.set_playhead(target)
            self.stop()
            return
        self.doc.set_playhead(target)
