"""Video reading through PyAV (FFmpeg): frame-exact by presentation order, exact rational rates, rotation,
colour tags and timecode. Images and the legacy OpenCV writer stay on OpenCV. Frames are RGB uint8
arrays shaped (frames, h, w, 3); writers that keep the source's depth are in media_out.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError


@dataclass(frozen=True)
class MediaInfo:
    """What a video file's headers say, read without decoding a frame (sizes are upright: rotation applied)."""

    count: int
    rate: Fraction  # average rate, exact: 24000/1001, never 2997/125
    height: int
    width: int
    pix_fmt: str
    bits: int  # the deepest component's bits per sample (8, 10, 12, 16)
    rotation: int  # quarter turns counterclockwise applied on read (0..3)
    color: dict[str, int] = field(default_factory=dict)  # primaries, trc, space, range (FFmpeg enum values)
    timecode: str | None = None  # the first frame's timecode, "HH:MM:SS:FF" (";" before FF: drop-frame)
    audio: tuple[int, ...] = ()  # indexes of the audio streams
    start_time: Fraction = Fraction(0)  # the video stream's first timestamp, seconds

    @property
    def fps(self) -> float:
        return float(self.rate)


def open_media(path: str | os.PathLike, field_name: str = "source"):  # noqa: ANN201 - av.InputContainer
    """Open with PyAV; an unreadable or corrupt file is one InputError naming the field."""
    import av

    p = Path(path)
    if not p.is_file():
        raise InputError(field_name, f"{p} does not exist or is not a file")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(field_name, f"{p.name} is not a readable video ({exc.__class__.__name__})") from None


def _timecode(container, stream) -> str | None:
    """mov keeps it on the video or tmcd stream, Matroska and MXF on the file."""
    for meta in (stream.metadata, *(s.metadata for s in container.streams if s.type == "data"), container.metadata):
        for key in ("timecode", "TIMECODE"):
            if meta.get(key):
                return str(meta[key])
    return None


def _quarter_turns(container, stream) -> int:
    """Display-matrix rotation (phones record portrait this way). PyAV exposes it on frames only, so the
    first frame is decoded; a file whose first frame does not decode is reported by the reader."""
    import av

    try:
        frame = next(container.decode(stream), None)
    except av.FFmpegError:
        frame = None
    return turns_of(frame) if frame is not None else 0


def probe_media(path: str | os.PathLike, field_name: str = "source") -> MediaInfo:
    """Header facts without decoding; a frame count the header lacks (Matroska) is counted from packets."""
    import av

    p = Path(path)
    with open_media(p, field_name) as c:
        if not c.streams.video:
            raise InputError(field_name, f"{p.name} has no video stream")
        s = c.streams.video[0]
        cc = s.codec_context
        h, w = int(cc.height or 0), int(cc.width or 0)
        rate = s.average_rate or s.guessed_rate or s.base_rate or Fraction(24)
        count = int(s.frames or 0)
        if count <= 0:  # Matroska has no frame count: count the packets (no decoding)
            try:
                count = sum(1 for pkt in c.demux(s) if pkt.size)
            except av.FFmpegError:
                count = 0
            c.seek(0)
        turns = _quarter_turns(c, s)
        fmt = cc.format
        bits = max((comp.bits for comp in fmt.components), default=8) if fmt is not None else 8
        info = MediaInfo(
            count=count, rate=Fraction(rate), height=w if turns % 2 else h, width=h if turns % 2 else w,
            pix_fmt=fmt.name if fmt is not None else "", bits=bits, rotation=turns,
            color={"primaries": int(cc.color_primaries), "trc": int(cc.color_trc),
                   "space": int(cc.colorspace), "range": int(cc.color_range)},
            timecode=_timecode(c, s), audio=tuple(a.index for a in c.streams.audio),
            start_time=Fraction(s.start_time or 0) * s.time_base if s.time_base else Fraction(0),
        )
    if count <= 0 or h <= 0 or w <= 0:
        raise InputError(field_name, f"{p.name} holds no video frames")
    return info


def probe_video(path: str | os.PathLike, field: str = "source") -> tuple[int, float, int, int]:
    """(frame count, fps, height, width) from the header, without decoding; refuses unreadable files."""
    info = probe_media(path, field)
    return info.count, info.fps, info.height, info.width


def check_range(start: int, end: int | None, count: int) -> tuple[int, int]:
    """Validate a frame range [start, end) against a clip of `count` frames."""
    end = count if end is None else end
    if start < 0 or end <= start:
        raise InputError("range", f"{start}:{end} is empty or negative; give START:END with 0 <= START < END")
    if end > count:
        raise InputError("range", f"{start}:{end} is outside the clip, which has {count} frames (0:{count})")
    return start, end


def iter_native(path: str | os.PathLike, start: int, end: int, size: tuple[int, int] | None = None,
                field_name: str = "source") -> Iterator:
    """Decoded frames [start, end) as PyAV frames at the source's own pixel format and depth, counted in
    presentation order (the decoder's output order; B-frames reordered, variable rates by timestamp).
    One open, no seeking: frame-exact in every container. `size` (height, width, upright) is the probed
    size the limits were checked against; a frame that decodes to another size is refused."""
    import av

    with open_media(path, field_name) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        i = 0
        try:
            for frame in c.decode(stream):
                if i >= end:
                    break
                if i >= start:
                    fh, fw = (frame.width, frame.height) if turns_of(frame) % 2 else (frame.height, frame.width)
                    if size is not None and (fh, fw) != tuple(size):
                        raise InputError(
                            field_name,
                            f"{Path(path).name}: frame {i} decodes to {fw}x{fh} but the header says "
                            f"{size[1]}x{size[0]}; the file is damaged or crafted, re-encode it",
                        )
                    yield frame
                i += 1
        except av.FFmpegError as exc:
            raise InputError(field_name, f"{Path(path).name}: frame {i} could not be decoded ({exc})") from None
    if i < end:
        raise InputError("range", f"frame {i} could not be decoded (the video ends early at {i} of {end})")


def turns_of(frame) -> int:
    """Quarter turns counterclockwise that make `frame` upright (FFmpeg's autorotate convention)."""
    return round((frame.rotation or 0) / 90) % 4


def upright(image: np.ndarray, turns: int) -> np.ndarray:
    """Applies the display rotation (quarter turns counterclockwise) so frames come out upright."""
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def iter_frames(
    path: str | os.PathLike, start: int, end: int, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """RGB uint8 frames [start, end), upright, decoded one at a time (flat memory); see `iter_native`.
    Deeper sources are converted to 8 bits here: the model works on 8-bit; outputs that keep depth
    decode the source again (engine/runtime/media_out.py)."""
    for frame in iter_native(path, start, end, size):
        yield upright(frame.to_ndarray(format="rgb24"), turns_of(frame))


def read_frames(path: str | os.PathLike, start: int = 0, end: int | None = None) -> tuple[np.ndarray, float]:
    """Decode frames [start, end) as RGB into one array of the probed size (each frame is checked
    against it, so memory never exceeds what the limits allowed); the clip's fps is returned so
    outputs keep it."""
    count, fps, h, w = probe_video(path)
    start, end = check_range(start, end, count)
    frames = np.empty((end - start, h, w, 3), np.uint8)
    for i, frame in enumerate(iter_frames(path, start, end, (h, w))):
        frames[i] = frame
    return frames, fps


def read_image(path: str | os.PathLike, field: str = "target_image") -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise InputError(field, f"{p} does not exist or is not a file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(field, f"{p} is not an image OpenCV can read (use PNG or JPEG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_image_bytes(data: bytes, field: str = "target_image") -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise InputError(field, "is not an image OpenCV can read (use PNG or JPEG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write RGB (h, w, 3) or gray (h, w) uint8 as PNG."""
    arr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), arr):
        raise OSError(f"could not write {path}")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, codec: str = "mp4v") -> None:
    """Write RGB frames; mp4v for .mp4 (H.264 writing is not available in OpenCV wheels)."""
    n, h, w = frames.shape[:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"could not open a {codec} video writer for {path}")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR) if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
