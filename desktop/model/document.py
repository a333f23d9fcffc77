"""The open clip: frames, in/out range, playhead, masks and streamed results.

Indices are the asset's frame indices throughout (what the timeline shows); engine clips made for
a range are mapped with their start frame at the client boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from desktop.model.masks import MaskStore


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    asset_id: str  # "" while the engine has not imported it (local preview only)
    clip_id: str  # engine clip of the whole asset
    frame_count: int
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class WorkClip:
    """The engine clip for the in/out range that masks and renders act on."""

    clip_id: str
    start: int
    end: int  # half-open


class Document(QObject):
    clipChanged = Signal()
    frameLoaded = Signal(int)  # a source frame (and thumbnail) arrived
    playheadChanged = Signal(int)
    rangeChanged = Signal(int, int)  # in, out (inclusive)
    resultChanged = Signal(int)  # frame index; -1 = all cleared
    previewChanged = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.masks = MaskStore()
        self.clip: ClipInfo | None = None
        self.work: WorkClip | None = None
        self.frames: list[np.ndarray | None] = []
        self.thumbs: list[np.ndarray | None] = []
        self.results: dict[int, np.ndarray] = {}
        self.previews: dict[int, np.ndarray] = {}
        self.result_job_id = ""  # the render whose frames are shown (export uses it once finished)
        self.result_job_done = False
        self.playhead = 0
        self.in_point = 0
        self.out_point = 0

    # --- clip --------------------------------------------------------------------------------------

    def set_clip(self, clip: ClipInfo) -> None:
        self.clip = clip
        self.work = None
        self.frames = [None] * clip.frame_count
        self.thumbs = [None] * clip.frame_count
        self.results.clear()
        self.previews.clear()
        self.result_job_id, self.result_job_done = "", False
        self.masks.reset()
        self.playhead, self.in_point, self.out_point = 0, 0, max(0, clip.frame_count - 1)
        self.clipChanged.emit()
        self.rangeChanged.emit(self.in_point, self.out_point)
        self.playheadChanged.emit(0)

    @property
    def frame_count(self) -> int:
        return self.clip.frame_count if self.clip else 0

    def set_frame(self, index: int, rgb: np.ndarray, thumb: np.ndarray) -> None:
        if 0 <= index < len(self.frames):
            self.frames[index] = rgb
            self.thumbs[index] = thumb
            self.frameLoaded.emit(index)

    def frame(self, index: int) -> np.ndarray | None:
        return self.frames[index] if 0 <= index < len(self.frames) else None

    # --- playhead and range ---------------------------------------------------------------------------

    def set_playhead(self, index: int) -> None:
        if not self.clip:
            return
        index = max(0, min(self.frame_count - 1, index))
        if index != self.playhead:
            self.playhead = index
            self.playheadChanged.emit(index)

    def step(self, delta: int) -> None:
        self.set_playhead(self.playhead + delta)

    def set_in(self, index: int | None = None) -> None:
        """In point at the playhead; an out point before it moves along (as in NLEs)."""
        i = self.playhead if index is None else index
        self.set_range(i, max(i, self.out_point))

    def set_out(self, index: int | None = None) -> None:
        o = self.playhead if index is None else index
        self.set_range(min(self.in_point, o), o)

    def set_range(self, in_point: int, out_point: int) -> None:
        if not self.clip:
            return
        last = self.frame_count - 1
        in_point, out_point = max(0, min(last, in_point)), max(0, min(last, out_point))
        if in_point > out_point:
            raise ValueError("in point after out point")
        if (in_point, out_point) != (self.in_point, self.out_point):
            self.in_point, self.out_point = in_point, out_point
            self.rangeChanged.emit(in_point, out_point)

    def range(self) -> tuple[int, int]:
        """The marked range, half-open [start, end) as the engine counts."""
        return self.in_point, self.out_point + 1

    # --- work clip and results ------------------------------------------------------------------------

    def set_work(self, work: WorkClip) -> None:
        if self.work != work:
            self.work = work

    def begin_result(self, job_id: str) -> None:
        self.result_job_id, self.result_job_done = job_id, False
        self.results.clear()
        self.previews.clear()
        self.resultChanged.emit(-1)

    def set_result(self, index: int, rgb: np.ndarray) -> None:
        self.results[index] = rgb
        self.previews.pop(index, None)
        self.resultChanged.emit(index)

    def set_preview(self, index: int, rgb: np.ndarray) -> None:
        if index not in self.results:
            self.previews[index] = rgb
            self.previewChanged.emit(index)
