"""Disk use is bounded: delete RPCs, blob collection, the tensor cache cap, free-space checks, `gc`."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
import torch
from daemon_support import FAST, InProcess, mask_request, render_request, setup_clip, target_png, upload, wait_state

from engine.cli import main as engine_main
from engine.runtime.cache import TensorCache
from plugin_bridge.client import RecastClient
from plugin_bridge.errors import NotFound
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(240)
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
SLOW = dict(steps=60, tune_steps=0, preview_every=0)


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "data" / "blobs").glob("??/*")}


def code_of(call) -> grpc.StatusCode:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


@pytest.fixture
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        d.daemon.retention.grace_s = 0.0  # no writer races these deletions: collect at once
        yield d


def test_delete_job_clip_and_asset_free_their_blobs(daemon, tmp_path):
    stub = daemon.stub
    clip, target, _ = setup_clip(stub, tmp_path, n=4)
    before = blob_files(daemon.root)
    job = stub.CreateRenderJob(render_request(clip, target, **{**FAST, "preview_every": 0}))
    assert wait_state(stub, job.job_id, DONE, timeout=120).state == pb.JOB_STATE_SUCCEEDED
    results = blob_files(daemon.root) - before
    assert results, "a finished render stores its frames and masks"

    freed = stub.DeleteJob(pb.DeleteJobRequest(job_id=job.job_id))
    assert freed.blobs_deleted == len(results) and freed.bytes_freed > 0
    assert blob_files(daemon.root) == before
    assert code_of(lambda: stub.GetJob(pb.GetJobRequest(job_id=job.job_id))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: stub.DeleteJob(pb.DeleteJobRequest(job_id=job.job_id))) == grpc.StatusCode.NOT_FOUND

    # the asset is in use while a clip is cut from it; the clip goes with its masks and jobs
    mask_job = stub.CreateMaskJob(mask_request(clip, target, **{**FAST, "preview_every": 0}))
    assert wait_state(stub, mask_job.job_id, DONE, timeout=120).state == pb.JOB_STATE_SUCCEEDED
    refused = code_of(lambda: stub.DeleteAsset(pb.DeleteAssetRequest(asset_id=clip.asset_id)))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION
    stub.DeleteClip(pb.DeleteClipRequest(clip_id=clip.clip_id))
    assert code_of(lambda: stub.GetClip(pb.GetClipRequest(clip_id=clip.clip_id))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: stub.GetJob(pb.GetJobRequest(job_id=mask_job.job_id))) == grpc.StatusCode.NOT_FOUND
    assert blob_files(daemon.root) == before  # the mask version's frames are gone too
    stub.DeleteAsset(pb.DeleteAssetRequest(asset_id=clip.asset_id))
    stub.DeleteAsset(pb.DeleteAssetRequest(asset_id=target.asset_id))
    assert blob_files(daemon.root) == set()


def test_what_a_waiting_job_uses_cannot_be_deleted_until_it_is_cancelled(daemon, tmp_path):
    stub = daemon.stub
    clip, target, _ = setup_clip(stub, tmp_path, n=4)
    running = stub.CreateRenderJob(render_request(clip, target, **SLOW))
    queued = stub.CreateRenderJob(render_request(clip, target, **SLOW))
    for call in (lambda: stub.DeleteJob(pb.DeleteJobRequest(job_id=running.job_id)),
                 lambda: stub.DeleteJob(pb.DeleteJobRequest(job_id=queued.job_id)),
                 lambda: stub.DeleteClip(pb.DeleteClipRequest(clip_id=clip.clip_id)),
                 lambda: stub.DeleteAsset(pb.DeleteAssetRequest(asset_id=target.asset_id))):
        assert code_of(call) == grpc.StatusCode.FAILED_PRECONDITION
    for job in (queued, running):
        stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id))
    wait_state(stub, running.job_id, DONE, timeout=60)
    with RecastClient.connect(socket=daemon.config.socket_path) as client:  # the SDK's way to the same RPCs
        assert client.delete_clip(clip.clip_id).blobs_deleted >= 0
        client.delete_asset(target.asset_id)
        with pytest.raises(NotFound):
            client.delete_job(running.job_id)
    assert not (daemon.config.data_dir / "resume" / running.job_id).exists()  # no resume for a deleted job


def test_a_nearly_full_disk_refuses_new_work_with_resource_exhausted(daemon, tmp_path):
    stub = daemon.stub
    clip, target, _ = setup_clip(stub, tmp_path, n=4)
    daemon.daemon.config.min_free_bytes = 1 << 62  # more than any disk has free
    try:
        for call in (lambda: stub.CreateRenderJob(render_request(clip, target, **FAST)),
                     lambda: stub.CreateMaskJob(mask_request(clip, target, **FAST)),
                     lambda: upload(stub, target_png(), "t.png")):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "free" in info.value.details() and "recast-engine gc" in info.value.details()
    finally:
        daemon.daemon.config.min_free_bytes = 0


def test_tensor_cache_keeps_the_most_recently_used_entries_under_its_cap(tmp_path):
    entry = {"x": torch.zeros(1024)}  # 4 KiB of data plus a small header
    cache = TensorCache(tmp_path, max_bytes=10**9)
    for i in range(4):
        cache.put("inversion", f"k{i}", entry)
        os.utime(cache._path("inversion", f"k{i}"), (time.time() - 100 + i,) * 2)  # k0 oldest … k3 newest
    size = cache._path("inversion", "k0").stat().st_size
    assert cache.get("inversion", "k0") is not None  # a hit makes k0 the most recently used
    cache.max_bytes = 3 * size
    cache.put("inversion", "k4", entry)  # over the cap: the least recently used (k1, then k2) go
    kept = {p.stem for p in (tmp_path / "inversion").glob("*.safetensors")}
    assert kept == {"k0", "k3", "k4"}


def test_default_cache_cap_is_the_smaller_of_10_gib_and_a_tenth_of_free_disk(tmp_path):
    import shutil

    assert TensorCache(tmp_path / "not-yet").max_bytes == min(10 * 1024**3, shutil.disk_usage(tmp_path).free // 10)


def test_gc_command_deletes_old_jobs_and_orphans_and_refuses_beside_a_daemon(tiny_model_dir, tmp_path, capsys):
    d = InProcess(tiny_model_dir)
    with d:
        clip, target, _ = setup_clip(d.stub, tmp_path, n=4)
        job = d.stub.CreateRenderJob(render_request(clip, target, **{**FAST, "preview_every": 0}))
        wait_state(d.stub, job.job_id, DONE, timeout=120)
        data = d.config.data_dir
        assert engine_main(["gc", "--data-dir", str(data)]) != 0  # the daemon holds the store
        assert "already running" in capsys.readouterr().err
        d.root = tmp_path / "kept"  # keep the store after the daemon stops
        orphan = data / "blobs" / "ab" / ("ab" + "0" * 62)
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"left by a crash")
    with sqlite3.connect(data / "engine.db") as db:
        results = {b for row in db.execute("SELECT frame_blob, mask_blob FROM job_results") for b in row if b}
    assert results and results <= blob_files(data.parent)
    assert engine_main(["gc", "--data-dir", str(data), "--older-than", "0"]) == 0
    assert "1 jobs deleted" in capsys.readouterr().out
    assert not orphan.exists()
    assert not results & blob_files(data.parent)
    assert {clip.asset_id, target.asset_id} <= blob_files(data.parent)
    with InProcess(tiny_model_dir, root=data.parent) as again:  # the store still opens and serves
        assert again.stub.GetClip(pb.GetClipRequest(clip_id=clip.clip_id)).clip_id == clip.clip_id
