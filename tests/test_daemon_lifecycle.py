"""The daemon's lifetime and resume: the model unloaded after an idle keep-alive and loaded again by the
next job; a daemon started on demand exits once idle, one the user started stays; a resumed render
continues after its finished windows with the bytes of an uninterrupted run."""

from __future__ import annotations

import gc
import shutil
import time
import weakref
from collections.abc import Callable

import grpc
import pytest
from daemon_support import (
    DaemonProcess,
    InProcess,
    connect,
    kinds,
    mask_request,
    render_request,
    setup_clip,
    short_tmp,
    watch_all,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from desktop.client.connection import EngineOptions, serve_command
from plugin_bridge import discovery
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(300)


def _wait_info(stub, ok: Callable[[pb.EngineInfo], bool], timeout: float = 20) -> pb.EngineInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = stub.GetEngineInfo(pb.GetEngineInfoRequest(), timeout=5)
        if ok(info):
            return info
        assert time.monotonic() < deadline, f"EngineInfo never matched: {info}"
        time.sleep(0.2)


def _results(stub, job_id: str) -> list[bytes]:
    return [r.image.data for r in stub.GetResultFrames(pb.GetResultFramesRequest(job_id=job_id))]


def test_the_model_is_unloaded_after_the_keep_alive_and_the_next_job_loads_it_again(tiny_model_dir, tmp_path):
    with InProcess(tiny_model_dir, keep_alive=2.0) as d:
        stub = d.stub
        info = stub.GetEngineInfo(pb.GetEngineInfoRequest())
        assert info.keep_alive_seconds == 2 and info.idle_exit_seconds == 0
        _wait_info(stub, lambda i: not i.model_loaded)  # idle since it loaded
        clip, target, _ = setup_clip(stub, tmp_path)
        job = stub.CreateMaskJob(mask_request(clip, target))
        assert kinds(watch_all(stub, job.job_id))[-1] == "finished"
        ref = weakref.ref(d.daemon.host.pipe)  # loaded again for the job, unloaded 2 s after it
        info = _wait_info(stub, lambda i: not i.model_loaded)
        assert info.pipeline_ready  # still usable: clients need not wait for anything
        gc.collect()
        assert ref() is None  # nothing else holds the model: its memory is free

        render = stub.CreateRenderJob(render_request(clip, target, mask_version=1))
        assert kinds(watch_all(stub, render.job_id))[-1] == "finished"
        assert len(_results(stub, render.job_id)) == 4


def test_a_daemon_started_on_demand_exits_when_idle_and_one_the_user_started_stays(tiny_model_dir):
    on_demand = DaemonProcess(short_tmp(), tiny_model_dir, extra=["--idle-exit", "2"])
    user = DaemonProcess(short_tmp(), tiny_model_dir)  # no --idle-exit: 0, it stays
    try:
        on_demand.start(wait=False)
        user.start(wait=False)
        on_demand.wait_serving()
        user.wait_serving()
        channel, stub = connect(on_demand.socket)
        assert stub.GetEngineInfo(pb.GetEngineInfoRequest()).idle_exit_seconds == 2
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        next(stream)
        time.sleep(4)  # an open stream is not idle
        assert on_demand.proc.poll() is None
        stream.cancel()
        channel.close()
        assert on_demand.proc.wait(30) == 0  # the graceful shutdown
        assert not on_demand.socket.exists() and not (on_demand.runtime / "engine.json").exists()
        assert "idle for 2 s" in on_demand.log.read_text()

        assert user.proc.poll() is None  # idle as long, and still up
        channel, stub = connect(user.socket)
        assert stub.GetEngineInfo(pb.GetEngineInfoRequest()).idle_exit_seconds == 0
        channel.close()
        assert user.terminate() == 0
    finally:
        on_demand.cleanup()
        user.cleanup()


def test_clients_that_start_the_daemon_pass_idle_exit(monkeypatch):
    assert serve_command(EngineOptions(runtime_dir=short_tmp()))[-2:] == ["--idle-exit", "900"]
    assert serve_command(EngineOptions(serve_args=["--idle-exit", "0"])).count("--idle-exit") == 1
    started: list[list[str]] = []

    def popen(cmd: list[str], **kw: object) -> None:
        started.append(cmd)
        raise OSError("not started in this test")

    monkeypatch.setattr(discovery.subprocess, "Popen", popen)
    root = short_tmp()
    try:
        with pytest.raises(OSError):
            discovery.start_daemon(rdir=root / "run")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert started[0][-2:] == ["--idle-exit", "900"]


def test_a_resumed_render_continues_after_its_finished_windows_with_the_same_bytes(tiny_model_dir, tmp_path):
    root = short_tmp()
    first = InProcess(tiny_model_dir, root=root).__enter__()
    try:
        clip, target, _ = setup_clip(first.stub, tmp_path, n=10)
        request = render_request(clip, target, steps=6)  # masks computed in the job; windows (0,4) (3,7) (6,10)
        whole = first.stub.CreateRenderJob(request)
        assert kinds(watch_all(first.stub, whole.job_id))[-1] == "finished"
        job = first.stub.CreateRenderJob(request)
        stream = first.stub.Watch(pb.WatchRequest(job_id=job.job_id, skip_previews=True), timeout=120)
        for event in stream:  # frames 0-2 are final once the first window is done: stop the daemon then
            if event.HasField("result_frame") and event.result_frame.frame_index == 2:
                break
        stream.cancel()
    finally:
        first.channel.close()
        first.daemon.stop()

    with InProcess(tiny_model_dir, root=root) as second:
        stub = second.stub
        before = watch_all(stub, job.job_id)
        assert kinds(before)[-1] == "interrupted"
        stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id))
        rest = watch_all(stub, job.job_id, from_seq=before[-1].seq + 1)
        assert kinds(rest)[-1] == "finished"
        progress = [(e.progress.stage, e.progress.step, e.progress.total) for e in rest if e.HasField("progress")]
        assert ("resume_masks", 3, 3) in progress
        reused = [step for stage, step, total in progress if stage == "resume_windows" and total == 3]
        assert reused and reused[0] >= 1
        assert sum(stage == "generate" and k == total for stage, k, total in progress) == 3 - reused[0]
        assert not any(stage == "masks" for stage, _, _ in progress)  # the masks were not computed again
        assert len(_results(stub, whole.job_id)) == 10
        assert _results(stub, job.job_id) == _results(stub, whole.job_id)
        assert not second.daemon.runners.checkpoint_dir(job.job_id).exists()  # gone once the job succeeded
        with pytest.raises(grpc.RpcError):  # nothing left to resume
            stub.ResumeJob(pb.ResumeJobRequest(job_id=job.job_id))
