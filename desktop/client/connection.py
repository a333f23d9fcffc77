"""Finding the user's engine daemon, or starting one (and stopping it again if the studio started it).

Finding, starting and calling are the SDK's (plugin_bridge.client, plugin_bridge.discovery), so the
studio and every plugin reach the same daemon the same way: RECAST_ENGINE_* variables, then the
runtime folder's engine.json and default socket, trusted only when the folder is the user's and
0700; a TCP daemon with its token over loopback or TLS (`tls_ca`). What is the studio's own: its
settings (`EngineOptions`), its log, and stopping a daemon it started when it quits. All functions
block, so the studio runs them on a worker thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from plugin_bridge import discovery
from plugin_bridge.client import RecastClient
from plugin_bridge.errors import DaemonNotFound
from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc


def default_log_path() -> Path:
    """Where an engine the studio starts writes its log: a private folder of the user's state."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    folder = base / "recast"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / "studio-engine.log"


@dataclass
class EngineOptions:
    """How to find or start the daemon (settings; command-line flags override)."""

    runtime_dir: Path = field(default_factory=discovery.runtime_dir)
    model: str = ""  # passed to `serve --model` when the studio starts the daemon
    start_if_missing: bool = True
    start_timeout: float = 90.0
    extra_env: dict[str, str] = field(default_factory=dict)
    serve_args: list[str] = field(default_factory=list)  # more `serve` flags, e.g. ["--threads", "2"]
    tls_ca: str = ""  # PEM CA of a TCP daemon with --tls-cert (else $RECAST_ENGINE_TLS_CA)


@dataclass
class Engine:
    """A live daemon: the SDK client to it, its latest info, and its process if the studio started it."""

    client: RecastClient
    info: pb.EngineInfo
    process: subprocess.Popen | None = None

    @property
    def stub(self) -> pb_grpc.EngineStub:
        return self.client.stub

    @property
    def address(self) -> str:
        return self.client.endpoint.target

    @property
    def started_by_us(self) -> bool:
        return self.process is not None

    def close(self, stop_daemon: bool = True, timeout: float = 15.0) -> None:
        """Close the channel; stop the daemon only if this studio started it."""
        self.client.close()
        p = self.process
        if stop_daemon and p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def discover(options: EngineOptions, timeout: float = 2.0) -> Engine | None:
    """The running daemon discovery names (variables, engine.json, default socket) that answers and is
    not shutting down, if any. Raises UntrustedPath when the runtime folder is not the user's own."""
    endpoints = discovery.candidates(rdir=options.runtime_dir, tls_ca=options.tls_ca or None)
    client = RecastClient.find(endpoints, wait=timeout, skip_draining=True)
    if client is None:
        return None
    try:
        return Engine(client, client.info())
    except BaseException:
        client.close()
        raise


def serve_command(options: EngineOptions) -> list[str]:
    """The `recast-engine serve` command the studio starts (on demand: it exits once idle)."""
    return discovery.serve_command(options.model or None, options.serve_args, options.runtime_dir)


def start_daemon(options: EngineOptions, log_path: Path | None = None) -> Engine:
    """Spawn a daemon and wait until it answers (its models may still be loading)."""
    process, _ = discovery.start_daemon(
        model=options.model or None, rdir=options.runtime_dir, extra=options.serve_args,
        timeout=options.start_timeout, env=options.extra_env, log_path=log_path, until_loaded=False,
    )
    found = discover(options, timeout=5.0)
    if found is None:
        raise DaemonNotFound(f"The engine started but does not answer in {options.runtime_dir}.")
    if process.poll() is None:  # else another studio or plugin won the race: that daemon is not ours
        found.process = process
    return found


def connect(options: EngineOptions, log_path: Path | None = None) -> Engine:
    """The user's daemon if one runs, else a new one (when allowed)."""
    found = discover(options)
    if found is not None:
        return found
    if not options.start_if_missing:
        raise DaemonNotFound("No engine is running. Start one with `recast-engine serve`, or allow the studio to.")
    return start_daemon(options, log_path)
