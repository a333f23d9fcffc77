"""The SDK against a real daemon (tiny model, temporary socket): a full edit, bad input, a cancel."""

from __future__ import annotations

import numpy as np
import pytest
from daemon_support import InProcess
from test_bridge_support import (
    FAST,
    SOURCE_PROMPT,
    TARGET_PROMPT,
    assert_outside_mask_is_source,
    decode,
    sha,
    write_source,
    write_target,
)

from plugin_bridge import errors
from plugin_bridge.client import RecastClient
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        yield d


@pytest.fixture
def client(daemon):
    with RecastClient.connect(socket=daemon.config.socket_path) as c:
        yield c


@pytest.fixture
def media(tmp_path):
    video, frames = write_source(tmp_path / "shot.avi", n=8)
    return video, frames, write_target(tmp_path / "target.png")


def test_full_edit_masks_and_export(client, media, tmp_path):
    video, frames, target_png = media
    before = sha(video)
    info = client.info()
    assert info.api_version == "recast.v1" and info.pipeline_ready

    source = client.upload(video, chunk_size=4096)  # chunked upload works without path access too
    assert source.kind == pb.ASSET_KIND_VIDEO and source.frame_count == 8
    assert client.import_file(video).asset_id == source.asset_id  # content-addressed: same asset
    target = client.add_media(target_png)
    clip = client.create_clip(source.asset_id, 2, 6)
    assert (clip.frame_count, clip.width, clip.height) == (4, 64, 48)

    mask_job = client.create_mask_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id, FAST)
    assert client.wait(mask_job.job_id).mask_version == 1
    masks = [decode(m.mask.data, grey=True) for m in client.masks(clip.clip_id)]
    painted = masks[0].copy()
    painted[:8, :8] = 255
    import cv2

    version = client.save_masks(clip.clip_id, 1, {0: cv2.imencode(".png", painted)[1].tobytes()}, note="corner")
    assert version.version == 2 and version.kind == pb.MASK_VERSION_KIND_PAINTED
    assert [v.version for v in client.mask_versions(clip.clip_id)] == [1, 2]

    job = client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id, FAST, mask_version=2)
    events = []
    done = client.wait(job.job_id, on_event=events.append)
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "queued" and "started" in kinds and "progress" in kinds and kinds[-1] == "finished"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert kinds.count("result_frame") == 4 and done.state == pb.JOB_STATE_SUCCEEDED

    results = client.result_frames(job.job_id)
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    for r in results:  # frame k of the clip is source frame 2 + k outside the mask
        assert_outside_mask_is_source(decode(r.image.data), decode(r.mask.data, grey=True), frames[2 + r.frame_index])
    assert (decode(results[0].mask.data, grey=True)[:8, :8] > 0).all()  # the painted version was used

    out = client.export(job.job_id, tmp_path / "edited_frames", "png")
    assert out.frame_count == 4
    for r in results:
        assert (tmp_path / "edited_frames" / f"frame_{r.frame_index:06d}.png").read_bytes() == r.image.data
    with pytest.raises(errors.FailedPrecondition, match="exists"):
        client.export(job.job_id, tmp_path / "edited_frames", "png")
    with pytest.raises(errors.PermissionDenied):
        client.export(job.job_id, video, "mp4")
    assert sha(video) == before


def test_bad_input_gets_typed_errors(client, media):
    video, _, target_png = media
    source = client.add_media(video)
    target = client.add_media(target_png)
    clip = client.create_clip(source.asset_id, 0, 4)

    with pytest.raises(errors.NotFound):
        client.get_clip("0" * 32)
    with pytest.raises(errors.InvalidArgument) as info:
        client.create_clip(source.asset_id, 6, 99)
    assert info.value.field
    with pytest.raises(errors.InvalidArgument) as info:
        client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id, {**FAST, "steps": 0})
    assert info.value.field == "settings.steps"
    with pytest.raises(errors.InvalidArgument) as info:
        client.create_render_job(clip.clip_id, "  ", TARGET_PROMPT, target.asset_id, FAST)
    assert info.value.field == "source_prompt"
    with pytest.raises(errors.InvalidArgument, match="target_asset_id"):
        client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, source.asset_id, FAST)
    with pytest.raises(errors.FailedPrecondition):
        client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id, FAST,
                                 use_latest_masks=True)
    with pytest.raises(errors.InvalidArgument, match="does not exist"):
        client.add_media(video.with_name("missing.avi"))
    with pytest.raises(errors.InvalidArgument):
        client.export("0" * 32, video.with_name("x.mp4"), "gif")


def test_cancel_a_running_render(client, media):
    video, _, target_png = media
    source = client.add_media(video)
    target = client.add_media(target_png)
    clip = client.create_clip(source.asset_id, 0, 4)
    job = client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id,
                                   {**FAST, "steps": 400, "tune_steps": 0, "cache": False})
    seen = []

    def on_event(ev: pb.JobEvent) -> None:
        seen.append(ev.WhichOneof("event"))
        if ev.WhichOneof("event") == "progress" and seen.count("progress") == 2:
            client.cancel(job.job_id)

    with pytest.raises(errors.Cancelled):
        client.wait(job.job_id, on_event=on_event)
    assert seen[-1] == "cancelled" and "finished" not in seen
    assert client.get_job(job.job_id).state == pb.JOB_STATE_CANCELLED
    assert client.cancel(job.job_id).state == pb.JOB_STATE_CANCELLED  # idempotent
    assert np.sum([s == "result_frame" for s in seen]) < 4


def test_loopback_tcp_with_bearer_token(tiny_model_dir, tmp_path, monkeypatch):
    """A daemon started with --listen: found through its discovery file, token read from its 0600 file."""
    from plugin_bridge import discovery

    with InProcess(tiny_model_dir, listen="127.0.0.1:0") as d:
        monkeypatch.setenv(discovery.ENV_RUNTIME_DIR, str(d.config.runtime_dir))
        monkeypatch.delenv(discovery.ENV_SOCKET, raising=False)
        tcp = [c for c in discovery.candidates() if not c.is_unix]
        assert tcp and tcp[0].target == d.daemon.tcp_address and tcp[0].token
        token_file = d.daemon.token_file
        with RecastClient.connect(address=d.daemon.tcp_address, token_file=token_file) as client:
            assert client.info().pipeline_ready
            video, _ = write_source(tmp_path / "shot.avi", n=4)
            assert client.add_media(video).frame_count == 4  # loopback counts as local: import by path
        wrong = tmp_path / "wrong.token"
        wrong.write_text("not-the-token-at-all-0123456789\n")
        with pytest.raises(errors.Unauthenticated):
            RecastClient.connect(address=d.daemon.tcp_address, token_file=wrong)


def test_watch_reattaches_across_a_daemon_restart(tiny_model_dir, tmp_path):
    """kill -9 mid-render, restart: the SDK's watch re-attaches by seq (no gap, no repeat) and the job
    ends as JobInterrupted, which `resume` re-queues."""
    from daemon_support import DaemonProcess, short_tmp

    daemon = DaemonProcess(short_tmp(), tiny_model_dir).start()
    try:
        client = RecastClient.connect(socket=daemon.socket)
        video, _ = write_source(tmp_path / "shot.avi", n=4)
        source, target = client.add_media(video), client.add_media(write_target(tmp_path / "t.png"))
        clip = client.create_clip(source.asset_id)
        job = client.create_render_job(clip.clip_id, SOURCE_PROMPT, TARGET_PROMPT, target.asset_id,
                                       {**FAST, "steps": 400, "tune_steps": 0, "cache": False})
        events: list[pb.JobEvent] = []
        restarted: list[bool] = []

        def on_event(ev: pb.JobEvent) -> None:
            events.append(ev)
            if ev.WhichOneof("event") == "progress" and not restarted:
                restarted.append(True)
                daemon.kill9()
                daemon.start(wait=False)

        with pytest.raises(errors.JobInterrupted):
            client.wait(job.job_id, on_event=on_event, reconnect_seconds=150)
        assert restarted and events[-1].WhichOneof("event") == "interrupted"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert client.resume(job.job_id).state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
        assert client.cancel(job.job_id).state in (pb.JOB_STATE_CANCELLED, pb.JOB_STATE_RUNNING)
        client.close()
    finally:
        daemon.cleanup()
