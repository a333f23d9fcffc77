"""Sending work to the engine: mask and render jobs for the marked range, and cancelling them.

A job acts on an engine clip cut to the in/out range (made once per range) with the target image
imported once per file version; the job is then followed by the JobFollower.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from desktop.controller.context import Context
from desktop.controller.follow import JobFollower
from desktop.model.document import WorkClip
from plugin_bridge.errors import InvalidArgument
from protos.job_states import state_name
from protos.recast.v1 import engine_pb2 as pb


class JobSubmitter(QObject):
    def __init__(self, ctx: Context, follower: JobFollower) -> None:
        super().__init__()
        self.ctx, self.follower = ctx, follower
        self._targets: dict[tuple[str, float], str] = {}  # (path, mtime) → asset id

    def compute_masks(self) -> None:
        if not self._ready():
            return
        r = self.ctx.recipe

        def submit(work: WorkClip, target: str) -> pb.Job:
            return self.ctx.client().create_mask_job(work.clip_id, r.source_prompt, r.target_prompt, target,
                                                     r.settings())

        self._submit(submit, "Computing masks for frames {start}–{last}…")

    def render(self) -> None:
        if not self._ready():
            return
        r, masks = self.ctx.recipe, self.ctx.doc.masks
        if masks.dirty:
            self.ctx.message.emit("Unsaved mask corrections are not used: save them first (Ctrl+S).")

        def submit(work: WorkClip, target: str) -> pb.Job:
            version = masks.version if masks.clip_id == work.clip_id else 0
            return self.ctx.client().create_render_job(work.clip_id, r.source_prompt, r.target_prompt, target,
                                                       r.settings(), mask_version=version)

        self._submit(submit, "Render queued for frames {start}–{last}.")

    def cancel(self, job_id: str) -> None:
        ctx = self.ctx
        if not ctx.need_engine():
            return
        ctx.run(lambda: ctx.client().cancel(job_id),
                done=lambda job: ctx.message.emit(f"Cancel sent ({state_name(job.state)})."))

    # --- the parts of a job ------------------------------------------------------------------------------

    def _submit(self, create: Callable[[WorkClip, str], pb.Job], queued: str) -> None:
        """On a worker: the range's clip, the target's asset, `create` the job; then follow it."""

        def work() -> tuple[WorkClip, pb.Job]:
            clip = self._work_clip()
            return clip, create(clip, self._target_asset())

        def done(result: tuple[WorkClip, pb.Job]) -> None:
            clip, job = result
            self._use_work(clip)
            self.follower.follow(job)
            self.ctx.message.emit(queued.format(start=clip.start, last=clip.end - 1))

        self.ctx.run(work, done=done)

    def _ready(self) -> bool:
        ctx = self.ctx
        if not ctx.need_engine():
            return False
        if ctx.doc.clip is None:
            ctx.error.emit("Open a clip first.")
            return False
        work, masks = ctx.doc.work, ctx.doc.masks
        if masks.dirty and work is not None and ctx.doc.range() != (work.start, work.end):
            ctx.error.emit(f"The range changed while frames {work.start}–{work.end - 1} have unsaved mask "
                           "corrections: save them (Ctrl+S) or set the range back first.")
            return False
        problems = ctx.recipe.problems()
        if problems:
            ctx.error.emit(" ".join(problems))
            return False
        return True

    def _work_clip(self) -> WorkClip:
        """(worker thread) The engine clip for the marked range, made once per range."""
        doc = self.ctx.doc
        start, end = doc.range()
        if doc.work and (doc.work.start, doc.work.end) == (start, end):
            return doc.work
        clip = self.ctx.client().create_clip(doc.clip.asset_id, start, end)
        return WorkClip(clip.clip_id, start, end)

    def _target_asset(self) -> str:
        """(worker thread) The target image in the engine's store, imported once per file version."""
        path = Path(self.ctx.recipe.target_path)
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in self._targets:
            asset = self.ctx.client().add_media(path)
            if asset.kind != pb.ASSET_KIND_IMAGE:
                raise InvalidArgument(f"The target {path.name} is not an image.")
            self._targets[key] = asset.asset_id
        return self._targets[key]

    def _use_work(self, work: WorkClip) -> None:
        doc = self.ctx.doc
        if doc.work != work:
            doc.set_work(work)
            self.ctx.remember_clip(work.clip_id, doc.clip.asset_id, work.start)
            if doc.masks.clip_id != work.clip_id:
                doc.masks.reset()
