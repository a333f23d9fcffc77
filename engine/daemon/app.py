"""The daemon's lifecycle: lock, storage, recovery, gRPC server, health, reflection, shutdown.

Why a class of its own: tests run the real daemon in-process on a temporary socket exactly as
`recast-engine serve` runs it, and the shutdown order matters (refuse new work, interrupt the
running job so it is resumable, end streams, close storage, remove the socket, release the lock).
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.daemon.assets import Assets, Clips
from engine.daemon.events import EventLog
from engine.daemon.jobs import JobManager
from engine.daemon.limits import Limits
from engine.daemon.mask_versions import Masks
from engine.daemon.retention import Retention
from engine.daemon.runner import PipelineHost, Runners
from engine.daemon.security import (
    InstanceLock,
    SecurityError,
    TokenInterceptor,
    check_listen,
    data_dir,
    ensure_private_dir,
    load_or_create_token,
    runtime_dir,
    write_private_json,
)
from engine.daemon.servicer import EngineServicer
from engine.daemon.storage import Storage, new_id
from protos.recast.v1 import engine_pb2 as pb

log = logging.getLogger("recast.daemon")

ENGINE_SERVICE = pb.DESCRIPTOR.services_by_name["Engine"].full_name  # "recast.v1.Engine"
PIPELINE_HEALTH = "pipeline"


def engine_version() -> str:
    try:
        from importlib.metadata import version

        return version("recast-video")
    except Exception:
        return "0.0.0+unknown"


@dataclass
class DaemonConfig:
    runtime_dir: Path
    data_dir: Path
    socket_path: Path
    listen: str | None = None
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    model: str | None = None
    device: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_workers: int = 64
    # Watch streams stay open for a job's lifetime; capping them keeps threads free for other calls.
    max_watch_streams: int = 48
    # Uploads and frame streams are capped too, and a client that neither sends nor reads for
    # stream_idle_timeout seconds is cut (DEADLINE_EXCEEDED; 0: never), so stalled clients cannot
    # hold every worker thread.
    max_upload_streams: int = 4
    max_frame_streams: int = 8
    stream_idle_timeout: float = 60.0
    torch_threads: int | None = None
    # How long a database write waits for a lock held by another connection before it fails.
    db_timeout: float = 30.0
    # New uploads, imports and jobs are refused while the data folder's disk has less free space.
    min_free_bytes: int = 1024**3
    # Tensor cache cap (None: 10 GiB or 10 % of free disk, the smaller).
    cache_max_bytes: int | None = None
    # Idle seconds before the model is unloaded (0: never) and before the daemon exits by itself (0:
    # never; clients that start a daemon on demand pass --idle-exit).
    keep_alive: float = 300.0
    idle_exit: float = 0.0

    @classmethod
    def from_defaults(
        cls, runtime_dir: Path | None = None, data_dir: Path | None = None, socket_path: Path | None = None, **kw
    ) -> DaemonConfig:  # noqa: ANN003
        rdir = runtime_dir or _default_runtime_dir()
        return cls(
            runtime_dir=rdir,
            data_dir=data_dir or _default_data_dir(),
            socket_path=socket_path or rdir / "engine.sock",
            **kw,
        )


def _default_runtime_dir() -> Path:
    return runtime_dir(create=False)


def _default_data_dir() -> Path:
    return data_dir()


IDLE_TICK = 0.5  # seconds between idleness checks


class ActivityMeter(grpc.ServerInterceptor):
    """Counts calls in flight (a server stream until its last message is sent or it is cancelled)
    and remembers when the last one ended: the daemon is idle only without them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.last_end = time.monotonic()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1
            self.last_end = time.monotonic()

    def _unary(self, behavior: Callable) -> Callable:
        def counted(request: object, context: grpc.ServicerContext) -> object:
            self._enter()
            try:
                return behavior(request, context)
            finally:
                self._leave()

        return counted

    def _stream(self, behavior: Callable) -> Callable:
        def counted(request: object, context: grpc.ServicerContext) -> Iterator[object]:
            self._enter()
            try:
                yield from behavior(request, context)
            finally:
                self._leave()

        return counted

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):  # noqa: ANN201
        h = continuation(handler_call_details)
        if h is None:
            return None
        args = (h.request_deserializer, h.response_serializer)
        if h.unary_unary:
            return grpc.unary_unary_rpc_method_handler(self._unary(h.unary_unary), *args)
        if h.stream_unary:
            return grpc.stream_unary_rpc_method_handler(self._unary(h.stream_unary), *args)
        if h.unary_stream:
            return grpc.unary_stream_rpc_method_handler(self._stream(h.unary_stream), *args)
        return grpc.stream_stream_rpc_method_handler(self._stream(h.stream_stream), *args)


class Daemon:
    def __init__(self, config: DaemonConfig):
        self.config = config
        self.limits = config.limits
        self.draining = False
        self.instance_id = new_id()  # clients compare it to notice a restart
        self.tcp_address: str | None = None
        self.socket_path = config.socket_path
        self._locks: list[InstanceLock] = []
        self._server: grpc.Server | None = None
        self._stopped = threading.Event()
        self.exit_requested = threading.Event()  # idle for `idle_exit`: `serve` stops the daemon
        self.activity = ActivityMeter()
        self._lifetime: threading.Thread | None = None

    # --- start ------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            for lock in reversed(self._locks):
                lock.release()
            self._locks.clear()
            raise

    def _start(self) -> None:
        c = self.config
        if c.listen:  # refuse a bad address before touching anything
            check_listen(c.listen, has_token=True, has_tls=bool(c.tls_cert and c.tls_key))
        ensure_private_dir(c.runtime_dir, "runtime_dir")
        ensure_private_dir(self.socket_path.parent, "socket")
        self._lock(c.runtime_dir / "engine.lock")
        ensure_private_dir(c.data_dir, "data_dir")
        self._lock(c.data_dir / "daemon.lock")
        token = None
        if c.listen:
            token_file = c.token_file or c.runtime_dir / "engine.token"
            token = load_or_create_token(token_file)
            self.token_file = token_file
        self.storage = Storage(c.data_dir, db_timeout=c.db_timeout)
        self.events = EventLog(self.storage)
        self.assets = Assets(self.storage, self.limits)
        self.clips = Clips(self.storage, self.assets, self.limits)
        self.masks = Masks(self.storage, self.clips)
        self.retention = Retention(self.storage)
        self.host = PipelineHost(
            c.model,
            c.device,
            cache_dir=c.data_dir / "cache",
            cache_max_bytes=c.cache_max_bytes,
            threads=c.torch_threads,
            limits=self.limits.pipeline,
            keep_alive=c.keep_alive,
        )
        self.host.claim_threads()
        self.runners = runners = Runners(self.storage, self.events, self.assets, self.clips, self.masks, self.host)
        self.jobs = JobManager(self.storage, self.events, self.limits, runners.table(), self._on_worker_health)
        interrupted = self.jobs.recover()
        runners.prune_checkpoints()
        removed = self.retention.collect_all(grace_s=0.0)  # nothing writes before the server starts
        if removed.blobs:
            log.info("removed %d unreferenced blob(s) or temp file(s)", removed.blobs)
        if interrupted:
            log.warning("%d job(s) were running when the last daemon stopped: now INTERRUPTED", len(interrupted))

        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(ENGINE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.health.set(PIPELINE_HEALTH, health_pb2.HealthCheckResponse.NOT_SERVING)

        mib = self.limits.max_message_bytes
        server = grpc.server(
            ThreadPoolExecutor(max_workers=c.max_workers, thread_name_prefix="recast-rpc"),
            interceptors=[*([TokenInterceptor(token)] if token else []), self.activity],
            options=[
                ("grpc.max_receive_message_length", mib),
                ("grpc.max_send_message_length", mib),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=c.max_workers * 4,
        )
        from protos.recast.v1 import engine_pb2_grpc as pb_grpc

        pb_grpc.add_EngineServicer_to_server(EngineServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (ENGINE_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        self._bind(server, token)
        self._server = server
        server.start()
        os.chmod(self.socket_path, 0o600)
        self._write_discovery()
        self.jobs.start()
        self._loader = self.host.load(self._on_pipeline_loaded)
        if c.keep_alive > 0 or c.idle_exit > 0:
            self._lifetime = threading.Thread(target=self._watch_idle, name="recast-lifetime", daemon=True)
            self._lifetime.start()

    def _lock(self, path: Path) -> None:
        lock = InstanceLock(path)
        lock.acquire()
        self._locks.append(lock)

    def _bind(self, server: grpc.Server, token: str | None) -> None:
        sock = self.socket_path
        if os.path.lexists(sock):  # we hold the lock, so it is a leftover of a dead daemon
            if not stat.S_ISSOCK(os.lstat(sock).st_mode):
                raise SecurityError(f"{sock} exists and is not a socket; refusing to replace it")
            sock.unlink()
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            server.add_insecure_port(f"unix:{sock}")
        finally:
            os.umask(old)
        c = self.config
        if c.listen:
            if c.tls_cert and c.tls_key:
                creds = grpc.ssl_server_credentials([(c.tls_key.read_bytes(), c.tls_cert.read_bytes())])
                port = server.add_secure_port(c.listen, creds)
            else:
                port = server.add_insecure_port(c.listen)
            if port == 0:
                raise SecurityError(f"could not listen on {c.listen}")
            host = c.listen.rpartition(":")[0]
            self.tcp_address = f"{host}:{port}"

    def _write_discovery(self) -> None:
        write_private_json(
            self.config.runtime_dir / "engine.json",
            {
                "pid": os.getpid(),
                "socket": str(self.socket_path),
                "tcp": self.tcp_address,
                "token_file": str(self.token_file) if self.tcp_address else None,
                "version": engine_version(),
            },
        )

    def _on_worker_health(self, ok: bool) -> None:
        """The job worker's store failed (NOT_SERVING: jobs would only queue up) or works again."""
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", ENGINE_SERVICE):
            self.health.set(service, status)

    def _on_pipeline_loaded(self, ok: bool) -> None:
        if ok:
            self.health.set(PIPELINE_HEALTH, health_pb2.HealthCheckResponse.SERVING)
        self.jobs.set_ready()  # on failure jobs run and fail with FAILED_PRECONDITION naming the cause

    # --- info -------------------------------------------------------------------------------------

    def private_roots(self) -> list[Path]:
        return [self.config.data_dir, self.config.runtime_dir]

    def engine_info(self) -> pb.EngineInfo:
        lim = self.limits
        return pb.EngineInfo(
            version=engine_version(),
            api_version="recast.v1",
            device=self.host.device,
            models=self._models(),
            limits=pb.Limits(
                max_asset_bytes=lim.max_asset_bytes,
                max_chunk_bytes=lim.max_chunk_bytes,
                max_clip_pixels=lim.max_clip_pixels,
                max_clip_frames=lim.max_clip_frames,
                max_prompt_chars=lim.max_prompt_chars,
                max_queued_jobs=lim.max_queued_jobs,
                max_message_bytes=lim.max_message_bytes,
            ),
            pipeline_ready=self.host.loaded_once,
            draining=self.draining,
            queued_jobs=self.jobs.queued_count(),
            pid=os.getpid(),
            instance_id=self.instance_id,
            model_loaded=self.host.pipe is not None,
            keep_alive_seconds=math.ceil(max(self.config.keep_alive, 0)),
            idle_exit_seconds=math.ceil(max(self.config.idle_exit, 0)),
        )

    def _models(self) -> list[pb.ModelInfo]:
        """The active model first, then the other models shipped with the engine."""
        models = [pb.ModelInfo(name=self.host.model_name, native_size=self.host.native_size, active=True)]
        try:
            from engine.runtime.model_loading import SHIPPED_MODELS_DIR

            shipped = sorted(p.name for p in SHIPPED_MODELS_DIR.iterdir() if (p / "model_index.json").is_file())
        except OSError:
            shipped = []
        models += [pb.ModelInfo(name=name) for name in shipped if name != self.host.model_name]
        return models

    # --- idle -------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """A job queued or running, a call or stream open, or the first load still running."""
        if self.activity.active or not self.host.ready.is_set():
            return True
        row = self.storage.db.query_one(
            "SELECT COUNT(*) AS n FROM jobs WHERE state IN (?,?)", (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
        )
        return bool(row and row.n)

    def _watch_idle(self) -> None:
        """Unloads the model after the keep-alive; asks `serve` to exit after `idle_exit` idle seconds."""
        idle_exit = self.config.idle_exit
        busy_at = time.monotonic()
        while not self._stopped.wait(IDLE_TICK):
            try:
                self.host.unload_if_idle()
                if idle_exit <= 0:
                    continue
                if self._busy():
                    busy_at = time.monotonic()
                elif time.monotonic() - max(busy_at, self.activity.last_end) >= idle_exit:
                    log.info("idle for %.0f s: shutting down (--idle-exit)", idle_exit)
                    self.exit_requested.set()
                    return
            except Exception:  # a failing store: the worker reports it; staying up is the safe side
                log.exception("checking for idleness failed")

    # --- stop -------------------------------------------------------------------------------------

    def stop(self, grace: float = 3.0) -> None:
        """Graceful: refuse new work, interrupt the running job (resumable), end streams, close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.draining = True
        if self._lifetime is not None and self._lifetime is not threading.current_thread():
            self._lifetime.join(10)
        self.health.enter_graceful_shutdown()
        self.jobs.shutdown()
        self._loader.join(120)  # a load left running would outlive the daemon (and race the next one)
        self.events.close()
        if self._server is not None:
            self._server.stop(grace).wait()
        self.storage.close()
        self.host.release()
        for p in (self.socket_path, self.config.runtime_dir / "engine.json"):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        for lock in reversed(self._locks):
            lock.release()
        self._locks.clear()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Tests and benchmarks: block until the pipeline is loaded (or failed to load)."""
        return self.host.ready.wait(timeout)
