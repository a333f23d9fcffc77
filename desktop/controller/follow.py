"""Following engine jobs: one WatchWorker per job, its events turned into JobList and document updates.

Each JobEvent kind has one handler in `HANDLERS`; the state an event sets comes from the shared
job-state table (plugin_bridge.job_states), so the studio spells no state itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
from PySide6.QtCore import QObject

from desktop.client.workers import WatchWorker
from desktop.controller.context import Context
from desktop.controller.masks import MaskSync
from desktop.controller.results import Results
from desktop.model.jobs import JobInfo
from protos.job_states import ACTIVE_STATES, ENDED_STATES, EVENT_STATES
from protos.recast.v1 import engine_pb2 as pb

_KIND = {pb.JOB_KIND_MASK: "mask", pb.JOB_KIND_RENDER: "render"}
_HISTORY = 8  # finished jobs listed in the job panel after (re)connecting

Handler = Callable[["JobFollower", JobInfo, pb.JobEvent, dict], dict[str, Any]]


class JobFollower(QObject):
    def __init__(self, ctx: Context, masks: MaskSync, results: Results) -> None:
        super().__init__()
        self.ctx, self.masks, self.results = ctx, masks, results
        self.watchers: dict[str, WatchWorker] = {}
        self.jobs_listed = False  # the engine's jobs were listed after the last connect
        self._reattach_due = False

    # --- which jobs ----------------------------------------------------------------------------------

    def reattach(self) -> None:
        """Follow every queued or running job the engine has (e.g. after the studio restarted), and
        list the most recent finished ones as history."""
        ctx = self.ctx

        def fetch() -> list[tuple[pb.Job, str, int]]:
            client = ctx.client()
            recent = client.list_jobs(limit=_HISTORY)
            seen = {j.job_id for j in recent}
            jobs = recent + [j for j in client.list_jobs(ACTIVE_STATES, limit=100) if j.job_id not in seen]
            out = []
            for job in jobs:
                clip = client.get_clip(job.clip_id)
                out.append((job, clip.asset_id, clip.start_frame))
            return sorted(out, key=lambda t: t[0].created_unix_ms)

        def done(found: list[tuple[pb.Job, str, int]]) -> None:
            self.jobs_listed = True
            for job, asset_id, start in found:
                ctx.remember_clip(job.clip_id, asset_id, start)
                self.follow(job)
            running = sum(job.state in ACTIVE_STATES for job, _, _ in found)
            if running:
                ctx.message.emit(f"Re-attached to {running} running job(s).")

        def failed(message: str) -> None:  # not something the user asked for: no banner; retry on the next poll
            self._reattach_due = True
            ctx.message.emit(f"Could not list the engine's jobs yet: {message}")

        self._reattach_due = False
        ctx.run(fetch, done=done, failed=failed)

    def reattach_if_due(self) -> None:
        if self._reattach_due:
            self.reattach()

    def follow(self, job: pb.Job) -> None:
        """List the job and, unless it is over, watch it until it is."""
        p = job.last_progress
        info = self.ctx.jobs.add(JobInfo(job.job_id, _KIND.get(job.kind, "?"), job.clip_id,
                                         state=job.state, position=job.queue_position,
                                         stage=p.stage, step=p.step, total=p.total, eta=p.eta_seconds,
                                         error=job.error,
                                         frames_done=job.result_frames if job.state in ENDED_STATES else 0))
        if job.job_id in self.watchers or info.done:
            return
        w = WatchWorker(self.ctx.client, job.job_id)  # the current engine on every re-attach
        w.event.connect(self._on_event)
        w.lost.connect(self._on_lost)
        w.ended.connect(self._on_watch_ended)
        self.watchers[job.job_id] = w
        w.start()

    def stop(self) -> None:
        """Stop watching (the jobs keep running on the engine)."""
        for w in list(self.watchers.values()):
            w.stop()
        for w in list(self.watchers.values()):
            w.wait(3000)
        self.watchers.clear()

    def _on_watch_ended(self, job_id: str) -> None:
        w = self.watchers.pop(job_id, None)
        if w is not None:
            w.wait(1000)
            w.deleteLater()

    def _on_lost(self, job_id: str, message: str) -> None:
        self.ctx.message.emit(f"Lost the engine while following a job; retrying… ({message})")

    # --- their events --------------------------------------------------------------------------------

    def _on_event(self, job_id: str, ev: pb.JobEvent, images: dict) -> None:
        job = self.ctx.jobs.get(job_id)
        if job is None:
            return
        kind = ev.WhichOneof("event")
        changes: dict[str, Any] = {"last_seq": ev.seq}
        if kind in EVENT_STATES:
            changes["state"] = EVENT_STATES[kind]
        handler = self.HANDLERS.get(kind)
        if handler is not None:
            changes.update(handler(self, job, ev, images))
        self.ctx.jobs.update(job_id, **changes)

    def _queued(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        return {"position": ev.queued.position}

    def _started(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        return {"started": time.monotonic()}

    def _progress(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        p = ev.progress
        return {"stage": p.stage, "step": p.step, "total": p.total, "eta": p.eta_seconds}

    def _preview(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        f = self.ctx.doc_frame(job.clip_id, ev.preview.frame_index)
        if "image" in images and f is not None and self.results.show(job.job_id):
            self.ctx.doc.set_preview(f, images["image"])
        return {}

    def _provisional_mask(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        f = self.ctx.doc_frame(job.clip_id, ev.provisional_mask.frame_index)
        frame = self.ctx.doc.frame(f) if f is not None else None
        if frame is not None and "mask" in images:  # shown at the frame's size, like the final masks
            mask = cv2.resize(images["mask"], frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            self.ctx.doc.masks.set_provisional(f, mask)
        return {}

    def _result_frame(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        f = self.ctx.doc_frame(job.clip_id, ev.result_frame.frame_index)
        if f is not None and "image" in images and self.results.show(job.job_id):
            self.ctx.doc.set_result(f, images["image"])
        return {"frames_done": job.frames_done + 1}

    def _finished(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        fin, ctx = ev.finished, self.ctx
        mine = ctx.doc_frame(job.clip_id, 0) is not None
        if job.kind == "mask":
            ctx.message.emit(f"Masks ready: version {fin.mask_version}.")
            if mine and ctx.doc.work and ctx.doc.work.clip_id == job.clip_id:
                self.masks.load(fin.mask_version)
        elif job.kind == "render":
            ctx.message.emit(f"Render finished: {fin.frame_count} frames in {fin.wall_seconds:.1f} s.")
            if mine:
                self.results.finished(job.job_id)
        return {"step": job.total}

    def _failed(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        if job.kind == "mask":
            self.ctx.doc.masks.clear_provisional()
        self.ctx.error.emit(f"The {job.kind} job failed: {ev.failed.message}")
        self.results.gone(job.job_id)
        return {"error": ev.failed.message}

    def _cancelled(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        if job.kind == "mask":
            self.ctx.doc.masks.clear_provisional()
        self.results.gone(job.job_id)
        return {}

    def _interrupted(self, job: JobInfo, ev: pb.JobEvent, images: dict) -> dict[str, Any]:
        if job.kind == "mask":
            self.ctx.doc.masks.clear_provisional()
        self.results.gone(job.job_id)
        return {"error": ev.interrupted.reason}

    HANDLERS: dict[str, Handler] = {
        "queued": _queued,
        "started": _started,
        "progress": _progress,
        "preview": _preview,
        "provisional_mask": _provisional_mask,
        "result_frame": _result_frame,
        "finished": _finished,
        "failed": _failed,
        "cancelled": _cancelled,
        "interrupted": _interrupted,
    }
