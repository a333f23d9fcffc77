"""OTIO conform round trips against a real daemon: .otio, EDL and FCP XML timelines at 24 and 29.97 fps
with clips that start mid-media. The edited clip must sit on exactly the original's record frames and
its media must hold exactly the edited source frames; source media and input timeline stay untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest
from daemon_support import InProcess
from test_bridge_support import (
    FAST,
    REPO,
    SOURCE_PROMPT,
    TARGET_PROMPT,
    decode,
    frame_numbers,
    needs_adapter,
    read_video,
    sha,
    source_frames,
    write_source,
    write_target,
)

from plugin_bridge import conform
from plugin_bridge.client import RecastClient

pytestmark = pytest.mark.timeout(180)
ot = otio.opentime
NTSC = 30000 / 1001
GAP, A_START, A_DUR, B_START, B_DUR = 5, 3, 6, 10, 3  # record: gap 0..5, shotA 5..11, shotB 11..14


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        yield d


def conform_adapters() -> set[str]:
    names = set(otio.adapters.available_adapter_names())
    return {k for k, a in (("otio", "otio_json"), ("edl", "cmx_3600"), ("xml", "fcp_xml"), ("kdenlive", "kdenlive"))
            if a in names}


def make_timeline(media: Path, rate: float) -> otio.schema.Timeline:
    """Gap, then shotA (media frames 3..9) and shotB (10..13) of the same file: both start mid-media."""
    tl = otio.schema.Timeline("recast test cut")
    track = otio.schema.Track("V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)

    def ref() -> otio.schema.ExternalReference:
        return otio.schema.ExternalReference(
            media.as_uri(), available_range=ot.TimeRange(ot.RationalTime(0, rate), ot.RationalTime(16, rate)))

    track.append(otio.schema.Gap(source_range=ot.TimeRange(ot.RationalTime(0, rate), ot.RationalTime(GAP, rate))))
    for name, start, dur in (("shotA", A_START, A_DUR), ("shotB", B_START, B_DUR)):
        used = ot.TimeRange(ot.RationalTime(start, rate), ot.RationalTime(dur, rate))
        track.append(otio.schema.Clip(name, media_reference=ref(), source_range=used))
    return tl


def write_input(folder: Path, kind: str, rate: float) -> tuple[Path, Path, np.ndarray]:
    video, frames = write_source(folder / "camera.avi", n=16, fps=rate)
    path = folder / {"otio": "cut.otio", "edl": "cut.edl", "xml": "cut.xml", "kdenlive": "cut.kdenlive"}[kind]
    adapter = {"otio": "otio_json", "edl": "cmx_3600", "xml": "fcp_xml", "kdenlive": "kdenlive"}[kind]
    path.write_text(otio.adapters.write_to_string(make_timeline(video, rate), adapter))
    return path, video, frames


def media_of(clip: otio.schema.Clip, base: Path) -> Path:
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return conform.url_to_path(ref.target_url_base, base)
    return conform.url_to_path(ref.target_url, base)


def edited_pictures(media: Path, fmt: str) -> np.ndarray:
    if fmt == "png":
        return np.stack([decode(p) for p in sorted(media.glob("frame_*.png"))])
    return read_video(media)


CASES = [
    # input, rate, replace, media, output, selection, through the CLI
    pytest.param("otio", 24.0, False, "png", "out.otio", {"clip": "shotA"}, False, id="otio-24-newtrack-png"),
    pytest.param("edl", NTSC, True, "mp4", "out.edl", {"mark_in": "00:00:00:07", "mark_out": "00:00:00:10"}, True,
                 id="edl-29.97-replace-marks-cli"),
    pytest.param("xml", NTSC, False, "mp4", "out.xml", {"clip": "shotA"}, False, id="fcpxml-29.97-newtrack"),
    pytest.param("edl", 24.0, False, "mp4", "out.otio", {"clip": "shotA"}, False, id="edl-24-to-otio-newtrack"),
    pytest.param("xml", 24.0, True, "mp4", "out.xml", {"clip": "0"}, False, id="fcpxml-24-replace"),
    # the Kdenlive adapter names every clip after its first producer: select by index
    pytest.param("kdenlive", 25.0, False, "mp4", "out.kdenlive", {"clip": "0"}, False, id="kdenlive-25-newtrack"),
]


@pytest.mark.parametrize("kind,rate,replace,fmt,out_name,selection,cli", CASES)
def test_conform_round_trip(daemon, tmp_path, kind, rate, replace, fmt, out_name, selection, cli):
    if kind not in conform_adapters():
        pytest.skip(f"the OpenTimelineIO adapter for {kind} is not installed")
    timeline_path, video, source = write_input(tmp_path, kind, rate)
    hashes = (sha(timeline_path), sha(video))
    out = tmp_path / out_name
    edl_rate = rate if kind == "edl" else None
    original = conform.read_timeline(timeline_path, edl_rate)
    sel = conform.select_clip(original, selection.get("clip"), selection.get("mark_in"), selection.get("mark_out"))
    record = (conform._frames(sel.record.start_time, rate), conform._frames(sel.record.end_time_exclusive(), rate))

    if cli:
        args = [sys.executable, "-m", "plugin_bridge.cli", "otio", str(timeline_path), "--out-timeline", str(out),
                "--target-image", str(write_target(tmp_path / "target.png")), "--source-prompt", SOURCE_PROMPT,
                "--target-prompt", TARGET_PROMPT, "--media", fmt, "--socket", str(daemon.config.socket_path),
                "--no-start", "--quiet", *(["--replace"] if replace else []),
                *(["--rate", str(rate)] if edl_rate else []),
                *[x for k, flag in (("clip", "--clip"), ("mark_in", "--in"), ("mark_out", "--out"))
                  if k in selection for x in (flag, selection[k])],
                *[x for k, v in FAST.items() for x in (f"--{k.replace('_', '-')}", str(v))]]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=150, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout)
    else:
        with RecastClient.connect(socket=daemon.config.socket_path) as client:
            options = conform.ConformOptions(
                timeline_path, out, write_target(tmp_path / "target.png"), SOURCE_PROMPT, TARGET_PROMPT,
                FAST, replace=replace, media_format=fmt, rate=edl_rate, **selection,
            )
            result = conform.conform(client, options).to_dict()

    # the edit covered exactly the selected media frames (mid-media), timing frame-exact
    start, end = result["media_frames"]
    expected_start = A_START + (record[0] - (GAP))
    assert (start, end) == (expected_start, expected_start + record[1] - record[0])
    assert result["record_frames"] == list(record)

    # the new timeline has the edited clip exactly on the original's record frames
    new = conform.read_timeline(out, edl_rate)
    media = Path(result["media"])
    placed = [(ti, ci, c) for ti, ci, c in conform.video_clips(new) if media_of(c, out.parent) == media]
    assert len(placed) == 1, [c.name for _, _, c in conform.video_clips(new)]
    ti, _, edited = placed[0]
    got = conform.record_range(new, ti, edited)
    assert (conform._frames(got.start_time, rate), conform._frames(got.end_time_exclusive(), rate)) == record
    assert conform._frames(edited.source_range.start_time, rate) == 0
    if replace:
        assert ti == sel.track_index and len(new.tracks) == len(original.tracks)
        assert new.tracks[ti].duration() == original.tracks[sel.track_index].duration()
    else:
        assert ti == sel.track_index + 1 and len(new.tracks) == len(original.tracks) + 1
        kept = [c for _, _, c in conform.video_clips(new) if c.name == sel.clip.name]
        assert kept and conform.record_range(new, sel.track_index, kept[0]) == sel.record  # original untouched

    # its media holds the edited frames: the daemon's results, showing source frames start..end-1
    pictures = edited_pictures(media, fmt)
    assert len(pictures) == end - start and pictures.shape[1:] == source.shape[1:]
    with RecastClient.connect(socket=daemon.config.socket_path) as client:
        results = client.result_frames(result["job_id"])
    rendered = np.stack([decode(r.image.data) for r in results])
    masks = np.stack([decode(r.mask.data, grey=True) for r in results])
    if fmt == "png":
        assert np.array_equal(pictures, rendered)
    else:  # MP4 is lossy: close to the rendered frames
        assert np.abs(pictures.astype(int) - rendered.astype(int)).mean() < 6
    assert frame_numbers(pictures, masks) == list(range(start, end))
    assert Path(result["folder"]).parent == video.parent / "recast_edits"

    # nothing was written over
    assert (sha(timeline_path), sha(video)) == hashes


@needs_adapter("cmx_3600")
def test_refuses_to_write_over_inputs(daemon, tmp_path):
    timeline_path, video, _ = write_input(tmp_path, "otio", 24.0)
    with RecastClient.connect(socket=daemon.config.socket_path) as client:
        for out in (timeline_path, tmp_path / "camera.avi"):
            with pytest.raises(conform.InvalidArgument, match="exists|input"):
                conform.conform(client, conform.ConformOptions(timeline_path, out, write_target(tmp_path / "t.png"),
                                                               SOURCE_PROMPT, TARGET_PROMPT, FAST, clip="shotA"))
        edl_out = tmp_path / "new.edl"  # new-track mode cannot go into an EDL: refused before rendering
        with pytest.raises(conform.InvalidArgument, match="--replace"):
            conform.conform(client, conform.ConformOptions(timeline_path, edl_out, write_target(tmp_path / "t.png"),
                                                           SOURCE_PROMPT, TARGET_PROMPT, FAST, clip="shotA"))
        assert client.info().queued_jobs == 0
    assert not edl_out.exists() and not (tmp_path / "recast_edits").exists()


def test_conform_of_an_image_sequence_clip(daemon, tmp_path):
    """VFX plates (plate.1001.png …) referenced as an ImageSequenceReference: the clip uses 1004..1009."""
    frames = source_frames(16)
    plates = tmp_path / "plates"
    plates.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(plates / f"plate.{1001 + i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    hashes = [sha(p) for p in sorted(plates.glob("*.png"))]
    rate = 24.0
    ref = otio.schema.ImageSequenceReference(
        target_url_base=plates.as_uri() + "/", name_prefix="plate.", name_suffix=".png", start_frame=1001,
        rate=rate, frame_zero_padding=4,
        available_range=ot.TimeRange(ot.RationalTime(1001, rate), ot.RationalTime(16, rate)),
    )
    tl = otio.schema.Timeline("plates")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    track.append(otio.schema.Gap(source_range=ot.TimeRange(ot.RationalTime(0, rate), ot.RationalTime(GAP, rate))))
    track.append(otio.schema.Clip("plate", media_reference=ref,
                                  source_range=ot.TimeRange(ot.RationalTime(1004, rate), ot.RationalTime(6, rate))))
    src = tmp_path / "plates.otio"
    otio.adapters.write_to_file(tl, str(src))
    out = tmp_path / "plates_recast.otio"

    with RecastClient.connect(socket=daemon.config.socket_path) as client:
        options = conform.ConformOptions(src, out, write_target(tmp_path / "t.png"), SOURCE_PROMPT, TARGET_PROMPT,
                                         FAST, clip="plate", media_format="png")
        result = conform.conform(client, options)
        results = client.result_frames(result.job_id)
    assert result.media_frames == (3, 9) and result.record_frames == (5, 11)
    new = conform.read_timeline(out)
    edited = [c for c in new.tracks[1] if isinstance(c, otio.schema.Clip)][0]
    assert conform.record_range(new, 1, edited) == conform.record_range(tl, 0, track[1])
    pictures = edited_pictures(Path(result.media), "png")
    assert np.array_equal(pictures, np.stack([decode(r.image.data) for r in results]))
    assert frame_numbers(pictures, np.stack([decode(r.mask.data, grey=True) for r in results])) == list(range(3, 9))
    assert Path(result.folder).parent == plates / "recast_edits"
    assert [sha(p) for p in sorted(plates.glob("*.png"))] == hashes
