"""A full editing session over gRPC against the real daemon (in-process, temporary socket)."""

from __future__ import annotations

import os
import stat

import grpc
import numpy as np
import pytest
from daemon_support import (
    InProcess,
    decode_png,
    kinds,
    mask_request,
    png_bytes,
    render_request,
    setup_clip,
    watch_all,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        yield d


def test_engine_info_health_and_reflection(daemon):
    info = daemon.stub.GetEngineInfo(pb.GetEngineInfoRequest())
    assert info.api_version == "recast.v1" and info.pipeline_ready and not info.draining
    assert info.device.startswith("cpu") and info.limits.max_chunk_bytes == 1 << 20
    assert info.models[0].active and info.models[0].native_size > 0

    health = health_pb2_grpc.HealthStub(daemon.channel)
    for service in ("", "recast.v1.Engine", "pipeline"):
        r = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert r.status == health_pb2.HealthCheckResponse.SERVING, service

    refl = reflection_pb2_grpc.ServerReflectionStub(daemon.channel)
    [resp] = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"recast.v1.Engine", "grpc.health.v1.Health"} <= names


def test_socket_and_folder_permissions(daemon):
    sock = daemon.config.socket_path
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(daemon.config.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(daemon.config.runtime_dir / "engine.json").st_mode) == 0o600


def test_full_session(daemon, tmp_path):
    stub = daemon.stub
    clip, target, frames = setup_clip(stub, tmp_path, n=4)
    assert (clip.frame_count, clip.width, clip.height) == (4, 64, 48)
    assert target.kind == pb.ASSET_KIND_IMAGE

    # source frames come back decoded (and as thumbnails)
    got = list(stub.GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id, max_size=32)))
    assert [f.frame_index for f in got] == [0, 1, 2, 3] and got[0].image.width == 32

    # masks: a job makes AUTO version 1
    job = stub.CreateMaskJob(mask_request(clip, target))
    events = watch_all(stub, job.job_id)
    assert kinds(events)[:2] == ["queued", "started"] and kinds(events)[-1] == "finished"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].finished.mask_version == 1
    masks_v1 = [decode_png(m.mask.data, grey=True) for m in stub.GetMasks(pb.GetMasksRequest(clip_id=clip.clip_id))]
    assert len(masks_v1) == 4 and masks_v1[0].shape == (48, 64)
    assert set(np.unique(np.stack(masks_v1))) <= {0, 255}

    # paint a correction on frame 2: a new PAINTED version; version 1 stays as it was
    painted = np.zeros((48, 64), np.uint8)
    painted[10:30, 20:50] = 255
    v2 = stub.SaveMaskVersion(
        pb.SaveMaskVersionRequest(
            clip_id=clip.clip_id,
            base_version=1,
            note="fixed",
            frames=[pb.MaskFrame(frame_index=2, mask=pb.Image(width=64, height=48, data=png_bytes(painted)))],
        )
    )
    assert (v2.version, v2.kind, v2.base_version, v2.note) == (2, pb.MASK_VERSION_KIND_PAINTED, 1, "fixed")
    versions = stub.ListMaskVersions(pb.ListMaskVersionsRequest(clip_id=clip.clip_id)).versions
    assert [v.version for v in versions] == [1, 2]
    again_v1 = [
        decode_png(m.mask.data, grey=True) for m in stub.GetMasks(pb.GetMasksRequest(clip_id=clip.clip_id, version=1))
    ]
    assert all(np.array_equal(a, b) for a, b in zip(masks_v1, again_v1))
    v2_masks = [
        decode_png(m.mask.data, grey=True) for m in stub.GetMasks(pb.GetMasksRequest(clip_id=clip.clip_id, version=2))
    ]
    assert np.array_equal(v2_masks[2], painted) and np.array_equal(v2_masks[0], masks_v1[0])

    # render with the painted masks; watch progress, previews and result frames stream
    job = stub.CreateRenderJob(render_request(clip, target, mask_version=2))
    events = watch_all(stub, job.job_id)
    ks = kinds(events)
    assert ks[-1] == "finished", events[-1]
    assert "preview" in ks and ks.count("result_frame") == 4
    progress = [e.progress for e in events if e.HasField("progress")]
    assert {p.stage for p in progress} >= {"generate", "composite"}
    assert all(p.total >= p.step for p in progress)
    streamed = {
        e.result_frame.frame_index: decode_png(e.result_frame.image.data) for e in events if e.HasField("result_frame")
    }
    done = stub.GetJob(pb.GetJobRequest(job_id=job.job_id))
    assert done.state == pb.JOB_STATE_SUCCEEDED and done.result_frames == 4
    # once the job has ended its previews are gone; every other event stays
    replay = watch_all(stub, job.job_id, from_seq=1)
    assert replay == [e for e in events if e.WhichOneof("event") not in ("preview", "provisional_mask")]

    results = list(stub.GetResultFrames(pb.GetResultFramesRequest(job_id=job.job_id)))
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    result_rgb = [decode_png(r.image.data) for r in results]
    for i, rgb in enumerate(result_rgb):
        assert np.array_equal(rgb, streamed[i])
        comp_mask = decode_png(results[i].mask.data, grey=True)
        # outside the compositing mask the output is the source, byte for byte
        source = decode_png(
            next(iter(stub.GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id, start=i, end=i + 1)))).image.data
        )
        assert np.array_equal(rgb[comp_mask == 0], source[comp_mask == 0])

    # export: PNG sequence (lossless) and MP4, then read both back
    png_dir = tmp_path / "out_png"
    r = stub.Export(pb.ExportRequest(job_id=job.job_id, format=pb.EXPORT_FORMAT_PNG_SEQUENCE, path=str(png_dir)))
    assert r.frame_count == 4 and sorted(os.listdir(png_dir))[0] == "frame_000000.png"
    for i in range(4):
        assert np.array_equal(decode_png((png_dir / f"frame_{i:06d}.png").read_bytes()), result_rgb[i])
    mp4 = tmp_path / "out.mp4"
    r = stub.Export(pb.ExportRequest(job_id=job.job_id, format=pb.EXPORT_FORMAT_MP4, path=str(mp4)))
    from engine.runtime.video_io import read_frames

    back, fps = read_frames(mp4)
    assert back.shape == (4, 48, 64, 3) and abs(fps - clip.fps) < 0.01
    # exports get the umask's modes (not mkstemp's 0600/0700): readable by an NLE under another account
    umask = os.umask(0)
    os.umask(umask)
    assert png_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    assert mp4.stat().st_mode & 0o777 == 0o666 & ~umask
    assert np.abs(back.astype(int) - np.stack(result_rgb).astype(int)).mean() < 12  # lossy mp4v

    # never over an existing path: the first export is untouched
    before = mp4.read_bytes()
    with pytest.raises(grpc.RpcError) as exc:
        stub.Export(pb.ExportRequest(job_id=job.job_id, format=pb.EXPORT_FORMAT_MP4, path=str(mp4)))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "exists" in exc.value.details()
    assert mp4.read_bytes() == before


def test_import_by_path_and_export_never_onto_source(daemon, tmp_path):
    from daemon_support import make_frames, write_mp4

    src = write_mp4(tmp_path / "clip.mp4", make_frames(3))
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    asset = daemon.stub.ImportAsset(pb.ImportAssetRequest(path=str(link)))
    assert asset.source_path == str(src.resolve()) and asset.frame_count == 3
    original = src.read_bytes()
    target = daemon.stub.ImportAsset(pb.ImportAssetRequest(path=str(_write_target(tmp_path))))
    clip = daemon.stub.CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id))
    job = daemon.stub.CreateRenderJob(render_request(clip, target))
    assert kinds(watch_all(daemon.stub, job.job_id))[-1] == "finished"
    with pytest.raises(grpc.RpcError) as exc:
        daemon.stub.Export(pb.ExportRequest(job_id=job.job_id, format=pb.EXPORT_FORMAT_MP4, path=str(src)))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED and "source" in exc.value.details()
    assert src.read_bytes() == original


def _write_target(folder):
    from daemon_support import target_png

    path = folder / "target.png"
    path.write_bytes(target_png())
    return path


def test_orphan_blob_collection_keeps_referenced_data(tmp_path):
    from engine.daemon.retention import Retention
    from engine.daemon.storage import Storage

    store = Storage(tmp_path / "data")
    kept = store.blobs.put(b"a mask")
    store.db.execute("INSERT INTO mask_frames VALUES ('c', 1, 0, ?)", (kept,))
    orphan = store.blobs.put(b"an orphan")
    retention = Retention(store)
    assert retention.collect_all().blobs == 0  # just written: a row may be about to name it
    assert retention.collect_all(grace_s=0.0).blobs == 1
    assert store.blobs.get(kept) == b"a mask" and not store.blobs.path(orphan).exists()
    assert retention.collect_all(grace_s=0.0).blobs == 0
    store.close()
