"""Mask versions of a clip: AUTO ones from mask jobs, PAINTED ones from clients; never overwritten.

Why versions instead of edits in place: an editor must be able to go back to what the engine
proposed, or to an earlier correction, and a crash mid-save must never damage a saved version.
A save returns only after its blobs and rows are durable.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engine.daemon import media
from engine.daemon.assets import Clips
from engine.daemon.status import NotFound
from engine.daemon.storage import Row, Storage
from engine.errors import InputError
from protos.recast.v1 import engine_pb2 as pb


class Masks:
    def __init__(self, storage: Storage, clips: Clips):
        self.storage = storage
        self.clips = clips

    def versions(self, clip_id: str) -> list[Row]:
        self.clips.get(clip_id)
        return self.storage.db.query("SELECT * FROM mask_versions WHERE clip_id=? ORDER BY version", (clip_id,))

    def version(self, clip_id: str, version: int, field: str = "version") -> Row:
        """Version N, or the newest for 0."""
        self.clips.get(clip_id)
        if version == 0:
            version = self.storage.latest_mask_version(clip_id)
            if version == 0:
                raise NotFound(f"{field}: clip {clip_id!r} has no mask versions yet; run a mask job")
        row = self.storage.db.query_one("SELECT * FROM mask_versions WHERE clip_id=? AND version=?", (clip_id, version))
        if row is None:
            raise NotFound(f"{field}: clip {clip_id!r} has no mask version {version}")
        return row

    def frames(self, clip_id: str, version: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        clip = self.clips.get(clip_id)
        row = self.version(clip_id, version)
        start, end = self.clips.range(clip, start, end)
        blobs = self.storage.mask_blobs(clip_id, row.version)
        for i in range(start, end):
            if i in blobs:
                yield i, self.storage.blobs.get(blobs[i])

    def arrays(self, clip_id: str, version: int, field: str) -> tuple[int, np.ndarray]:
        """All masks of a version as (N, H, W) uint8 0/255, for a render."""
        clip = self.clips.get(clip_id)
        row = self.version(clip_id, version, field)
        blobs = self.storage.mask_blobs(clip_id, row.version)
        n = clip.end_frame - clip.start_frame
        out = np.zeros((n, clip.height, clip.width), np.uint8)
        for i, digest in blobs.items():
            out[i] = media.decode_mask(self.storage.blobs.get(digest), clip.width, clip.height, field)
        return row.version, out

    def save_painted(self, req: pb.SaveMaskVersionRequest) -> Row:
        clip = self.clips.get(req.clip_id)
        if req.base_version == 0:
            raise InputError("base_version", "is required: the version the corrections were painted on")
        base = self.version(req.clip_id, req.base_version, "base_version")
        if len(req.note) > 1000:
            raise InputError("note", "is longer than 1000 characters")
        n = clip.end_frame - clip.start_frame
        blobs = dict(self.storage.mask_blobs(req.clip_id, base.version))
        seen: set[int] = set()
        for k, frame in enumerate(req.frames):
            field = f"frames[{k}]"
            if frame.frame_index >= n:
                raise InputError(f"{field}.frame_index", f"{frame.frame_index} is outside the clip (0..{n - 1})")
            if frame.frame_index in seen:
                raise InputError(f"{field}.frame_index", f"frame {frame.frame_index} is listed twice")
            seen.add(frame.frame_index)
            mask = media.decode_mask(frame.mask.data, clip.width, clip.height, f"{field}.mask")
            blobs[frame.frame_index] = self.storage.blobs.put(media.encode_png(mask))
        version = self.storage.add_mask_version(
            req.clip_id, pb.MASK_VERSION_KIND_PAINTED, blobs, base_version=base.version, note=req.note
        )
        return self.version(req.clip_id, version)

    def save_auto(self, clip_id: str, job_id: str, masks: np.ndarray) -> tuple[int, dict[int, str]]:
        blobs = {i: self.storage.blobs.put(media.encode_png(np.ascontiguousarray(m))) for i, m in enumerate(masks)}
        version = self.storage.add_mask_version(clip_id, pb.MASK_VERSION_KIND_AUTO, blobs, job_id=job_id)
        return version, blobs

    @staticmethod
    def message(row: Row) -> pb.MaskVersion:
        return pb.MaskVersion(
            clip_id=row.clip_id,
            version=row.version,
            kind=row.kind,
            base_version=row.base_version,
            job_id=row.job_id,
            created_unix_ms=row.created_ms,
            frame_count=row.frame_count,
            note=row.note,
        )
