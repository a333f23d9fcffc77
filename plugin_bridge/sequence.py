"""Image sequences as sources: the frames to edit, packed into one lossless movie for the daemon.

Why: the daemon's clips come from one video (or image) asset, while VFX timelines and Blender image
strips point at numbered frames (PNG, TIFF, JPEG …). Only the frames to edit are packed, into an
FFV1 AVI (lossless, so the pixels outside the edit stay the source's byte for byte) in a temporary
folder that is gone once the daemon has its copy. OpenCV is imported only here, only when needed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from plugin_bridge.errors import InvalidArgument

# An image sequence longer than this (69 minutes at 24 fps) is a crafted or broken timeline: listing
# its files alone would exhaust memory. Edits use only their frame range, and the daemon caps that.
MAX_SEQUENCE_IMAGES = 100_000


def _read(path: Path):  # noqa: ANN202 - an RGB uint8 array
    import cv2
    import numpy as np

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        raise InvalidArgument(f"source: {path} is missing or not an image OpenCV reads (PNG, JPEG, TIFF, BMP …)")
    return img


@contextmanager
def packed_movie(paths: Sequence[str | os.PathLike], fps: float) -> Iterator[Path]:
    """Yield a temporary FFV1 .avi holding `paths` in order (all the same size)."""
    import cv2

    if not paths:
        raise InvalidArgument("source: the image sequence is empty")
    folder = Path(tempfile.mkdtemp(prefix="recast-sequence-"))
    try:
        out = folder / "sequence.avi"
        first = _read(Path(paths[0]))
        h, w = first.shape[:2]
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"FFV1"), float(fps or 24.0), (w, h))
        if not writer.isOpened():
            raise InvalidArgument("source: this OpenCV build cannot write FFV1; convert the sequence to a movie")
        try:
            for i, p in enumerate(paths):
                img = first if i == 0 else _read(Path(p))
                if img.shape[:2] != (h, w):
                    raise InvalidArgument(f"source: {p} is {img.shape[1]}x{img.shape[0]}, the sequence is {w}x{h}")
                writer.write(img)
        finally:
            writer.release()
        yield out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
