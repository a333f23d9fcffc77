"""Finding the user's engine daemon, or starting one (and stopping it again if we started it).

Discovery is the bridge's own (plugin_bridge.discovery), so the studio and every plugin reach the
same daemon: RECAST_ENGINE_* variables, then the runtime folder's engine.json and default socket,
trusted only when the folder is the user's and 0700. A TCP daemon is reached with its token over
loopback or TLS (`tls_ca`). All methods block, so the controller runs them on a worker thread.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from desktop.client.errors import StudioError
from plugin_bridge import discovery
from plugin_bridge.discovery import Endpoint
from plugin_bridge.private_files import check_private_dir, open_log
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

_MESSAGE = 64 << 20
_OPTIONS = [("grpc.max_receive_message_length", _MESSAGE), ("grpc.max_send_message_length", _MESSAGE)]


def default_runtime_dir() -> Path:
    """$RECAST_RUNTIME_DIR, else $XDG_RUNTIME_DIR/recast, else /tmp/recast-UID (as the bridge)."""
    return discovery.runtime_dir()


def default_log_path() -> Path:
    """Where an engine the studio starts writes its log: a private folder of the user's state."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    folder = base / "recast"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / "studio-engine.log"


@dataclass
class EngineOptions:
    """How to find or start the daemon (settings; command-line flags override)."""

    runtime_dir: Path = field(default_factory=default_runtime_dir)
    model: str = ""  # passed to `serve --model` when the studio starts the daemon
    start_if_missing: bool = True
    start_timeout: float = 90.0
    extra_env: dict[str, str] = field(default_factory=dict)
    serve_args: list[str] = field(default_factory=list)  # more `serve` flags, e.g. ["--threads", "2"]
    tls_ca: str = ""  # PEM CA of a TCP daemon with --tls-cert (else $RECAST_ENGINE_TLS_CA)


@dataclass
class Engine:
    """A live connection: the channel, the stub, and the daemon process if we started it."""

    channel: grpc.Channel
    stub: pb_grpc.EngineStub
    address: str
    info: pb.EngineInfo
    process: subprocess.Popen | None = None

    @property
    def started_by_us(self) -> bool:
        return self.process is not None

    def close(self, stop_daemon: bool = True, timeout: float = 15.0) -> None:
        """Close the channel; stop the daemon only if this studio started it."""
        self.channel.close()
        p = self.process
        if stop_daemon and p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _open(endpoint: Endpoint, timeout: float) -> tuple[grpc.Channel, pb_grpc.EngineStub, pb.EngineInfo]:
    channel = discovery.open_channel(endpoint, _OPTIONS)  # sends the token, over TLS when there is a CA
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        stub = pb_grpc.EngineStub(channel)
        info = stub.GetEngineInfo(pb.GetEngineInfoRequest(), timeout=max(timeout, 5.0))
    except BaseException:
        channel.close()
        raise
    return channel, stub, info


def discover(options: EngineOptions, timeout: float = 2.0) -> Engine | None:
    """The running daemon the bridge's discovery names (variables, engine.json, default socket), if it
    answers. Raises plugin_bridge's UntrustedPath when the runtime folder is not the user's own."""
    for endpoint in discovery.candidates(rdir=options.runtime_dir, tls_ca=options.tls_ca or None):
        if endpoint.is_unix and not os.path.exists(endpoint.target[len("unix:"):]):
            continue
        try:
            channel, stub, info = _open(endpoint, timeout)
        except (grpc.FutureTimeoutError, grpc.RpcError):
            continue
        if info.draining:  # shutting down: its successor will take over the socket
            channel.close()
            continue
        return Engine(channel, stub, endpoint.target, info)
    return None


def serve_command(options: EngineOptions) -> list[str]:
    """`recast-engine serve`, from PATH if installed, else through this interpreter."""
    exe = shutil.which("recast-engine")
    cmd = [exe] if exe else [sys.executable, "-m", "engine.cli"]
    cmd += ["serve", "--runtime-dir", str(options.runtime_dir)]
    if options.model:
        cmd += ["--model", options.model]
    if "--idle-exit" not in options.serve_args:  # started on demand: it exits once idle instead of lingering
        cmd += ["--idle-exit", str(discovery.ON_DEMAND_IDLE_EXIT)]
    return cmd + list(options.serve_args)


def start_daemon(options: EngineOptions, log_path: Path | None = None) -> Engine:
    """Spawn a daemon and wait until its socket answers (its models may still be loading)."""
    check_private_dir(options.runtime_dir, create=True)  # never start into a folder another user owns
    log = open_log(log_path) if log_path else subprocess.DEVNULL
    env = dict(os.environ, **options.extra_env)
    try:
        proc = subprocess.Popen(serve_command(options), stdout=log, stderr=log, env=env, start_new_session=True)
    except OSError as exc:
        raise StudioError(f"Could not start the engine ({exc.strerror or exc}).") from None
    finally:
        if log_path:
            os.close(log)
    deadline = time.monotonic() + options.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = ""
            if log_path and log_path.exists():
                lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
                tail = lines[-1] if lines else ""
            raise StudioError(f"The engine stopped while starting (exit {proc.returncode}). {tail}".strip())
        found = discover(options, timeout=1.0)
        if found is not None:
            found.process = proc
            return found
        time.sleep(0.2)
    proc.terminate()
    raise StudioError(f"The engine did not start within {options.start_timeout:.0f} s.")


def connect(options: EngineOptions, log_path: Path | None = None) -> Engine:
    """The user's daemon if one runs, else a new one (when allowed)."""
    found = discover(options)
    if found is not None:
        return found
    if not options.start_if_missing:
        raise StudioError("No engine is running. Start one with `recast-engine serve`, or allow the studio to.")
    return start_daemon(options, log_path)
