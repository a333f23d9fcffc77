"""Assets (uploaded or imported media) and clips (frame ranges of an asset).

Why copy imports into the store: the engine must never modify, or depend on the later state of, a
user's original file. Why probe headers only: limits are enforced before anything is decoded.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.daemon import media
from engine.daemon.limits import Limits
from engine.daemon.security import resolve_import_path
from engine.daemon.status import DataLoss, NotFound, path_error
from engine.daemon.storage import Row, Storage, new_id, now_ms
from engine.errors import InputError
from protos.recast.v1 import engine_pb2 as pb

_SHA = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9a-f]{1,64}$")
_COPY_CHUNK = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a path re-linked after it was checked is refused (ELOOP)


def check_id(field: str, value: str) -> str:
    """Ids are lowercase hex; anything else cannot exist (and never reaches SQL or a path)."""
    if not value:
        raise InputError(field, "is required")
    if not _ID.match(value):
        raise NotFound(f"{field}: no object with id {value[:80]!r}")
    return value


def check_filename(name: str) -> str:
    if not name:
        raise InputError("header.filename", "is required (e.g. 'shot.mp4')")
    if len(name) > 255 or "\x00" in name or "/" in name or "\\" in name or name in (".", ".."):
        raise InputError("header.filename", f"{name[:80]!r} must be a plain file name without folders")
    return name


class Assets:
    def __init__(self, storage: Storage, limits: Limits):
        self.storage = storage
        self.limits = limits

    def upload(self, requests: Iterator[pb.UploadAssetRequest]) -> Row:
        """Header first (validated before any byte is stored), then ≤ 1 MiB chunks, then sha256."""
        first = next(requests, None)
        if first is None or not first.HasField("header"):
            raise InputError("header", "the first message of an upload must carry the header")
        header = first.header
        filename = check_filename(header.filename)
        if header.size_bytes <= 0:
            raise InputError("header.size_bytes", "must be > 0")
        self.limits.check_asset_size("header.size_bytes", header.size_bytes)
        expected = header.sha256.lower()
        if not _SHA.match(expected):
            raise InputError("header.sha256", "must be 64 hex characters (sha256 of the file)")
        writer = self.storage.blobs.writer()
        try:
            for i, req in enumerate(_chain(first, requests)):
                if i > 0 and req.HasField("header"):
                    raise InputError("header", "only the first message may carry a header")
                self.limits.check_chunk("chunk", len(req.chunk))
                if writer.size + len(req.chunk) > header.size_bytes:
                    raise InputError("chunk", f"more bytes than header.size_bytes ({header.size_bytes})")
                writer.write(req.chunk)
            if writer.size != header.size_bytes:
                raise InputError("chunk", f"got {writer.size} bytes, header.size_bytes says {header.size_bytes}")
            if writer.hexdigest() != expected:
                raise DataLoss(
                    f"header.sha256: the received bytes hash to {writer.hexdigest()}, not {expected}; "
                    "nothing was stored, upload again"
                )
            info = self._probe(writer.staged_path(), "file")  # nothing unreadable enters the store
            digest = writer.commit()
        except BaseException:
            writer.discard()
            raise
        return self._register(digest, filename, header.size_bytes, "", info)

    def import_path(self, raw_path: str, private_roots: list[Path]) -> Row:
        """Copy a local file into the store: opened once, and exactly the size its descriptor had
        when opened is copied and probed, so a file that grows, or is replaced or re-linked while
        it is imported, can neither slip past the limits nor swap what was checked."""
        try:
            path = resolve_import_path(raw_path, private_roots)
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise path_error("path", exc) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError("path", f"{path} is not a regular file")
            if st.st_size <= 0:
                raise InputError("path", f"{path} is empty")
            self.limits.check_asset_size("path", st.st_size)
            writer = self.storage.blobs.writer()
            try:
                left = st.st_size
                while left:
                    chunk = f.read(min(_COPY_CHUNK, left))
                    if not chunk:
                        raise InputError("path", f"{path} shrank while it was imported; import it once it is complete")
                    writer.write(chunk)
                    left -= len(chunk)
                info = self._probe(writer.staged_path(), "path")  # the copy, not the path, is what is stored
                digest = writer.commit()
            except BaseException as exc:
                writer.discard()
                if isinstance(exc, OSError):
                    raise path_error("path", exc) from None
                raise
        row = self._register(digest, path.name, st.st_size, str(path), info)
        self.storage.db.execute("INSERT OR IGNORE INTO imported_paths VALUES (?,?)", (str(path), digest))
        return row

    def _probe(self, path: Path, field: str) -> media.MediaInfo:
        info = media.probe(path, field)
        if info.kind == pb.ASSET_KIND_IMAGE:
            self.limits.check_image(field, info.width, info.height)
            info = media.confirm_image(path, info, field)
        return info

    def _register(self, digest: str, filename: str, size: int, source_path: str, info: media.MediaInfo) -> Row:
        existing = self.storage.db.query_one("SELECT * FROM assets WHERE asset_id=?", (digest,))
        if existing is not None:
            return existing
        self.storage.db.execute(
            "INSERT OR IGNORE INTO assets VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                digest,
                info.kind,
                filename,
                size,
                info.width,
                info.height,
                info.frame_count,
                info.fps,
                source_path,
                now_ms(),
            ),
        )
        return self.get(digest)

    def get(self, asset_id: str, field: str = "asset_id") -> Row:
        check_id(field, asset_id)
        row = self.storage.db.query_one("SELECT * FROM assets WHERE asset_id=?", (asset_id,))
        if row is None:
            raise NotFound(f"{field}: no asset {asset_id!r}")
        return row

    def protected_paths(self) -> list[Path]:
        """Original files of imports: exports must never write onto them."""
        return [Path(r.path) for r in self.storage.db.query("SELECT path FROM imported_paths")]

    def read_image(self, asset_id: str, field: str) -> np.ndarray:
        """A target image as RGB uint8 (limits were checked at registration)."""
        row = self.get(asset_id, field)
        if row.kind != pb.ASSET_KIND_IMAGE:
            raise InputError(field, "must be an image asset (PNG or JPEG), not a video")
        return media.decode_rgb(self.storage.blobs.get(asset_id), field)

    def message(self, row: Row) -> pb.Asset:
        return pb.Asset(
            asset_id=row.asset_id,
            kind=row.kind,
            filename=row.filename,
            size_bytes=row.size_bytes,
            sha256=row.asset_id,
            width=row.width,
            height=row.height,
            frame_count=row.frame_count,
            fps=row.fps,
            source_path=row.source_path,
        )


def _chain(first: pb.UploadAssetRequest, rest: Iterator[pb.UploadAssetRequest]) -> Iterator[pb.UploadAssetRequest]:
    yield first
    yield from rest


class Clips:
    def __init__(self, storage: Storage, assets: Assets, limits: Limits):
        self.storage = storage
        self.assets = assets
        self.limits = limits

    def create(self, asset_id: str, start: int, end: int) -> Row:
        asset = self.assets.get(asset_id)
        end = end or asset.frame_count
        if start >= asset.frame_count:
            raise InputError("start_frame", f"{start} is past the asset's last frame ({asset.frame_count - 1})")
        if end > asset.frame_count:
            raise InputError("end_frame", f"{end} is past the asset's end ({asset.frame_count} frames)")
        if end <= start:
            raise InputError("end_frame", f"{end} must be greater than start_frame {start}")
        self.limits.pipeline.check_clip(end - start, asset.height, asset.width, field="end_frame")
        clip_id = new_id()
        self.storage.db.execute(
            "INSERT INTO clips VALUES (?,?,?,?,?,?,?,?)",
            (clip_id, asset_id, start, end, asset.width, asset.height, asset.fps, now_ms()),
        )
        return self.get(clip_id)

    def get(self, clip_id: str, field: str = "clip_id") -> Row:
        check_id(field, clip_id)
        row = self.storage.db.query_one("SELECT * FROM clips WHERE clip_id=?", (clip_id,))
        if row is None:
            raise NotFound(f"{field}: no clip {clip_id!r}")
        return row

    def range(self, clip: Row, start: int, end: int) -> tuple[int, int]:
        """A half-open range inside the clip; end 0 = the clip's end."""
        n = clip.end_frame - clip.start_frame
        end = end or n
        if start >= n:
            raise InputError("start", f"{start} is past the clip's last frame ({n - 1})")
        if end > n or end <= start:
            raise InputError("end", f"{end} must be in ({start}, {n}]")
        return start, end

    def read_frames(self, clip: Row, start: int = 0, end: int = 0) -> np.ndarray:
        """Decoded RGB frames (N, H, W, 3) of [start, end) inside the clip."""
        from engine.runtime.video_io import read_frames

        start, end = self.range(clip, start, end)
        asset = self.assets.get(clip.asset_id)
        path = self.storage.blobs.path(asset.asset_id)
        if asset.kind == pb.ASSET_KIND_IMAGE:
            return media.decode_rgb(self.storage.blobs.get(asset.asset_id), "asset", (asset.height, asset.width))[None]
        frames, _ = read_frames(path, clip.start_frame + start, clip.start_frame + end)  # checked per frame
        return frames

    def iter_frames(self, clip: Row, start: int = 0, end: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(index in clip, RGB frame) of [start, end), decoded one at a time (thumbnails, previews)."""
        start, end = self.range(clip, start, end)
        asset = self.assets.get(clip.asset_id)
        if asset.kind == pb.ASSET_KIND_IMAGE:
            yield 0, media.decode_rgb(self.storage.blobs.get(asset.asset_id), "asset", (asset.height, asset.width))
            return
        frames = media.iter_video_frames(
            self.storage.blobs.path(asset.asset_id),
            clip.start_frame + start,
            clip.start_frame + end,
            (asset.height, asset.width),
        )
        yield from enumerate(frames, start)

    def message(self, row: Row) -> pb.Clip:
        return pb.Clip(
            clip_id=row.clip_id,
            asset_id=row.asset_id,
            start_frame=row.start_frame,
            end_frame=row.end_frame,
            frame_count=row.end_frame - row.start_frame,
            width=row.width,
            height=row.height,
            fps=row.fps,
            created_unix_ms=row.created_ms,
        )
