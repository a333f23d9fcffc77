"""The persistent job queue and the one worker thread that owns the pipeline (and the device).

Why one worker: a GPU (or a 2-core CPU) runs one diffusion job well and two badly; serializing jobs
in queue order keeps memory bounded and latency predictable. Why persistent: queued work survives a
restart, and a job that was running when the daemon died becomes INTERRUPTED (resumable) instead of
silently vanishing. Client disconnects never touch a job; only CancelJob does.

Why the worker survives storage failures: with the only worker gone, the daemon would look healthy
while every job stayed QUEUED forever. A failing store (disk full, I/O error, a lock held past the
timeout) interrupts the running job (resumable), reports NOT_SERVING through `on_health`, and retries
with a bounded exponential back-off until the store works again.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine.daemon.events import EventLog
from engine.daemon.limits import Limits
from engine.daemon.storage import Row, Storage, new_id, now_ms
from engine.errors import Cancelled, InputError, LimitError, ModelError, RecastError
from protos.job_states import RESUMABLE_STATES
from protos.recast.v1 import engine_pb2 as pb

log = logging.getLogger("recast.daemon.jobs")

PROGRESS_INTERVAL = 0.2  # seconds between progress events (each one is an fsynced commit)
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0  # seconds the worker waits after a storage failure
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class JobNotFound(Exception):
    def __init__(self, job_id: str):
        super().__init__(f"job_id: no job {job_id!r}")


class WrongState(Exception):
    """The job exists but cannot do this now: FAILED_PRECONDITION."""


class Draining(Exception):
    """The daemon is shutting down: UNAVAILABLE."""


def storage_failure(exc: BaseException) -> bool:
    """The daemon's own store failed (SQLite, a full, read-only or failing disk): not the job's fault."""
    return isinstance(exc, sqlite3.Error) or (isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS)


def status_name(exc: BaseException) -> str:
    """The gRPC status a job failure corresponds to (reported in the `failed` event)."""
    if isinstance(exc, LimitError):
        return "RESOURCE_EXHAUSTED"
    if isinstance(exc, InputError):
        return "INVALID_ARGUMENT"
    if isinstance(exc, ModelError):
        return "FAILED_PRECONDITION"
    return "INTERNAL"


class RunContext:
    """What a running job may touch: its cancel flag and the event log (via helpers)."""

    def __init__(self, manager: JobManager, job: Row):
        self.manager = manager
        self.job = job
        self.cancel = threading.Event()
        self._stage_start: dict[str, float] = {}
        self._last_progress = 0.0
        self._last_stage = ""
        self._last_preview = 0.0
        self.first_preview_at: float | None = None
        self.started_at = time.monotonic()
        self.io_seconds = 0.0  # time the daemon spent recording events and results for this job

    def progress(self, stage: str, step: int, total: int) -> None:
        """About 5 events/s (each is a durable write under the store's lock); a change of stage and a
        stage's last step are always kept."""
        now = time.monotonic()
        if step <= 1 or stage not in self._stage_start:
            self._stage_start[stage] = now
        start = self._stage_start[stage]
        keep = stage != self._last_stage or step >= total
        if not keep and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress, self._last_stage = now, stage
        eta = (now - start) / (step - 1) * (total - step) if step > 1 and total >= step else -1.0
        self.manager.events.append(
            self.job.job_id,
            "progress",
            pb.ProgressEvent(stage=stage, step=int(step), total=int(total), eta_seconds=float(eta)),
        )
        self.io_seconds += time.monotonic() - now

    def preview(self, frame_index: int, make_image: Callable[[], pb.Image]) -> None:
        """Throttled to ~4/s; the image is only encoded when it will be sent."""
        now = time.monotonic()
        if self.first_preview_at is not None and now - self._last_preview < 0.25:
            return
        self._last_preview = now
        if self.first_preview_at is None:
            self.first_preview_at = now - self.started_at
        self.manager.events.append(
            self.job.job_id, "preview", pb.PreviewEvent(frame_index=int(frame_index), image=make_image())
        )
        self.io_seconds += time.monotonic() - now

    def provisional_mask(self, frame_index: int, image: pb.Image) -> None:
        """A provisional mask of one frame (mask jobs): every one is sent, since each shows a frame no
        other does yet; held like previews and replaced by the job's final masks."""
        now = time.monotonic()
        self.manager.events.append(
            self.job.job_id, "provisional_mask",
            pb.ProvisionalMaskEvent(frame_index=int(frame_index), mask=image, provisional=True),
        )
        self.io_seconds += time.monotonic() - now


# A runner executes one job on the worker thread: (job row, request message, context) -> outcome
# dict with optional keys mask_version, frame_count, timings.
Runner = Callable[[Row, Any, RunContext], dict]


class JobManager:
    """Queue bookkeeping in SQLite plus the worker thread.

    `on_health(ok)` is called from the worker when the store fails (False) and works again (True).
    """

    def __init__(
        self,
        storage: Storage,
        events: EventLog,
        limits: Limits,
        runners: dict[int, Runner],
        on_health: Callable[[bool], None] | None = None,
    ):
        self.storage = storage
        self.db = storage.db
        self.events = events
        self.limits = limits
        self.runners = runners
        self._wake = threading.Condition()
        self._stop = False
        self._draining = False
        self._running: RunContext | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_health = on_health or (lambda ok: None)
        self._healthy = True
        self._backoff = 0.0

    # --- lifecycle --------------------------------------------------------------------------------

    def recover(self, reason: str = "the daemon stopped while the job ran") -> list[str]:
        """Jobs RUNNING with no worker running them become INTERRUPTED; returns their ids. Call it
        before the worker starts, or on the worker thread between jobs."""
        rows = self.db.query("SELECT job_id FROM jobs WHERE state=?", (pb.JOB_STATE_RUNNING,))
        for r in rows:
            self._interrupt(r.job_id, reason)
        return [r.job_id for r in rows]

    def _interrupt(self, job_id: str, reason: str) -> None:
        self._finish(job_id, pb.JOB_STATE_INTERRUPTED, "interrupted", pb.InterruptedEvent(reason=reason))

    def _set_healthy(self, ok: bool) -> None:
        if ok == self._healthy:
            return
        self._healthy = ok
        if ok:
            self._backoff = 0.0
            log.warning("the job store works again; the worker takes jobs")
        self._on_health(ok)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="recast-pipeline-worker", daemon=True)
        self._thread.start()

    def set_ready(self) -> None:
        """The pipeline is loaded: the worker may take jobs."""
        self._ready.set()
        self._notify()

    @property
    def draining(self) -> bool:
        return self._draining

    def shutdown(self, timeout: float = 10.0) -> None:
        """Refuse new work, interrupt the running job (resumable), let queued jobs wait on disk."""
        self._draining = True
        with self._wake:
            self._stop = True
            running = self._running
            self._wake.notify_all()
        if running is not None:
            running.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # --- queries ----------------------------------------------------------------------------------

    def get(self, job_id: str) -> Row:
        row = self.db.query_one("SELECT * FROM jobs WHERE job_id=?", (job_id,))
        if row is None:
            raise JobNotFound(job_id)
        return row

    def queued_count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) AS n FROM jobs WHERE state=?", (pb.JOB_STATE_QUEUED,))
        return int(row.n) if row else 0

    def position(self, job: Row) -> int:
        if job.state != pb.JOB_STATE_QUEUED:
            return 0
        row = self.db.query_one(
            "SELECT COUNT(*) AS n FROM jobs WHERE state=? AND queue_order<?",
            (pb.JOB_STATE_QUEUED, job.queue_order),
        )
        return int(row.n) if row else 0

    def message(self, job: Row) -> pb.Job:
        """The Job message clients see."""
        msg = pb.Job(
            job_id=job.job_id,
            kind=job.kind,
            state=job.state,
            clip_id=job.clip_id,
            queue_position=self.position(job),
            created_unix_ms=job.created_ms,
            started_unix_ms=job.started_ms,
            ended_unix_ms=job.ended_ms,
            error=job.error,
            last_seq=job.last_seq,
            mask_version=job.mask_version,
        )
        clip = self.db.query_one("SELECT asset_id FROM clips WHERE clip_id=?", (job.clip_id,))
        msg.asset_id = clip.asset_id if clip else ""
        n = self.db.query_one("SELECT COUNT(*) AS n FROM job_results WHERE job_id=? AND frame_blob!=''", (job.job_id,))
        msg.result_frames = int(n.n) if n else 0
        if job.kind == pb.JOB_KIND_MASK:
            msg.mask_request.ParseFromString(job.request)
        else:
            msg.render_request.ParseFromString(job.request)
        msg.DiscardUnknownFields()  # rows stored before unknown fields were discarded on submit
        if job.state == pb.JOB_STATE_RUNNING:
            last = self.db.query_one(
                "SELECT payload FROM events WHERE job_id=? ORDER BY seq DESC LIMIT 1", (job.job_id,)
            )
            # Only the newest event is looked at: cheap, and progress is by far the most common.
            if last is not None:
                ev = pb.JobEvent.FromString(last.payload)
                if ev.WhichOneof("event") == "progress":
                    msg.last_progress.CopyFrom(ev.progress)
        return msg

    def list(self, clip_id: str, states: list[int], limit: int, asset_id: str = "") -> list[Row]:
        sql, params = "SELECT * FROM jobs WHERE 1=1", []
        if clip_id:
            sql += " AND clip_id=?"
            params.append(clip_id)
        if asset_id:
            sql += " AND clip_id IN (SELECT clip_id FROM clips WHERE asset_id=?)"
            params.append(asset_id)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        sql += " ORDER BY queue_order DESC LIMIT ?"
        params.append(limit)
        return self.db.query(sql, tuple(params))

    # --- commands ---------------------------------------------------------------------------------

    def submit(self, kind: int, clip_id: str, request_bytes: bytes) -> Row:
        """Persists a QUEUED job at the end of the queue (limit checked in the same transaction)."""
        if self._draining:
            raise Draining("the daemon is shutting down; submit to the next one")
        job_id = new_id()
        queued_event = pb.QueuedEvent()

        def insert(conn: sqlite3.Connection) -> None:
            queued = conn.execute("SELECT COUNT(*) FROM jobs WHERE state=?", (pb.JOB_STATE_QUEUED,)).fetchone()[0]
            self.limits.check_queue(int(queued))
            queued_event.position = int(queued)  # every queued job is ahead of a new one
            order = conn.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                "INSERT INTO jobs (job_id, kind, state, clip_id, queue_order, request, created_ms) "
                "VALUES (?,?,?,?,?,?,?)",
                (job_id, kind, pb.JOB_STATE_QUEUED, clip_id, order, request_bytes, now_ms()),
            )

        # The row and its first event commit together: the worker can never start a job whose
        # `queued` event is not written yet (events stay in order: queued, started, ...).
        self.events.append(job_id, "queued", queued_event, also=insert)
        self._notify()
        return self.get(job_id)

    def cancel(self, job_id: str) -> Row:
        """Idempotent. QUEUED → CANCELLED now; RUNNING → flag, the worker ends it within a step."""
        job = self.get(job_id)
        if job.state == pb.JOB_STATE_QUEUED:
            changed = self._finish(
                job_id,
                pb.JOB_STATE_CANCELLED,
                "cancelled",
                pb.CancelledEvent(),
                only_from=pb.JOB_STATE_QUEUED,
            )
            if changed:
                self._announce_positions()
                return self.get(job_id)
            job = self.get(job_id)  # it started meanwhile: fall through to the running case
        if job.state == pb.JOB_STATE_RUNNING:
            with self._wake:
                running = self._running
            if running is not None and running.job.job_id == job_id:
                running.cancel.set()
        return self.get(job_id)

    def resume(self, job_id: str) -> Row:
        """Re-queue a FAILED/CANCELLED/INTERRUPTED job at the end of the queue."""
        if self._draining:
            raise Draining("the daemon is shutting down")
        job = self.get(job_id)
        if job.state not in RESUMABLE_STATES:
            raise WrongState(
                f"job_id: job is {pb.JobState.Name(job.state)}; only FAILED, CANCELLED or INTERRUPTED "
                "jobs can be resumed"
            )

        queued_event = pb.QueuedEvent()

        def requeue(conn: sqlite3.Connection) -> None:
            queued = conn.execute("SELECT COUNT(*) FROM jobs WHERE state=?", (pb.JOB_STATE_QUEUED,)).fetchone()[0]
            self.limits.check_queue(int(queued))
            queued_event.position = int(queued)
            order = conn.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs").fetchone()[0]
            cur = conn.execute(
                "UPDATE jobs SET state=?, queue_order=?, error='', started_ms=0, ended_ms=0 WHERE job_id=? AND state=?",
                (pb.JOB_STATE_QUEUED, order, job_id, job.state),
            )
            if cur.rowcount != 1:
                raise WrongState("job_id: the job changed state meanwhile; try again")
            conn.execute("DELETE FROM job_results WHERE job_id=?", (job_id,))
            self.events.supersede_last(conn, job_id)  # a new attempt: the old end no longer ends a Watch

        self.events.append(job_id, "queued", queued_event, also=requeue)
        self._notify()
        return self.get(job_id)

    def _finish(
        self,
        job_id: str,
        state: int,
        field: str,
        message,
        error: str = "",  # noqa: ANN001
        only_from: int | None = None,
        mask_version: int = 0,
    ) -> bool:
        changed = [True]

        def update(conn: sqlite3.Connection) -> None:
            sql = "UPDATE jobs SET state=?, ended_ms=?, error=?, mask_version=? WHERE job_id=?"
            params: tuple = (state, now_ms(), error, mask_version, job_id)
            if only_from is not None:
                sql += " AND state=?"
                params = (*params, only_from)
            if conn.execute(sql, params).rowcount != 1:
                changed[0] = False
                raise _NoChange()
            self.events.drop_previews(conn, job_id)

        try:
            self.events.append(job_id, field, message, also=update)
        except _NoChange:
            return False
        return changed[0]

    # --- the worker -------------------------------------------------------------------------------

    def _next_job(self) -> Row | None:
        return self.db.query_one(
            "SELECT * FROM jobs WHERE state=? ORDER BY queue_order LIMIT 1", (pb.JOB_STATE_QUEUED,)
        )

    def _loop(self) -> None:
        while not self._stop:
            try:
                if not self._healthy:
                    self.recover("the daemon could not store the job's progress")  # left RUNNING by a failure
                    if self._next_job() is None:
                        self._set_healthy(True)  # the store answers, and no job waits to prove it
                job = self._wait_for_job()
                if job is not None:
                    self._run(job)
            except Exception as exc:  # a storage failure (or a bug): back off, report, retry; never die
                self._backoff = min(max(2 * self._backoff, BACKOFF_MIN), BACKOFF_MAX)
                log.error("the worker failed (%s: %s); it retries in %.1f s",
                          type(exc).__name__, exc, self._backoff, exc_info=not storage_failure(exc))
                self._set_healthy(False)
                with self._wake:
                    self._wake.wait_for(lambda: self._stop, self._backoff)

    def _wait_for_job(self) -> Row | None:
        """The next QUEUED job once the pipeline is ready; None when the worker is told to stop."""
        with self._wake:
            while not self._stop:
                job = self._next_job() if self._ready.is_set() else None
                if job is not None:
                    return job
                self._wake.wait(0.5)
        return None

    def _run(self, job: Row) -> None:
        ctx = RunContext(self, job)

        def mark_running(conn: sqlite3.Connection) -> None:
            if (
                conn.execute(
                    "UPDATE jobs SET state=?, started_ms=? WHERE job_id=? AND state=?",
                    (pb.JOB_STATE_RUNNING, now_ms(), job.job_id, pb.JOB_STATE_QUEUED),
                ).rowcount
                != 1
            ):
                raise _NoChange()

        with self._wake:
            try:
                self.events.append(job.job_id, "started", pb.StartedEvent(), also=mark_running)
            except _NoChange:
                return  # cancelled between the pick and now
            self._running = ctx
        self._set_healthy(True)  # a state change committed: the store works
        self._announce_positions()
        log.info("job %s (%s) started", job.job_id, pb.JobKind.Name(job.kind))
        t0 = time.monotonic()
        try:
            request = (pb.CreateMaskJobRequest if job.kind == pb.JOB_KIND_MASK else pb.CreateRenderJobRequest)()
            request.ParseFromString(job.request)
            outcome = self.runners[job.kind](job, request, ctx)
        except Cancelled:
            if self._stop:
                self._finish(
                    job.job_id,
                    pb.JOB_STATE_INTERRUPTED,
                    "interrupted",
                    pb.InterruptedEvent(reason="the daemon shut down while the job ran"),
                )
            else:
                self._finish(job.job_id, pb.JOB_STATE_CANCELLED, "cancelled", pb.CancelledEvent())
        except Exception as exc:  # a failed job must never take the worker down
            if storage_failure(exc):  # resumable once the store works; the loop backs off
                self._interrupt(job.job_id, f"the daemon could not store the job's work: {exc}")
                raise
            code = status_name(exc)
            text = str(exc) if isinstance(exc, RecastError) else f"{type(exc).__name__}: {exc}"
            if code == "INTERNAL":
                log.error("job %s failed:\n%s", job.job_id, traceback.format_exc())
            else:
                log.info("job %s failed: %s", job.job_id, text)
            self._finish(job.job_id, pb.JOB_STATE_FAILED, "failed", pb.FailedEvent(code=code, message=text), error=text)
        else:
            mask_version = int(outcome.get("mask_version", 0))
            finished = pb.FinishedEvent(
                mask_version=mask_version,
                frame_count=int(outcome.get("frame_count", 0)),
                wall_seconds=time.monotonic() - t0,
            )
            timings = dict(outcome.get("timings") or {})
            timings["daemon_io"] = ctx.io_seconds
            for k, v in timings.items():
                try:
                    finished.timings[str(k)] = float(v)
                except (TypeError, ValueError):
                    continue
            self._finish(job.job_id, pb.JOB_STATE_SUCCEEDED, "finished", finished, mask_version=mask_version)
            log.info("job %s finished in %.1f s", job.job_id, finished.wall_seconds)
        finally:
            with self._wake:
                self._running = None

    def _announce_positions(self) -> None:
        """Every waiting job learns its new place in the queue."""
        rows = self.db.query("SELECT job_id FROM jobs WHERE state=? ORDER BY queue_order", (pb.JOB_STATE_QUEUED,))
        for position, r in enumerate(rows):
            try:
                self.events.append(
                    r.job_id, "queued", pb.QueuedEvent(position=position), also=_only_if_queued(r.job_id)
                )
            except _NoChange:
                continue


class _NoChange(Exception):
    """Internal: a conditional state change found the job in another state; roll back."""


def _only_if_queued(job_id: str) -> Callable[[sqlite3.Connection], None]:
    def check(conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT state FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None or row["state"] != pb.JOB_STATE_QUEUED:
            raise _NoChange()

    return check
