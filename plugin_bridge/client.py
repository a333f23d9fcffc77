"""`RecastClient`: a small synchronous SDK over the recast.v1 gRPC contract (DESIGN.md §7).

Why synchronous: host scripts (conform tools, render-farm hooks, the JSON bridge) run one edit at a
time and want plain calls and a `for event in client.watch(job)` loop; the studio makes the same
calls from its worker threads. Every failed call raises a typed `plugin_bridge.errors` exception;
nothing from grpc leaks out. Watch streams re-attach with `from_seq` after a dropped connection,
so a caller never misses an event.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc

from plugin_bridge import discovery
from plugin_bridge.discovery import Endpoint
from plugin_bridge.errors import (
    BridgeError,
    Cancelled,
    DaemonNotFound,
    FailedPrecondition,
    InvalidArgument,
    JobInterrupted,
    Unavailable,
    error_for_code,
    from_rpc_error,
)
from plugin_bridge.settings import settings_message
from protos.job_states import TERMINAL_EVENTS
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

CHUNK = 1 << 20  # the contract's upload chunk limit
MESSAGE_BYTES = 64 << 20
EXPORT_FORMATS = {"mp4": pb.EXPORT_FORMAT_MP4, "png": pb.EXPORT_FORMAT_PNG_SEQUENCE}


def _settings(settings: Mapping[str, Any] | pb.EditSettings | None) -> pb.EditSettings:
    """Settings by name (only those set are sent), or a message a front end built already."""
    return settings if isinstance(settings, pb.EditSettings) else settings_message(settings)


def _rpc(fn: Callable, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None


class RecastClient:
    """One channel to one daemon. Use `RecastClient.connect()` to find (or start) the user's daemon."""

    def __init__(self, endpoint: Endpoint, timeout: float = 60.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel = discovery.open_channel(  # carries the token, over TLS when the endpoint has a CA
            endpoint,
            options=[
                ("grpc.max_receive_message_length", MESSAGE_BYTES),
                ("grpc.max_send_message_length", MESSAGE_BYTES),
            ],
        )
        self.stub = pb_grpc.EngineStub(self.channel)

    # --- connecting -----------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        socket: str | os.PathLike | None = None,
        address: str | None = None,
        token_file: str | os.PathLike | None = None,
        start: bool = False,
        model: str | None = None,
        wait: float = 5.0,
        ready_timeout: float = 180.0,
        tls_ca: str | os.PathLike | None = None,
    ) -> RecastClient:
        """The first discovered daemon that answers; with `start`, spawn one if none does.

        Returns once the daemon's pipeline is loaded. `model`: the model a started daemon loads;
        a running daemon serving another model is refused (FAILED_PRECONDITION), since a daemon
        serves exactly one model. `tls_ca`: PEM CA of a daemon listening with --tls-cert (else
        $RECAST_ENGINE_TLS_CA); a token goes to a non-loopback address only over TLS.
        """
        tried: list[str] = []
        client = cls.find(discovery.candidates(socket, address, token_file, tls_ca=tls_ca), wait, tried)
        if client is not None:
            client.wait_pipeline(ready_timeout)
            client.check_model(model)
            return client
        if start and not address:
            _, endpoint = discovery.start_daemon(model=model, socket=socket, timeout=ready_timeout)
            client = cls(endpoint)
            if client._ready(wait):
                client.wait_pipeline(ready_timeout)
                client.check_model(model)
                return client
            client.close()
            tried.append(f"{endpoint.target} (started)")
        raise DaemonNotFound(
            "no recast engine daemon answered at " + ", ".join(tried)
            + "; start one with `recast-engine serve` (or let the bridge start it)"
        )

    @classmethod
    def find(
        cls, endpoints: Iterable[Endpoint], wait: float = 5.0, tried: list[str] | None = None,
        skip_draining: bool = False,
    ) -> RecastClient | None:
        """A client of the first endpoint whose daemon answers (its models may still be loading).

        A socket file that is not there is passed over without waiting; after the first miss each
        endpoint gets at most 2 s. Every miss is added to `tried`. `skip_draining` also passes over
        a daemon that is shutting down (its successor takes over the socket).
        """
        tried = [] if tried is None else tried
        for endpoint in endpoints:
            if endpoint.is_unix and not os.path.exists(endpoint.target[len("unix:"):]):
                tried.append(f"{endpoint.target} ({endpoint.source}; no such socket)")
                continue
            client = cls(endpoint)
            if client._ready(min(wait, 2.0) if tried else wait, skip_draining):
                return client
            client.close()
            tried.append(f"{endpoint.target} ({endpoint.source})")
        return None

    def _ready(self, timeout: float, skip_draining: bool = False) -> bool:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        try:
            info = self.info()
        except Unavailable:
            return False
        return not (skip_draining and info.draining)

    def wait_pipeline(self, timeout: float = 180.0) -> pb.EngineInfo:
        """Block until the daemon's models are loaded (health `pipeline` SERVING)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info()
            if info.pipeline_ready:
                return info
            if time.monotonic() > deadline:
                raise Unavailable(f"the daemon's pipeline did not load in {timeout:.0f} s")
            time.sleep(0.2)

    def check_model(self, model: str | None) -> None:
        if not model:
            return
        active = [m.name for m in self.info().models if m.active]
        if active and os.path.abspath(active[0]) != os.path.abspath(model) and active[0] != model:
            raise FailedPrecondition(
                f"model: the running daemon serves {active[0]!r}, not {model!r}; stop it "
                "(or start `recast-engine serve --model ...` yourself) to use another model"
            )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RecastClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- info ---------------------------------------------------------------------------------

    def info(self, timeout: float = 10.0) -> pb.EngineInfo:
        return _rpc(self.stub.GetEngineInfo, pb.GetEngineInfoRequest(), timeout=timeout)

    # --- assets and clips -----------------------------------------------------------------------

    def upload(self, path: str | os.PathLike, chunk_size: int = CHUNK) -> pb.Asset:
        """Stream a file in ≤ 1 MiB chunks with its sha256 (works with a remote daemon too)."""
        p = Path(path)
        if not p.is_file():
            raise InvalidArgument(f"path: {p} does not exist or is not a file")
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        header = pb.UploadHeader(filename=p.name, size_bytes=p.stat().st_size, sha256=digest.hexdigest())

        def requests() -> Iterator[pb.UploadAssetRequest]:
            yield pb.UploadAssetRequest(header=header)
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(min(chunk_size, CHUNK)), b""):
                    yield pb.UploadAssetRequest(chunk=block)

        return _rpc(self.stub.UploadAsset, requests(), timeout=max(self.timeout, 600))

    def import_file(self, path: str | os.PathLike) -> pb.Asset:
        """Let a local daemon copy the file itself (no bytes through the socket)."""
        return _rpc(
            self.stub.ImportAsset,
            pb.ImportAssetRequest(path=str(Path(path).absolute())),
            timeout=max(self.timeout, 600),
        )

    def add_media(self, path: str | os.PathLike) -> pb.Asset:
        """Import when the daemon is on this machine, upload otherwise."""
        p = Path(path)
        if not p.is_file():
            raise InvalidArgument(f"path: {p} does not exist or is not a file")
        return self.import_file(p) if self.endpoint.is_local else self.upload(p)

    def get_asset(self, asset_id: str) -> pb.Asset:
        return _rpc(self.stub.GetAsset, pb.GetAssetRequest(asset_id=asset_id), timeout=self.timeout)

    def create_clip(self, asset_id: str, start_frame: int = 0, end_frame: int = 0) -> pb.Clip:
        """Frames [start_frame, end_frame) of an asset; end 0 = to the end."""
        for name, value in (("start_frame", start_frame), ("end_frame", end_frame)):
            if not 0 <= value < 1 << 32:
                raise InvalidArgument(f"{name}: {value} is not a frame number (0 .. 2^32-1)")
        req = pb.CreateClipRequest(asset_id=asset_id, start_frame=start_frame, end_frame=end_frame)
        return _rpc(self.stub.CreateClip, req, timeout=self.timeout)

    def get_clip(self, clip_id: str) -> pb.Clip:
        return _rpc(self.stub.GetClip, pb.GetClipRequest(clip_id=clip_id), timeout=self.timeout)

    def clip_frames(self, clip_id: str, start: int = 0, end: int = 0, max_size: int = 0) -> list[pb.FrameImage]:
        return list(self.iter_clip_frames(clip_id, start, end, max_size))

    def iter_clip_frames(
        self, clip_id: str, start: int = 0, end: int = 0, max_size: int = 0, timeout: float | None = None,
    ) -> Iterator[pb.FrameImage]:
        """The clip's frames one at a time, as the daemon streams them (`timeout`: for the whole stream)."""
        req = pb.GetClipFramesRequest(clip_id=clip_id, start=start, end=end, max_size=max_size)
        try:
            yield from self.stub.GetClipFrames(req, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    # --- jobs ---------------------------------------------------------------------------------

    def create_mask_job(
        self, clip_id: str, source_prompt: str, target_prompt: str, target_asset_id: str,
        settings: Mapping[str, Any] | pb.EditSettings | None = None,
    ) -> pb.Job:
        req = pb.CreateMaskJobRequest(
            clip_id=clip_id, source_prompt=source_prompt, target_prompt=target_prompt,
            target_asset_id=target_asset_id, settings=_settings(settings),
        )
        return _rpc(self.stub.CreateMaskJob, req, timeout=self.timeout)

    def create_render_job(
        self, clip_id: str, source_prompt: str, target_prompt: str, target_asset_id: str,
        settings: Mapping[str, Any] | pb.EditSettings | None = None, mask_version: int = 0,
        use_latest_masks: bool = False,
    ) -> pb.Job:
        req = pb.CreateRenderJobRequest(
            clip_id=clip_id, source_prompt=source_prompt, target_prompt=target_prompt,
            target_asset_id=target_asset_id, settings=_settings(settings),
            mask_version=mask_version, use_latest_masks=use_latest_masks,
        )
        return _rpc(self.stub.CreateRenderJob, req, timeout=self.timeout)

    def get_job(self, job_id: str) -> pb.Job:
        return _rpc(self.stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout=self.timeout)

    def list_jobs(self, states: Iterable[int] = (), limit: int = 0) -> list[pb.Job]:
        """Jobs newest first, only those in `states` (JobState numbers) when given."""
        req = pb.ListJobsRequest(states=list(states), limit=limit)
        return list(_rpc(self.stub.ListJobs, req, timeout=self.timeout).jobs)

    def cancel(self, job_id: str) -> pb.Job:
        """Idempotent; a running job stops within one denoising step (watch for `cancelled`)."""
        return _rpc(self.stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout=self.timeout)

    def resume(self, job_id: str) -> pb.Job:
        return _rpc(self.stub.ResumeJob, pb.ResumeJobRequest(job_id=job_id), timeout=self.timeout)

    def delete_job(self, job_id: str) -> pb.DeleteResponse:
        """Deletes a finished, failed, cancelled or interrupted job with its results (cancel a waiting one first)."""
        return _rpc(self.stub.DeleteJob, pb.DeleteJobRequest(job_id=job_id), timeout=self.timeout)

    def delete_clip(self, clip_id: str) -> pb.DeleteResponse:
        """Deletes a clip with its mask versions, jobs and results."""
        return _rpc(self.stub.DeleteClip, pb.DeleteClipRequest(clip_id=clip_id), timeout=self.timeout)

    def delete_asset(self, asset_id: str) -> pb.DeleteResponse:
        """Deletes an asset's stored copy (refused while a clip is cut from it or a waiting job uses it)."""
        return _rpc(self.stub.DeleteAsset, pb.DeleteAssetRequest(asset_id=asset_id), timeout=self.timeout)

    def watch(
        self, job_id: str, from_seq: int = 0, previews: bool = False, result_images: bool = False,
        reconnect_seconds: float = 30.0,
    ) -> Iterator[pb.JobEvent]:
        """Every event of a job from `from_seq` until its terminal event.

        A dropped stream (daemon restart, flaky socket) re-attaches at last seq + 1 for up to
        `reconnect_seconds`, so the caller sees each event exactly once.
        """
        next_seq = max(1, from_seq)
        lost_since: float | None = None
        while True:
            req = pb.WatchRequest(job_id=job_id, from_seq=next_seq, skip_previews=not previews,
                                  skip_result_images=not result_images)
            try:
                for event in self.stub.Watch(req):
                    lost_since = None
                    next_seq = event.seq + 1
                    yield event
                    if event.WhichOneof("event") in TERMINAL_EVENTS:
                        return
                return  # the daemon ended the stream: the job was already over
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if not isinstance(err, Unavailable):
                    raise err from None
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > reconnect_seconds:
                    raise err from None
                time.sleep(0.5)

    def wait(
        self, job_id: str, on_event: Callable[[pb.JobEvent], None] | None = None, previews: bool = False,
        reconnect_seconds: float = 30.0,
    ) -> pb.Job:
        """Follow a job to its end; raises the typed error of a failed, cancelled or interrupted job."""
        last: pb.JobEvent | None = None
        for event in self.watch(job_id, previews=previews, reconnect_seconds=reconnect_seconds):
            last = event
            if on_event is not None:
                on_event(event)
        kind = last.WhichOneof("event") if last is not None else None
        if kind == "failed":
            raise error_for_code(last.failed.code, last.failed.message)
        if kind == "cancelled":
            raise Cancelled(f"job {job_id} was cancelled")
        if kind == "interrupted":
            raise JobInterrupted(f"job {job_id} was interrupted ({last.interrupted.reason}); resume it")
        job = self.get_job(job_id)
        if job.state != pb.JOB_STATE_SUCCEEDED:
            raise BridgeError(f"job {job_id} ended as {pb.JobState.Name(job.state)}: {job.error}")
        return job

    def result_frames(self, job_id: str, start: int = 0, end: int = 0) -> list[pb.ResultFrame]:
        req = pb.GetResultFramesRequest(job_id=job_id, start=start, end=end)
        return _rpc(lambda: list(self.stub.GetResultFrames(req, timeout=max(self.timeout, 300))))

    # --- masks --------------------------------------------------------------------------------

    def mask_versions(self, clip_id: str) -> list[pb.MaskVersion]:
        reply = _rpc(self.stub.ListMaskVersions, pb.ListMaskVersionsRequest(clip_id=clip_id),
                     timeout=self.timeout)
        return list(reply.versions)

    def masks(self, clip_id: str, version: int = 0) -> list[pb.MaskFrame]:
        req = pb.GetMasksRequest(clip_id=clip_id, version=version)
        return _rpc(lambda: list(self.stub.GetMasks(req, timeout=max(self.timeout, 300))))

    def save_masks(
        self, clip_id: str, base_version: int, frames: Mapping[int, bytes], note: str = ""
    ) -> pb.MaskVersion:
        """Painted corrections (grey PNG bytes per frame index) as a new version on `base_version`."""
        req = pb.SaveMaskVersionRequest(
            clip_id=clip_id, base_version=base_version, note=note,
            frames=[pb.MaskFrame(frame_index=i, mask=pb.Image(encoding=pb.Image.ENCODING_PNG, data=data))
                    for i, data in sorted(frames.items())],
        )
        return _rpc(self.stub.SaveMaskVersion, req, timeout=self.timeout)

    # --- export -------------------------------------------------------------------------------

    def export(self, job_id: str, path: str | os.PathLike, fmt: str = "mp4", fps: float = 0.0) -> pb.ExportResponse:
        """Write a finished render to a NEW path: an MP4 file or a folder of PNGs (frame_000000.png …)."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidArgument(f"format: {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
        req = pb.ExportRequest(job_id=job_id, format=EXPORT_FORMATS[fmt], path=str(Path(path).absolute()), fps=fps)
        return _rpc(self.stub.Export, req, timeout=max(self.timeout, 600))
