"""Runs mask and render jobs on the pipeline: the only module of the daemon that calls it.

Why a separate module: the servicer validates and queues, the job manager orders and records, and
this translates one stored request into `RecastPipeline` calls and their results into blobs and
events. The pipeline is loaded first in the background, so the daemon answers (and reports
`pipeline` NOT_SERVING) while models load; after an idle keep-alive it is unloaded, and the next
job loads it again. Each job's finished stages and windows go to a checkpoint folder of its own as
the job runs, so a resumed job continues after them; the folder goes when the job succeeds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine.daemon import media
from engine.daemon.assets import Assets, Clips
from engine.daemon.events import EventLog
from engine.daemon.jobs import RunContext
from engine.daemon.mask_versions import Masks
from engine.daemon.storage import Row, Storage
from engine.errors import InputError, ModelError
from protos.recast.v1 import engine_pb2 as pb
from protos.settings_wire import SettingValueError, settings_from_message

log = logging.getLogger("recast.daemon.runner")


def settings_from_proto(msg: pb.EditSettings):  # noqa: ANN201 - engine.settings.EditSettings
    """Only the fields the client set, by name (protos.settings_wire); validated by EditSettings itself."""
    from engine.settings import EditSettings

    try:
        values = settings_from_message(msg)
    except SettingValueError as exc:
        raise InputError(exc.field, exc.problem) from None
    try:
        return EditSettings.from_dict(values)
    except InputError as exc:
        if exc.field.startswith("settings."):
            raise
        raise InputError(f"settings.{exc.field}", str(exc).split(": ", 1)[-1]) from None
    except (TypeError, ValueError) as exc:
        raise InputError("settings", str(exc)) from None


class PipelineHost:
    """Holds the one pipeline instance: loads it on a background thread at start, unloads it after
    `keep_alive` idle seconds (0: never), and loads it again on the worker for the next job."""

    # diffusers/accelerate patch torch globally while they build models on the meta device, so two
    # loads overlapping in one process (several daemons in a test run) corrupt each other.
    _load_lock = threading.Lock()

    def __init__(
        self,
        model: str | None,
        device: str | None,
        cache_dir: Path | None = None,
        threads: int | None = None,
        limits: Any = None,
        keep_alive: float = 0.0,
        cache_max_bytes: int | None = None,
    ):
        self.model = model
        self.requested_device = device
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        self.threads = threads
        self.limits = limits  # engine.settings.Limits matching the daemon's, so both refuse the same
        self.keep_alive = keep_alive
        self._previous_threads: int | None = None
        self.pipe: Any = None
        self.error: str = ""
        self.ready = threading.Event()  # the first load ended (loaded or failed)
        self.loaded_once = False
        self._device = ""
        self._native_size = 0
        self._lock = threading.Lock()  # pipe, _users and _last_used between the worker and unload_if_idle
        self._users = 0
        self._last_used = time.monotonic()

    @property
    def model_name(self) -> str:
        return str(self.model) if self.model else "shapes"

    @property
    def device(self) -> str:
        return self._device or self.requested_device or "cpu"

    @property
    def native_size(self) -> int:
        return self._native_size

    def _build(self) -> Any:
        from engine.pipeline import RecastPipeline

        self.apply_threads()
        with PipelineHost._load_lock:
            pipe = RecastPipeline.from_pretrained(
                self.model, device=self.requested_device, cache_dir=self.cache_dir, limits=self.limits,
                cache_max_bytes=self.cache_max_bytes,
            )
        size = getattr(pipe.model, "native_size", 0)
        self._device, self._native_size = str(pipe.model.device), size if isinstance(size, int) else 0
        self.loaded_once = True
        self._last_used = time.monotonic()
        return pipe

    def load(self, on_done: Callable[[bool], None]) -> threading.Thread:
        def work() -> None:
            try:
                with self._lock:
                    self.pipe = self._build()
            except Exception as exc:  # reported through health, EngineInfo and every job
                log.exception("loading the pipeline failed")
                self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()
            on_done(self.pipe is not None)

        t = threading.Thread(target=work, name="recast-pipeline-loader", daemon=True)
        t.start()
        return t

    def claim_threads(self) -> None:
        """Sets the CPU thread count; call on the main thread before the daemon starts its threads.

        Why then: OpenMP's thread count is per thread and new threads inherit it from where they
        were started, so setting it later on the loader thread does not reach the worker. On a
        shared or small machine, oversubscribed OpenMP threads spin at barriers and a job can run
        ten times slower.
        """
        if self.threads:
            import torch

            self._previous_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def apply_threads(self) -> None:
        """Re-applies the thread count on the calling (worker or loader) thread."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    def release(self) -> None:
        """Undo process-wide settings (tests run several daemons in one process)."""
        if self._previous_threads is not None:
            import torch

            torch.set_num_threads(self._previous_threads)
            self._previous_threads = None

    @contextlib.contextmanager
    def use(self) -> Iterator[Any]:
        """The pipeline for one job, loaded again here if it was unloaded after idle; it is not
        unloaded while in use, and its keep-alive counts from the end of the job."""
        with self._lock:
            self._users += 1
            try:
                if self.pipe is None and self.loaded_once:
                    log.info("loading the pipeline again for a job")
                    self.pipe = self._build()
            except Exception as exc:
                self._users -= 1
                self.error = f"{type(exc).__name__}: {exc}"
                raise ModelError(f"model {self.model_name!r} could not be loaded again: {self.error}") from exc
        try:
            yield self.get()
        finally:
            with self._lock:
                self._users -= 1
                self._last_used = time.monotonic()

    def get(self) -> Any:
        pipe = self.pipe
        if pipe is None:
            raise ModelError(f"model {self.model_name!r} could not be loaded: {self.error or 'not loaded yet'}")
        return pipe

    def unload_if_idle(self) -> bool:
        """Drops the pipeline when no job used it for `keep_alive` seconds; frees the CUDA cache on cuda.
        Never waits: a job loading it holds the lock, and then it is not idle (a running one counts in
        `_users`)."""
        if self.keep_alive <= 0 or self.pipe is None or not self._lock.acquire(blocking=False):
            return False
        try:
            if self._users or self.pipe is None or time.monotonic() - self._last_used < self.keep_alive:
                return False
            self.pipe = None
        finally:
            self._lock.release()
        gc.collect()
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        log.info("unloaded the pipeline after %.0f s idle; the next job loads it again", self.keep_alive)
        return True


class Runners:
    """The two job kinds; each returns the outcome dict JobManager records."""

    def __init__(
        self,
        storage: Storage,
        events: EventLog,
        assets: Assets,
        clips: Clips,
        masks: Masks,
        host: PipelineHost,
    ):
        self.storage = storage
        self.events = events
        self.assets = assets
        self.clips = clips
        self.masks = masks
        self.host = host

    def table(self) -> dict[int, Callable[[Row, Any, RunContext], dict]]:
        return {pb.JOB_KIND_MASK: self.mask, pb.JOB_KIND_RENDER: self.render}

    # --- checkpoints: a job's finished stages and windows, for its resume ------------------------

    def checkpoint_dir(self, job_id: str) -> Path:
        return self.storage.root / "resume" / job_id

    def _checkpoint(self, job_id: str) -> Any:
        from engine.runtime.cache import TensorCache

        return TensorCache(self.checkpoint_dir(job_id), max_bytes=1 << 62)  # one job's own: never evicted

    def drop_checkpoint(self, job_id: str) -> None:
        shutil.rmtree(self.checkpoint_dir(job_id), ignore_errors=True)

    def prune_checkpoints(self) -> int:
        """Removes the checkpoints of jobs that are gone or can no longer be resumed; returns how many."""
        from protos.job_states import ACTIVE_STATES, RESUMABLE_STATES

        root = self.storage.root / "resume"
        removed = 0
        for folder in root.iterdir() if root.is_dir() else ():
            row = self.storage.db.query_one("SELECT state FROM jobs WHERE job_id=?", (folder.name,))
            if row is None or row.state not in RESUMABLE_STATES + ACTIVE_STATES:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def _inputs(self, req: Any) -> tuple[Row, np.ndarray, np.ndarray, Any]:
        clip = self.clips.get(req.clip_id)
        frames = self.clips.read_frames(clip)
        target = self.assets.read_image(req.target_asset_id, "target_asset_id")
        return clip, frames, target, settings_from_proto(req.settings)

    def mask(self, job: Row, req: pb.CreateMaskJobRequest, ctx: RunContext) -> dict:
        with self.host.use() as pipe:
            outcome = self._mask(pipe, job, req, ctx)
        self.drop_checkpoint(job.job_id)
        return outcome

    def _mask(self, pipe: Any, job: Row, req: pb.CreateMaskJobRequest, ctx: RunContext) -> dict:
        self.host.apply_threads()
        clip, frames, target, settings = self._inputs(req)
        before = dict(getattr(pipe, "timings", {}) or {})
        masks = pipe.compute_masks(
            frames,
            target,
            req.source_prompt,
            req.target_prompt,
            settings,
            progress=ctx.progress,
            cancel=ctx.cancel,
            checkpoint=self._checkpoint(job.job_id),
            on_mask=lambda i, mask: ctx.provisional_mask(int(i), media.image_message(np.asarray(mask, np.uint8))),
        )
        masks = np.asarray(masks, dtype=np.uint8)
        after = dict(getattr(pipe, "timings", {}) or {})
        timings = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
        t0 = time.monotonic()
        version, blobs = self.masks.save_auto(clip.clip_id, job.job_id, masks)
        for i, digest in sorted(blobs.items()):
            self._record_frame(job.job_id, i, "", digest)
        ctx.io_seconds += time.monotonic() - t0
        return {"mask_version": version, "frame_count": len(blobs), "timings": timings}

    def render(self, job: Row, req: pb.CreateRenderJobRequest, ctx: RunContext) -> dict:
        with self.host.use() as pipe:
            outcome = self._render(pipe, job, req, ctx)
        self.drop_checkpoint(job.job_id)
        return outcome

    def _render(self, pipe: Any, job: Row, req: pb.CreateRenderJobRequest, ctx: RunContext) -> dict:
        self.host.apply_threads()
        clip, frames, target, settings = self._inputs(req)
        user_masks = None
        if req.use_latest_masks or req.mask_version:
            _, user_masks = self.masks.arrays(
                clip.clip_id, 0 if req.use_latest_masks else req.mask_version, "mask_version"
            )
        stored: set[int] = set()

        def on_preview(i: int, rgb: np.ndarray) -> None:
            ctx.preview(int(i), lambda: media.image_message(media.fit(np.asarray(rgb, np.uint8), 512)))

        def on_frame(i: int, rgb: np.ndarray, mask: np.ndarray) -> None:
            t0 = time.monotonic()
            self._store_result(job.job_id, int(i), rgb, mask)
            stored.add(int(i))
            ctx.io_seconds += time.monotonic() - t0

        result = pipe.render(
            frames,
            target,
            req.source_prompt,
            req.target_prompt,
            settings,
            masks=user_masks,
            progress=ctx.progress,
            cancel=ctx.cancel,
            on_preview=on_preview,
            on_frame=on_frame,
            checkpoint=self._checkpoint(job.job_id),
        )
        out_frames = np.asarray(result.frames, np.uint8)
        out_masks = np.asarray(result.masks, np.uint8)
        for i in range(len(out_frames)):
            if i not in stored:  # a pipeline that reports frames only at the end still gets them stored
                self._store_result(job.job_id, i, out_frames[i], out_masks[i])
        return {"frame_count": len(out_frames), "timings": dict(getattr(result, "timings", {}) or {})}

    def _store_result(self, job_id: str, i: int, rgb: np.ndarray, mask: np.ndarray) -> None:
        frame_blob = self.storage.blobs.put(media.encode_png(np.ascontiguousarray(rgb, np.uint8)))
        mask_blob = self.storage.blobs.put(media.encode_png(np.ascontiguousarray(mask, np.uint8)))
        self._record_frame(job_id, i, frame_blob, mask_blob)

    def _record_frame(self, job_id: str, i: int, frame_blob: str, mask_blob: str) -> None:
        """Result row and its event in one transaction: an announced frame is always fetchable."""

        def insert(conn) -> None:  # noqa: ANN001
            conn.execute("INSERT OR REPLACE INTO job_results VALUES (?,?,?,?)", (job_id, i, frame_blob, mask_blob))

        self.events.append(job_id, "result_frame", pb.ResultFrameEvent(frame_index=i), also=insert)
