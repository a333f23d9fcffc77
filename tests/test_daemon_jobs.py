"""Job queue behaviour over gRPC: resumable Watch, cancellation, many clients at once."""

from __future__ import annotations

import threading

import grpc
import psutil
import pytest
from daemon_support import (
    InProcess,
    connect,
    kinds,
    mask_request,
    render_request,
    setup_clip,
    wait_state,
    watch_all,
)

from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(180)

SLOW = dict(steps=60, tune_steps=0, preview_every=0)  # long enough to act on while it runs


WATCH_LIMIT = 10


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir, max_watch_streams=WATCH_LIMIT) as d:
        yield d


@pytest.fixture(scope="module")
def clip(daemon, tmp_path_factory):
    return setup_clip(daemon.stub, tmp_path_factory.mktemp("clip"), n=4)


def test_reattach_with_from_seq_misses_nothing(daemon, clip):
    clip_msg, target, _ = clip
    job = daemon.stub.CreateRenderJob(render_request(clip_msg, target, steps=30, tune_steps=0))
    # first client: reads a few events, then drops the connection mid-render
    channel, stub = connect(daemon.config.socket_path)
    stream = stub.Watch(pb.WatchRequest(job_id=job.job_id))
    seen = [next(stream) for _ in range(4)]
    stream.cancel()
    channel.close()
    # the job goes on without any client
    assert daemon.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).state in (
        pb.JOB_STATE_QUEUED,
        pb.JOB_STATE_RUNNING,
        pb.JOB_STATE_SUCCEEDED,
    )
    rest = watch_all(daemon.stub, job.job_id, from_seq=seen[-1].seq + 1)
    combined = seen + rest
    assert [e.seq for e in combined] == sorted({e.seq for e in combined})
    assert kinds(combined)[-1] == "finished"
    # a full replay is identical, except that a finished job's previews are gone (a stream that fell
    # behind the job's end never saw them either: only previews may be missing from `combined`)
    replay = watch_all(daemon.stub, job.job_id)
    assert [e for e in combined if e.WhichOneof("event") not in ("preview", "provisional_mask")] == replay
    assert "preview" not in kinds(replay)
    # asking past the end of a finished job returns at once
    assert watch_all(daemon.stub, job.job_id, from_seq=combined[-1].seq + 1, timeout=10) == []


def test_cancel_queued_and_running(daemon, clip):
    clip_msg, target, _ = clip
    running = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    queued = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    assert queued.state == pb.JOB_STATE_QUEUED

    # the queued one is cancelled at once, and cancelling again changes nothing
    c = daemon.stub.CancelJob(pb.CancelJobRequest(job_id=queued.job_id))
    assert c.state == pb.JOB_STATE_CANCELLED
    assert daemon.stub.CancelJob(pb.CancelJobRequest(job_id=queued.job_id)).state == pb.JOB_STATE_CANCELLED
    queued_kinds = kinds(watch_all(daemon.stub, queued.job_id))
    assert set(queued_kinds[:-1]) == {"queued"} and queued_kinds[-1] == "cancelled"

    # the running one: wait for denoising to be under way, cancel, at most one more step happens
    stream = daemon.stub.Watch(pb.WatchRequest(job_id=running.job_id))
    for event in stream:
        if event.HasField("progress") and event.progress.stage == "generate" and event.progress.step >= 3:
            break
    stream.cancel()
    ack = daemon.stub.CancelJob(pb.CancelJobRequest(job_id=running.job_id))
    after = watch_all(daemon.stub, running.job_id, from_seq=ack.last_seq + 1)
    assert kinds(after)[-1] == "cancelled"
    steps_after = [e for e in after if e.HasField("progress") and e.progress.stage == "generate"]
    assert len(steps_after) <= 1, steps_after
    assert "result_frame" not in kinds(after)
    done = daemon.stub.GetJob(pb.GetJobRequest(job_id=running.job_id))
    assert done.state == pb.JOB_STATE_CANCELLED
    assert daemon.stub.CancelJob(pb.CancelJobRequest(job_id=running.job_id)).state == pb.JOB_STATE_CANCELLED

    # a cancelled job can be resumed and then finishes
    resumed = daemon.stub.ResumeJob(pb.ResumeJobRequest(job_id=running.job_id))
    assert resumed.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
    final = watch_all(daemon.stub, running.job_id, from_seq=resumed.last_seq)
    assert kinds(final)[0] == "queued" and kinds(final)[-1] == "finished"
    with pytest.raises(grpc.RpcError) as exc:
        daemon.stub.ResumeJob(pb.ResumeJobRequest(job_id=running.job_id))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_eight_clients_at_once(daemon, clip):
    clip_msg, target, _ = clip
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    results: dict[int, tuple[pb.Job, list[pb.JobEvent]]] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(8)

    def client(i: int) -> None:
        try:
            channel, stub = connect(daemon.config.socket_path)
            go.wait()
            make = mask_request if i % 2 else render_request
            job = (stub.CreateMaskJob if i % 2 else stub.CreateRenderJob)(make(clip_msg, target, seed=i))
            results[i] = (job, watch_all(stub, job.job_id))
            channel.close()
        except BaseException as exc:  # reported below with the client's number
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors, errors
    assert len(results) == 8
    jobs = [daemon.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)) for job, _ in results.values()]
    assert all(j.state == pb.JOB_STATE_SUCCEEDED for j in jobs)
    for _job, events in results.values():
        assert kinds(events)[0] == "queued" and kinds(events)[-1] == "finished"
        assert set(kinds(events)[: kinds(events).index("started")]) == {"queued"}
        # previews and provisional masks are dropped when a job ends
        held = [e for e in events if e.WhichOneof("event") not in ("preview", "provisional_mask")]
        assert held == watch_all(daemon.stub, events[0].job_id)
    # queue order: jobs ran one at a time, in the order they were accepted
    listed = daemon.stub.ListJobs(pb.ListJobsRequest(clip_id=clip_msg.clip_id, limit=8)).jobs[::-1]
    assert {j.job_id for j in listed} == {j.job_id for j in jobs}
    assert all(j.asset_id == clip_msg.asset_id for j in listed)
    by_asset = daemon.stub.ListJobs(pb.ListJobsRequest(asset_id=clip_msg.asset_id, limit=1000)).jobs
    assert {j.job_id for j in listed} <= {j.job_id for j in by_asset}
    assert not daemon.stub.ListJobs(pb.ListJobsRequest(asset_id="ab" * 32)).jobs  # no such asset: no jobs
    starts = [j.started_unix_ms for j in listed]
    ends = [j.ended_unix_ms for j in listed]
    assert starts == sorted(starts) and ends == sorted(ends)
    assert all(ends[i] <= starts[i + 1] for i in range(7))
    assert proc.memory_info().rss - rss_before < 400 * 1024 * 1024


def test_queue_positions_are_reported(daemon, clip):
    clip_msg, target, _ = clip
    first = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    wait_state(daemon.stub, first.job_id, {pb.JOB_STATE_RUNNING})
    second = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    third = daemon.stub.CreateRenderJob(render_request(clip_msg, target, steps=3, tune_steps=0))
    assert (second.queue_position, third.queue_position) == (0, 1)
    daemon.stub.CancelJob(pb.CancelJobRequest(job_id=second.job_id))
    daemon.stub.CancelJob(pb.CancelJobRequest(job_id=first.job_id))
    events = watch_all(daemon.stub, third.job_id)
    positions = [e.queued.position for e in events if e.HasField("queued")]
    assert positions[0] == 1 and positions[-1] == 0
    assert kinds(events)[-1] == "finished"


def test_open_watch_streams_are_capped_and_freed(daemon, clip):
    """Each Watch holds a server thread while it follows a job: past the cap, RESOURCE_EXHAUSTED
    instead of starving other calls; a stream the client drops gives its slot back."""
    import time

    clip_msg, target, _ = clip
    job = daemon.stub.CreateRenderJob(render_request(clip_msg, target, **SLOW))
    wait_state(daemon.stub, job.job_id, {pb.JOB_STATE_RUNNING})
    streams = [daemon.stub.Watch(pb.WatchRequest(job_id=job.job_id)) for _ in range(WATCH_LIMIT)]
    for s in streams:
        next(s)
    with pytest.raises(grpc.RpcError) as exc:
        next(daemon.stub.Watch(pb.WatchRequest(job_id=job.job_id)))
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Watch" in exc.value.details()
    assert daemon.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).job_id == job.job_id  # others still served
    for s in streams:
        s.cancel()
    deadline = time.monotonic() + 10
    while True:
        try:
            next(daemon.stub.Watch(pb.WatchRequest(job_id=job.job_id)))
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
            time.sleep(0.1)
    daemon.stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id))
    wait_state(daemon.stub, job.job_id, {pb.JOB_STATE_CANCELLED})
