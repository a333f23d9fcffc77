"""The bridge finds problems before the render, and writes timelines without hard links (issue 20).

A real daemon (in-process, the tiny model) and real files and folders; the tests check that no job
was queued where the problem must be found first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import opentimelineio as otio
import pytest
from daemon_support import InProcess
from test_bridge_support import FAST, SOURCE_PROMPT, TARGET_PROMPT, source_frames, write_source, write_target

from engine.daemon.limits import Limits
from plugin_bridge import conform
from plugin_bridge.client import RecastClient
from plugin_bridge.edit import EditSpec, run_edit
from plugin_bridge.errors import InvalidArgument, PermissionDenied, ResourceExhausted
from plugin_bridge.sequence import MAX_SEQUENCE_IMAGES
from protos.recast.v1 import engine_pb2 as pb

pytestmark = pytest.mark.timeout(120)
ot = otio.opentime


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    with InProcess(tiny_model_dir, limits=Limits(max_clip_frames=4)) as d:
        yield d


@pytest.fixture
def client(daemon):
    with RecastClient.connect(socket=daemon.config.socket_path) as c:
        yield c


def _jobs(daemon) -> list[pb.Job]:
    return list(daemon.stub.ListJobs(pb.ListJobsRequest()).jobs)


@pytest.fixture
def read_only(tmp_path):
    """Makes a folder read-only for real: chattr +i for root (whom modes do not stop), else chmod."""
    locked: list[Path] = []

    def lock(folder: Path) -> Path:
        if os.geteuid() == 0:
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
            if done.returncode != 0:
                pytest.skip(f"cannot make a folder immutable here: {done.stderr.decode().strip()}")
        else:
            folder.chmod(0o555)
        locked.append(folder)
        return folder

    yield lock
    for folder in locked:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        else:
            folder.chmod(0o755)


# --- 16. problems found before the render --------------------------------------------------------------


def test_read_only_media_folder_fails_before_anything_is_queued(daemon, client, tmp_path, read_only):
    media = tmp_path / "volume"
    media.mkdir()
    video, _ = write_source(media / "shot.avi", n=6)
    read_only(media)
    before = len(_jobs(daemon))
    spec = EditSpec(source=video, target_image=write_target(tmp_path / "t.png"), source_prompt=SOURCE_PROMPT,
                    target_prompt=TARGET_PROMPT, start_frame=0, end_frame=4, settings=FAST)
    with pytest.raises(PermissionDenied) as exc:
        run_edit(client, spec)
    assert exc.value.field == "output.path" and str(media) in exc.value.message
    assert len(_jobs(daemon)) == before  # nothing was queued, let alone rendered


def test_read_only_timeline_folder_fails_before_anything_is_queued(daemon, client, tmp_path, read_only):
    video, _ = write_source(tmp_path / "camera.avi", n=6)
    rate = 24.0
    tl = otio.schema.Timeline("cut")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    ref = otio.schema.ExternalReference(video.as_uri(), available_range=ot.TimeRange(ot.RationalTime(0, rate),
                                                                                      ot.RationalTime(6, rate)))
    track.append(otio.schema.Clip("shot", media_reference=ref,
                                  source_range=ot.TimeRange(ot.RationalTime(0, rate), ot.RationalTime(4, rate))))
    timeline = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(timeline))
    out_folder = tmp_path / "conformed"
    out_folder.mkdir()
    read_only(out_folder)
    before = len(_jobs(daemon))
    with pytest.raises(PermissionDenied) as exc:
        conform.conform(client, conform.ConformOptions(timeline, out_folder / "cut_recast.otio",
                                                       write_target(tmp_path / "t.png"), SOURCE_PROMPT, TARGET_PROMPT,
                                                       FAST, clip="shot"))
    assert exc.value.field == "out_timeline"
    assert len(_jobs(daemon)) == before
    assert not (tmp_path / "recast_edits").exists()


def _sequence_timeline(folder: Path, images: int, length: int) -> Path:
    rate = 24.0
    ref = otio.schema.ImageSequenceReference(
        target_url_base=folder.as_uri() + "/", name_prefix="plate.", name_suffix=".png", start_frame=1001,
        rate=rate, frame_zero_padding=4,
        available_range=ot.TimeRange(ot.RationalTime(1001, rate), ot.RationalTime(images, rate)),
    )
    tl = otio.schema.Timeline("plates")
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    used = ot.TimeRange(ot.RationalTime(1001, rate), ot.RationalTime(length, rate))
    track.append(otio.schema.Clip("plate", media_reference=ref, source_range=used))
    path = folder / "plates.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_enormous_image_sequence_is_refused_naming_the_clip(daemon, client, tmp_path):
    """A crafted OTIO claims 300 000 images (the bridge would list and check each one)."""
    timeline = _sequence_timeline(tmp_path, 3 * MAX_SEQUENCE_IMAGES, 6)
    before = len(_jobs(daemon))
    with pytest.raises(InvalidArgument) as exc:
        conform.conform(client, conform.ConformOptions(timeline, tmp_path / "out.otio",
                                                       write_target(tmp_path / "t.png"), SOURCE_PROMPT, TARGET_PROMPT,
                                                       FAST, clip="plate", media_format="png"))
    assert "'plate'" in exc.value.message and f"{3 * MAX_SEQUENCE_IMAGES} images" in exc.value.message
    assert str(MAX_SEQUENCE_IMAGES) in exc.value.message
    assert len(_jobs(daemon)) == before


def test_sequence_range_over_the_daemon_limit_is_refused_before_packing(daemon, client, tmp_path):
    """Only the clip's images are checked, and a range longer than the daemon takes (4 frames here)
    is refused before anything is read, packed or uploaded."""
    plates = tmp_path / "plates"
    plates.mkdir()
    for i, f in enumerate(source_frames(8)):
        cv2.imwrite(str(plates / f"plate.{1001 + i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (plates / "plate.1008.png").unlink()  # outside the edited range: not needed
    spec = EditSpec(source=sorted(plates.glob("plate.*.png")) + [plates / "plate.1008.png"],
                    target_image=write_target(tmp_path / "t.png"), source_prompt=SOURCE_PROMPT,
                    target_prompt=TARGET_PROMPT, start_frame=0, end_frame=6, settings=FAST)
    assets = daemon.daemon.storage.db.query("SELECT asset_id FROM assets")
    with pytest.raises(ResourceExhausted) as exc:
        run_edit(client, spec)
    assert exc.value.field == "end_frame" and "6 images" in exc.value.message
    assert daemon.daemon.storage.db.query("SELECT asset_id FROM assets") == assets


# --- 7. timelines without hard links -----------------------------------------------------------------


def _timeline() -> otio.schema.Timeline:
    tl = otio.schema.Timeline("cut")
    tl.tracks.append(otio.schema.Track("V1"))
    return tl


def test_otiod_bundles_are_written_exclusively(tmp_path):
    """.otiod is a folder: it cannot be hard-linked into place, and is published all the same."""
    out = tmp_path / "cut_recast.otiod"
    conform.write_exclusive(_timeline(), out)
    assert (out / "content.otio").is_file()
    assert conform.read_timeline(out / "content.otio").name == "cut"
    with pytest.raises(FileExistsError):
        conform.write_exclusive(_timeline(), out)
    assert sorted(os.listdir(tmp_path)) == ["cut_recast.otiod"]  # no temporaries left


def test_timeline_written_without_hard_links(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted (no hard links on this volume)")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "cut.otio"
    conform.write_exclusive(_timeline(), out)
    assert conform.read_timeline(out).name == "cut" and sorted(os.listdir(tmp_path)) == ["cut.otio"]


def test_copy_fallback_never_replaces(tmp_path):
    """The path taken where renameat2(RENAME_NOREPLACE) is missing (NFS, FUSE): O_EXCL or mkdir."""
    tmp = tmp_path / ".cut.otio.x"
    tmp.write_text("new")
    (tmp_path / "cut.otio").write_text("editor's")
    with pytest.raises(FileExistsError):
        conform.copy_exclusive(tmp, tmp_path / "cut.otio")
    assert (tmp_path / "cut.otio").read_text() == "editor's"
    conform.copy_exclusive(tmp, tmp_path / "cut2.otio")
    assert (tmp_path / "cut2.otio").read_text() == "new" and not tmp.exists()
    bundle = tmp_path / ".b.otiod.x"
    (bundle / "media").mkdir(parents=True)
    (bundle / "content.otio").write_text("{}")
    conform.copy_exclusive(bundle, tmp_path / "b.otiod")
    assert sorted(os.listdir(tmp_path / "b.otiod")) == ["content.otio", "media"] and not bundle.exists()
    shutil.rmtree(tmp_path / "b.otiod")
