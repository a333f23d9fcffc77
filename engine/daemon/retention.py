"""Deleting jobs, clips and assets, collecting blobs nothing refers to, and guarding free disk space.

Blobs are shared by content, so a blob is deleted only when no row refers to it any more. Blobs are
written before the rows that name them, so a blob this daemon stored within `grace_s` may belong to
a row about to commit: collection leaves it (the blob store remembers what it stored and when).
Collection over the whole store (`collect_all`, at start and by `recast-engine gc`) also leaves
files modified within its grace time, for a daemon that may be writing.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.daemon.jobs import WrongState
from engine.daemon.status import NotFound
from engine.daemon.storage import Storage
from engine.errors import LimitError
from protos.job_states import ACTIVE_STATES
from protos.recast.v1 import engine_pb2 as pb

GIB = 1024**3
# Every column that names a blob. A new table holding blob names must be listed here.
BLOB_REFERENCES = (
    "SELECT asset_id AS b FROM assets",
    "SELECT blob AS b FROM mask_frames",
    "SELECT frame_blob AS b FROM job_results WHERE frame_blob != ''",
    "SELECT mask_blob AS b FROM job_results",
)


@dataclass
class Freed:
    """What a deletion or collection removed: blobs, their bytes, and the ids of deleted jobs."""

    blobs: int = 0
    bytes: int = 0
    jobs: list[str] = field(default_factory=list)

    def add(self, other: Freed) -> Freed:
        return Freed(self.blobs + other.blobs, self.bytes + other.bytes, self.jobs + other.jobs)


def _job_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables whose rows belong to one job (results, events, previews), found by their job_id column."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    owned = []
    for name in names:
        if name in ("jobs", "mask_versions"):  # the job itself; mask versions belong to the clip
            continue
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
        if "job_id" in columns:
            owned.append(name)
    return owned


def _blobs_of(conn: sqlite3.Connection, sql: str, params: tuple) -> set[str]:
    return {r[0] for r in conn.execute(sql, params) if r[0]}


class Retention:
    """Deletes what a user no longer needs; each deletion collects the blobs it leaves unreferenced."""

    def __init__(self, storage: Storage, grace_s: float = 600.0):
        self.storage = storage
        self.grace_s = grace_s

    # --- deletion -------------------------------------------------------------------------------

    def delete_job(self, job_id: str) -> Freed:
        with self.storage.db.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"job_id: no job {job_id!r}")
            if row[0] in ACTIVE_STATES:
                raise WrongState(f"job_id: job {job_id} is {pb.JobState.Name(row[0])}; cancel it first")
            candidates = self._delete_jobs(conn, [job_id])
        return self._collect(candidates).add(Freed(jobs=[job_id]))

    def delete_clip(self, clip_id: str) -> Freed:
        """The clip, its mask versions, its jobs and their results."""
        with self.storage.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM clips WHERE clip_id=?", (clip_id,)).fetchone() is None:
                raise NotFound(f"clip_id: no clip {clip_id!r}")
            active = [r[0] for r in conn.execute(
                f"SELECT job_id FROM jobs WHERE clip_id=? AND state IN ({','.join('?' * len(ACTIVE_STATES))})",
                (clip_id, *ACTIVE_STATES))]
            if active:
                raise WrongState(f"clip_id: clip {clip_id} is used by job {active[0]} that is queued or running; "
                                 "cancel it first")
            jobs = [r[0] for r in conn.execute("SELECT job_id FROM jobs WHERE clip_id=?", (clip_id,))]
            candidates = self._delete_jobs(conn, jobs)
            candidates |= _blobs_of(conn, "SELECT blob FROM mask_frames WHERE clip_id=?", (clip_id,))
            conn.execute("DELETE FROM mask_frames WHERE clip_id=?", (clip_id,))
            conn.execute("DELETE FROM mask_versions WHERE clip_id=?", (clip_id,))
            conn.execute("DELETE FROM clips WHERE clip_id=?", (clip_id,))
        return self._collect(candidates).add(Freed(jobs=jobs))

    def delete_asset(self, asset_id: str) -> Freed:
        """The asset and its bytes; refused while a clip is cut from it or a waiting job uses it."""
        with self.storage.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM assets WHERE asset_id=?", (asset_id,)).fetchone() is None:
                raise NotFound(f"asset_id: no asset {asset_id!r}")
            clips = [r[0] for r in conn.execute("SELECT clip_id FROM clips WHERE asset_id=?", (asset_id,))]
            if clips:
                raise WrongState(f"asset_id: clip {clips[0]} is cut from asset {asset_id}"
                                 f"{f' (and {len(clips) - 1} more)' if len(clips) > 1 else ''}; delete the clip first")
            for job_id in self._active_jobs_using(conn, asset_id):
                raise WrongState(f"asset_id: job {job_id} uses asset {asset_id} as its target image and is queued "
                                 "or running; cancel it first")
            conn.execute("DELETE FROM imported_paths WHERE asset_id=?", (asset_id,))
            conn.execute("DELETE FROM assets WHERE asset_id=?", (asset_id,))
        return self._collect({asset_id})

    @staticmethod
    def _active_jobs_using(conn: sqlite3.Connection, asset_id: str) -> Iterable[str]:
        marks = ",".join("?" * len(ACTIVE_STATES))
        for job_id, kind, request in conn.execute(
                f"SELECT job_id, kind, request FROM jobs WHERE state IN ({marks})", ACTIVE_STATES):
            message = pb.CreateMaskJobRequest() if kind == pb.JOB_KIND_MASK else pb.CreateRenderJobRequest()
            message.ParseFromString(request)
            if message.target_asset_id == asset_id:
                yield job_id

    @staticmethod
    def _delete_jobs(conn: sqlite3.Connection, job_ids: list[str]) -> set[str]:
        """Deletes the jobs' rows in every job-owned table; returns the blobs they named."""
        candidates: set[str] = set()
        tables = _job_tables(conn)
        for job_id in job_ids:
            candidates |= _blobs_of(conn, "SELECT frame_blob FROM job_results WHERE job_id=?", (job_id,))
            candidates |= _blobs_of(conn, "SELECT mask_blob FROM job_results WHERE job_id=?", (job_id,))
            for table in tables:
                conn.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE job_id=?", (job_id,))
        return candidates

    def delete_finished_before(self, cutoff_ms: int) -> tuple[int, Freed]:
        """Deletes every job that ended before `cutoff_ms` (never a queued or running one)."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        with self.storage.db.transaction() as conn:
            jobs = [r[0] for r in conn.execute(
                f"SELECT job_id FROM jobs WHERE state NOT IN ({marks}) AND ended_ms > 0 AND ended_ms < ?",
                (*ACTIVE_STATES, cutoff_ms))]
            candidates = self._delete_jobs(conn, jobs)
        return len(jobs), self._collect(candidates).add(Freed(jobs=jobs))

    # --- blobs ----------------------------------------------------------------------------------

    def _live(self) -> set[str]:
        live: set[str] = set()
        for sql in BLOB_REFERENCES:
            live.update(r.b for r in self.storage.db.query(sql))
        return live

    def _collect(self, candidates: set[str]) -> Freed:
        """Deletes the candidate blobs no row refers to, unless stored within the grace time."""
        if not candidates:
            return Freed()
        live = self._live()
        blobs = self.storage.blobs
        doomed = [d for d in candidates if d not in live and not blobs.stored_within(d, self.grace_s)]
        return _unlink((blobs.path(d) for d in doomed), grace_s=0.0)

    def collect_all(self, grace_s: float | None = None) -> Freed:
        """Deletes every blob no row refers to, and stale temp files of the blob store."""
        live = self._live()
        root = self.storage.blobs.root
        paths = [blob for folder in root.iterdir() if folder.is_dir() and len(folder.name) == 2
                 for blob in folder.iterdir() if blob.name not in live]
        tmp = self.storage.blobs.tmp_dir
        if tmp.is_dir():
            paths += list(tmp.iterdir())
        return _unlink(paths, self.grace_s if grace_s is None else grace_s)


def _unlink(paths: Iterable[Path], grace_s: float) -> Freed:
    """Unlinks files not modified within `grace_s`; returns how many and their bytes."""
    freed = Freed()
    young = time.time() - grace_s
    for path in paths:
        try:
            st = path.stat()
            if grace_s > 0 and st.st_mtime > young:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        freed = freed.add(Freed(1, st.st_size))
    return freed


def check_free_space(folder: Path, need_bytes: int, min_free_bytes: int, field: str) -> None:
    """Refuses (RESOURCE_EXHAUSTED) work whose bytes would leave less than `min_free_bytes` on the disk."""
    free = shutil.disk_usage(folder).free
    if free - need_bytes < min_free_bytes:
        raise LimitError(field, f"the disk holding {folder} has {free / GIB:.1f} GiB free; this needs "
                         f"{need_bytes / GIB:.1f} GiB and Recast keeps {min_free_bytes / GIB:.1f} GiB free. "
                         "Free some space: delete old jobs and clips, or run `recast-engine gc`")
