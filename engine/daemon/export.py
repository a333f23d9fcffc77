"""Export of a finished render to a new MP4 file or a new folder of PNGs.

Why "new path only": exports land next to the editor's media; overwriting anything (least of all the
source clip) would destroy work. The file is written under a temporary name in the target folder and
then hard-linked to its final name, which fails if the name appeared meanwhile (exclusive create).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine.daemon import media
from engine.daemon.jobs import JobManager, WrongState
from engine.daemon.security import resolve_export_path
from engine.daemon.storage import Storage, _fsync_dir
from engine.errors import InputError
from protos.recast.v1 import engine_pb2 as pb


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
    target = resolve_export_path(req.path, protected, private_roots)
    rows = storage.db.query(
        "SELECT frame_index, frame_blob FROM job_results WHERE job_id=? AND frame_blob!='' ORDER BY frame_index",
        (req.job_id,),
    )
    if not rows:
        raise WrongState("job_id: the render has no stored frames")
    if req.format == pb.EXPORT_FORMAT_PNG_SEQUENCE:
        size = _png_folder(storage, [r.frame_blob for r in rows], target)
    else:
        size = _mp4(storage, [r.frame_blob for r in rows], target, req.fps or clip_fps or 24.0)
    return pb.ExportResponse(path=str(target), frame_count=len(rows), size_bytes=size)


# mkstemp/mkdtemp create 0600/0700; exports get the modes a plain open()/mkdir() would give, so an
# editor under another account or on shared storage can read them. Read once, before worker threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _png_folder(storage: Storage, blobs: list[str], target: Path) -> int:
    tmp = Path(tempfile.mkdtemp(prefix=".recast-export-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        size = 0
        for i, digest in enumerate(blobs):
            data = storage.blobs.get(digest)  # the stored blob is already the PNG file
            with open(tmp / f"frame_{i:06d}.png", "xb") as f:  # open() honours the umask
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            size += len(data)
        _fsync_dir(tmp)
        if os.path.lexists(target):
            raise FileExistsError(f"path: {target} appeared while exporting; nothing was overwritten")
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return size
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _mp4(storage: Storage, blobs: list[str], target: Path, fps: float) -> int:
    """Frames are decoded and written one at a time: memory stays flat however long the clip."""
    import cv2

    fd, name = tempfile.mkstemp(prefix=".recast-export-", suffix=".mp4", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    writer = None
    try:
        for digest in blobs:
            rgb = media.decode_rgb(storage.blobs.get(digest), "frame")
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
                if not writer.isOpened():
                    raise OSError(f"could not open an mp4v writer for {target}")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if writer is not None:
            writer.release()
            writer = None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.link(tmp, target)  # atomic exclusive create: fails if the name exists
        _fsync_dir(target.parent)
        return target.stat().st_size
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
