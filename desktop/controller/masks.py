"""Mask versions between the engine and the MaskStore: load one, save painted corrections as a new one.

Painting history (the undo stack) belongs to the version it was painted on, so it is cleared
whenever clean masks replace the shown ones.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from desktop.client import frames
from desktop.controller.context import Context


class MaskSync(QObject):
    loaded = Signal(int)  # version now shown
    saved = Signal(int)  # new PAINTED version

    def __init__(self, ctx: Context, undo: QUndoStack) -> None:
        super().__init__()
        self.ctx, self.undo = ctx, undo
        ctx.doc.masks.versionsChanged.connect(self._replaced)

    def load(self, version: int = 0) -> None:
        """Fetch the work clip's versions and one version's masks (0 = newest)."""
        ctx, doc = self.ctx, self.ctx.doc
        if not ctx.need_engine() or doc.work is None:
            return
        work, store = doc.work, doc.masks

        def fetch() -> tuple[list, int, dict]:
            client = ctx.client()
            versions = frames.mask_versions(client, work.clip_id)
            v = version or (versions[-1].version if versions else 0)
            return versions, v, (frames.masks(client, work.clip_id, v, work.start) if v else {})

        def done(result: tuple[list, int, dict]) -> None:
            versions, v, masks = result
            if doc.work != work:
                return
            store.set_versions(work.clip_id, work.start, versions)
            store.load_version(v, masks)
            self.loaded.emit(v)

        ctx.run(fetch, done=done)

    def save(self, note: str = "") -> None:
        """The painted frames as a new PAINTED version on top of the shown one."""
        ctx, store = self.ctx, self.ctx.doc.masks
        if not ctx.need_engine():
            return
        if not store.dirty:
            ctx.message.emit("No mask corrections to save.")
            return
        clip_id, base, painted = store.clip_id, store.version, store.dirty_frames()
        note = note or f"painted {len(painted)} frame(s)"

        def done(v: Any) -> None:
            ctx.message.emit(f"Saved corrections as mask version {v.version}.")
            self.saved.emit(v.version)
            self.load(v.version)

        ctx.run(lambda: frames.save_masks(ctx.client(), clip_id, base, painted, note), done=done)

    def _replaced(self) -> None:
        if not self.ctx.doc.masks.dirty:
            self.undo.clear()
