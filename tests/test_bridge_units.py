"""Bridge pieces that need no daemon: settings and flags, errors, discovery, protocol, conform maths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import opentimelineio as otio
import pytest
from test_bridge_support import needs_adapter

from plugin_bridge import conform, discovery, errors, protocol
from plugin_bridge.settings import add_settings_arguments, settings_dict, settings_message
from protos.recast.v1 import engine_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
ot = otio.opentime


# --- settings --------------------------------------------------------------------------------------


def _settings_flags(parser) -> dict[str, argparse.Action]:  # noqa: F821
    return {opt: a for a in parser._actions for opt in a.option_strings if opt.startswith("--")}


def test_settings_flags_are_spelled_like_recast_engine_edit():
    import argparse

    from engine.cli.edit import add_settings_arguments as engine_flags

    ours, theirs = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_settings_arguments(ours)
    engine_flags(theirs)
    a, b = _settings_flags(ours), _settings_flags(theirs)
    a.pop("--help"), b.pop("--help")
    assert sorted(a) == sorted(b)
    for flag in a:  # same kind of flag: on/off switches stay switches, numbers stay numbers
        assert type(a[flag]) is type(b[flag]), flag


def test_bridge_edit_flags_match_the_edit_command():
    from plugin_bridge.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["otio"]
    flags = _settings_flags(sub)
    for flag in ("--target-image", "--source-prompt", "--target-prompt", "--model", "--steps", "--seed",
                 "--guidance-scale", "--tune-steps", "--mask-threshold", "--correction-weights", "--no-temporal"):
        assert flag in flags, flag


def test_settings_message_mirrors_the_engine_settings():
    from engine.daemon.runner import settings_from_proto

    values = {"steps": 3, "seed": 7, "guidance_scale": 2.5, "tune_steps": 1, "mask_threshold": "otsu",
              "correction_weights": [0.2, 0.6, 0.2], "temporal": False, "window": 8, "overlap": 2}
    msg = settings_message(values)
    assert msg.mask_method == pb.MASK_METHOD_OTSU and not msg.HasField("mask_threshold")
    engine = settings_from_proto(msg)  # what the daemon will run with
    assert (engine.steps, engine.seed, engine.tune_steps, engine.mask_threshold) == (3, 7, 1, "otsu")
    assert engine.correction_weights == pytest.approx((0.2, 0.6, 0.2)) and engine.temporal is False
    back = settings_dict(msg)
    assert back["mask_threshold"] == "otsu" and back["correction_weights"] == pytest.approx([0.2, 0.6, 0.2])
    assert settings_message({"mask_threshold": 0.4}).mask_threshold == pytest.approx(0.4)
    assert settings_message({"brand_new": 3}).extra["brand_new"] == "3"  # newer settings ride in `extra`


@pytest.mark.parametrize("values,field", [
    ({"steps": "many"}, "settings.steps"),
    ({"steps": -1}, "settings.steps"),
    ({"steps": 2.5}, "settings.steps"),
    ({"temporal": "yes"}, "settings.temporal"),
    ({"mask_threshold": "median"}, "settings.mask_threshold"),
    ({"correction_weights": [1, 0]}, "settings.correction_weights"),
    ({"guidance_scale": float("nan")}, "settings.guidance_scale"),
])
def test_bad_settings_are_invalid_argument_naming_the_field(values, field):
    with pytest.raises(errors.InvalidArgument) as info:
        settings_message(values)
    assert info.value.field == field and info.value.code == "INVALID_ARGUMENT"


# --- errors ----------------------------------------------------------------------------------------


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code,cls", [
    (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, errors.NotFound),
    (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
    (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
    (grpc.StatusCode.DATA_LOSS, errors.DataLoss),
    (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
    (grpc.StatusCode.INTERNAL, errors.InternalError),
    (grpc.StatusCode.UNKNOWN, errors.InternalError),
    (grpc.StatusCode.CANCELLED, errors.Cancelled),
])
def test_grpc_codes_map_to_typed_errors(code, cls):
    err = errors.from_rpc_error(_FakeRpcError(code, "settings.steps: must be an integer in 1..1000"))
    assert type(err) is cls and isinstance(err, errors.BridgeError)
    assert err.field == "settings.steps" and "1..1000" in err.message
    assert errors.error_for_code(err.code, "x").__class__ is cls
    assert err.from_rpc and not errors.error_for_code(err.code, "x").from_rpc  # a call's status, or phrased here


def test_job_states_come_from_the_contract():
    from protos import job_states

    assert job_states.STATE_NAMES == {pb.JobState.Value(n): n.removeprefix("JOB_STATE_").lower()
                                      for n in pb.JobState.keys()}
    assert set(job_states.ACTIVE_STATES) | set(job_states.ENDED_STATES) == set(pb.JobState.values()) - {0}
    assert sorted(job_states.TERMINAL_EVENTS.values()) == sorted(job_states.ENDED_STATES)  # one event ends each
    kinds = {f.name for f in pb.JobEvent.DESCRIPTOR.oneofs_by_name["event"].fields}
    assert set(job_states.EVENT_STATES) <= kinds
    assert job_states.state_name(pb.JOB_STATE_SUCCEEDED) == "succeeded" and job_states.state_name(99) == "unspecified"


# --- discovery -------------------------------------------------------------------------------------


def test_discovery_order(tmp_path, monkeypatch):
    monkeypatch.delenv(discovery.ENV_SOCKET, raising=False)
    monkeypatch.delenv(discovery.ENV_ADDRESS, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv(discovery.ENV_RUNTIME_DIR, raising=False)
    rdir = tmp_path / "recast"
    assert discovery.runtime_dir() == rdir
    assert [c.target for c in discovery.candidates()] == [f"unix:{rdir / 'engine.sock'}"]

    rdir.mkdir(mode=0o700)  # trusted: the user's own and private
    token = rdir / "engine.token"
    token.write_text("s3cret-token-of-some-length\n")
    token.chmod(0o600)
    (rdir / "engine.json").write_text(json.dumps({"pid": 1, "socket": "/x/engine.sock", "tcp": "127.0.0.1:5055",
                                                  "token_file": str(token), "version": "0"}))
    found = discovery.candidates()
    assert [c.target for c in found] == ["unix:/x/engine.sock", "127.0.0.1:5055", f"unix:{rdir / 'engine.sock'}"]
    assert found[1].token == "s3cret-token-of-some-length" and found[1].is_local
    assert discovery.candidates(socket="/y.sock")[0].target == "unix:/y.sock"
    monkeypatch.setenv(discovery.ENV_SOCKET, "/env.sock")
    assert discovery.candidates()[0].target == "unix:/env.sock"


def test_no_daemon_is_daemon_not_found(tmp_path):
    from plugin_bridge.client import RecastClient

    with pytest.raises(errors.DaemonNotFound, match="no recast engine daemon"):
        RecastClient.connect(socket=tmp_path / "none.sock", wait=0.5)


# --- protocol --------------------------------------------------------------------------------------


GOOD = [
    {"v": 1, "id": "a", "op": "hello"},
    {"v": 1, "op": "info"},
    {"v": 1, "id": 3, "op": "cancel", "target": "a"},
    {"v": 1, "id": "e", "op": "edit", "source": "/m.mp4", "target_image": "/t.png", "source_prompt": "a",
     "target_prompt": "b", "start_frame": 2, "end_frame": 6, "settings": {"steps": 3, "mask_threshold": "otsu"},
     "output": {"format": "mp4", "path": "/new"}},
    {"v": 1, "id": "s", "op": "edit", "source": ["/p/1001.png", "/p/1002.png"], "fps": 23.976,
     "target_image": "/t.png", "source_prompt": "a", "target_prompt": "b"},
]
BAD = [
    ([1, 2], "INVALID_REQUEST"),
    ({"op": "hello"}, "INVALID_REQUEST"),
    ({"v": 2, "op": "hello"}, "UNSUPPORTED_VERSION"),
    ({"v": 1, "op": "launch"}, "UNKNOWN_OP"),
    ({"v": 1, "op": "cancel"}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": "/m.mp4"}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": "/m", "target_image": "/t", "source_prompt": "a", "target_prompt": "b",
      "start_frame": -1}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": "/m", "target_image": "/t", "source_prompt": "a", "target_prompt": "b",
      "output": {"format": "gif"}}, "INVALID_REQUEST"),
    ({"v": 1, "id": {"x": 1}, "op": "hello"}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": [], "target_image": "/t", "source_prompt": "a", "target_prompt": "b"},
     "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": ["/a.png", 3], "target_image": "/t", "source_prompt": "a",
      "target_prompt": "b"}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": "/m", "target_image": "/t", "source_prompt": "a", "target_prompt": "b",
      "fps": 0}, "INVALID_REQUEST"),
    ({"v": 1, "op": "edit", "source": "/m", "target_image": "/t", "source_prompt": "a", "target_prompt": "b",
      "end_frame": 10**20}, "INVALID_REQUEST"),
]


def test_protocol_checker_and_published_schema_agree():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(protocol.SCHEMA)
    validator.check_schema(protocol.SCHEMA)
    request_schema = {**protocol.SCHEMA, "oneOf": [{"$ref": "#/$defs/request"}]}
    req_validator = jsonschema.Draft202012Validator(request_schema)
    for good in GOOD:
        protocol.check_request(good)
        assert req_validator.is_valid(good), good
    for bad, code in BAD:
        with pytest.raises(protocol.ProtocolError) as info:
            protocol.check_request(bad)
        assert info.value.code == code, bad
        assert not req_validator.is_valid(bad), bad
    event_schema = {**protocol.SCHEMA, "oneOf": [{"$ref": "#/$defs/event"}]}
    ev_validator = jsonschema.Draft202012Validator(event_schema)
    assert ev_validator.is_valid(protocol.error_event("a", "PARSE_ERROR", "request: not JSON"))
    assert ev_validator.is_valid(protocol.event("a", "progress", stage="generate", step=1, total=3, eta_seconds=0.5))
    assert not ev_validator.is_valid(protocol.event("a", "progress", stage="generate"))


def test_json_bridge_answers_bad_lines_and_exits_cleanly_on_eof(tmp_path):
    """No daemon is needed to reject input: every bad line gets an error line, then EOF exits 0."""
    lines = [
        "this is not json",
        "",
        json.dumps([1]),
        json.dumps({"v": 9, "id": "old", "op": "hello"}),
        json.dumps({"v": 1, "id": "x", "op": "frobnicate"}),
        json.dumps({"v": 1, "id": "c", "op": "cancel", "target": "nothing"}),
        json.dumps({"v": 1, "id": "m", "op": "edit", "source": str(tmp_path / "missing.mp4"),
                    "target_image": str(tmp_path / "t.png"), "source_prompt": "a", "target_prompt": "b"}),
        "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "plugin_bridge.cli", "json", "--no-start", "--socket", str(tmp_path / "no.sock")],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(o["type"], o.get("code")) for o in out] == [
        ("error", "PARSE_ERROR"), ("error", "INVALID_REQUEST"), ("error", "UNSUPPORTED_VERSION"),
        ("error", "UNKNOWN_OP"), ("error", "INVALID_REQUEST"), ("error", "INVALID_ARGUMENT"), ("error", "PARSE_ERROR"),
    ]
    assert [o["id"] for o in out] == [None, None, "old", "x", "c", "m", None]
    assert out[5]["field"] == "source" and all(o["v"] == 1 for o in out)


# --- conform maths ---------------------------------------------------------------------------------


def _timeline(rate: float, media: Path, start: int = 3, dur: int = 8, gap: int = 5) -> otio.schema.Timeline:
    tl = otio.schema.Timeline("cut")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    ref = otio.schema.ExternalReference(media.as_uri(), available_range=ot.TimeRange(ot.RationalTime(0, rate),
                                                                                      ot.RationalTime(40, rate)))
    track.append(otio.schema.Gap(source_range=ot.TimeRange(ot.RationalTime(0, rate), ot.RationalTime(gap, rate))))
    track.append(otio.schema.Clip("shotA", media_reference=ref.clone(),
                                  source_range=ot.TimeRange(ot.RationalTime(start, rate), ot.RationalTime(dur, rate))))
    track.append(otio.schema.Clip("shotB", media_reference=ref.clone(),
                                  source_range=ot.TimeRange(ot.RationalTime(20, rate), ot.RationalTime(4, rate))))
    return tl


@pytest.mark.parametrize("rate", [24.0, 24000 / 1001, 30000 / 1001])
def test_select_and_media_frames(tmp_path, rate):
    tl = _timeline(rate, tmp_path / "m.avi")
    sel = conform.select_clip(tl, clip="shotA")
    assert sel.whole and (sel.track_index, sel.child_index) == (0, 1)
    assert conform._frames(sel.record.start_time, rate) == 5 and conform._frames(sel.record.duration, rate) == 8
    fps = round(rate, 3)  # what OpenCV reports for the media (29.97, 23.976)
    assert conform.media_frame_range(sel, fps, 40) == (3, 11)
    assert conform.select_clip(tl, clip="1").clip.name == "shotB"  # index among video clips

    part = conform.select_clip(tl, mark_in="7", mark_out="11")  # marks inside shotA: frames 7..10
    assert not part.whole and part.clip.name == "shotA"
    assert conform.media_frame_range(part, fps, 40) == (5, 9)
    tc_in = ot.to_timecode(ot.RationalTime(7, rate), conform.smpte_rate(rate))
    tc_out = ot.to_timecode(ot.RationalTime(11, rate), conform.smpte_rate(rate))
    assert conform.media_frame_range(conform.select_clip(tl, mark_in=tc_in, mark_out=tc_out), fps, 40) == (5, 9)

    with pytest.raises(errors.InvalidArgument, match="span 2 clips"):
        conform.select_clip(tl, mark_in="6", mark_out="15")
    with pytest.raises(errors.InvalidArgument, match="no video clip named"):
        conform.select_clip(tl, clip="shotZ")
    with pytest.raises(errors.InvalidArgument, match="media-start"):
        conform.media_frame_range(sel, fps, 6)


def test_build_timeline_places_the_edit_on_the_original_frames(tmp_path):
    rate = 30000 / 1001
    tl = _timeline(rate, tmp_path / "m.avi")
    before = otio.adapters.write_to_string(tl, "otio_json")
    sel = conform.select_clip(tl, mark_in="7", mark_out="11")
    ref = conform.edited_reference(str(tmp_path / "e.mp4"), "mp4", "file:///x", sel.source.duration)

    layered = conform.build_timeline(tl, sel, ref, replace=False)
    assert otio.adapters.write_to_string(tl, "otio_json") == before  # the input object is untouched
    assert [t.name for t in layered.tracks] == ["V1", "Recast"]
    new_clip = [c for c in layered.tracks[1] if isinstance(c, otio.schema.Clip)][0]
    assert conform.record_range(layered, 1, new_clip) == sel.record
    assert new_clip.source_range.start_time.value == 0 and new_clip.source_range.duration == sel.source.duration

    replaced = conform.build_timeline(tl, sel, ref, replace=True)
    names = [(c.name, conform._frames(conform.record_range(replaced, 0, c).start_time, rate))
             for c in replaced.tracks[0] if isinstance(c, otio.schema.Clip)]
    assert names == [("shotA", 5), ("shotA", 7), ("shotA", 11), ("shotB", 13)]
    assert replaced.tracks[0].duration() == tl.tracks[0].duration()


@needs_adapter("cmx_3600")
def test_edl_cannot_take_a_new_track_and_says_so_before_rendering(tmp_path):
    tl = _timeline(24.0, tmp_path / "m.avi")
    sel = conform.select_clip(tl, clip="shotA")
    ref = conform.edited_reference(str(tmp_path / "e.mp4"), "mp4", "file:///x", sel.source.duration)
    with pytest.raises(errors.InvalidArgument, match="--replace"):
        conform.serialize(conform.build_timeline(tl, sel, ref, replace=False), tmp_path / "out.edl")
    assert "e.mp4" in conform.serialize(conform.build_timeline(tl, sel, ref, replace=True), tmp_path / "out.edl")


def test_out_timeline_never_replaces_a_file(tmp_path):
    existing = tmp_path / "cut.otio"
    existing.write_text("{}")
    with pytest.raises(errors.InvalidArgument, match="exists"):
        conform.check_out_path(existing, [])
    with pytest.raises(errors.InvalidArgument, match="does not exist"):
        conform.check_out_path(tmp_path / "nope" / "x.otio", [])


def test_url_to_path(tmp_path):
    assert conform.url_to_path("file:///a%20b/c.mp4", tmp_path) == Path("/a b/c.mp4")
    assert conform.url_to_path("file://localhost/a/c.mp4", tmp_path) == Path("/a/c.mp4")
    assert conform.url_to_path("media/c.mp4", tmp_path) == tmp_path / "media" / "c.mp4"
    assert conform.path_to_url(Path("/a b/c.mp4"), "file:///") == "file:///a%20b/c.mp4"
    assert conform.path_to_url(Path("/a/c.mp4"), "/x") == "/a/c.mp4"


# --- Blender installer -----------------------------------------------------------------------------


def test_blender_install_copies_the_addon_with_its_bridge_command(tmp_path):
    from plugin_bridge.cli import main

    assert main(["blender-install", "--addons-dir", str(tmp_path), "--bridge-command", "recast-bridge json -v"]) == 0
    addon = tmp_path / "recast_bridge"
    assert {"__init__.py", "bridge_process.py", "strips.py", "config.json"} <= set(os.listdir(addon))
    assert json.loads((addon / "config.json").read_text())["bridge_command"] == ["recast-bridge", "json", "-v"]
    assert main(["blender-install", "--addons-dir", str(tmp_path)]) == 0  # upgrading replaces its own copy
    assert "json" in json.loads((addon / "config.json").read_text())["bridge_command"]
    from test_boundaries import imported_modules

    for name in ("bridge_process.py", "strips.py", "__init__.py"):  # runs in Blender's own Python
        outside = imported_modules(REPO / "plugin_bridge" / "blender" / name) - set(sys.stdlib_module_names)
        assert outside <= {"bpy"}, (name, outside)


@needs_adapter("cmx_3600")
def test_edl_that_names_only_a_reel_needs_source_media(tmp_path):
    edl = tmp_path / "reels.edl"
    edl.write_text("TITLE: reels\nFCM: NON-DROP FRAME\n\n"
                   "001  A012C004 V     C        00:00:00:03 00:00:00:09 00:00:00:05 00:00:00:11\n")
    media = tmp_path / "A012_C004.avi"
    media.write_bytes(b"not really a movie")
    tl = conform.read_timeline(edl, 24)
    sel = conform.select_clip(tl, clip="0")
    with pytest.raises(errors.InvalidArgument, match="--source-media"):
        conform.source_media(sel, edl)
    assert conform.source_media(sel, edl, media) == media
    assert conform.media_frame_range(sel, 24.0, 40) == (3, 9)
    assert conform.media_frame_range(sel, 24.0, 40, media_start="00:00:00:02") == (1, 7)


@needs_adapter("fcp_xml")
@pytest.mark.parametrize("rate", [24.0, 30000 / 1001])
def test_media_with_a_start_timecode_counts_from_its_first_frame(tmp_path, rate):
    """Camera files start at 01:00:00:00 and the like: FCP XML keeps it, the frame index ignores it."""
    tl = otio.schema.Timeline("t")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    start = ot.from_timecode("01:00:00:00", rate)
    available = ot.TimeRange(start, ot.RationalTime(100, rate))
    used = ot.TimeRange(start + ot.RationalTime(3, rate), ot.RationalTime(6, rate))
    ref = otio.schema.ExternalReference("file:///m.mov", available_range=available)
    track.append(otio.schema.Clip("c", media_reference=ref, source_range=used))
    back = otio.adapters.read_from_string(otio.adapters.write_to_string(tl, "fcp_xml"), "fcp_xml")
    sel = conform.select_clip(back, clip="c")
    assert conform.media_frame_range(sel, 29.97 if rate != 24 else 24.0, 100) == (3, 9)


def test_marks_are_record_timecodes_of_a_timeline_starting_at_one_hour(tmp_path):
    """Resolve and Premiere start timelines at 01:00:00:00: marks are read against that start."""
    rate = 30000 / 1001
    tl = _timeline(rate, tmp_path / "m.avi")
    tl.global_start_time = ot.from_timecode("01:00:00:00", rate)
    sel = conform.select_clip(tl, mark_in="01:00:00:07", mark_out="01:00:00:11")
    assert sel.clip.name == "shotA" and conform.media_frame_range(sel, 29.97, 40) == (5, 9)
    with pytest.raises(errors.InvalidArgument, match="no video clip"):
        conform.select_clip(tl, mark_in="00:00:00:07", mark_out="00:00:00:11")
