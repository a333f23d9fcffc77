"""Bad requests get their documented status code and a message naming the field; nothing is lost.

Also a property-based test: random request messages never produce UNKNOWN and never hurt the daemon.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import grpc
import numpy as np
import pytest
from daemon_support import (
    InProcess,
    kinds,
    mask_request,
    png_bytes,
    render_request,
    setup_clip,
    short_tmp,
    upload_requests,
    wait_state,
    watch_all,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.daemon.limits import Limits
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(240)

C = grpc.StatusCode
LIMITS = Limits(
    max_asset_bytes=3 << 20, max_clip_frames=50, max_prompt_chars=200, max_queued_jobs=2, max_clip_pixels=50 * 64 * 48
)


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    with InProcess(tiny_model_dir, limits=LIMITS) as d:
        clip, target, frames = setup_clip(d.stub, folder, n=4)
        job = d.stub.CreateMaskJob(mask_request(clip, target))
        assert kinds(watch_all(d.stub, job.job_id))[-1] == "finished"
        render = d.stub.CreateRenderJob(render_request(clip, target, mask_version=1))
        assert kinds(watch_all(d.stub, render.job_id))[-1] == "finished"
        source = folder / "imported.mp4"
        source.write_bytes((folder / "source.mp4").read_bytes())
        video = d.stub.ImportAsset(pb.ImportAssetRequest(path=str(source)))
        yield dict(
            d=d,
            stub=d.stub,
            clip=clip,
            target=target,
            video=video,
            render=render,
            folder=folder,
            source=source,
            mask_job=job,
        )


def _upload(stub, data, filename="x.png", **kw):
    return stub.UploadAsset(upload_requests(data, filename, **kw), timeout=30)


def _too_big_upload(stub, _w):
    return _upload(stub, b"x" * 10, size=(3 << 20) + 1)


def _chunk_too_big(stub, _w):
    data = png_bytes(np.zeros((900, 900, 3), np.uint8) + np.arange(900, dtype=np.uint8)[:, None, None] % 251)
    data = data + b"\0" * max(0, (1 << 20) + 10 - len(data))
    return _upload(stub, data, chunk=(1 << 20) + 1)


def _png(h=48, w=64):
    return png_bytes(np.zeros((h, w), np.uint8))


CASES = {
    # uploads and imports
    "wrong sha256": (lambda s, w: _upload(s, b"\x89PNG" + b"0" * 100, sha="0" * 64), C.DATA_LOSS, "sha256"),
    "oversize upload": (_too_big_upload, C.RESOURCE_EXHAUSTED, "size_bytes"),
    "chunk over 1 MiB": (_chunk_too_big, C.RESOURCE_EXHAUSTED, "chunk"),
    "fewer bytes than declared": (lambda s, w: _upload(s, b"abc", size=10), C.INVALID_ARGUMENT, "chunk"),
    "no header": (
        lambda s, w: s.UploadAsset(iter([pb.UploadAssetRequest(chunk=b"abc")])),
        C.INVALID_ARGUMENT,
        "header",
    ),
    "not media": (lambda s, w: _upload(s, b"hello world, not a picture"), C.INVALID_ARGUMENT, "file"),
    "filename traversal": (lambda s, w: _upload(s, _png(), filename="../../etc/x.png"), C.INVALID_ARGUMENT, "filename"),
    "bad sha format": (lambda s, w: _upload(s, b"abc", sha="xyz"), C.INVALID_ARGUMENT, "sha256"),
    "import relative path": (
        lambda s, w: s.ImportAsset(pb.ImportAssetRequest(path="../clip.mp4")),
        C.INVALID_ARGUMENT,
        "path",
    ),
    "import missing file": (
        lambda s, w: s.ImportAsset(pb.ImportAssetRequest(path="/nonexistent/clip.mp4")),
        C.INVALID_ARGUMENT,
        "path",
    ),
    "import engine database": (
        lambda s, w: s.ImportAsset(pb.ImportAssetRequest(path=str(w["d"].config.data_dir / "engine.db"))),
        C.PERMISSION_DENIED,
        "path",
    ),
    # unknown ids
    "unknown asset": (lambda s, w: s.GetAsset(pb.GetAssetRequest(asset_id="ab" * 32)), C.NOT_FOUND, "asset_id"),
    "garbage asset id": (
        lambda s, w: s.GetAsset(pb.GetAssetRequest(asset_id="'; DROP TABLE assets;--")),
        C.NOT_FOUND,
        "asset_id",
    ),
    "unknown clip": (lambda s, w: s.GetClip(pb.GetClipRequest(clip_id="abc")), C.NOT_FOUND, "clip_id"),
    "unknown job": (lambda s, w: s.GetJob(pb.GetJobRequest(job_id="abc")), C.NOT_FOUND, "job_id"),
    "watch unknown job": (lambda s, w: list(s.Watch(pb.WatchRequest(job_id="abc"))), C.NOT_FOUND, "job_id"),
    "unknown mask version": (
        lambda s, w: list(s.GetMasks(pb.GetMasksRequest(clip_id=w["clip"].clip_id, version=99))),
        C.NOT_FOUND,
        "version",
    ),
    "paint on unknown version": (
        lambda s, w: s.SaveMaskVersion(pb.SaveMaskVersionRequest(clip_id=w["clip"].clip_id, base_version=42)),
        C.NOT_FOUND,
        "base_version",
    ),
    "render unknown mask version": (
        lambda s, w: s.CreateRenderJob(render_request(w["clip"], w["target"], 7)),
        C.NOT_FOUND,
        "mask_version",
    ),
    # ranges
    "clip start past end": (
        lambda s, w: s.CreateClip(pb.CreateClipRequest(asset_id=w["video"].asset_id, start_frame=50)),
        C.INVALID_ARGUMENT,
        "start_frame",
    ),
    "clip end past asset": (
        lambda s, w: s.CreateClip(pb.CreateClipRequest(asset_id=w["video"].asset_id, end_frame=99)),
        C.INVALID_ARGUMENT,
        "end_frame",
    ),
    "clip empty range": (
        lambda s, w: s.CreateClip(pb.CreateClipRequest(asset_id=w["video"].asset_id, start_frame=3, end_frame=2)),
        C.INVALID_ARGUMENT,
        "end_frame",
    ),
    "frames range": (
        lambda s, w: list(s.GetClipFrames(pb.GetClipFramesRequest(clip_id=w["clip"].clip_id, start=2, end=9))),
        C.INVALID_ARGUMENT,
        "end",
    ),
    # jobs
    "non-image target": (
        lambda s, w: s.CreateMaskJob(mask_request(w["clip"], w["video"])),
        C.INVALID_ARGUMENT,
        "target_asset_id",
    ),
    "empty prompt": (
        lambda s, w: s.CreateMaskJob(
            pb.CreateMaskJobRequest(
                clip_id=w["clip"].clip_id, source_prompt="  ", target_prompt="a", target_asset_id=w["target"].asset_id
            )
        ),
        C.INVALID_ARGUMENT,
        "source_prompt",
    ),
    "huge prompt": (
        lambda s, w: s.CreateMaskJob(
            pb.CreateMaskJobRequest(
                clip_id=w["clip"].clip_id,
                source_prompt="a",
                target_prompt="blue " * 1000,
                target_asset_id=w["target"].asset_id,
            )
        ),
        C.RESOURCE_EXHAUSTED,
        "target_prompt",
    ),
    "bad steps": (
        lambda s, w: s.CreateMaskJob(mask_request(w["clip"], w["target"], steps=0)),
        C.INVALID_ARGUMENT,
        "settings.steps",
    ),
    "bad threshold": (
        lambda s, w: s.CreateRenderJob(render_request(w["clip"], w["target"], mask_threshold=7.0)),
        C.INVALID_ARGUMENT,
        "settings.mask_threshold",
    ),
    "unknown framing": (
        lambda s, w: s.CreateRenderJob(render_request(w["clip"], w["target"], framing="sideways")),
        C.INVALID_ARGUMENT,
        "settings.framing",
    ),
    "renoise above one": (
        lambda s, w: s.CreateRenderJob(render_request(w["clip"], w["target"], renoise=1.5)),
        C.INVALID_ARGUMENT,
        "settings.renoise",
    ),
    "half the weights": (
        lambda s, w: s.CreateRenderJob(render_request(w["clip"], w["target"], correction_weight_prev=0.5)),
        C.INVALID_ARGUMENT,
        "settings.correction_weight",
    ),
    "unknown extra setting": (
        lambda s, w: s.CreateRenderJob(
            pb.CreateRenderJobRequest(
                clip_id=w["clip"].clip_id,
                source_prompt="a",
                target_prompt="b",
                target_asset_id=w["target"].asset_id,
                settings=pb.EditSettings(extra={"warp_speed": "9"}),
            )
        ),
        C.INVALID_ARGUMENT,
        "warp_speed",
    ),
    "resume a finished job": (
        lambda s, w: s.ResumeJob(pb.ResumeJobRequest(job_id=w["render"].job_id)),
        C.FAILED_PRECONDITION,
        "job_id",
    ),
    "result frames of a mask job": (
        lambda s, w: list(s.GetResultFrames(pb.GetResultFramesRequest(job_id=w["mask_job"].job_id))),
        C.FAILED_PRECONDITION,
        "job_id",
    ),
    # masks
    "painted mask wrong size": (
        lambda s, w: s.SaveMaskVersion(
            pb.SaveMaskVersionRequest(
                clip_id=w["clip"].clip_id,
                base_version=1,
                frames=[pb.MaskFrame(frame_index=0, mask=pb.Image(data=_png(10, 10)))],
            )
        ),
        C.INVALID_ARGUMENT,
        "frames[0].mask",
    ),
    "painted mask not an image": (
        lambda s, w: s.SaveMaskVersion(
            pb.SaveMaskVersionRequest(
                clip_id=w["clip"].clip_id,
                base_version=1,
                frames=[pb.MaskFrame(frame_index=0, mask=pb.Image(data=b"x"))],
            )
        ),
        C.INVALID_ARGUMENT,
        "frames[0].mask",
    ),
    "painted frame out of range": (
        lambda s, w: s.SaveMaskVersion(
            pb.SaveMaskVersionRequest(
                clip_id=w["clip"].clip_id,
                base_version=1,
                frames=[pb.MaskFrame(frame_index=4, mask=pb.Image(data=_png()))],
            )
        ),
        C.INVALID_ARGUMENT,
        "frames[0].frame_index",
    ),
    # export
    "export onto the source": (
        lambda s, w: s.Export(
            pb.ExportRequest(job_id=w["render"].job_id, format=pb.EXPORT_FORMAT_MP4, path=str(w["source"]))
        ),
        C.PERMISSION_DENIED,
        "source",
    ),
    "export onto an existing file": (
        lambda s, w: s.Export(
            pb.ExportRequest(
                job_id=w["render"].job_id, format=pb.EXPORT_FORMAT_PNG_SEQUENCE, path=str(w["folder"] / "source.mp4")
            )
        ),
        C.FAILED_PRECONDITION,
        "exists",
    ),
    "export relative path": (
        lambda s, w: s.Export(pb.ExportRequest(job_id=w["render"].job_id, format=pb.EXPORT_FORMAT_MP4, path="out.mp4")),
        C.INVALID_ARGUMENT,
        "path",
    ),
    "export unknown format": (
        lambda s, w: s.Export(pb.ExportRequest(job_id=w["render"].job_id, format=77, path=str(w["folder"] / "n.mp4"))),
        C.INVALID_ARGUMENT,
        "format",
    ),
    "export into the engine's folder": (
        lambda s, w: s.Export(
            pb.ExportRequest(
                job_id=w["render"].job_id, format=pb.EXPORT_FORMAT_MP4, path=str(w["d"].config.data_dir / "x.mp4")
            )
        ),
        C.PERMISSION_DENIED,
        "private",
    ),
    "export a mask job": (
        lambda s, w: s.Export(
            pb.ExportRequest(job_id=w["mask_job"].job_id, format=pb.EXPORT_FORMAT_MP4, path=str(w["folder"] / "m.mp4"))
        ),
        C.FAILED_PRECONDITION,
        "render",
    ),
    "list jobs bad state": (lambda s, w: s.ListJobs(pb.ListJobsRequest(states=[42])), C.INVALID_ARGUMENT, "states"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(world, name):
    call, code, field = CASES[name]
    with pytest.raises(grpc.RpcError) as exc:
        call(world["stub"], world)
    assert exc.value.code() == code, exc.value.details()
    assert field in exc.value.details(), exc.value.details()


def test_nothing_was_lost(world):
    """After every bad request above, the good objects are all still there and intact."""
    s = world["stub"]
    clip = world["clip"]
    assert [v.version for v in s.ListMaskVersions(pb.ListMaskVersionsRequest(clip_id=clip.clip_id)).versions][0] == 1
    assert len(list(s.GetMasks(pb.GetMasksRequest(clip_id=clip.clip_id, version=1)))) == 4
    assert len(list(s.GetResultFrames(pb.GetResultFramesRequest(job_id=world["render"].job_id)))) == 4
    assert s.GetJob(pb.GetJobRequest(job_id=world["render"].job_id)).state == pb.JOB_STATE_SUCCEEDED
    assert world["source"].exists() and world["source"].read_bytes() == (world["folder"] / "source.mp4").read_bytes()
    tmp = world["d"].config.data_dir / "blobs" / "tmp"
    assert os.listdir(tmp) == []  # failed uploads left nothing behind
    with pytest.raises(grpc.RpcError):
        s.GetAsset(pb.GetAssetRequest(asset_id=hashlib.sha256(b"\x89PNG" + b"0" * 100).hexdigest()))


def test_limits_on_clip_size_and_queue_length(world):
    s = world["stub"]
    big = world["folder"] / "long.mp4"
    from daemon_support import make_frames, write_mp4

    write_mp4(big, make_frames(60, 48, 64))
    asset = s.ImportAsset(pb.ImportAssetRequest(path=str(big)))
    with pytest.raises(grpc.RpcError) as exc:
        s.CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id))  # 60 frames > the 50-frame limit
    assert exc.value.code() == C.RESOURCE_EXHAUSTED and "end_frame" in exc.value.details()

    slow = dict(steps=200, tune_steps=0, preview_every=0)
    first = s.CreateRenderJob(render_request(world["clip"], world["target"], 1, **slow))
    wait_state(s, first.job_id, {pb.JOB_STATE_RUNNING})
    queued = [s.CreateRenderJob(render_request(world["clip"], world["target"], 1, **slow)) for _ in range(2)]
    with pytest.raises(grpc.RpcError) as exc:
        s.CreateRenderJob(render_request(world["clip"], world["target"], 1, **slow))
    assert exc.value.code() == C.RESOURCE_EXHAUSTED and "queue" in exc.value.details()
    for job in (*queued, first):
        s.CancelJob(pb.CancelJobRequest(job_id=job.job_id))
    wait_state(s, first.job_id, {pb.JOB_STATE_CANCELLED})


def test_draining_daemon_answers_unavailable(world):
    d = world["d"].daemon
    d.draining = True
    try:
        with pytest.raises(grpc.RpcError) as exc:
            world["stub"].CreateClip(pb.CreateClipRequest(asset_id=world["video"].asset_id))
        assert exc.value.code() == C.UNAVAILABLE
        assert world["stub"].GetEngineInfo(pb.GetEngineInfoRequest()).draining  # reads still work
    finally:
        d.draining = False


def test_malformed_protobuf_bytes(world):
    channel = world["d"].channel
    for method in ("GetClip", "CreateRenderJob", "SaveMaskVersion", "Export"):
        call = channel.unary_unary(f"/recast.v1.Engine/{method}", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as exc:
            call(b"\xff\xff\xff\xff\x0f garbage", timeout=10)
        assert exc.value.code() not in (C.UNKNOWN, C.OK)


# --- property-based: random requests -----------------------------------------------------------------

SERVICE = pb.DESCRIPTOR.services_by_name["Engine"]
_T = __import__("google.protobuf.descriptor", fromlist=["FieldDescriptor"]).FieldDescriptor


def _field_value(field, ids: list[str], folder: Path, depth: int):
    t = field.type
    if t == _T.TYPE_STRING:
        if field.name.endswith("_id"):
            return st.one_of(st.sampled_from(ids), st.text(max_size=70))
        if field.name == "path":
            return st.one_of(
                st.text(max_size=30).map(lambda n: str(folder / n.replace("/", "_").replace("\0", ""))),
                st.text(max_size=40),
                st.sampled_from(hostile_paths(folder)),
            )
        return st.text(max_size=300)
    if t == _T.TYPE_BYTES:
        return st.one_of(st.binary(max_size=300), st.just(png_bytes(np.zeros((48, 64), np.uint8))))
    if t == _T.TYPE_BOOL:
        return st.booleans()
    if t in (_T.TYPE_FLOAT, _T.TYPE_DOUBLE):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if t == _T.TYPE_ENUM:
        return st.integers(-3, 8)
    if t in (_T.TYPE_UINT32, _T.TYPE_FIXED32):
        return st.one_of(st.integers(0, 10), st.integers(0, 2**32 - 1))
    if t in (_T.TYPE_UINT64, _T.TYPE_FIXED64):
        return st.one_of(st.integers(0, 10), st.integers(0, 2**64 - 1))
    if t in (_T.TYPE_INT32, _T.TYPE_SINT32):
        return st.integers(-(2**31), 2**31 - 1)
    if t in (_T.TYPE_INT64, _T.TYPE_SINT64):
        return st.integers(-(2**63), 2**63 - 1)
    if t == _T.TYPE_MESSAGE:
        return _message(field.message_type, ids, folder, depth + 1)
    return st.none()


def _message(descriptor, ids: list[str], folder: Path, depth: int = 0):
    cls = getattr(pb, descriptor.name, None) if descriptor.containing_type is None else None

    @st.composite
    def build(draw):
        from google.protobuf import message_factory

        msg = (cls or message_factory.GetMessageClass(descriptor))()
        if depth > 3:
            return msg
        for field in descriptor.fields:
            if not draw(st.booleans()):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key = draw(st.sampled_from(["steps", "x", "mask_threshold", ""]))
                getattr(msg, field.name)[key] = draw(st.text(max_size=10))
                continue
            value = _field_value(field, ids, folder, depth)
            if field.is_repeated:
                for v in draw(st.lists(value, max_size=3)):
                    if field.type == _T.TYPE_MESSAGE:
                        getattr(msg, field.name).add().CopyFrom(v)
                    else:
                        getattr(msg, field.name).append(v)
            elif field.type == _T.TYPE_MESSAGE:
                getattr(msg, field.name).CopyFrom(draw(value))
            else:
                try:
                    setattr(msg, field.name, draw(value))
                except (ValueError, TypeError):
                    pass
        return msg

    return build()


def hostile_paths(folder: Path) -> list[str]:
    """Paths whose OS errors must map to documented codes: too long (a name, the whole path),
    looping symbolic links, a file used as a folder, unreadable (chmod 000; root still reads),
    and a folder the kernel refuses to write in whatever access() says (sysfs)."""
    return [
        str(folder / ("n" * 300 + ".mp4")),
        str(folder / "/".join(["d" * 200] * 25) / "x.mp4"),
        str(folder / "loop"),
        str(folder / "loop" / "x.mp4"),
        str(folder / "source.mp4" / "x.mp4"),
        str(folder / "locked.mp4"),
        "/sys/kernel/recast.mp4",
    ]


def _make_hostile_paths(folder: Path) -> None:
    os.symlink(folder / "loop", folder / "loop")
    locked = folder / "locked.mp4"
    locked.write_bytes((folder / "source.mp4").read_bytes())
    locked.chmod(0)


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory):
    """A real daemon whose model cannot load: jobs fail at once instead of rendering random settings."""
    root = short_tmp()
    with InProcess(root / "no-such-model", root=root, limits=LIMITS) as d:
        folder = tmp_path_factory.mktemp("fuzz")
        clip, target, _ = setup_clip(d.stub, folder, n=3)
        _make_hostile_paths(folder)
        job = d.stub.CreateMaskJob(mask_request(clip, target))
        assert kinds(watch_all(d.stub, job.job_id))[-1] == "failed"
        ids = [clip.clip_id, target.asset_id, clip.asset_id, job.job_id, ""]
        yield d, ids, folder


def _call(d, method, request):
    stub_method = getattr(d.stub, method.name)
    if method.client_streaming:
        return stub_method(iter([request, request]), timeout=20)
    if method.server_streaming:
        return list(stub_method(request, timeout=20))
    return stub_method(request, timeout=20)


@pytest.mark.parametrize("method_name", [m.name for m in SERVICE.methods])
def test_random_requests_never_unknown(fuzz_daemon, method_name):
    d, ids, folder = fuzz_daemon
    method = SERVICE.methods_by_name[method_name]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(request=_message(method.input_type, ids, folder))
    def check(request):
        try:
            _call(d, method, request)
        except grpc.RpcError as exc:
            assert exc.code() not in (C.UNKNOWN, C.INTERNAL), (exc.code(), exc.details(), request)

    check()
    assert d.stub.GetEngineInfo(pb.GetEngineInfoRequest()).pid == os.getpid()  # still alive and answering


def test_hostile_import_paths_have_documented_codes(fuzz_daemon):
    d, _, folder = fuzz_daemon
    for path in hostile_paths(folder):
        if path.endswith("locked.mp4") and os.geteuid() == 0:
            continue  # root reads it
        with pytest.raises(grpc.RpcError) as exc:
            d.stub.ImportAsset(pb.ImportAssetRequest(path=path), timeout=20)
        assert exc.value.code() in (C.INVALID_ARGUMENT, C.PERMISSION_DENIED), (path, exc.value.details())
        assert exc.value.details().startswith("path:"), exc.value.details()


def test_pipeline_health_not_serving_without_a_model(fuzz_daemon):
    """Health reports the engine up but `pipeline` NOT_SERVING while (here: because) models are not loaded."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    d, _, _ = fuzz_daemon
    health = health_pb2_grpc.HealthStub(d.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == serving
    assert health.Check(health_pb2.HealthCheckRequest(service="recast.v1.Engine")).status == serving
    assert health.Check(health_pb2.HealthCheckRequest(service="pipeline")).status == (
        health_pb2.HealthCheckResponse.NOT_SERVING
    )
    info = d.stub.GetEngineInfo(pb.GetEngineInfoRequest())
    assert not info.pipeline_ready
