"""Showing a clip without an engine (snapshots, or while the engine is away): decoded locally.

Nothing can be computed on such a document — masks and renders need the engine's asset — but the
viewer and timeline work, so a bug report or docs screenshot never depends on a running daemon.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from desktop.imaging import thumbnail
from desktop.model.document import ClipInfo, Document
from plugin_bridge.errors import InvalidArgument


def open_locally(doc: Document, path: Path, max_frames: int = 2000) -> None:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InvalidArgument(f"Cannot read {path.name} as a video.")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 24.0
        frames = []
        while len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise InvalidArgument(f"{path.name} has no readable frames.")
    h, w = frames[0].shape[:2]
    doc.set_clip(ClipInfo(path.resolve(), "", "", len(frames), w, h, fps))
    for i, rgb in enumerate(frames):
        doc.set_frame(i, rgb, thumbnail(rgb, 96))
