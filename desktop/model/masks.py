"""Per-frame masks of the open clip: the versions the engine holds and the frames being painted.

Why separate from the document: painting, undo and "save as a new version" all act on this one
object; versions are immutable on the engine, so local edits are tracked as dirty frames on top of
the version they were painted on (the base of the next PAINTED version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal


@dataclass(frozen=True)
class MaskVersionInfo:
    version: int
    kind: str  # "auto" or "painted"
    base_version: int
    note: str
    frame_count: int

    @property
    def label(self) -> str:
        extra = f" on v{self.base_version}" if self.base_version else ""
        note = f" — {self.note}" if self.note else ""
        return f"v{self.version} {self.kind}{extra}{note}"


class MaskStore(QObject):
    """Masks keyed by the asset's frame index (grey uint8, 0 keep / 255 edit)."""

    versionsChanged = Signal()
    masksChanged = Signal(int)  # frame index, or -1 for "all"
    dirtyChanged = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        self.versions: list[MaskVersionInfo] = []
        self.version = 0  # the version shown / painted on; 0 = none
        self.clip_id = ""  # engine clip the versions belong to
        self.start = 0  # asset frame of the clip's frame 0
        self.frames: dict[int, np.ndarray] = {}
        self.provisional: dict[int, np.ndarray] = {}  # a running mask job's provisional masks, shown first
        self.dirty: set[int] = set()

    # --- engine state ------------------------------------------------------------------------------

    def reset(self) -> None:
        self.versions, self.version, self.clip_id, self.start = [], 0, "", 0
        self.frames.clear()
        self._set_dirty(set())
        self.versionsChanged.emit()
        self.masksChanged.emit(-1)

    def set_versions(self, clip_id: str, start: int, versions: list[MaskVersionInfo]) -> None:
        self.clip_id, self.start, self.versions = clip_id, start, list(versions)
        self.versionsChanged.emit()

    def load_version(self, version: int, frames: dict[int, np.ndarray]) -> None:
        """Replace the shown masks with a version fetched from the engine (asset frame → mask)."""
        self.version = version
        self.frames = dict(frames)
        self.provisional.clear()  # the final masks replace them
        self._set_dirty(set())
        self.versionsChanged.emit()
        self.masksChanged.emit(-1)

    def set_provisional(self, frame: int, mask: np.ndarray) -> None:
        """A mask job's provisional mask of one frame (at the frame's size): shown until the job's
        version is loaded, never painted on."""
        self.provisional[frame] = mask
        self.masksChanged.emit(frame)

    def clear_provisional(self) -> None:
        """The job that sent them ended without masks (failed, cancelled, interrupted)."""
        if self.provisional:
            self.provisional.clear()
            self.masksChanged.emit(-1)

    def info(self, version: int) -> MaskVersionInfo | None:
        return next((v for v in self.versions if v.version == version), None)

    # --- painting ----------------------------------------------------------------------------------

    def mask(self, frame: int) -> np.ndarray | None:
        return self.provisional[frame] if frame in self.provisional else self.frames.get(frame)

    def can_paint(self, frame: int) -> bool:
        return frame in self.frames and frame not in self.provisional

    def write_patch(self, frame: int, y0: int, x0: int, patch: np.ndarray, dirty: bool = True) -> None:
        """Put a rectangle of pixels back (undo/redo of a stroke)."""
        m = self.frames[frame]
        m[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
        self.touch(frame, dirty)

    def touch(self, frame: int, dirty: bool = True) -> None:
        d = set(self.dirty)
        (d.add if dirty else d.discard)(frame)
        self._set_dirty(d)
        self.masksChanged.emit(frame)

    def _set_dirty(self, dirty: set[int]) -> None:
        was = bool(self.dirty)
        self.dirty = dirty
        if was != bool(dirty):
            self.dirtyChanged.emit(bool(dirty))

    def dirty_frames(self) -> dict[int, np.ndarray]:
        """Painted frames, keyed by the engine clip's frame index (what SaveMaskVersion wants)."""
        return {f - self.start: self.frames[f] for f in sorted(self.dirty)}
