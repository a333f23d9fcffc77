"""The job store under failure: a failing database, corrupt blobs, old databases, resumed jobs.

Failures are real: a second SQLite connection holding the write lock past the daemon's timeout,
a deferred constraint that fails at COMMIT, bytes rotted on disk. Nothing of ours is mocked.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import grpc
import pytest
from daemon_support import (
    TERMINAL,
    InProcess,
    connect,
    kinds,
    render_request,
    setup_clip,
    short_tmp,
    wait_state,
    watch_all,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.daemon.events import EventLog
from engine.daemon.storage import SCHEMA_VERSION, BlobCorrupt, BlobStore, Database, Storage
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(240)

SLOW = dict(steps=60, tune_steps=0, preview_every=0)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


# --- storage on its own -------------------------------------------------------------------------


def test_failed_commit_is_rolled_back(tmp_path):
    """A COMMIT that fails (here a deferred foreign key) must not leave the transaction open: every
    later BEGIN would fail with 'cannot start a transaction within a transaction'."""
    db = Database(tmp_path / "t.db")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO child VALUES (1)")
    assert db.query("SELECT * FROM child") == []
    assert db.execute("INSERT INTO parent VALUES (1)") == 1
    db.close()


def test_new_blob_folder_is_fsynced(tmp_path, monkeypatch):
    """A blob in a new prefix folder survives power loss only if the folder's own entry is durable."""
    store = BlobStore(tmp_path / "blobs")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    digest = store.put(b"a painted mask")
    assert str(store.root) in synced and str(store.path(digest).parent) in synced


def test_corrupt_blob_is_replaced(tmp_path):
    """Storing bytes whose blob exists but rotted on disk repairs the blob instead of keeping it."""
    store = BlobStore(tmp_path / "blobs")
    data = b"result frame bytes" * 100
    digest = store.put(data)
    store.path(digest).write_bytes(b"rotten")
    with pytest.raises(BlobCorrupt):
        store.get(digest)
    assert store.put(data) == digest
    assert store.get(digest) == data
    store.path(digest).write_bytes(data[:-1] + b"?")  # same size, other bytes: the streamed path too
    writer = store.writer()
    writer.write(data)
    assert writer.commit() == digest
    assert store.get(digest) == data
    assert list(store.tmp_dir.iterdir()) == []


OLD_SCHEMA = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, clip_id TEXT NOT NULL,
    queue_order INTEGER NOT NULL, request BLOB NOT NULL, created_ms INTEGER NOT NULL,
    started_ms INTEGER NOT NULL DEFAULT 0, ended_ms INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', mask_version INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE events (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (job_id, seq));
"""


def test_old_database_is_migrated(tmp_path):
    """A data folder of the previous daemon: previews leave the event log, and the terminal event of a
    resumed job's earlier attempt no longer ends a Watch."""
    root = tmp_path / "data"
    root.mkdir(mode=0o700)
    old = sqlite3.connect(root / "engine.db")
    old.executescript(OLD_SCHEMA)
    history = {
        "resumed": ["queued", "started", "progress", "preview", "interrupted", "queued", "started", "preview",
                    "finished"],
        "ended": ["queued", "started", "preview", "failed"],
    }
    for job_id, names in history.items():
        old.execute("INSERT INTO jobs (job_id, kind, state, clip_id, queue_order, request, created_ms, last_seq) "
                    "VALUES (?,?,?,?,?,?,?,?)", (job_id, pb.JOB_KIND_RENDER, pb.JOB_STATE_SUCCEEDED, "c", 1, b"", 0,
                                                 len(names)))
        for seq, name in enumerate(names, 1):
            event = pb.JobEvent(seq=seq, job_id=job_id)
            getattr(event, name).SetInParent()
            if name == "preview":
                event.preview.image.data = b"\x89PNG old preview"
            old.execute("INSERT INTO events VALUES (?,?,?)", (job_id, seq, event.SerializeToString()))
    old.commit()
    old.close()

    store = Storage(root)
    log = EventLog(store)
    assert store.db.query_one("PRAGMA user_version").user_version == SCHEMA_VERSION
    resumed = log.read("resumed", 0)
    assert [e.seq for e in resumed] == [1, 2, 3, 6, 7, 9]
    assert kinds(resumed) == ["queued", "started", "progress", "queued", "started", "finished"]
    assert [e.seq for e in log.read("resumed", 4)] == [6, 7, 9]  # a dropped preview, then a superseded end
    assert kinds(log.read("ended", 0)) == ["queued", "started", "failed"]
    assert store.db.query("SELECT * FROM previews") == []
    store.close()
    again = Storage(root)  # opening a migrated database changes nothing
    assert [e.seq for e in EventLog(again).read("resumed", 0)] == [1, 2, 3, 6, 7, 9]
    again.close()


# --- the real daemon --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir, db_timeout=0.5) as d:
        yield d


@pytest.fixture(scope="module")
def clip(daemon, tmp_path_factory):
    return setup_clip(daemon.stub, tmp_path_factory.mktemp("clip"), n=4)


def _health(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _wait_health(channel: grpc.Channel, status: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _health(channel) != status:
        assert time.monotonic() < deadline, f"health never became {status}"
        time.sleep(0.05)


def _wait_progress(stub, job_id: str) -> None:
    for event in stub.Watch(pb.WatchRequest(job_id=job_id), timeout=120):
        if event.HasField("progress") and event.progress.stage in ("invert", "generate") and event.progress.step >= 2:
            return
    raise AssertionError("the job ended before it could be disturbed")


def test_worker_survives_a_locked_database(daemon, clip):
    """A write lock held past the timeout breaks the store: the running job becomes INTERRUPTED, health
    says NOT_SERVING, and once the lock is gone the worker takes the next job and health recovers."""
    clip_msg, target, _ = clip
    first = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    second = daemon.stub.CreateRenderJob(render_request(clip_msg, target, steps=3, tune_steps=0))
    _wait_progress(daemon.stub, first.job_id)
    other = sqlite3.connect(daemon.config.data_dir / "engine.db", isolation_level=None, timeout=10)
    other.execute("BEGIN IMMEDIATE")
    try:
        _wait_health(daemon.channel, NOT_SERVING, timeout=30)
        assert _health(daemon.channel, "recast.v1.Engine") == NOT_SERVING
        time.sleep(1.0)  # the worker backs off and retries while the lock is held
        assert daemon.stub.GetJob(pb.GetJobRequest(job_id=second.job_id)).state == pb.JOB_STATE_QUEUED
    finally:
        other.execute("ROLLBACK")
        other.close()
    _wait_health(daemon.channel, SERVING, timeout=60)
    assert wait_state(daemon.stub, second.job_id, {pb.JOB_STATE_SUCCEEDED}, timeout=120)
    interrupted = daemon.stub.GetJob(pb.GetJobRequest(job_id=first.job_id))
    assert interrupted.state == pb.JOB_STATE_INTERRUPTED
    assert kinds(watch_all(daemon.stub, first.job_id))[-1] == "interrupted"
    assert _health(daemon.channel, "recast.v1.Engine") == SERVING


def _unknown_field(number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_unknown_request_fields_are_not_stored(daemon, clip):
    """A client's unknown fields would be stored with the job and sent back by every GetJob/ListJobs."""
    clip_msg, target, _ = clip
    request = render_request(clip_msg, target, steps=3, tune_steps=0)
    padded = pb.CreateRenderJobRequest.FromString(request.SerializeToString() + _unknown_field(4321, b"x" * (1 << 20)))
    assert padded.ByteSize() > 1 << 20
    job = daemon.stub.CreateRenderJob(padded)
    stored = daemon.daemon.storage.db.query_one("SELECT length(request) AS n FROM jobs WHERE job_id=?", (job.job_id,))
    assert stored.n == request.ByteSize()
    assert daemon.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).render_request == request
    listed = daemon.stub.ListJobs(pb.ListJobsRequest(clip_id=clip_msg.clip_id, limit=1)).jobs
    assert listed[0].job_id == job.job_id and listed[0].ByteSize() < 64 * 1024
    wait_state(daemon.stub, job.job_id, {pb.JOB_STATE_SUCCEEDED}, timeout=120)


def test_previews_are_dropped_and_progress_is_throttled(daemon, clip):
    """Previews stream while the job runs and are gone from the store after it; progress is about
    5 events a second, each stage's change and last step kept; Watch stays resumable."""
    clip_msg, target, _ = clip
    job = daemon.stub.CreateRenderJob(render_request(clip_msg, target, steps=30, tune_steps=0, preview_every=1))
    live = watch_all(daemon.stub, job.job_id)
    assert kinds(live)[-1] == "finished"
    previews = [e for e in live if e.HasField("preview")]
    assert previews and all(e.preview.image.data for e in previews)

    db = daemon.daemon.storage.db
    assert db.query("SELECT seq FROM previews WHERE job_id=?", (job.job_id,)) == []
    stored = [pb.JobEvent.FromString(r.payload) for r in db.query("SELECT payload FROM events WHERE job_id=?",
                                                                  (job.job_id,))]
    assert "preview" not in kinds(stored)
    replay = watch_all(daemon.stub, job.job_id)
    assert replay == [e for e in live if e.WhichOneof("event") not in ("preview", "provisional_mask")]
    after_preview = watch_all(daemon.stub, job.job_id, from_seq=previews[0].seq)
    assert after_preview and after_preview[0].seq > previews[0].seq
    assert after_preview == [e for e in replay if e.seq > previews[0].seq]

    progress = [e for e in live if e.HasField("progress")]
    stages = [e.progress.stage for e in progress]
    assert {"invert", "generate"} <= set(stages)
    for stage in set(stages):  # every stage's last step is there
        last = [e.progress for e in progress if e.progress.stage == stage][-1]
        assert last.step == last.total
    for before, event in zip(progress, progress[1:]):
        kept_anyway = event.progress.stage != before.progress.stage or event.progress.step >= event.progress.total
        if not kept_anyway:
            assert event.time_unix_ms - before.time_unix_ms >= 180, (before, event)
    assert len([e for e in progress if e.progress.stage == "generate"]) < 30


# --- resumed jobs -------------------------------------------------------------------------------------


def test_resumed_job_streams_end_with_the_new_attempt(tiny_model_dir, tmp_path):
    """After a restart interrupts a job and it is resumed, a Watch from the start and the SDK's `wait`
    end with the new attempt's result, not at the earlier attempt's `interrupted`."""
    from plugin_bridge.client import RecastClient
    from plugin_bridge.discovery import Endpoint

    root = short_tmp()
    first = InProcess(tiny_model_dir, root=root).__enter__()
    try:
        clip_msg, target, _ = setup_clip(first.stub, tmp_path, n=4)
        job = first.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
        _wait_progress(first.stub, job.job_id)
    finally:
        first.channel.close()
        first.daemon.stop()  # graceful: the running job becomes INTERRUPTED
    with InProcess(tiny_model_dir, root=root) as second:
        stub = second.stub
        old = watch_all(stub, job.job_id)
        assert kinds(old)[-1] == "interrupted"
        stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id))

        sdk = RecastClient(Endpoint(f"unix:{second.config.socket_path}"))
        outcome: dict = {}

        def wait() -> None:
            try:
                outcome["job"] = sdk.wait(job.job_id)
            except Exception as exc:  # reported below
                outcome["job"] = exc

        waiter = threading.Thread(target=wait)
        waiter.start()
        channel, other = connect(second.config.socket_path)
        from_start = watch_all(other, job.job_id)  # while the new attempt runs
        channel.close()
        waiter.join(120)
        sdk.close()

        assert isinstance(outcome["job"], pb.Job), outcome["job"]
        assert outcome["job"].state == pb.JOB_STATE_SUCCEEDED
        ends = [k for k in kinds(from_start) if k in TERMINAL]
        assert ends == ["finished"] and kinds(from_start)[-1] == "finished"
        assert from_start[: len(old) - 1] == old[:-1]  # the earlier attempt's history is still there
        resumed_at = watch_all(stub, job.job_id, from_seq=old[-1].seq)  # names the superseded end
        assert kinds(resumed_at)[0] == "queued" and kinds(resumed_at)[-1] == "finished"
        assert len(list(stub.GetResultFrames(pb.GetResultFramesRequest(job_id=job.job_id)))) == 4
