"""Opening a video: the engine imports it, its frames stream into the document, earlier work comes back."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from desktop.client import frames
from desktop.controller.context import Context
from desktop.controller.restore import Restorer
from desktop.controller.results import Results
from desktop.model.document import ClipInfo
from plugin_bridge.errors import InvalidArgument
from protos.recast.v1 import engine_pb2 as pb

FRAME_BUDGET = 1 << 30  # bytes of decoded source frames the studio keeps for a clip


def display_size(width: int, height: int, frames: int, budget: int = FRAME_BUDGET) -> int:
    """Longer side to fetch frames at (0 = full size) so a long or large clip fits the budget.
    Masks are painted at full resolution regardless; only the pictures are smaller."""
    full = width * height * 3 * max(1, frames)
    if full <= budget:
        return 0
    return max(320, int(max(width, height) * (budget / full) ** 0.5))


class Clips(QObject):
    opened = Signal(str)  # path
    framesDone = Signal()

    def __init__(self, ctx: Context, undo: QUndoStack, results: Results, restorer: Restorer) -> None:
        super().__init__()
        self.ctx, self.undo, self.results, self.restorer = ctx, undo, results, restorer
        self._pending: Path | None = None  # asked for while the engine was still being found

    def open(self, path: str | Path) -> None:
        ctx = self.ctx
        if ctx.link.engine is None and ctx.link.connecting:
            self._pending = Path(path)  # opened as soon as the engine answers
            return
        if not ctx.need_engine():
            return
        path = Path(path)
        if not path.is_file():
            ctx.error.emit(f"File not found: {path}")
            return
        ctx.message.emit(f"Opening {path.name}…")

        def work() -> tuple[pb.Asset, pb.Clip]:
            client = ctx.client()
            asset = client.add_media(path)
            if asset.kind != pb.ASSET_KIND_VIDEO:
                raise InvalidArgument(f"{path.name} is an image; open a video clip (images go to the target well).")
            return asset, client.create_clip(asset.asset_id)

        def done(result: tuple[pb.Asset, pb.Clip]) -> None:
            asset, clip = result
            ctx.remember_clip(clip.clip_id, asset.asset_id, 0)
            self.undo.clear()
            self.results.forget()
            ctx.doc.set_clip(ClipInfo(path.resolve(), asset.asset_id, clip.clip_id, clip.frame_count,
                                      clip.width, clip.height, clip.fps or 24.0))
            ctx.settings.add_recent(path)
            self.opened.emit(str(path))
            ctx.message.emit(f"Opened {path.name}: {clip.frame_count} frames, {clip.width}×{clip.height}")
            self._load_frames(clip.clip_id)
            self.restorer.restore(asset.asset_id)

        ctx.run(work, done=done)

    def open_pending(self) -> None:
        """The engine answers now: open what the user asked for while it was being found."""
        if self._pending is not None:
            path, self._pending = self._pending, None
            self.open(path)

    def _load_frames(self, clip_id: str) -> None:
        ctx, doc = self.ctx, self.ctx.doc
        expected = doc.clip

        def item(payload: tuple) -> None:
            if doc.clip is expected:
                doc.set_frame(*payload)

        size = display_size(expected.width, expected.height, expected.frame_count)
        ctx.run(lambda emit: frames.stream_frames(ctx.client(), clip_id, lambda *a: emit(a), max_size=size),
                item=item, done=lambda _r: self.framesDone.emit())
