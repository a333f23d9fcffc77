"""Files and media the daemon reads and writes (issue 20): headers that lie, exports on volumes without
hard links, OS errors with their status codes, imports of files that change underneath, temporaries
of a killed export, and stalled streams.

Everything runs against the real daemon (in-process, on a temporary socket) with real files.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import select
import shutil
import struct
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from daemon_support import (
    InProcess,
    kinds,
    make_frames,
    render_request,
    setup_clip,
    short_tmp,
    upload,
    upload_requests,
    watch_all,
    write_mp4,
)
from PIL import Image

from engine.daemon import export as export_module
from engine.daemon.limits import Limits
from engine.errors import InputError
from engine.runtime import video_io
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(240)
C = grpc.StatusCode
ROOT = os.geteuid() == 0
LIMITS = Limits(max_asset_bytes=3 << 20)


@pytest.fixture(scope="module")
def world(tiny_model_dir):
    with InProcess(tiny_model_dir, limits=LIMITS) as d:
        folder = short_tmp()
        clip, target, _ = setup_clip(d.stub, folder, n=2)
        render = d.stub.CreateRenderJob(render_request(clip, target))
        assert kinds(watch_all(d.stub, render.job_id))[-1] == "finished"
        yield dict(d=d, stub=d.stub, folder=folder, clip=clip, job=render.job_id)
        shutil.rmtree(folder, ignore_errors=True)


def _export(world, path: Path | str, fmt: int = pb.EXPORT_FORMAT_MP4) -> pb.ExportResponse:
    return world["stub"].Export(pb.ExportRequest(job_id=world["job"], format=fmt, path=str(path)), timeout=60)


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as exc:
        call()
    return exc.value.code(), exc.value.details()


# --- 4. decoded frames against the probed header -------------------------------------------------------


def _riff(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def write_mjpeg_avi(path: Path, jpegs: list[bytes], width: int, height: int, fps: int = 12) -> Path:
    """An AVI whose headers say width×height, whatever size the JPEG frames inside really are."""
    n = len(jpegs)
    avih = struct.pack("<10I16x", 1_000_000 // fps, 0, 0, 0x10, n, 0, 1, 0, width, height)
    strh = struct.pack("<4s4sIHHIIIIIIIIhhhh", b"vids", b"MJPG", 0, 0, 0, 0, 1, fps, 0, n, 0, 0xFFFFFFFF, 0, 0, 0,
                       width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    strl = _riff(b"LIST", b"strl" + _riff(b"strh", strh) + _riff(b"strf", strf))
    hdrl = _riff(b"LIST", b"hdrl" + _riff(b"avih", avih) + strl)
    movi, index, offset = b"", b"", 4
    for jpeg in jpegs:
        chunk = _riff(b"00dc", jpeg)
        index += struct.pack("<4sIII", b"00dc", 0x10, offset, len(jpeg))
        movi += chunk
        offset += len(chunk)
    body = b"AVI " + hdrl + _riff(b"LIST", b"movi" + movi) + _riff(b"idx1", index)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _jpeg(h: int, w: int) -> bytes:
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (0, 0, 255), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_lying_video_header_never_yields_frames_beyond_it(world, tmp_path):
    """Header 64×48, frames 1..3 really 1024×512: decoding never hands out more than the limits were
    checked against (OpenCV scales to the header; any other size is refused naming file and frame)."""
    avi = write_mjpeg_avi(tmp_path / "lies.avi", [_jpeg(48, 64)] + [_jpeg(512, 1024)] * 3, 64, 48)
    asset = world["stub"].ImportAsset(pb.ImportAssetRequest(path=str(avi)))
    assert (asset.width, asset.height, asset.frame_count) == (64, 48, 4)
    clip = world["stub"].CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id, start_frame=1))
    try:
        frames = list(world["stub"].GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id), timeout=30))
    except grpc.RpcError as exc:
        assert exc.code() == C.INVALID_ARGUMENT and "frame" in exc.details() and "header" in exc.details()
    else:
        assert [(f.image.width, f.image.height) for f in frames] == [(64, 48)] * 3
    try:  # PyAV decodes at the real size, which is refused naming file and frame
        frames, _ = video_io.read_frames(avi, 1, 4)
    except InputError as exc:
        assert "frame 1 decodes to 1024x512 but the header says 64x48" in str(exc)
    else:
        assert frames.shape == (3, 48, 64, 3)


def test_a_frame_that_decodes_to_another_size_is_refused(tmp_path):
    video = write_mp4(tmp_path / "v.mp4", make_frames(3, 48, 64))
    with pytest.raises(InputError) as exc:
        list(video_io.iter_frames(video, 0, 3, size=(32, 32)))
    assert "v.mp4: frame 0 decodes to 64x48 but the header says 32x32" in str(exc.value)


def test_image_is_registered_at_the_size_it_decodes_to(world):
    """A JPEG whose EXIF orientation turns it: the header says 64×48, every decoder shows 48×64."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    buf = io.BytesIO()
    Image.fromarray(make_frames(1, 48, 64)[0]).save(buf, "JPEG", exif=exif.tobytes())
    asset = upload(world["stub"], buf.getvalue(), "phone.jpg")
    assert (asset.width, asset.height) == (48, 64)
    clip = world["stub"].CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id))
    (frame,) = world["stub"].GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id))
    assert (frame.image.width, frame.image.height) == (clip.width, clip.height) == (48, 64)


def test_read_frames_holds_every_frame_once(tmp_path):
    video = write_mp4(tmp_path / "long.mp4", make_frames(30, 96, 128))
    tracemalloc.start()
    try:
        frames, _ = video_io.read_frames(video)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames.shape == (30, 96, 128, 3)
    assert peak < 1.3 * frames.nbytes, f"peak {peak} for {frames.nbytes} bytes of frames"


# --- 7. exports without hard links --------------------------------------------------------------------


def test_exports_need_no_hard_links(world, monkeypatch):
    """exFAT, FAT and SMB volumes have no hard links: both formats export all the same."""

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted (no hard links on this volume)")

    monkeypatch.setattr(os, "link", no_links)
    folder = world["folder"]
    mp4 = _export(world, folder / "nolink.mp4")
    png = _export(world, folder / "nolink_frames", pb.EXPORT_FORMAT_PNG_SEQUENCE)
    assert mp4.frame_count == png.frame_count == 2
    assert video_io.probe_video(mp4.path)[0] == 2
    assert sorted(os.listdir(png.path)) == ["frame_000000.png", "frame_000001.png"]
    assert not [n for n in os.listdir(folder) if n.startswith(".recast-export-")]


def test_copy_fallback_creates_exclusively(tmp_path):
    """Where renameat2(RENAME_NOREPLACE) is missing (NFS, FUSE), publishing copies into an O_EXCL file
    or a new folder: never over an existing name, never leaving the temporary behind."""
    tmp = tmp_path / ".recast-export-a.mp4"
    tmp.write_bytes(b"movie")
    (tmp_path / "taken.mp4").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        export_module.copy_exclusive(tmp, tmp_path / "taken.mp4")
    assert (tmp_path / "taken.mp4").read_bytes() == b"precious"
    export_module.copy_exclusive(tmp, tmp_path / "new.mp4")
    assert (tmp_path / "new.mp4").read_bytes() == b"movie" and not tmp.exists()

    folder = tmp_path / ".recast-export-b"
    (folder / "sub").mkdir(parents=True)
    (folder / "frame_000000.png").write_bytes(b"png")
    (folder / "sub" / "x").write_bytes(b"x")
    (tmp_path / "busy").mkdir()
    with pytest.raises(FileExistsError):
        export_module.copy_exclusive(folder, tmp_path / "busy")
    assert os.listdir(tmp_path / "busy") == []
    export_module.copy_exclusive(folder, tmp_path / "frames")
    assert (tmp_path / "frames" / "frame_000000.png").read_bytes() == b"png"
    assert (tmp_path / "frames" / "sub" / "x").read_bytes() == b"x" and not folder.exists()


@pytest.fixture
def tiny_volume():
    """A real 256 KiB file system (tmpfs); needs the right to mount (root)."""
    mount = short_tmp()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        shutil.rmtree(mount, ignore_errors=True)
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    shutil.rmtree(mount, ignore_errors=True)


def test_copy_fallback_removes_a_partial_copy(tmp_path, tiny_volume):
    tmp = tmp_path / ".recast-export-big.mp4"
    tmp.write_bytes(os.urandom(1 << 20))
    with pytest.raises(OSError) as exc:
        export_module.copy_exclusive(tmp, tiny_volume / "big.mp4")
    assert exc.value.errno == errno.ENOSPC
    assert not (tiny_volume / "big.mp4").exists() and tmp.exists()


# --- 8. OS errors on client paths -------------------------------------------------------------------


def test_os_errors_on_export_paths_have_their_codes(world):
    folder = world["folder"]
    os.symlink(folder / "loop_b", folder / "loop_a")
    os.symlink(folder / "loop_a", folder / "loop_b")
    (folder / "plain_file").write_bytes(b"x")
    cases = [
        (folder / ("n" * 300 + ".mp4"), C.INVALID_ARGUMENT, ("too long",)),
        (folder / "loop_a" / "x.mp4", C.INVALID_ARGUMENT, ("loop",)),
        (folder / "plain_file" / "x.mp4", C.INVALID_ARGUMENT, ("not a folder",)),
    ]
    if Path("/sys/kernel").is_dir():  # sysfs refuses new files even to root, whatever access() says
        cases.append((Path("/sys/kernel/recast.mp4"), C.PERMISSION_DENIED, ("permission", "not writable")))
    for path, code, words in cases:
        got, details = _code(lambda p=path: _export(world, p))
        assert (got, details.startswith("path:")) == (code, True), (path, details)
        assert any(w in details.lower() for w in words), details
        assert len(details) < 400, details  # a long path is shortened, not repeated in full


def test_full_disk_on_export_is_resource_exhausted(world, tiny_volume):
    filler = tiny_volume / "filler"
    with open(filler, "wb") as f:
        try:
            f.write(b"\0" * (300 << 10))  # more than the volume holds
        except OSError:
            pass
    for fmt in (pb.EXPORT_FORMAT_PNG_SEQUENCE, pb.EXPORT_FORMAT_MP4):
        got, details = _code(lambda fmt=fmt: _export(world, tiny_volume / f"out{fmt}", fmt))
        assert got == C.RESOURCE_EXHAUSTED and details.startswith("path:") and "full" in details, details
        assert os.listdir(tiny_volume) == ["filler"]  # no half-written export, no temporary


def test_os_errors_on_import_paths_have_their_codes(world, tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    (tmp_path / "plain_file").write_bytes(b"x")
    cases = [
        (tmp_path / ("n" * 300 + ".mp4"), C.INVALID_ARGUMENT, "path:"),
        (tmp_path / "/".join(["d" * 200] * 25) / "x.mp4", C.INVALID_ARGUMENT, "path:"),
        (tmp_path / "loop", C.INVALID_ARGUMENT, "loop"),
        (tmp_path / "plain_file" / "x.mp4", C.INVALID_ARGUMENT, "path:"),
    ]
    if not ROOT:  # root reads files whatever their mode
        locked = tmp_path / "locked.mp4"
        write_mp4(locked, make_frames(2))
        locked.chmod(0)
        cases.append((locked, C.PERMISSION_DENIED, "path:"))
    for path, code, words in cases:
        got, details = _code(lambda p=path: world["stub"].ImportAsset(pb.ImportAssetRequest(path=str(p))))
        assert got == code and words in details.lower(), (path, got, details)


# --- 9. imports copy exactly what was opened ------------------------------------------------------------


_LIBC = ctypes.CDLL(None, use_errno=True)
_FAN_CLASS_CONTENT, _FAN_CLOEXEC, _FAN_MARK_ADD, _FAN_ACCESS_PERM, _FAN_ALLOW = 0x4, 0x1, 0x1, 0x20000, 0x1


@contextmanager
def on_first_read(path: Path, action) -> Iterator[threading.Event]:
    """Runs `action` while the first read() of `path` (by anyone, the in-process daemon included) is
    held by the kernel (fanotify FAN_ACCESS_PERM): the file changes exactly between open and read.
    Needs CAP_SYS_ADMIN (root); skips otherwise."""
    fan = _LIBC.fanotify_init(_FAN_CLASS_CONTENT | _FAN_CLOEXEC, os.O_RDONLY)
    if fan < 0:
        pytest.skip(f"fanotify is not available here ({os.strerror(ctypes.get_errno())})")
    mark = _LIBC.fanotify_mark
    mark.argtypes = (ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p)
    if mark(fan, _FAN_MARK_ADD, _FAN_ACCESS_PERM, -100, os.fsencode(path)) != 0:
        os.close(fan)
        pytest.skip(f"fanotify permission events are not available here ({os.strerror(ctypes.get_errno())})")
    stop, fired = threading.Event(), threading.Event()

    def listen() -> None:
        poll = select.poll()
        poll.register(fan, select.POLLIN)
        while not stop.is_set():
            if not poll.poll(50):
                continue
            data = os.read(fan, 4096)
            for offset in range(0, len(data), 24):  # struct fanotify_event_metadata
                fd = struct.unpack_from("<IBBHQii", data, offset)[5]
                try:
                    if not fired.is_set():
                        action()
                finally:
                    fired.set()
                    os.write(fan, struct.pack("<iI", fd, _FAN_ALLOW))  # always let the reader go on
                    os.close(fd)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        yield fired
    finally:
        stop.set()
        listener.join(5)
        os.close(fan)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_import_of_a_growing_file_copies_what_it_opened(world, tmp_path):
    source = write_mp4(tmp_path / "growing.mp4", make_frames(4))
    original = source.read_bytes()
    appender = open(source, "ab")  # opened before the watch: its writes are not reads

    def grow() -> None:
        appender.write(os.urandom(4 << 20))  # past the 3 MiB limit
        appender.flush()

    with appender, on_first_read(source, grow) as grown:
        asset = world["stub"].ImportAsset(pb.ImportAssetRequest(path=str(source)), timeout=30)
    assert grown.is_set() and source.stat().st_size > LIMITS.max_asset_bytes
    assert (asset.size_bytes, asset.sha256) == (len(original), _sha(original))


def test_import_of_a_replaced_file_copies_what_it_opened(world, tmp_path):
    source = write_mp4(tmp_path / "shot.mp4", make_frames(4, seed=1))
    other = write_mp4(tmp_path / "other.mp4", make_frames(6, seed=2))
    original = source.read_bytes()
    with on_first_read(source, lambda: os.replace(other, source)) as replaced:
        asset = world["stub"].ImportAsset(pb.ImportAssetRequest(path=str(source)), timeout=30)
    assert replaced.is_set() and source.read_bytes() != original
    assert (asset.sha256, asset.frame_count) == (_sha(original), 4)
    stored = world["d"].config.data_dir / "blobs" / asset.sha256[:2] / asset.sha256
    assert stored.read_bytes() == original


def test_import_through_a_link_swapped_after_open_copies_what_it_opened(world, tmp_path):
    source = write_mp4(tmp_path / "a.mp4", make_frames(4, seed=3))
    other = write_mp4(tmp_path / "b.mp4", make_frames(6, seed=4))
    link = tmp_path / "current.mp4"
    os.symlink(source, link)

    def swap() -> None:
        os.symlink(other, tmp_path / "next")
        os.replace(tmp_path / "next", link)

    with on_first_read(source, swap) as swapped:
        asset = world["stub"].ImportAsset(pb.ImportAssetRequest(path=str(link)), timeout=30)
    assert swapped.is_set() and os.readlink(link) == str(other)
    assert (asset.sha256, asset.source_path) == (_sha(source.read_bytes()), str(source))


# --- 13. temporaries of a killed export -------------------------------------------------------------------


def test_stale_export_temporaries_are_removed(world):
    folder = world["folder"] / "exports"
    folder.mkdir()
    old = export_module.STARTED - 3600
    stale_file = folder / ".recast-export-k1ll3d_.mp4"
    stale_dir = folder / ".recast-export-x9y8z7w6"
    stale_file.write_bytes(b"half a movie")
    stale_dir.mkdir()
    (stale_dir / "frame_000000.png").write_bytes(b"png")
    for p in (stale_dir / "frame_000000.png", stale_dir, stale_file):
        os.utime(p, (old, old))
    fresh = folder / ".recast-export-inflight.mp4"  # newer than this daemon: someone's export in progress
    fresh.write_bytes(b"being written")
    unrelated = folder / ".recast-exported-notes.txt"
    unrelated.write_bytes(b"mine")
    os.utime(unrelated, (old, old))
    _export(world, folder / "out.mp4")
    assert sorted(os.listdir(folder)) == sorted([fresh.name, unrelated.name, "out.mp4"])


# --- 14. stalled streams ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """A daemon with one upload and one frame stream at a time, cut after 1 s of silence."""
    root = short_tmp()
    with InProcess(root / "no-such-model", root=root, max_upload_streams=1, max_frame_streams=1,
                   stream_idle_timeout=1.0) as d:
        folder = tmp_path_factory.mktemp("streams")
        noise = np.random.default_rng(0).integers(0, 256, (40, 256, 256, 3), np.uint8)
        video = folder / "noise.avi"
        video_io.write_video(video, noise, 12.0, codec="FFV1")  # lossless: ~200 KB a PNG frame
        asset = d.stub.ImportAsset(pb.ImportAssetRequest(path=str(video)))
        clip = d.stub.CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id))
        yield d, clip


def test_stalled_upload_is_cut_and_frees_its_slot(streams):
    d, _ = streams
    data = cv2.imencode(".png", make_frames(1)[0])[1].tobytes()
    release = threading.Event()

    def stalled():
        requests = upload_requests(data, "slow.png")
        yield next(requests)
        release.wait(30)

    try:
        first = d.stub.UploadAsset.future(stalled(), timeout=30)
        time.sleep(0.3)
        code, details = _code(lambda: upload(d.stub, data, "second.png"))
        assert code == C.RESOURCE_EXHAUSTED and "upload streams" in details, details
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as exc:
            first.result()
        assert exc.value.code() == C.DEADLINE_EXCEEDED and "sent nothing" in exc.value.details()
        assert time.monotonic() - t0 < 5
    finally:
        release.set()
    assert upload(d.stub, data, "after.png").width == 64  # the slot is free again
    assert os.listdir(d.config.data_dir / "blobs" / "tmp") == []  # the stalled upload left nothing


def test_stalled_frame_stream_is_cut_and_frees_its_slot(streams):
    d, clip = streams
    # No BDP probing: the client's window stays small, so a client that stops reading stalls sends.
    channel = grpc.insecure_channel(f"unix:{d.config.socket_path}", options=[("grpc.http2.bdp_probe", 0)])
    try:
        stub = pb_grpc.EngineStub(channel)
        stalled = stub.GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id), timeout=60)
        next(stalled)
        time.sleep(0.3)
        code, details = _code(lambda: list(d.stub.GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id))))
        assert code == C.RESOURCE_EXHAUSTED and "frame streams" in details, details
        time.sleep(2.0)  # the stalled client is cut after 1 s
        with pytest.raises(grpc.RpcError) as exc:
            for _ in stalled:
                pass
        assert exc.value.code() == C.DEADLINE_EXCEEDED and "read nothing" in exc.value.details()
    finally:
        channel.close()
    frames = list(d.stub.GetClipFrames(pb.GetClipFramesRequest(clip_id=clip.clip_id, end=3), timeout=30))
    assert [f.frame_index for f in frames] == [0, 1, 2]
