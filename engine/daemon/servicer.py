"""The recast.v1 Engine servicer.

The servicer is deliberately thin: validate the request (limits first, before any decoding),
translate it into a call on the daemon's components, translate the answer back. Every handler is
wrapped (engine.daemon.status) so that errors reach clients with their documented status code and
a bug reaches them as INTERNAL with a message, never as UNKNOWN.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import grpc

from engine.daemon import media
from engine.daemon.assets import check_id
from engine.daemon.export import export
from engine.daemon.jobs import Draining, WrongState
from engine.daemon.retention import Freed, check_free_space
from engine.daemon.runner import settings_from_proto
from engine.daemon.security import PathRefused, is_local_peer
from engine.daemon.status import streaming, unary
from engine.daemon.streams import StreamSlots, received, sent
from engine.errors import InputError, LimitError
from protos.job_states import ENDED_STATES, TERMINAL_EVENTS
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc


class DaemonParts(Protocol):
    """What the servicer delegates to: the running daemon's components (engine.daemon.app.Daemon)."""

    config: Any
    limits: Any
    storage: Any
    events: Any
    assets: Any
    clips: Any
    masks: Any
    jobs: Any
    runners: Any
    retention: Any

    @property
    def draining(self) -> bool: ...

    def engine_info(self) -> pb.EngineInfo: ...

    def private_roots(self) -> list[Path]: ...


class EngineServicer(pb_grpc.EngineServicer):
    def __init__(self, daemon: DaemonParts):
        self.d = daemon
        self._watch_limit = daemon.config.max_watch_streams
        self._watch_slots = threading.BoundedSemaphore(self._watch_limit)
        self._upload_slots = StreamSlots("upload", daemon.config.max_upload_streams)
        self._frame_slots = StreamSlots("frame", daemon.config.max_frame_streams)
        self._idle = daemon.config.stream_idle_timeout

    # --- helpers ----------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.d.draining:
            raise Draining("the daemon is shutting down; retry against the next one")

    def _room(self, field: str) -> None:
        """RESOURCE_EXHAUSTED before new bytes land on a disk that is nearly full."""
        check_free_space(self.d.config.data_dir, 0, self.d.config.min_free_bytes, field)

    @staticmethod
    def _local_only(context: grpc.ServicerContext, what: str) -> None:
        if not is_local_peer(context.peer()):
            raise PathRefused("path", f"{what} by path is only allowed for clients on the daemon's machine")

    def _check_job_request(self, req: pb.CreateMaskJobRequest | pb.CreateRenderJobRequest) -> None:
        req.DiscardUnknownFields()  # the request is stored and sent back by every GetJob and ListJobs
        self.d.clips.get(req.clip_id)
        self.d.limits.pipeline.check_prompt("source_prompt", req.source_prompt)
        self.d.limits.pipeline.check_prompt("target_prompt", req.target_prompt)
        target = self.d.assets.get(req.target_asset_id, "target_asset_id")
        if target.kind != pb.ASSET_KIND_IMAGE:
            raise InputError("target_asset_id", "must be an image asset (PNG or JPEG), not a video")
        settings_from_proto(req.settings)

    # --- info -------------------------------------------------------------------------------------

    @unary
    def GetEngineInfo(self, request: pb.GetEngineInfoRequest, context: grpc.ServicerContext) -> pb.EngineInfo:
        return self.d.engine_info()

    # --- assets and clips ---------------------------------------------------------------------------

    @unary
    def UploadAsset(self, request_iterator: Iterator[pb.UploadAssetRequest], context) -> pb.Asset:  # noqa: ANN001
        self._writable()
        self._room("upload")
        with self._upload_slots.hold("header", context):
            requests = received(context, request_iterator, self._idle, "chunk")
            return self.d.assets.message(self.d.assets.upload(requests))

    @unary
    def ImportAsset(self, request: pb.ImportAssetRequest, context: grpc.ServicerContext) -> pb.Asset:
        self._writable()
        self._local_only(context, "import")
        self._room("path")
        return self.d.assets.message(self.d.assets.import_path(request.path, self.d.private_roots()))

    @unary
    def GetAsset(self, request: pb.GetAssetRequest, context: grpc.ServicerContext) -> pb.Asset:
        return self.d.assets.message(self.d.assets.get(request.asset_id))

    @unary
    def CreateClip(self, request: pb.CreateClipRequest, context: grpc.ServicerContext) -> pb.Clip:
        self._writable()
        row = self.d.clips.create(request.asset_id, request.start_frame, request.end_frame)
        return self.d.clips.message(row)

    @unary
    def GetClip(self, request: pb.GetClipRequest, context: grpc.ServicerContext) -> pb.Clip:
        return self.d.clips.message(self.d.clips.get(request.clip_id))

    @streaming
    def GetClipFrames(self, request: pb.GetClipFramesRequest, context: grpc.ServicerContext):  # noqa: ANN201
        clip = self.d.clips.get(request.clip_id)
        with self._frame_slots.hold("clip_id", context):
            frames = self.d.clips.iter_frames(clip, request.start, request.end)
            replies = (pb.FrameImage(frame_index=i, image=media.image_message(media.fit(f, request.max_size)))
                       for i, f in frames)
            yield from sent(context, replies, self._idle)

    # --- jobs -------------------------------------------------------------------------------------

    @unary
    def CreateMaskJob(self, request: pb.CreateMaskJobRequest, context: grpc.ServicerContext) -> pb.Job:
        self._writable()
        self._check_job_request(request)
        self._room("clip_id")
        row = self.d.jobs.submit(pb.JOB_KIND_MASK, request.clip_id, request.SerializeToString())
        return self.d.jobs.message(row)

    @unary
    def CreateRenderJob(self, request: pb.CreateRenderJobRequest, context: grpc.ServicerContext) -> pb.Job:
        self._writable()
        self._check_job_request(request)
        self._room("clip_id")
        if request.use_latest_masks:
            if self.d.storage.latest_mask_version(request.clip_id) == 0:
                raise WrongState("use_latest_masks: the clip has no mask versions yet; run a mask job first")
        elif request.mask_version:
            self.d.masks.version(request.clip_id, request.mask_version, "mask_version")
        row = self.d.jobs.submit(pb.JOB_KIND_RENDER, request.clip_id, request.SerializeToString())
        return self.d.jobs.message(row)

    @unary
    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.Job:
        check_id("job_id", request.job_id)
        return self.d.jobs.message(self.d.jobs.get(request.job_id))

    @unary
    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        if request.clip_id:
            check_id("clip_id", request.clip_id)
        if request.asset_id:
            check_id("asset_id", request.asset_id)
        for i, s in enumerate(request.states):
            if s not in pb.JobState.values() or s == pb.JOB_STATE_UNSPECIFIED:
                raise InputError(f"states[{i}]", f"{s} is not a job state")
        limit = request.limit or 100
        if limit > 1000:
            raise InputError("limit", "must be at most 1000")
        rows = self.d.jobs.list(request.clip_id, list(request.states), limit, request.asset_id)
        return pb.ListJobsResponse(jobs=[self.d.jobs.message(r) for r in rows])

    @unary
    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext) -> pb.Job:
        check_id("job_id", request.job_id)
        return self.d.jobs.message(self.d.jobs.cancel(request.job_id))

    @unary
    def ResumeJob(self, request: pb.ResumeJobRequest, context: grpc.ServicerContext) -> pb.Job:
        self._writable()
        check_id("job_id", request.job_id)
        return self.d.jobs.message(self.d.jobs.resume(request.job_id))

    @streaming
    def Watch(self, request: pb.WatchRequest, context: grpc.ServicerContext):  # noqa: ANN201
        """Replays stored events from `from_seq`, then follows live ones until a terminal event.

        `context.add_callback` wakes the wait when the client goes away, so an abandoned stream
        frees its server thread at once; the job itself is never affected.
        """
        check_id("job_id", request.job_id)
        self.d.jobs.get(request.job_id)
        gone = threading.Event()

        def on_done() -> None:
            gone.set()
            self.d.events.wake_all()

        if not self._watch_slots.acquire(blocking=False):
            raise LimitError(
                "job_id", f"{self._watch_limit} Watch streams are open, the limit; close streams you no longer read"
            )
        try:
            context.add_callback(on_done)
            yield from self._follow(request, gone)
        finally:
            self._watch_slots.release()

    def _follow(self, request: pb.WatchRequest, gone: threading.Event):  # noqa: ANN202
        next_seq = max(1, request.from_seq)
        while True:
            batch = self.d.events.read(request.job_id, next_seq)
            for event in batch:
                next_seq = event.seq + 1
                kind = event.WhichOneof("event")
                if kind in ("preview", "provisional_mask") and request.skip_previews:
                    continue
                if kind == "result_frame" and not request.skip_result_images:
                    self._fill_result(event)
                yield event
            if gone.is_set():
                return
            last = self.d.events.last_seq(request.job_id)
            if batch and batch[-1].WhichOneof("event") in TERMINAL_EVENTS and last < next_seq:
                return
            if not batch and last < next_seq:
                if (
                    self.d.jobs.get(request.job_id).state in ENDED_STATES
                    and self.d.events.last_seq(request.job_id) < next_seq
                ):
                    return  # asked for events after the end of a finished job: nothing will come
                if self.d.draining:
                    raise Draining("the daemon is shutting down; re-attach with from_seq to the next one")
                self.d.events.wait(request.job_id, next_seq - 1, timeout=1.0)

    def _fill_result(self, event: pb.JobEvent) -> None:
        row = self.d.storage.db.query_one(
            "SELECT * FROM job_results WHERE job_id=? AND frame_index=?",
            (event.job_id, event.result_frame.frame_index),
        )
        if row is None:  # replaced by a re-run after a resume; the later events carry the new ones
            return
        clip = self.d.clips.get(self.d.jobs.get(event.job_id).clip_id)
        if row.frame_blob:
            event.result_frame.image.CopyFrom(
                media.png_message(self.d.storage.blobs.get(row.frame_blob), clip.width, clip.height)
            )
        event.result_frame.mask.CopyFrom(
            media.png_message(self.d.storage.blobs.get(row.mask_blob), clip.width, clip.height)
        )

    @streaming
    def GetResultFrames(self, request: pb.GetResultFramesRequest, context: grpc.ServicerContext):  # noqa: ANN201
        check_id("job_id", request.job_id)
        job = self.d.jobs.get(request.job_id)
        if job.kind != pb.JOB_KIND_RENDER:
            raise WrongState("job_id: only render jobs have result frames (mask jobs make mask versions)")
        clip = self.d.clips.get(job.clip_id)
        start, end = self.d.clips.range(clip, request.start, request.end)
        rows = self.d.storage.db.query(
            "SELECT * FROM job_results WHERE job_id=? AND frame_index>=? AND frame_index<? AND frame_blob!='' "
            "ORDER BY frame_index",
            (request.job_id, start, end),
        )
        replies = (
            pb.ResultFrame(
                frame_index=r.frame_index,
                image=media.png_message(self.d.storage.blobs.get(r.frame_blob), clip.width, clip.height),
                mask=media.png_message(self.d.storage.blobs.get(r.mask_blob), clip.width, clip.height),
            )
            for r in rows
        )
        with self._frame_slots.hold("job_id", context):
            yield from sent(context, replies, self._idle)

    # --- masks ------------------------------------------------------------------------------------

    @unary
    def ListMaskVersions(
        self, request: pb.ListMaskVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListMaskVersionsResponse:
        rows = self.d.masks.versions(request.clip_id)
        return pb.ListMaskVersionsResponse(versions=[self.d.masks.message(r) for r in rows])

    @streaming
    def GetMasks(self, request: pb.GetMasksRequest, context: grpc.ServicerContext):  # noqa: ANN201
        clip = self.d.clips.get(request.clip_id)
        frames = self.d.masks.frames(request.clip_id, request.version, request.start, request.end)
        replies = (pb.MaskFrame(frame_index=i, mask=media.png_message(d, clip.width, clip.height)) for i, d in frames)
        with self._frame_slots.hold("clip_id", context):
            yield from sent(context, replies, self._idle)

    @unary
    def SaveMaskVersion(self, request: pb.SaveMaskVersionRequest, context: grpc.ServicerContext) -> pb.MaskVersion:
        self._writable()
        return self.d.masks.message(self.d.masks.save_painted(request))

    # --- export -----------------------------------------------------------------------------------

    @unary
    def Export(self, request: pb.ExportRequest, context: grpc.ServicerContext) -> pb.ExportResponse:
        self._writable()
        check_id("job_id", request.job_id)
        self._local_only(context, "export")
        job = self.d.jobs.get(request.job_id)
        clip = self.d.clips.get(job.clip_id)
        protected = self.d.assets.protected_paths()
        return export(self.d.storage, self.d.jobs, request, protected, self.d.private_roots(), clip.fps)

    # --- deletion -----------------------------------------------------------------------------------

    @unary
    def DeleteJob(self, request: pb.DeleteJobRequest, context: grpc.ServicerContext) -> pb.DeleteResponse:
        self._writable()
        check_id("job_id", request.job_id)
        return self._deleted(self.d.retention.delete_job(request.job_id))

    @unary
    def DeleteClip(self, request: pb.DeleteClipRequest, context: grpc.ServicerContext) -> pb.DeleteResponse:
        self._writable()
        check_id("clip_id", request.clip_id)
        return self._deleted(self.d.retention.delete_clip(request.clip_id))

    @unary
    def DeleteAsset(self, request: pb.DeleteAssetRequest, context: grpc.ServicerContext) -> pb.DeleteResponse:
        self._writable()
        check_id("asset_id", request.asset_id)
        return self._deleted(self.d.retention.delete_asset(request.asset_id))

    def _deleted(self, freed: Freed) -> pb.DeleteResponse:
        for job_id in freed.jobs:  # a deleted job can no longer be resumed
            self.d.runners.drop_checkpoint(job_id)
        return pb.DeleteResponse(blobs_deleted=freed.blobs, bytes_freed=freed.bytes)
