"""One edit of a frame range of a media file, from file paths to edited media in a new folder.

Why one module: the JSON bridge, the OTIO conform and (through the JSON bridge) the Blender add-on
all do the same thing — hand the daemon the source and the target image, render exactly the frames
asked for, and write the result beside the source in a folder that did not exist before. Keeping it
in one place keeps the "never write over anything" rule in one place too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plugin_bridge.client import EXPORT_FORMATS, RecastClient
from plugin_bridge.errors import Cancelled, InvalidArgument, PermissionDenied, ResourceExhausted
from plugin_bridge.sequence import MAX_SEQUENCE_IMAGES
from protos.recast.v1 import engine_pb2 as pb

EDITS_FOLDER = "recast_edits"


@dataclass
class EditSpec:
    """What to edit: frames [start_frame, end_frame) of `source` (end 0 = to the end).

    `source` is a movie or image file, or a list of image files (an image sequence, packed into a
    lossless movie of just the frames to edit; `fps` is then its frame rate).
    """

    source: Path | list[Path]
    target_image: Path
    source_prompt: str
    target_prompt: str
    start_frame: int = 0
    end_frame: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    output_format: str = "png"  # "png" (a folder of frame_000000.png …) or "mp4"
    output_dir: Path | None = None  # a new folder; default <source folder>/recast_edits/<stem>_<start>-<end>
    name: str = ""  # shown in folder names and sidecars (a timeline clip's name)
    source_asset_id: str = ""  # the source already imported (skips a second copy into the daemon)
    fps: float = 0.0  # frame rate of an image-sequence source (default 24)

    @property
    def anchor(self) -> Path:
        """The file the output folder goes beside: the movie, or the sequence's first image."""
        return Path(self.source[0] if isinstance(self.source, (list, tuple)) else self.source)


@dataclass
class EditResult:
    job_id: str
    clip_id: str
    folder: str  # the new folder holding everything the edit wrote
    media: str  # the PNG folder or the MP4 file inside it
    format: str
    frame_count: int
    fps: float
    width: int
    height: int
    start_frame: int
    end_frame: int
    files: list[str]  # PNG file names (png format) or [mp4 name]

    def to_dict(self) -> dict:
        return asdict(self)


def check_spec(spec: EditSpec) -> None:
    """Cheap local checks, so a typo is reported before anything is copied into the daemon."""
    sequence = isinstance(spec.source, (list, tuple))
    sources = list(spec.source) if sequence else [spec.source]
    if not sources:
        raise InvalidArgument("source: the image sequence is empty")
    if len(sources) > MAX_SEQUENCE_IMAGES:
        raise InvalidArgument(f"source: {len(sources)} images; a sequence may have at most {MAX_SEQUENCE_IMAGES}")
    if spec.start_frame < 0 or spec.end_frame < 0 or (spec.end_frame and spec.end_frame <= spec.start_frame):
        raise InvalidArgument(
            f"start_frame: [{spec.start_frame}, {spec.end_frame}) is not a frame range (end exclusive, 0 = to the end)"
        )
    if sequence and (spec.end_frame > len(sources) or spec.start_frame >= len(sources)):
        raise InvalidArgument(f"end_frame: [{spec.start_frame}, {spec.end_frame}) is past the sequence's "
                              f"{len(sources)} images")
    used = sources[spec.start_frame:spec.end_frame or None] if sequence else sources
    for name, path in [("source", p) for p in used] + [("target_image", spec.target_image)]:
        if not Path(path).is_file():
            raise InvalidArgument(f"{name}: {path} does not exist or is not a file")
    for name in ("source_prompt", "target_prompt"):
        if not str(getattr(spec, name) or "").strip():
            raise InvalidArgument(f"{name}: must not be empty")
    if spec.output_format not in EXPORT_FORMATS:
        raise InvalidArgument(f"output.format: {spec.output_format!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if spec.output_dir is not None:
        out = Path(spec.output_dir)
        if os.path.lexists(out):
            raise InvalidArgument(f"output.path: {out} exists; the bridge only writes into new folders")
        if not out.parent.is_dir():
            raise InvalidArgument(f"output.path: folder {out.parent} does not exist")


def output_base(spec: EditSpec) -> Path:
    """The folder the edit's new folder goes into."""
    if spec.output_dir is not None:
        return Path(spec.output_dir).absolute().parent
    return spec.anchor.absolute().parent / EDITS_FOLDER


def _write_error(field: str, folder: Path, exc: OSError) -> Exception:
    kind = PermissionDenied if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else InvalidArgument
    return kind(f"{field}: cannot write in {folder} ({exc.strerror}); make it writable, or choose another "
                "folder (--media-dir, output.path)")


def probe_writable(folder: Path, field: str) -> None:
    """Create and remove a file in `folder` (or its nearest existing parent): a read-only media volume
    fails now, in a second, and not after the render."""
    while not folder.is_dir() and folder.parent != folder:
        folder = folder.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".recast-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise _write_error(field, folder, exc) from None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "clip"


def new_folder(spec: EditSpec, start: int, end: int) -> Path:
    """Create (exclusively) the folder the edit writes into; never an existing one."""
    try:
        if spec.output_dir is not None:
            out = Path(spec.output_dir).absolute()
            out.mkdir()  # FileExistsError if it appeared meanwhile: nothing is overwritten
            return out
        base = output_base(spec)
        base.mkdir(exist_ok=True)
        stem = _slug(spec.name or spec.anchor.stem)
        for n in range(1, 10000):
            candidate = base / (f"{stem}_{start}-{end}" + (f"_{n}" if n > 1 else ""))
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except FileExistsError:
        raise InvalidArgument(f"output.path: {spec.output_dir} appeared meanwhile; choose a new folder") from None
    except OSError as exc:
        raise _write_error("output.path", output_base(spec), exc) from None
    raise InvalidArgument(f"output.path: too many edits of {stem} in {base}")


def _remove_if_empty(folder: Path) -> None:
    """Undo `new_folder` after a failed edit: the folder, and recast_edits too when it is left empty."""
    try:
        folder.rmdir()  # only if empty: nothing an export or the user put there is touched
        if folder.parent.name == EDITS_FOLDER:
            folder.parent.rmdir()
    except OSError:
        pass


def run_edit(
    client: RecastClient,
    spec: EditSpec,
    on_event: Callable[[pb.JobEvent], None] | None = None,
    on_job: Callable[[pb.Job], None] | None = None,
    cancel: threading.Event | None = None,
) -> EditResult:
    """Import source and target, render the clip, export into a new folder, write a sidecar.

    `on_job` gets the queued job at once (so a host can cancel it); `cancel`, if set before the
    job exists, cancels it as soon as it does.
    """
    check_spec(spec)
    probe_writable(output_base(spec), "output.path")  # before anything is imported or rendered
    offset = 0  # an image sequence is packed from start_frame on: its clip frames are shifted
    if isinstance(spec.source, (list, tuple)):
        from plugin_bridge.sequence import packed_movie

        images = list(spec.source)[spec.start_frame:spec.end_frame or None]
        limit = client.info().limits.max_clip_frames
        if limit and len(images) > limit:
            raise ResourceExhausted(f"end_frame: {len(images)} images exceed the daemon's limit of {limit} frames "
                                    "per clip; edit a shorter range")
        with packed_movie(images, spec.fps or 24.0) as movie:
            source = client.add_media(movie)  # the daemon keeps its own copy; the temp file goes
        clip = client.create_clip(source.asset_id, 0, 0)
        offset = spec.start_frame
    else:
        source = client.get_asset(spec.source_asset_id) if spec.source_asset_id else client.add_media(spec.source)
        if source.kind not in (pb.ASSET_KIND_VIDEO, pb.ASSET_KIND_IMAGE):
            raise InvalidArgument(f"source: {spec.source} is not a video or an image")
        clip = client.create_clip(source.asset_id, spec.start_frame, spec.end_frame)
    folder = new_folder(spec, offset + clip.start_frame, offset + clip.end_frame)  # before the job is queued
    try:
        target = client.add_media(spec.target_image)
        if target.kind != pb.ASSET_KIND_IMAGE:
            raise InvalidArgument(f"target_image: {spec.target_image} is not an image (PNG or JPEG)")
        job = client.create_render_job(clip.clip_id, spec.source_prompt, spec.target_prompt, target.asset_id,
                                       spec.settings)
        if on_job is not None:
            on_job(job)
        if cancel is not None and cancel.is_set():
            client.cancel(job.job_id)
        client.wait(job.job_id, on_event=on_event)
        if cancel is not None and cancel.is_set():  # finished in the same instant the host cancelled
            raise Cancelled(f"job {job.job_id} was cancelled")
        if spec.output_format == "png":
            media = folder / "frames"
        else:
            media = folder / f"{_slug(spec.name or spec.anchor.stem)}_recast.mp4"
        exported = client.export(job.job_id, media, spec.output_format, fps=clip.fps)
    except BaseException:
        _remove_if_empty(folder)
        raise
    files = sorted(os.listdir(media)) if spec.output_format == "png" else [media.name]
    result = EditResult(
        job_id=job.job_id, clip_id=clip.clip_id, folder=str(folder), media=exported.path, format=spec.output_format,
        frame_count=exported.frame_count, fps=clip.fps, width=clip.width, height=clip.height,
        start_frame=offset + clip.start_frame, end_frame=offset + clip.end_frame, files=files,
    )
    sidecar = {
        "recast_edit": 1,
        "source": [str(Path(p).absolute()) for p in spec.source] if isinstance(spec.source, (list, tuple))
        else str(Path(spec.source).absolute()),
        "target_image": str(Path(spec.target_image).absolute()),
        "source_prompt": spec.source_prompt,
        "target_prompt": spec.target_prompt,
        "settings": dict(spec.settings),
        **result.to_dict(),
    }
    with open(folder / "recast.json", "x") as f:
        json.dump(sidecar, f, indent=2)
    return result
