"""`recast-bridge json` as a child process against a real daemon: full edit, bad input, cancel, and
starting a daemon itself when none runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest
from daemon_support import InProcess, short_tmp
from test_bridge_support import (
    FAST,
    SOURCE_PROMPT,
    TARGET_PROMPT,
    BridgeSession,
    assert_outside_mask_is_source,
    decode,
    sha,
    write_source,
    write_target,
)

from plugin_bridge.client import RecastClient

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        yield d


@pytest.fixture
def bridge(daemon):
    session = BridgeSession("--socket", str(daemon.config.socket_path), "--no-start")
    yield session
    if session.proc.poll() is None:
        session.proc.kill()
        session.proc.wait(10)


def edit_request(rid: str, video, target, **kw) -> dict:
    return {"id": rid, "op": "edit", "source": str(video), "target_image": str(target),
            "source_prompt": SOURCE_PROMPT, "target_prompt": TARGET_PROMPT, "settings": dict(FAST), **kw}


def test_full_edit(bridge, daemon, tmp_path):
    video, frames = write_source(tmp_path / "shot.avi", n=10)
    target = write_target(tmp_path / "target.png")
    before = sha(video)

    bridge.send(id="h", op="hello")
    hello = bridge.next()
    assert hello["type"] == "hello" and hello["protocol"] == 1 and "edit" in hello["ops"]
    assert hello["engine"]["pipeline_ready"] and hello["engine"]["api_version"] == "recast.v1"

    bridge.send(**edit_request("e1", video, target, start_frame=3, end_frame=7, name="shot 1"))
    events = bridge.until("e1", {"result", "error"})
    kinds = [e["type"] for e in events]
    assert events[-1]["type"] == "result", events[-1]
    assert kinds[0] == "accepted" and "progress" in kinds and kinds.count("frame") == 4
    progress = next(e for e in events if e["type"] == "progress")
    assert {"stage", "step", "total", "eta_seconds", "job_id"} <= set(progress)

    result = events[-1]
    assert (result["start_frame"], result["end_frame"], result["frame_count"]) == (3, 7, 4)
    assert result["folder"].startswith(str(tmp_path / "recast_edits" / "shot_1_3-7"))
    assert result["files"] == [f"frame_{i:06d}.png" for i in range(4)]
    sidecar = json.loads((tmp_path / "recast_edits" / "shot_1_3-7" / "recast.json").read_text())
    assert sidecar["job_id"] == result["job_id"] and sidecar["settings"]["steps"] == 3

    with RecastClient.connect(socket=daemon.config.socket_path) as client:
        for r in client.result_frames(result["job_id"]):
            written = (tmp_path / "recast_edits" / "shot_1_3-7" / "frames" / result["files"][r.frame_index])
            assert written.read_bytes() == r.image.data
            assert_outside_mask_is_source(decode(r.image.data), decode(r.mask.data, grey=True),
                                          frames[3 + r.frame_index])

    # the same request again goes into a new folder; nothing is overwritten
    bridge.send(**edit_request("e2", video, target, start_frame=3, end_frame=7, name="shot 1",
                               output={"format": "mp4"}))
    second = bridge.until("e2", {"result", "error"})[-1]
    assert second["type"] == "result" and second["folder"].endswith("shot_1_3-7_2")
    assert second["files"] == ["shot_1_recast.mp4"] and os.path.getsize(second["media"]) > 0
    assert bridge.close() == 0
    assert sha(video) == before


def test_bad_input_is_answered_and_the_bridge_reads_on(bridge, tmp_path):
    video, _ = write_source(tmp_path / "shot.avi", n=6)
    target = write_target(tmp_path / "target.png")
    bridge.send(**edit_request("steps", video, target, settings={"steps": 0}))
    bridge.send(**edit_request("range", video, target, start_frame=4, end_frame=60))
    bridge.send(**edit_request("target", video, video))
    bridge.send(**edit_request("prompt", video, target, source_prompt="x" * 5000))
    bridge.send(**edit_request("out", video, target, output={"path": str(tmp_path)}))
    bridge.proc.stdin.write("{broken\n")
    bridge.proc.stdin.flush()
    bridge.send(id="after", op="info")
    got: dict = {}
    while len(got) < 7:
        ev = bridge.next()
        assert ev is not None
        got[ev["id"]] = ev
    assert got["steps"]["code"] == "INVALID_ARGUMENT" and got["steps"]["field"] == "settings.steps"
    assert got["range"]["code"] == "INVALID_ARGUMENT"
    assert got["target"]["code"] == "INVALID_ARGUMENT" and got["target"]["field"] == "target_image"
    assert got["prompt"]["code"] == "RESOURCE_EXHAUSTED" and got["prompt"]["field"] == "source_prompt"
    assert got["out"]["code"] == "INVALID_ARGUMENT" and got["out"]["field"] == "output.path"
    assert got[None]["code"] == "PARSE_ERROR"
    assert got["after"]["type"] == "info" and got["after"]["pipeline_ready"]
    assert bridge.close() == 0
    assert not (tmp_path / "recast_edits").exists() or not any((tmp_path / "recast_edits").iterdir())


def test_cancel(bridge, tmp_path):
    video, _ = write_source(tmp_path / "shot.avi", n=6)
    target = write_target(tmp_path / "target.png")
    bridge.send(**edit_request("long", video, target, settings={**FAST, "steps": 400, "tune_steps": 0,
                                                                  "cache": False}))
    events = bridge.until("long", {"progress"})
    assert events[0]["type"] == "accepted"
    bridge.send(id="stop", op="cancel", target="long")
    rest = bridge.until("long", {"cancelled", "result", "error"})
    assert rest[-1]["type"] == "cancelled", rest[-1]
    assert any(e["id"] == "stop" and e["type"] == "ack" for e in rest)
    assert bridge.close() == 0
    assert not (tmp_path / "recast_edits").exists()


def test_bridge_starts_a_daemon_when_none_runs(tiny_model_dir):
    """Like the studio: no daemon → `recast-engine serve` is spawned, detached, and found."""
    root = short_tmp()
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root), XDG_DATA_HOME=str(root / "data"), HF_HUB_OFFLINE="1")
    env.pop("RECAST_ENGINE_SOCKET", None)
    session = BridgeSession("--model", str(tiny_model_dir), env=env)
    pid = None
    try:
        session.send(id="h", op="hello")
        hello = session.next(timeout=150)
        assert hello["type"] == "hello" and hello["engine"] and hello["engine"]["pipeline_ready"], hello
        assert hello["engine"]["active_model"] == str(tiny_model_dir)
        discovery = json.loads((root / "recast" / "engine.json").read_text())
        pid = discovery["pid"]
        assert session.close() == 0
        os.kill(pid, 0)  # the daemon outlives the bridge (it is the user's daemon now)
    finally:
        if session.proc.poll() is None:
            session.proc.kill()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
