"""The daemon as a real subprocess: one daemon per user, kill -9 recovery, graceful SIGTERM."""

from __future__ import annotations

import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
from daemon_support import (
    DaemonProcess,
    connect,
    decode_png,
    kinds,
    mask_request,
    png_bytes,
    render_request,
    setup_clip,
    short_tmp,
    wait_state,
    watch_all,
)

from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(240)

SLOW = dict(steps=12, tune_steps=0, preview_every=0)  # with mask_version=1: invert + generate only


def _masks(stub, clip_id: str, version: int) -> list[np.ndarray]:
    return [
        decode_png(m.mask.data, grey=True) for m in stub.GetMasks(pb.GetMasksRequest(clip_id=clip_id, version=version))
    ]


def _results(stub, job_id: str) -> list[bytes]:
    return [r.image.data for r in stub.GetResultFrames(pb.GetResultFramesRequest(job_id=job_id))]


def _wait_running(stub, job_id: str) -> None:
    """Returns once the pipeline is a few steps into the job."""
    for event in stub.Watch(pb.WatchRequest(job_id=job_id), timeout=120):
        if event.HasField("progress") and event.progress.stage in ("invert", "generate") and event.progress.step >= 2:
            return
    raise AssertionError("the render ended before it could be interrupted")


@pytest.fixture
def daemon_proc(tiny_model_dir):
    proc = DaemonProcess(short_tmp(), tiny_model_dir)
    yield proc
    proc.cleanup()


def test_kill9_during_render_and_mask_saves_then_recover(daemon_proc, tmp_path):
    daemon_proc.start()
    _second_daemon_is_refused(daemon_proc)
    channel, stub = connect(daemon_proc.socket)
    clip, target, _ = setup_clip(stub, tmp_path, n=4)
    job = stub.CreateMaskJob(mask_request(clip, target))
    assert kinds(watch_all(stub, job.job_id))[-1] == "finished"
    finished = stub.CreateRenderJob(render_request(clip, target, mask_version=1))
    assert kinds(watch_all(stub, finished.job_id))[-1] == "finished"
    finished_frames = _results(stub, finished.job_id)

    # kill -9 in the middle of a stream of mask saves: every acknowledged version must survive
    acknowledged: dict[int, np.ndarray] = {}
    stop = threading.Event()

    def paint() -> None:
        k = 0
        while not stop.is_set():
            mask = np.zeros((48, 64), np.uint8)
            mask[k % 40 : (k % 40) + 8, :] = 255
            try:
                v = stub.SaveMaskVersion(
                    pb.SaveMaskVersionRequest(
                        clip_id=clip.clip_id,
                        base_version=1,
                        frames=[pb.MaskFrame(frame_index=k % 4, mask=pb.Image(data=png_bytes(mask)))],
                    ),
                    timeout=10,
                )
            except grpc.RpcError:
                return
            acknowledged[v.version] = (k % 4, mask)
            k += 1

    painter = threading.Thread(target=paint)
    painter.start()
    while len(acknowledged) < 5:
        time.sleep(0.01)
    daemon_proc.kill9()
    stop.set()
    painter.join(20)
    channel.close()

    daemon_proc.start()
    channel, stub = connect(daemon_proc.socket)
    versions = {v.version for v in stub.ListMaskVersions(pb.ListMaskVersionsRequest(clip_id=clip.clip_id)).versions}
    assert set(acknowledged) <= versions
    v1 = _masks(stub, clip.clip_id, 1)
    for version, (frame, mask) in acknowledged.items():
        got = _masks(stub, clip.clip_id, version)
        assert np.array_equal(got[frame], mask), version
        others = [i for i in range(4) if i != frame]
        assert all(np.array_equal(got[i], v1[i]) for i in others)
    assert _results(stub, finished.job_id) == finished_frames

    # kill -9 during a render: the render comes back INTERRUPTED and can be resumed
    slow = stub.CreateRenderJob(render_request(clip, target, mask_version=1, **SLOW))
    _wait_running(stub, slow.job_id)
    before = stub.GetEngineInfo(pb.GetEngineInfoRequest()).instance_id
    daemon_proc.kill9()
    channel.close()
    daemon_proc.start()
    channel, stub = connect(daemon_proc.socket)
    after = stub.GetEngineInfo(pb.GetEngineInfoRequest()).instance_id
    assert before and after and after != before  # how a client notices the restart
    job = stub.GetJob(pb.GetJobRequest(job_id=slow.job_id))
    assert job.state == pb.JOB_STATE_INTERRUPTED
    events = watch_all(stub, slow.job_id)
    assert kinds(events)[-1] == "interrupted"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert _results(stub, finished.job_id) == finished_frames  # still intact after a second crash
    resumed = stub.ResumeJob(pb.ResumeJobRequest(job_id=slow.job_id))
    rest = watch_all(stub, slow.job_id, from_seq=events[-1].seq + 1)
    assert kinds(rest)[0] == "queued" and kinds(rest)[-1] == "finished"
    assert resumed.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
    assert len(_results(stub, slow.job_id)) == 4

    # graceful SIGTERM while a job runs: exit 0, socket removed, the job INTERRUPTED on disk
    slow2 = stub.CreateRenderJob(render_request(clip, target, mask_version=1, **SLOW))
    _wait_running(stub, slow2.job_id)
    channel.close()
    assert daemon_proc.terminate() == 0
    assert not daemon_proc.socket.exists()
    daemon_proc.start()
    channel, stub = connect(daemon_proc.socket)
    assert wait_state(stub, slow2.job_id, {pb.JOB_STATE_INTERRUPTED}, timeout=5)
    channel.close()


def _second_daemon_is_refused(daemon_proc: DaemonProcess) -> None:
    """One daemon per user: a second `serve` with the same folders exits with a clear message."""
    second = DaemonProcess(daemon_proc.root, daemon_proc.model)
    result = subprocess.run(
        second.command(), env=second.env(), cwd=second.env()["PYTHONPATH"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "already running" in result.stderr
    channel, stub = connect(daemon_proc.socket)  # the first one is unharmed
    assert stub.GetEngineInfo(pb.GetEngineInfoRequest()).pipeline_ready
    channel.close()
