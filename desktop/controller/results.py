"""Render results on screen: which render's frames the document shows, and which one File ▸ Export writes."""

from __future__ import annotations

from PySide6.QtCore import QObject

from desktop.client import frames
from desktop.controller.context import Context
from plugin_bridge.errors import FailedPrecondition


class Results(QObject):
    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.finished_render = ""  # newest finished render of the open clip (export uses it)

    def forget(self) -> None:
        """A new clip: nothing of the old one is exported."""
        self.finished_render = ""

    def load(self, job_id: str) -> None:
        """Show a finished render's frames (and make it the one File ▸ Export writes)."""
        ctx, doc = self.ctx, self.ctx.doc
        if not ctx.need_engine():
            return
        asset_id = doc.clip.asset_id if doc.clip else ""

        def fetch() -> tuple[int, dict]:
            client = ctx.client()
            clip = client.get_clip(client.get_job(job_id).clip_id)
            if clip.asset_id != asset_id:
                raise FailedPrecondition("That render belongs to another clip: open that clip to see it.")
            return clip.start_frame, frames.result_frames(client, job_id)

        def done(result: tuple[int, dict]) -> None:
            start, found = result
            if doc.clip is None or doc.clip.asset_id != asset_id:
                return
            doc.begin_result(job_id)
            for i, rgb in sorted(found.items()):
                doc.set_result(start + i, rgb)
            doc.result_job_done = True
            self.finished_render = job_id
            ctx.message.emit(f"Showing render {job_id[:8]} ({len(found)} frames); File ▸ Export writes it.")

        ctx.run(fetch, done=done)

    def show(self, job_id: str) -> bool:
        """A render's frames replace the shown ones from its first picture on (not when it is queued
        or starts), so a render cancelled early leaves the last good result on screen."""
        if self.ctx.doc.result_job_id != job_id:
            self.ctx.doc.begin_result(job_id)
        return True

    def finished(self, job_id: str) -> None:
        """A render of the open clip finished: it is the one to export."""
        self.finished_render = job_id
        if self.ctx.doc.result_job_id == job_id:
            self.ctx.doc.result_job_done = True

    def gone(self, job_id: str) -> None:
        """A render on screen ended without finishing: bring the last finished one back."""
        if self.ctx.doc.result_job_id == job_id and self.finished_render and self.finished_render != job_id:
            self.load(self.finished_render)
