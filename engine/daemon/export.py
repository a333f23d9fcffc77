"""Export of a finished render to a new MP4 file or a new folder of PNGs.

Why "new path only": exports land next to the editor's media; overwriting anything (least of all the
source clip) would destroy work. The export is written under a temporary name in the target folder
and then moved to its final name without replacing anything (`publish`). Hard links are never
needed, so exports work on exFAT, FAT and SMB volumes and for folders. Temporaries that a killed
daemon left behind are removed by the next export into the same folder.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

from engine.daemon import media
from engine.daemon.jobs import JobManager, WrongState
from engine.daemon.security import resolve_export_path
from engine.daemon.status import path_error
from engine.daemon.storage import Storage, _fsync_dir
from engine.errors import InputError
from engine.runtime import video_io
from protos.recast.v1 import engine_pb2 as pb

TMP_PREFIX = ".recast-export-"
_TMP_NAME = re.compile(r"^\.recast-export-[A-Za-z0-9_]+(\.mp4)?$")  # what mkstemp/mkdtemp name ours
# Temporaries older than this process are leftovers of a daemon that was killed mid-export.
STARTED = time.time()


def export(
    storage: Storage,
    jobs: JobManager,
    req: pb.ExportRequest,
    protected: list[Path],
    private_roots: list[Path],
    clip_fps: float,
) -> pb.ExportResponse:
    job = jobs.get(req.job_id)
    if job.kind != pb.JOB_KIND_RENDER:
        raise WrongState("job_id: only render jobs can be exported")
    if job.state != pb.JOB_STATE_SUCCEEDED:
        raise WrongState(f"job_id: job is {pb.JobState.Name(job.state)}; export needs a SUCCEEDED render")
    if req.format not in (pb.EXPORT_FORMAT_MP4, pb.EXPORT_FORMAT_PNG_SEQUENCE):
        raise InputError("format", "choose EXPORT_FORMAT_MP4 or EXPORT_FORMAT_PNG_SEQUENCE")
    if req.fps < 0 or req.fps > 1000 or req.fps != req.fps:
        raise InputError("fps", f"{req.fps} is not a frame rate in (0, 1000]")
    try:
        target = resolve_export_path(req.path, protected, private_roots)
        check_name(target)
    except OSError as exc:
        raise path_error("path", exc) from None
    except RuntimeError:  # how Python 3.11's pathlib reports a symlink loop
        raise path_error("path", OSError(errno.ELOOP, os.strerror(errno.ELOOP), req.path)) from None
    rows = storage.db.query(
        "SELECT frame_index, frame_blob FROM job_results WHERE job_id=? AND frame_blob!='' ORDER BY frame_index",
        (req.job_id,),
    )
    if not rows:
        raise WrongState("job_id: the render has no stored frames")
    clean_stale(target.parent)
    try:
        if req.format == pb.EXPORT_FORMAT_PNG_SEQUENCE:
            size = _png_folder(storage, [r.frame_blob for r in rows], target)
        else:
            size = _mp4(storage, [r.frame_blob for r in rows], target, req.fps or clip_fps or 24.0)
    except FileExistsError:
        raise FileExistsError(f"path: {target} appeared while exporting; nothing was overwritten") from None
    except OSError as exc:
        raise path_error("path", exc) from None
    return pb.ExportResponse(path=str(target), frame_count=len(rows), size_bytes=size)


def check_name(target: Path) -> None:
    """Names the file system cannot hold fail here, before anything is rendered to disk."""
    name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    path_max = os.pathconf(target.parent, "PC_PATH_MAX")
    if len(os.fsencode(target.name)) > name_max or len(os.fsencode(str(target))) >= path_max:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(target))


def clean_stale(folder: Path) -> None:
    """Removes this user's export temporaries in `folder` that are older than this daemon."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not _TMP_NAME.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_uid != os.getuid() or st.st_mtime >= STARTED:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(entry.path)
        except OSError:
            pass  # another daemon's cleanup, or not ours to remove: leave it


# mkstemp/mkdtemp create 0600/0700; exports get the modes a plain open()/mkdir() would give, so an
# editor under another account or on shared storage can read them. Read once, before worker threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _png_folder(storage: Storage, blobs: list[str], target: Path) -> int:
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        size = 0
        for i, digest in enumerate(blobs):
            data = storage.blobs.get(digest)  # the stored blob is already the PNG file
            with open(tmp / f"frame_{i:06d}.png", "xb") as f:  # open() honours the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            size += len(data)
        _fsync_dir(tmp)
        publish(tmp, target)
        return size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mp4(storage: Storage, blobs: list[str], target: Path, fps: float) -> int:
    """Frames are decoded and written one at a time: memory stays flat however long the clip."""
    import cv2

    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".mp4", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    writer = None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        for digest in blobs:
            rgb = media.decode_rgb(storage.blobs.get(digest), "frame")
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
                if not writer.isOpened():
                    raise _write_failed(tmp, "could not open an mp4v writer")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if writer is not None:
            writer.release()
            writer = None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _check_written(tmp, len(blobs))
        publish(tmp, target)
        return target.stat().st_size
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)


def _check_written(tmp: Path, frames: int) -> None:
    """A movie that does not read back whole is not published."""
    try:
        count = video_io.probe_video(tmp, "path")[0]
    except InputError:
        count = 0
    if count != frames:
        raise _write_failed(tmp, f"the MP4 writer stored {count} of {frames} frames")


def _write_failed(tmp: Path, what: str) -> OSError:
    """OpenCV's writer drops the OS error; a full disk is the usual cause, and is named as such."""
    if shutil.disk_usage(tmp.parent).free < 1 << 20:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp.parent))
    return OSError(errno.EIO, what, str(tmp))


# --- exclusive publish --------------------------------------------------------------------------------

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _renameat2():  # noqa: ANN202 - the libc function, or None where there is none
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    return fn


_RENAMEAT2 = _renameat2()


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Atomic rename that never replaces `dst` (FileExistsError if it exists); False where the kernel
    or the file system (NFS, some FUSE) cannot do it."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


def publish(tmp: Path, target: Path) -> None:
    """Moves a finished file or folder `tmp` to the new name `target` in the same folder; never
    replaces anything (FileExistsError) and never leaves a half-written `target`."""
    if not rename_noreplace(tmp, target):
        copy_exclusive(tmp, target)
    _fsync_dir(target.parent)


def copy_exclusive(tmp: Path, target: Path) -> None:
    """The fallback of `publish`: create `target` exclusively (O_EXCL / mkdir), then fill it from
    `tmp`; on any failure the partial `target`, which this call created, is removed."""
    if tmp.is_dir():
        os.mkdir(target)  # FileExistsError if the name appeared: nothing is overwritten
        try:
            os.chmod(target, stat.S_IMODE(os.stat(tmp).st_mode))
            for entry in sorted(os.listdir(tmp)):
                os.rename(tmp / entry, target / entry)  # same folder tree, a name only we know
            _fsync_dir(target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        os.rmdir(tmp)
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(os.stat(tmp).st_mode))
    try:
        with open(tmp, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        os.unlink(target)
        raise
    os.unlink(tmp)
