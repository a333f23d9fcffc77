"""Blocking engine calls with the studio's vocabulary (numpy frames, asset frame indices).

Every function here runs on a worker thread (desktop.client.workers), never on the GUI thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from desktop.imaging import decode_png, encode_png, thumbnail
from desktop.model.masks import MaskVersionInfo
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

_CHUNK = 1 << 20
_KINDS = {pb.MASK_VERSION_KIND_AUTO: "auto", pb.MASK_VERSION_KIND_PAINTED: "painted"}
FrameSink = Callable[[int, np.ndarray, np.ndarray], None]  # index, rgb, thumbnail


def import_or_upload(stub: pb_grpc.EngineStub, path: Path, local: bool = True) -> pb.Asset:
    """Import by path (local daemon: no copy over the wire), else upload in 1 MiB chunks."""
    path = Path(path).resolve()
    if local:
        return stub.ImportAsset(pb.ImportAssetRequest(path=str(path)), timeout=120)
    data = path.read_bytes()

    def chunks() -> Iterator[pb.UploadAssetRequest]:
        header = pb.UploadHeader(filename=path.name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        yield pb.UploadAssetRequest(header=header)
        for i in range(0, len(data), _CHUNK):
            yield pb.UploadAssetRequest(chunk=data[i : i + _CHUNK])

    return stub.UploadAsset(chunks(), timeout=300)


def create_clip(stub: pb_grpc.EngineStub, asset_id: str, start: int = 0, end: int = 0) -> pb.Clip:
    return stub.CreateClip(pb.CreateClipRequest(asset_id=asset_id, start_frame=start, end_frame=end), timeout=60)


def stream_frames(stub: pb_grpc.EngineStub, clip_id: str, sink: FrameSink, thumb_size: int = 96,
                  max_size: int = 0, offset: int = 0) -> None:
    """Source frames of a clip, decoded, delivered one by one as they arrive."""
    req = pb.GetClipFramesRequest(clip_id=clip_id, max_size=max_size)
    for f in stub.GetClipFrames(req, timeout=600):
        rgb = decode_png(f.image.data)
        sink(offset + f.frame_index, rgb, thumbnail(rgb, thumb_size))


def mask_versions(stub: pb_grpc.EngineStub, clip_id: str) -> list[MaskVersionInfo]:
    resp = stub.ListMaskVersions(pb.ListMaskVersionsRequest(clip_id=clip_id), timeout=30)
    return [MaskVersionInfo(v.version, _KINDS.get(v.kind, "?"), v.base_version, v.note, v.frame_count)
            for v in resp.versions]


def masks(stub: pb_grpc.EngineStub, clip_id: str, version: int, offset: int) -> dict[int, np.ndarray]:
    """One mask version's frames keyed by asset frame index (clip frame + offset)."""
    req = pb.GetMasksRequest(clip_id=clip_id, version=version)
    return {offset + m.frame_index: decode_png(m.mask.data, grey=True) for m in stub.GetMasks(req, timeout=120)}


def save_masks(stub: pb_grpc.EngineStub, clip_id: str, base_version: int, frames: dict[int, np.ndarray],
               note: str) -> MaskVersionInfo:
    """Painted frames (clip frame index → mask) as a new PAINTED version; returns it once durable."""
    msgs = [pb.MaskFrame(frame_index=i, mask=pb.Image(width=m.shape[1], height=m.shape[0],
                                                      encoding=pb.Image.ENCODING_PNG, data=encode_png(m)))
            for i, m in frames.items()]
    v = stub.SaveMaskVersion(pb.SaveMaskVersionRequest(clip_id=clip_id, base_version=base_version, frames=msgs,
                                                       note=note), timeout=120)
    return MaskVersionInfo(v.version, _KINDS.get(v.kind, "?"), v.base_version, v.note, v.frame_count)


def result_frames(stub: pb_grpc.EngineStub, job_id: str) -> dict[int, np.ndarray]:
    return {r.frame_index: decode_png(r.image.data)
            for r in stub.GetResultFrames(pb.GetResultFramesRequest(job_id=job_id), timeout=300)}


def export(stub: pb_grpc.EngineStub, job_id: str, path: Path, fmt: str) -> pb.ExportResponse:
    f = pb.EXPORT_FORMAT_MP4 if fmt == "mp4" else pb.EXPORT_FORMAT_PNG_SEQUENCE
    return stub.Export(pb.ExportRequest(job_id=job_id, format=f, path=str(Path(path).absolute())), timeout=600)


def active_jobs(stub: pb_grpc.EngineStub) -> list[pb.Job]:
    states = [pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING]
    return list(stub.ListJobs(pb.ListJobsRequest(states=states, limit=100), timeout=30).jobs)
