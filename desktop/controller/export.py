"""File ▸ Export: the finished render on screen, written by the engine to a new path."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.controller.context import Context
from desktop.controller.results import Results
from protos.recast.v1 import engine_pb2 as pb


class Exporter(QObject):
    exported = Signal(str)  # path written

    def __init__(self, ctx: Context, results: Results) -> None:
        super().__init__()
        self.ctx, self.results = ctx, results

    def export(self, path: str | Path, fmt: str = "mp4") -> None:
        """`fmt`: "mp4" or "png" (a folder of PNGs); the engine never writes over an existing path."""
        ctx = self.ctx
        if not ctx.need_engine():
            return
        job_id = self.results.finished_render
        if not job_id:
            ctx.error.emit("Nothing to export yet: render the range first and wait for it to finish.")
            return

        def done(resp: pb.ExportResponse) -> None:
            ctx.message.emit(f"Exported {resp.frame_count} frames to {resp.path}.")
            self.exported.emit(resp.path)

        ctx.run(lambda: ctx.client().export(job_id, Path(path), fmt), done=done)
