"""Turns user intent into engine calls and engine answers into model updates.

Every engine call runs as a Task on the thread pool and every job is followed by a WatchWorker
thread; this object only ever runs on the GUI thread, reacting to their signals. Widgets never
talk to the engine directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from desktop.client import rpc
from desktop.client.connection import Engine, EngineOptions
from desktop.client.errors import StudioError
from desktop.client.workers import Task, WatchWorker
from desktop.engine_link import EngineLink
from desktop.model.document import ClipInfo, Document, WorkClip
from desktop.model.jobs import STATES, JobInfo, JobList
from desktop.model.recipe import Recipe
from desktop.settings import StudioSettings
from protos.recast.v1 import engine_pb2 as pb

FRAME_BUDGET = 1 << 30  # bytes of decoded source frames the studio keeps for a clip


def display_size(width: int, height: int, frames: int, budget: int = FRAME_BUDGET) -> int:
    """Longer side to fetch frames at (0 = full size) so a long or large clip fits the budget.
    Masks are painted at full resolution regardless; only the pictures are smaller."""
    full = width * height * 3 * max(1, frames)
    if full <= budget:
        return 0
    return max(320, int(max(width, height) * (budget / full) ** 0.5))


_KIND = {pb.JOB_KIND_MASK: "mask", pb.JOB_KIND_RENDER: "render"}
_ENDED = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}
_HISTORY = 8  # finished jobs listed in the job panel after (re)connecting


class Controller(QObject):
    message = Signal(str)  # status-bar text
    error = Signal(str)  # a readable problem (the window shows it; never a traceback)
    masksLoaded = Signal(int)  # version now shown
    maskSaved = Signal(int)  # new PAINTED version
    exported = Signal(str)  # path written
    clipOpened = Signal(str)  # path
    framesDone = Signal()

    def __init__(self, doc: Document, jobs: JobList, recipe: Recipe, settings: StudioSettings,
                 options: EngineOptions) -> None:
        super().__init__()
        self.doc, self.jobs, self.recipe, self.settings, self.options = doc, jobs, recipe, settings, options
        self.undo = QUndoStack(self)
        self.link = EngineLink(options)
        self.link.connected.connect(self._linked)
        self.link.restored.connect(self._restored)
        self.link.error.connect(self.error)
        self.link.infoChanged.connect(lambda _info: self._reattach_due and self.reattach())
        self._reattach_due = False
        self._watchers: dict[str, WatchWorker] = {}
        self._clips: dict[str, tuple[str, int]] = {}  # engine clip id → (asset id, start frame)
        self._targets: dict[tuple[str, float], str] = {}  # (path, mtime) → asset id
        self._pending_open: Path | None = None
        self.finished_render = ""  # newest finished render of the open clip (export uses it)
        self.jobs_listed = False  # the engine's jobs were listed after the last connect
        doc.masks.versionsChanged.connect(self._masks_replaced)

    # --- plumbing ---------------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
             item: Callable[[Any], None] | None = None, failed: Callable[[str], None] | None = None) -> Task:
        task = Task(fn, *args, streaming=item is not None)
        if done:
            task.done.connect(done)
        if item:
            task.item.connect(item)
        task.failed.connect(failed or self.error.emit)
        return task.start()

    @property
    def engine(self) -> Engine | None:
        return self.link.engine

    @property
    def state(self) -> str:
        return self.link.state

    def connect_engine(self, allow_start: bool | None = None) -> None:
        self.link.connect_engine(allow_start)

    def _stub(self):  # noqa: ANN202 - used from worker threads; raises a readable error when offline
        return self.link.stub()

    def _need_engine(self) -> bool:
        if self.engine is None:
            self.error.emit("Not connected to the engine yet (Engine ▸ Reconnect).")
            return False
        return True

    def _linked(self) -> None:
        self.jobs_listed = False
        self.reattach()
        if self._pending_open is not None:
            path, self._pending_open = self._pending_open, None
            self.open_clip(path)

    def _restored(self) -> None:
        self.message.emit("Engine connection restored.")
        self.reattach()

    def reattach(self) -> None:
        """Follow every queued or running job the engine has (e.g. after the studio restarted), and
        list the most recent finished ones as history."""
        def fetch() -> list[tuple[pb.Job, str, int]]:
            stub = self._stub()
            recent = list(stub.ListJobs(pb.ListJobsRequest(limit=_HISTORY), timeout=10).jobs)
            seen = {j.job_id for j in recent}
            jobs = recent + [j for j in rpc.active_jobs(stub) if j.job_id not in seen]
            out = []
            for job in jobs:
                clip = stub.GetClip(pb.GetClipRequest(clip_id=job.clip_id), timeout=10)
                out.append((job, clip.asset_id, clip.start_frame))
            return sorted(out, key=lambda t: t[0].created_unix_ms)

        def done(found: list[tuple[pb.Job, str, int]]) -> None:
            self.jobs_listed = True
            running = 0
            for job, asset_id, start in found:
                self._clips[job.clip_id] = (asset_id, start)
                self._follow(job)
                running += job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
            if running:
                self.message.emit(f"Re-attached to {running} running job(s).")

        def failed(message: str) -> None:  # not something the user asked for: no banner; retry on the next poll
            self._reattach_due = True
            self.message.emit(f"Could not list the engine's jobs yet: {message}")

        self._reattach_due = False
        self._run(fetch, done=done, failed=failed)

    def shutdown(self, stop_daemon: bool = True) -> None:
        """Stop following jobs (they keep running) and stop the daemon if we started it."""
        for w in list(self._watchers.values()):
            w.stop()
        for w in list(self._watchers.values()):
            w.wait(3000)
        self._watchers.clear()
        self.link.close(stop_daemon)

    # --- clips -------------------------------------------------------------------------------------

    def open_clip(self, path: str | Path) -> None:
        if self.engine is None and self.link.connecting:
            self._pending_open = Path(path)  # opened as soon as the engine answers
            return
        if not self._need_engine():
            return
        path = Path(path)
        if not path.is_file():
            self.error.emit(f"File not found: {path}")
            return
        self.message.emit(f"Opening {path.name}…")

        def work() -> tuple[pb.Asset, pb.Clip]:
            stub = self._stub()
            asset = rpc.import_or_upload(stub, path)
            if asset.kind != pb.ASSET_KIND_VIDEO:
                raise StudioError(f"{path.name} is an image; open a video clip (images go to the target well).")
            return asset, rpc.create_clip(stub, asset.asset_id)

        def done(result: tuple[pb.Asset, pb.Clip]) -> None:
            asset, clip = result
            self._clips[clip.clip_id] = (asset.asset_id, 0)
            self.undo.clear()
            self.finished_render = ""
            self.doc.set_clip(ClipInfo(path.resolve(), asset.asset_id, clip.clip_id, clip.frame_count,
                                       clip.width, clip.height, clip.fps or 24.0))
            self.settings.add_recent(path)
            self.clipOpened.emit(str(path))
            self.message.emit(f"Opened {path.name}: {clip.frame_count} frames, {clip.width}×{clip.height}")
            self._load_frames(clip.clip_id)
            self._restore_work(asset.asset_id)

        self._run(work, done=done)

    def _load_frames(self, clip_id: str) -> None:
        doc, stub = self.doc, self._stub()
        expected = doc.clip

        def item(payload: tuple) -> None:
            if doc.clip is expected:
                doc.set_frame(*payload)

        clip = self.doc.clip
        size = display_size(clip.width, clip.height, clip.frame_count)
        self._run(lambda emit: rpc.stream_frames(stub, clip_id, lambda *a: emit(a), max_size=size),
                  item=item, done=lambda _r: self.framesDone.emit())

    def _restore_work(self, asset_id: str) -> None:
        """Pick up earlier work on this asset: the newest range with masks, and its newest finished
        render (e.g. after the studio was restarted while the engine kept the results)."""
        doc = self.doc

        def find() -> tuple[WorkClip, str] | None:
            stub = self._stub()
            jobs = stub.ListJobs(pb.ListJobsRequest(states=[pb.JOB_STATE_SUCCEEDED], limit=200), timeout=10).jobs
            clips: dict[str, pb.Clip] = {}
            work, render = None, ""
            for job in jobs:  # newest first
                if job.clip_id not in clips:
                    clips[job.clip_id] = stub.GetClip(pb.GetClipRequest(clip_id=job.clip_id), timeout=10)
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
            self._clips[work.clip_id] = (asset_id, work.start)
            doc.set_work(work)
            doc.set_range(work.start, work.end - 1)
            self.load_masks(0)
            if render:
                self.load_results(render)

        self._run(find, done=done, failed=lambda _m: None)

    def load_results(self, job_id: str) -> None:
        """Show a finished render's frames (and make it the one File ▸ Export writes)."""
        if not self._need_engine():
            return
        doc, stub = self.doc, self._stub()
        asset_id = doc.clip.asset_id if doc.clip else ""

        def fetch() -> tuple[int, dict]:
            job = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
            clip = stub.GetClip(pb.GetClipRequest(clip_id=job.clip_id), timeout=10)
            if clip.asset_id != asset_id:
                raise StudioError("That render belongs to another clip: open that clip to see it.")
            return clip.start_frame, rpc.result_frames(stub, job_id)

        def done(result: tuple[int, dict]) -> None:
            start, frames = result
            if doc.clip is None or doc.clip.asset_id != asset_id:
                return
            doc.begin_result(job_id)
            for i, rgb in sorted(frames.items()):
                doc.set_result(start + i, rgb)
            doc.result_job_done = True
            self.finished_render = job_id
            self.message.emit(f"Showing render {job_id[:8]} ({len(frames)} frames); File ▸ Export writes it.")

        self._run(fetch, done=done)

    def _work_clip(self) -> WorkClip:
        """(worker thread) The engine clip for the marked range, made once per range."""
        doc = self.doc
        start, end = doc.range()
        if doc.work and (doc.work.start, doc.work.end) == (start, end):
            return doc.work
        clip = rpc.create_clip(self._stub(), doc.clip.asset_id, start, end)
        return WorkClip(clip.clip_id, start, end)

    def _target_asset(self) -> str:
        """(worker thread) The target image in the engine's store, imported once per file version."""
        path = Path(self.recipe.target_path)
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in self._targets:
            asset = rpc.import_or_upload(self._stub(), path)
            if asset.kind != pb.ASSET_KIND_IMAGE:
                raise StudioError(f"The target {path.name} is not an image.")
            self._targets[key] = asset.asset_id
        return self._targets[key]

    def _ready_for_job(self) -> bool:
        if not self._need_engine():
            return False
        if self.doc.clip is None:
            self.error.emit("Open a clip first.")
            return False
        work, masks = self.doc.work, self.doc.masks
        if masks.dirty and work is not None and self.doc.range() != (work.start, work.end):
            self.error.emit(f"The range changed while frames {work.start}–{work.end - 1} have unsaved mask "
                            "corrections: save them (Ctrl+S) or set the range back first.")
            return False
        problems = self.recipe.problems()
        if problems:
            self.error.emit(" ".join(problems))
            return False
        return True

    def _use_work(self, work: WorkClip) -> None:
        if self.doc.work != work:
            self.doc.set_work(work)
            self._clips[work.clip_id] = (self.doc.clip.asset_id, work.start)
            if self.doc.masks.clip_id != work.clip_id:
                self.doc.masks.reset()

    # --- jobs --------------------------------------------------------------------------------------

    def compute_masks(self) -> None:
        if not self._ready_for_job():
            return
        r = self.recipe

        def submit() -> tuple[WorkClip, pb.Job]:
            work = self._work_clip()
            req = pb.CreateMaskJobRequest(clip_id=work.clip_id, source_prompt=r.source_prompt,
                                          target_prompt=r.target_prompt, target_asset_id=self._target_asset(),
                                          settings=r.settings())
            return work, self._stub().CreateMaskJob(req, timeout=30)

        def done(result: tuple[WorkClip, pb.Job]) -> None:
            work, job = result
            self._use_work(work)
            self._follow(job)
            self.message.emit(f"Computing masks for frames {work.start}–{work.end - 1}…")

        self._run(submit, done=done)

    def render(self) -> None:
        if not self._ready_for_job():
            return
        r, masks = self.recipe, self.doc.masks
        if masks.dirty:
            self.message.emit("Unsaved mask corrections are not used: save them first (Ctrl+S).")

        def submit() -> tuple[WorkClip, pb.Job]:
            work = self._work_clip()
            version = masks.version if masks.clip_id == work.clip_id else 0
            req = pb.CreateRenderJobRequest(clip_id=work.clip_id, source_prompt=r.source_prompt,
                                            target_prompt=r.target_prompt, target_asset_id=self._target_asset(),
                                            settings=r.settings(), mask_version=version)
            return work, self._stub().CreateRenderJob(req, timeout=30)

        def done(result: tuple[WorkClip, pb.Job]) -> None:
            work, job = result
            self._use_work(work)
            self._follow(job)
            self.message.emit(f"Render queued for frames {work.start}–{work.end - 1}.")

        self._run(submit, done=done)

    def cancel(self, job_id: str) -> None:
        if not self._need_engine():
            return
        stub = self.engine.stub
        self._run(lambda: stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=10),
                  done=lambda job: self.message.emit(f"Cancel sent ({STATES.get(job.state, '?')})."))

    def _follow(self, job: pb.Job) -> None:
        p = job.last_progress
        info = self.jobs.add(JobInfo(job.job_id, _KIND.get(job.kind, "?"), job.clip_id,
                                     state=STATES.get(job.state, "queued"), position=job.queue_position,
                                     stage=p.stage, step=p.step, total=p.total, eta=p.eta_seconds,
                                     error=job.error,
                                     frames_done=job.result_frames if job.state in _ENDED else 0))
        if job.job_id in self._watchers or info.done:
            return
        w = WatchWorker(self._stub, job.job_id)  # the current engine on every re-attach
        w.event.connect(self._on_event)
        w.lost.connect(self._on_lost)
        w.ended.connect(self._on_watch_ended)
        self._watchers[job.job_id] = w
        w.start()

    def _on_watch_ended(self, job_id: str) -> None:
        w = self._watchers.pop(job_id, None)
        if w is not None:
            w.wait(1000)
            w.deleteLater()

    def _on_lost(self, job_id: str, message: str) -> None:
        self.message.emit(f"Lost the engine while following a job; retrying… ({message})")

    def _doc_frame(self, clip_id: str, index: int) -> int | None:
        """Asset frame of a job's clip frame, if that clip belongs to the open document."""
        asset_id, start = self._clips.get(clip_id, ("", 0))
        if self.doc.clip is None or asset_id != self.doc.clip.asset_id:
            return None
        return start + index

    def _on_event(self, job_id: str, ev: pb.JobEvent, images: dict) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        kind = ev.WhichOneof("event")
        ch: dict[str, Any] = {"last_seq": ev.seq}
        if kind == "queued":
            ch.update(state="queued", position=ev.queued.position)
        elif kind == "started":
            ch.update(state="running", started=time.monotonic())
        elif kind == "progress":
            p = ev.progress
            ch.update(state="running", stage=p.stage, step=p.step, total=p.total, eta=p.eta_seconds)
        elif kind == "preview" and "image" in images:
            f = self._doc_frame(job.clip_id, ev.preview.frame_index)
            if f is not None and self._show_render(job_id):
                self.doc.set_preview(f, images["image"])
        elif kind == "result_frame":
            ch["frames_done"] = job.frames_done + 1
            f = self._doc_frame(job.clip_id, ev.result_frame.frame_index)
            if f is not None and "image" in images and self._show_render(job_id):
                self.doc.set_result(f, images["image"])
        elif kind == "finished":
            ch.update(state="finished", step=job.total)
            self._finished(job, ev.finished)
        elif kind == "failed":
            ch.update(state="failed", error=ev.failed.message)
            self.error.emit(f"The {job.kind} job failed: {ev.failed.message}")
            self._render_gone(job_id)
        elif kind == "cancelled":
            ch.update(state="cancelled")
            self._render_gone(job_id)
        elif kind == "interrupted":
            ch.update(state="interrupted", error=ev.interrupted.reason)
            self._render_gone(job_id)
        self.jobs.update(job_id, **ch)

    def _show_render(self, job_id: str) -> bool:
        """A render's frames replace the shown ones from its first picture on (not when it is
        queued or starts), so a render cancelled early leaves the last good result on screen."""
        if self.doc.result_job_id != job_id:
            self.doc.begin_result(job_id)
        return True

    def _render_gone(self, job_id: str) -> None:
        if self.doc.result_job_id == job_id and self.finished_render and self.finished_render != job_id:
            self.load_results(self.finished_render)

    def _finished(self, job: JobInfo, fin: pb.FinishedEvent) -> None:
        mine = self._doc_frame(job.clip_id, 0) is not None
        if job.kind == "mask":
            self.message.emit(f"Masks ready: version {fin.mask_version}.")
            if mine and self.doc.work and self.doc.work.clip_id == job.clip_id:
                self.load_masks(fin.mask_version)
        elif job.kind == "render":
            self.message.emit(f"Render finished: {fin.frame_count} frames in {fin.wall_seconds:.1f} s.")
            if mine:
                self.finished_render = job.job_id
                if self.doc.result_job_id == job.job_id:
                    self.doc.result_job_done = True

    # --- masks -------------------------------------------------------------------------------------

    def load_masks(self, version: int = 0) -> None:
        """Fetch the work clip's versions and one version's masks (0 = newest)."""
        if not self._need_engine() or self.doc.work is None:
            return
        work, store = self.doc.work, self.doc.masks

        def fetch() -> tuple[list, int, dict]:
            stub = self._stub()
            versions = rpc.mask_versions(stub, work.clip_id)
            v = version or (versions[-1].version if versions else 0)
            return versions, v, (rpc.masks(stub, work.clip_id, v, work.start) if v else {})

        def done(result: tuple[list, int, dict]) -> None:
            versions, v, frames = result
            if self.doc.work != work:
                return
            store.set_versions(work.clip_id, work.start, versions)
            store.load_version(v, frames)
            self.masksLoaded.emit(v)

        self._run(fetch, done=done)

    def save_masks(self, note: str = "") -> None:
        store = self.doc.masks
        if not self._need_engine():
            return
        if not store.dirty:
            self.message.emit("No mask corrections to save.")
            return
        clip_id, base, frames = store.clip_id, store.version, store.dirty_frames()
        note = note or f"painted {len(frames)} frame(s)"

        def done(v: Any) -> None:
            self.message.emit(f"Saved corrections as mask version {v.version}.")
            self.maskSaved.emit(v.version)
            self.load_masks(v.version)

        self._run(lambda: rpc.save_masks(self._stub(), clip_id, base, frames, note), done=done)

    def _masks_replaced(self) -> None:
        if not self.doc.masks.dirty:
            self.undo.clear()  # history belongs to the version it was painted on

    # --- export ------------------------------------------------------------------------------------

    def export(self, path: str | Path, fmt: str = "mp4") -> None:
        if not self._need_engine():
            return
        job_id = self.finished_render
        if not job_id:
            self.error.emit("Nothing to export yet: render the range first and wait for it to finish.")
            return
        stub = self.engine.stub

        def done(resp: pb.ExportResponse) -> None:
            self.message.emit(f"Exported {resp.frame_count} frames to {resp.path}.")
            self.exported.emit(resp.path)

        self._run(lambda: rpc.export(stub, job_id, Path(path), fmt), done=done)
