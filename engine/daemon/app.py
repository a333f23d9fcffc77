"""The daemon's lifecycle: lock, storage, recovery, gRPC server, health, reflection, shutdown.

Why a class of its own: tests run the real daemon in-process on a temporary socket exactly as
`recast-engine serve` runs it, and the shutdown order matters (refuse new work, interrupt the
running job so it is resumable, end streams, close storage, remove the socket, release the lock).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
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
from engine.daemon.masks import Masks
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
from engine.daemon.server import EngineServicer
from engine.daemon.storage import Storage, new_id
from engine.settings import Limits as PipelineLimits
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
    torch_threads: int | None = None

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
        ensure_private_dir(c.runtime_dir)
        ensure_private_dir(self.socket_path.parent)
        self._lock(c.runtime_dir / "engine.lock")
        c.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock(c.data_dir / "daemon.lock")
        token = None
        if c.listen:
            token_file = c.token_file or c.runtime_dir / "engine.token"
            token = load_or_create_token(token_file)
            self.token_file = token_file
        self.storage = Storage(c.data_dir)
        self.events = EventLog(self.storage)
        self.assets = Assets(self.storage, self.limits)
        self.clips = Clips(self.storage, self.assets, self.limits)
        self.masks = Masks(self.storage, self.clips)
        pipeline_limits = PipelineLimits(
            max_frames=self.limits.max_clip_frames,
            max_clip_pixels=self.limits.max_clip_pixels,
            max_prompt_chars=self.limits.max_prompt_chars,
        )
        self.host = PipelineHost(
            c.model, c.device, cache_dir=c.data_dir / "cache", threads=c.torch_threads, limits=pipeline_limits
        )
        self.host.claim_threads()
        runners = Runners(self.storage, self.events, self.assets, self.clips, self.masks, self.host)
        self.jobs = JobManager(self.storage, self.events, self.limits, runners.table())
        interrupted = self.jobs.recover()
        removed = self.storage.collect_garbage()
        if removed:
            log.info("removed %d unreferenced blob(s)", removed)
        if interrupted:
            log.warning("%d job(s) were running when the last daemon stopped: now INTERRUPTED", len(interrupted))

        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(ENGINE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.health.set(PIPELINE_HEALTH, health_pb2.HealthCheckResponse.NOT_SERVING)

        mib = self.limits.max_message_bytes
        server = grpc.server(
            ThreadPoolExecutor(max_workers=c.max_workers, thread_name_prefix="recast-rpc"),
            interceptors=[TokenInterceptor(token)] if token else [],
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
            pipeline_ready=self.host.pipe is not None,
            draining=self.draining,
            queued_jobs=self.jobs.queued_count(),
            pid=os.getpid(),
            instance_id=self.instance_id,
        )

    def _models(self) -> list[pb.ModelInfo]:
        """The active model first, then the other models shipped with the engine."""
        models = [pb.ModelInfo(name=self.host.model_name, native_size=self.host.native_size, active=True)]
        try:
            from engine.model_loading import SHIPPED_MODELS_DIR

            shipped = sorted(p.name for p in SHIPPED_MODELS_DIR.iterdir() if (p / "model_index.json").is_file())
        except OSError:
            shipped = []
        models += [pb.ModelInfo(name=name) for name in shipped if name != self.host.model_name]
        return models

    # --- stop -------------------------------------------------------------------------------------

    def stop(self, grace: float = 3.0) -> None:
        """Graceful: refuse new work, interrupt the running job (resumable), end streams, close."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.draining = True
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
