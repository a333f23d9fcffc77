"""SDK calls whose answers the studio wants as pictures: numpy frames and masks keyed by asset frame.

The calls are RecastClient's; this module only decodes (and encodes) PNGs and shifts engine clip
frame indices by the clip's start, so they run on worker threads (desktop.client.workers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from desktop.imaging import decode_png, encode_png, thumbnail
from desktop.model.masks import MaskVersionInfo
from plugin_bridge.client import RecastClient
from protos.recast.v1 import engine_pb2 as pb

_KINDS = {pb.MASK_VERSION_KIND_AUTO: "auto", pb.MASK_VERSION_KIND_PAINTED: "painted"}
FrameSink = Callable[[int, np.ndarray, np.ndarray], None]  # index, rgb, thumbnail


def stream_frames(client: RecastClient, clip_id: str, sink: FrameSink, thumb_size: int = 96,
                  max_size: int = 0, offset: int = 0) -> None:
    """Source frames of a clip, decoded, delivered one by one as they arrive."""
    for f in client.iter_clip_frames(clip_id, max_size=max_size, timeout=600):
        rgb = decode_png(f.image.data)
        sink(offset + f.frame_index, rgb, thumbnail(rgb, thumb_size))


def version_info(v: pb.MaskVersion) -> MaskVersionInfo:
    return MaskVersionInfo(v.version, _KINDS.get(v.kind, "?"), v.base_version, v.note, v.frame_count)


def mask_versions(client: RecastClient, clip_id: str) -> list[MaskVersionInfo]:
    return [version_info(v) for v in client.mask_versions(clip_id)]


def masks(client: RecastClient, clip_id: str, version: int, offset: int) -> dict[int, np.ndarray]:
    """One mask version's frames keyed by asset frame index (clip frame + offset)."""
    return {offset + m.frame_index: decode_png(m.mask.data, grey=True) for m in client.masks(clip_id, version)}


def save_masks(client: RecastClient, clip_id: str, base_version: int, frames: dict[int, np.ndarray],
               note: str) -> MaskVersionInfo:
    """Painted frames (clip frame index → mask) as a new PAINTED version; returns it once durable."""
    return version_info(client.save_masks(clip_id, base_version, {i: encode_png(m) for i, m in frames.items()},
                                          note))


def result_frames(client: RecastClient, job_id: str) -> dict[int, np.ndarray]:
    return {r.frame_index: decode_png(r.image.data) for r in client.result_frames(job_id)}
