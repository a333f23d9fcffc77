"""Video and image I/O through OpenCV. Frames are RGB uint8 arrays shaped (frames, h, w, 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError


def probe_video(path: str | os.PathLike, field: str = "source") -> tuple[int, float, int, int]:
    """(frame count, fps, height, width) from the header, without decoding; refuses unreadable files."""
    p = Path(path)
    if not p.is_file():
        raise InputError(field, f"{p} does not exist or is not a file")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise InputError(field, f"{p.name} is not a readable video")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 24.0
        h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()
    if count <= 0 or h <= 0 or w <= 0:
        raise InputError(field, f"{p.name} holds no video frames")
    return count, fps, h, w


def check_range(start: int, end: int | None, count: int) -> tuple[int, int]:
    """Validate a frame range [start, end) against a clip of `count` frames."""
    end = count if end is None else end
    if start < 0 or end <= start:
        raise InputError("range", f"{start}:{end} is empty or negative; give START:END with 0 <= START < END")
    if end > count:
        raise InputError("range", f"{start}:{end} is outside the clip, which has {count} frames (0:{count})")
    return start, end


def iter_frames(
    path: str | os.PathLike, start: int, end: int, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """RGB frames [start, end) decoded one at a time with one open: flat memory, and no seeking, so the
    frames are exact in every container and the same for every caller.

    `size` (height, width) is the probed size: limits were checked against it, so a frame that decodes
    to any other size is refused before it is used (a crafted or damaged file).
    """
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError("source", f"{path} can no longer be opened")
        for _ in range(start):
            if not cap.grab():
                raise InputError("range", f"frame {start} is past the decodable end of the video")
        for i in range(start, end):
            ok, bgr = cap.read()
            if not ok:
                raise InputError("range", f"frame {i} could not be decoded (the video ends early)")
            if size is not None and bgr.shape[:2] != tuple(size):
                raise InputError(
                    "source",
                    f"{Path(path).name}: frame {i} decodes to {bgr.shape[1]}x{bgr.shape[0]} but the header says "
                    f"{size[1]}x{size[0]}; the file is damaged or crafted, re-encode it",
                )
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


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
