"""Media helpers of the daemon: probing assets from their headers, PNG in and out of messages.

Why separate from engine.runtime.video_io: the daemon must learn sizes *without decoding* (limits are
checked first) and moves pictures as PNG bytes, never as files.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from engine.errors import InputError
from engine.runtime import video_io
from protos.recast.v1 import engine_pb2 as pb

PILImage.MAX_IMAGE_PIXELS = None  # our own limit (Limits.max_image_pixels) is checked from the header


@dataclass(frozen=True)
class MediaInfo:
    kind: int  # pb.AssetKind
    width: int
    height: int
    frame_count: int
    fps: float


def image_header(path_or_file, field: str) -> tuple[int, int]:
    """(width, height) from an image header; nothing is decoded."""
    try:
        with PILImage.open(path_or_file) as im:
            return int(im.width), int(im.height)
    except Exception as exc:  # PIL raises many types for garbage input
        raise InputError(field, f"is not a readable image ({type(exc).__name__})") from exc


def probe(path: Path, field: str) -> MediaInfo:
    """Image or video, and its sizes, from the file's header only."""
    try:
        with PILImage.open(path) as im:
            return MediaInfo(pb.ASSET_KIND_IMAGE, int(im.width), int(im.height), 1, 0.0)
    except Exception:
        pass
    count, fps, h, w = video_io.probe_video(path, field)
    return MediaInfo(pb.ASSET_KIND_VIDEO, w, h, count, fps)


def confirm_image(path: Path, info: MediaInfo, field: str) -> MediaInfo:
    """Decode an image once (after its header passed the limits) and keep the size it decodes to.

    Why: decoders apply EXIF orientation that the header does not show (a 64x48 phone JPEG turned
    sideways decodes to 48x64), and every later decode is checked against the registered size.
    A decode with another pixel count than the header's is a damaged or crafted file.
    """
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(field, "is not an image OpenCV can decode (use PNG or JPEG)")
    h, w = img.shape[:2]
    if w * h != info.width * info.height:
        raise InputError(
            field, f"decodes to {w}x{h} but its header says {info.width}x{info.height}; the file is damaged or crafted"
        )
    return MediaInfo(info.kind, w, h, info.frame_count, info.fps)


def iter_video_frames(path: Path, start: int, end: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """RGB frames [start, end), one at a time, each checked to be `size` (height, width): the same
    decoding the CLI uses."""
    return video_io.iter_frames(path, start, end, size)


def encode_png(array: np.ndarray) -> bytes:
    """RGB (h, w, 3) or grey (h, w) uint8 → PNG bytes (fast compression: frames stream live)."""
    arr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(array: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(array, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def decode_rgb(data: bytes, field: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """PNG or JPEG bytes → RGB; with `size` (height, width) the picture must decode to exactly that."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise InputError(field, "is not a readable image (PNG or JPEG)")
    if size is not None and img.shape[:2] != tuple(size):
        raise InputError(
            field, f"decodes to {img.shape[1]}x{img.shape[0]}, not the registered {size[1]}x{size[0]}; import it again"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_mask(data: bytes, width: int, height: int, field: str) -> np.ndarray:
    """A painted mask: any image at exactly the clip's size; > 127 counts as edit → 0/255."""
    if not data:
        raise InputError(field, "is empty; send a grey PNG")
    w, h = image_header(io.BytesIO(data), field)
    if (w, h) != (width, height):
        raise InputError(field, f"is {w}x{h}; masks must be {width}x{height} like the clip")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(field, "is not a readable image (PNG)")
    if img.shape != (height, width):  # e.g. an EXIF orientation the header does not show
        raise InputError(field, f"decodes to {img.shape[1]}x{img.shape[0]}; masks must be {width}x{height}")
    return np.where(img > 127, 255, 0).astype(np.uint8)


def image_message(array: np.ndarray, jpeg: bool = False) -> pb.Image:
    h, w = array.shape[:2]
    if jpeg:
        return pb.Image(width=w, height=h, encoding=pb.Image.ENCODING_JPEG, data=encode_jpeg(array))
    return pb.Image(width=w, height=h, encoding=pb.Image.ENCODING_PNG, data=encode_png(array))


def png_message(data: bytes, width: int, height: int) -> pb.Image:
    return pb.Image(width=width, height=height, encoding=pb.Image.ENCODING_PNG, data=data)


def fit(array: np.ndarray, max_size: int) -> np.ndarray:
    """Scale down so the longer side is ≤ max_size (thumbnails, previews)."""
    h, w = array.shape[:2]
    if max_size <= 0 or max(h, w) <= max_size:
        return array
    s = max_size / max(h, w)
    return cv2.resize(array, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
