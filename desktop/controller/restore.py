"""Earlier work on a clip the user opens again: the newest range with masks, and its newest render.

The engine keeps every job, so after the studio restarts, opening the same video brings back
where the user left off without anything stored on the studio's side.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from desktop.controller.context import Context
from desktop.controller.masks import MaskSync
from desktop.controller.results import Results
from desktop.model.document import WorkClip
from protos.recast.v1 import engine_pb2 as pb

_SEARCHED = 200  # succeeded jobs looked through, newest first


class Restorer(QObject):
    def __init__(self, ctx: Context, masks: MaskSync, results: Results) -> None:
        super().__init__()
        self.ctx, self.masks, self.results = ctx, masks, results

    def restore(self, asset_id: str) -> None:
        ctx, doc = self.ctx, self.ctx.doc

        def find() -> tuple[WorkClip, str] | None:
            client = ctx.client()
            clips: dict[str, pb.Clip] = {}
            work, render = None, ""
            for job in client.list_jobs(states=[pb.JOB_STATE_SUCCEEDED], limit=_SEARCHED):  # newest first
                if job.clip_id not in clips:
                    clips[job.clip_id] = client.get_clip(job.clip_id)
                clip = clips[job.clip_id]
                if clip.asset_id != asset_id:
                    continue
                if work is None:
                    work = WorkClip(clip.clip_id, clip.start_frame, clip.end_frame)
                if work.clip_id == clip.clip_id and job.kind == pb.JOB_KIND_RENDER and not render:
                    render = job.job_id
            return (work, render) if work else None

        def done(found: tuple[WorkClip, str] | None) -> None:
            if found is None or doc.clip is None or doc.clip.asset_id != asset_id:
                return
            work, render = found
            ctx.remember_clip(work.clip_id, asset_id, work.start)
            doc.set_work(work)
            doc.set_range(work.start, work.end - 1)
            self.masks.load(0)
            if render:
                self.results.load(render)

        ctx.run(find, done=done, failed=lambda _m: None)  # nothing to restore is no problem
