"""Finding the user's engine daemon, and starting one when none runs (DESIGN.md §5, §7).

Why here and not in each host: Blender, conform scripts and the JSON bridge must all land on the
same daemon the studio uses. The daemon advertises itself in `$XDG_RUNTIME_DIR/recast/engine.json`
(socket, optional loopback TCP address and token file); its default socket is `engine.sock` in that
folder. Explicit flags and `RECAST_ENGINE_*` variables come first so tests and farms can point
anywhere. Starting is done by spawning `recast-engine serve`: the bridge never imports the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from plugin_bridge.errors import DaemonNotFound, InvalidArgument, Unavailable

ENV_SOCKET = "RECAST_ENGINE_SOCKET"
ENV_ADDRESS = "RECAST_ENGINE_ADDRESS"
ENV_TOKEN_FILE = "RECAST_ENGINE_TOKEN_FILE"
ENV_RUNTIME_DIR = "RECAST_RUNTIME_DIR"


@dataclass(frozen=True)
class Endpoint:
    """One place a daemon may listen: a gRPC target plus the bearer token TCP needs."""

    target: str  # "unix:/run/user/1000/recast/engine.sock" or "127.0.0.1:50051"
    token: str | None = None
    source: str = "default"  # how it was found, for error messages

    @property
    def is_unix(self) -> bool:
        return self.target.startswith("unix:")

    @property
    def is_local(self) -> bool:
        """Import/export by path are only offered to callers on the daemon's machine."""
        if self.is_unix:
            return True
        host = self.target.rpartition(":")[0].strip("[]")
        return host in ("localhost", "::1") or host.startswith("127.")


def runtime_dir() -> Path:
    """Same rule as the daemon: $XDG_RUNTIME_DIR/recast, else /tmp/recast-UID."""
    explicit = os.environ.get(ENV_RUNTIME_DIR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "recast" if base else Path(f"/tmp/recast-{os.getuid()}")


def read_token(path: str | os.PathLike) -> str:
    p = Path(path)
    try:
        lines = p.read_text().strip().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"token_file: cannot read {p} ({exc.strerror})") from None
    if not lines or not lines[0].strip():
        raise InvalidArgument(f"token_file: {p} holds no token")
    return lines[0].strip()


def _tcp(address: str, token_file: str | os.PathLike | None, source: str) -> Endpoint:
    return Endpoint(address, read_token(token_file) if token_file else None, source)


def candidates(
    socket: str | os.PathLike | None = None,
    address: str | None = None,
    token_file: str | os.PathLike | None = None,
    rdir: Path | None = None,
) -> list[Endpoint]:
    """Where to look, in order: explicit arguments, environment, discovery file, default socket."""
    if socket:
        return [Endpoint(f"unix:{Path(socket).absolute()}", None, "--socket")]
    if address:
        return [_tcp(address, token_file, "--address")]
    if os.environ.get(ENV_SOCKET):
        return [Endpoint(f"unix:{os.environ[ENV_SOCKET]}", None, ENV_SOCKET)]
    if os.environ.get(ENV_ADDRESS):
        return [_tcp(os.environ[ENV_ADDRESS], os.environ.get(ENV_TOKEN_FILE), ENV_ADDRESS)]
    rdir = rdir or runtime_dir()
    found: list[Endpoint] = []
    info = read_discovery(rdir)
    if info.get("socket"):
        found.append(Endpoint(f"unix:{info['socket']}", None, str(rdir / "engine.json")))
    if info.get("tcp") and info.get("token_file"):
        try:
            found.append(_tcp(info["tcp"], info["token_file"], str(rdir / "engine.json")))
        except InvalidArgument:
            pass  # an unreadable token file just removes that candidate
    default = Endpoint(f"unix:{rdir / 'engine.sock'}", None, "default socket")
    if default not in found:
        found.append(default)
    return found


def read_discovery(rdir: Path | None = None) -> dict:
    """The daemon's engine.json, or {} if there is none (or it is being rewritten)."""
    path = (rdir or runtime_dir()) / "engine.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def serve_command(model: str | None = None, extra: list[str] | None = None) -> list[str]:
    """`recast-engine serve`, or the same through this interpreter when the script is not on PATH."""
    exe = shutil.which("recast-engine")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "engine.cli", "serve"]
    if model:
        cmd += ["--model", str(model)]
    return cmd + list(extra or [])


def start_daemon(
    model: str | None = None,
    rdir: Path | None = None,
    socket: str | os.PathLike | None = None,
    extra: list[str] | None = None,
    timeout: float = 180.0,
) -> tuple[subprocess.Popen, Endpoint]:
    """Spawn a detached daemon (it outlives the bridge, like one the studio starts) and wait for it.

    Returns once its socket answers health checks with the pipeline loaded; on failure the daemon's
    log tail is in the error. Its output goes to `<runtime dir>/engine.log`.
    """
    rdir = Path(rdir or runtime_dir())
    rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    args = list(extra or [])
    if "--runtime-dir" not in args:
        args += ["--runtime-dir", str(rdir)]
    if socket and "--socket" not in args:
        args += ["--socket", str(socket)]
    cmd = serve_command(model, args)
    log_path = rdir / "engine.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    sock = Path(socket) if socket else rdir / "engine.sock"
    endpoint = Endpoint(f"unix:{sock.absolute()}", None, "started by recast-bridge")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = _tail(log_path)
            if "already running" in tail:  # lost a race with another starter: use that daemon
                return proc, endpoint
            raise DaemonNotFound(f"recast-engine serve exited with {code}: {tail}")
        if sock.exists() and pipeline_serving(endpoint):
            return proc, endpoint
        time.sleep(0.2)
    raise Unavailable(f"recast-engine serve did not become ready in {timeout:.0f} s; see {log_path}")


def pipeline_serving(endpoint: Endpoint, timeout: float = 2.0) -> bool:
    """grpc.health.v1 says the `pipeline` entry is SERVING (models loaded)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(endpoint.target)
    try:
        md = [("authorization", f"Bearer {endpoint.token}")] if endpoint.token else None
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="pipeline"), timeout=timeout, metadata=md
        )
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def _tail(path: Path, n: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-6:])[-n:] or "(empty log)"
