"""Undoable edits. One paint stroke is one command (napari's label painting, After Effects' Roto).

A stroke stores only the rectangle it changed, before and after, so long sessions stay small.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from desktop.model.masks import MaskStore


class PaintStroke(QUndoCommand):
    def __init__(self, store: MaskStore, frame: int, before: np.ndarray, after: np.ndarray, text: str) -> None:
        super().__init__(text)
        self.store, self.frame = store, frame
        changed = np.argwhere(before != after)
        if len(changed):
            (y0, x0), (y1, x1) = changed.min(0), changed.max(0) + 1
        else:
            y0 = x0 = y1 = x1 = 0
        self.y0, self.x0 = int(y0), int(x0)
        self.before = before[y0:y1, x0:x1].copy()
        self.after = after[y0:y1, x0:x1].copy()
        self.was_dirty = frame in store.dirty
        self._applied = True  # the stroke is already on the mask when pushed

    @property
    def empty(self) -> bool:
        return self.before.size == 0

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            self.store.touch(self.frame)
            return
        self.store.write_patch(self.frame, self.y0, self.x0, self.after)

    def undo(self) -> None:
        self.store.write_patch(self.frame, self.y0, self.x0, self.before, dirty=self.was_dirty)
