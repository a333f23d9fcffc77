"""Finding the user's engine daemon, and starting one when none runs (DESIGN.md §5, §7).

Why here and not in each front end: the studio, Blender, conform scripts and the JSON bridge must
all land on the same daemon. The daemon advertises itself in `$XDG_RUNTIME_DIR/recast/engine.json`
(socket, optional loopback TCP address and token file); its default socket is `engine.sock` in that
folder. Explicit flags and `RECAST_ENGINE_*` variables come first so tests and farms can point
anywhere. Starting is done by spawning `recast-engine serve`: the bridge never imports the engine.
The runtime folder and token files are trusted only under the daemon's own rules (private_files),
and a token travels only over a unix socket, to loopback, or over TLS (`open_channel`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugin_bridge.errors import BridgeError, DaemonNotFound, InvalidArgument, Unavailable
from plugin_bridge.private_files import check_private_dir, open_log, read_token_file

if TYPE_CHECKING:
    import grpc

ENV_SOCKET = "RECAST_ENGINE_SOCKET"
ENV_ADDRESS = "RECAST_ENGINE_ADDRESS"
ENV_TOKEN_FILE = "RECAST_ENGINE_TOKEN_FILE"
ENV_RUNTIME_DIR = "RECAST_RUNTIME_DIR"
ENV_TLS_CA = "RECAST_ENGINE_TLS_CA"
ON_DEMAND_IDLE_EXIT = 900  # seconds a daemon started on demand stays up idle (`serve --idle-exit`)


@dataclass(frozen=True)
class Endpoint:
    """One place a daemon may listen: a gRPC target, the bearer token TCP needs, the CA of its TLS."""

    target: str  # "unix:/run/user/1000/recast/engine.sock" or "127.0.0.1:50051"
    token: str | None = None
    source: str = "default"  # how it was found, for error messages
    tls_ca: Path | None = None  # PEM root certificate(s): connect over TLS

    def __post_init__(self) -> None:
        if self.token and not self.tls_ca and not self.is_local:
            raise InvalidArgument(
                f"address: {self.target} is not a loopback address; the token is only sent there over TLS "
                f"(pass --tls-ca CA.pem or set {ENV_TLS_CA})"
            )

    @property
    def is_unix(self) -> bool:
        return self.target.startswith("unix:")

    @property
    def is_local(self) -> bool:
        """Import/export by path are only offered to callers on the daemon's machine."""
        if self.is_unix:
            return True
        host = self.target.rpartition(":")[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def runtime_dir() -> Path:
    """Same rule as the daemon: $XDG_RUNTIME_DIR/recast, else /tmp/recast-UID."""
    explicit = os.environ.get(ENV_RUNTIME_DIR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "recast" if base else Path(f"/tmp/recast-{os.getuid()}")


def read_token(path: str | os.PathLike, private: bool = False) -> str:
    """The token in a file of this user (not a link); `private`: the daemon's own, so 0600 too."""
    p = Path(path)
    try:
        token = read_token_file(p, private)
    except OSError as exc:
        raise InvalidArgument(f"token_file: cannot read {p} ({exc.strerror})") from None
    if not token:
        raise InvalidArgument(f"token_file: {p} holds no token")
    return token


def _tcp(address: str, token_file: str | os.PathLike | None, source: str, tls_ca: Path | None,
         private: bool = False) -> Endpoint:
    return Endpoint(address, read_token(token_file, private) if token_file else None, source, tls_ca)


def candidates(
    socket: str | os.PathLike | None = None,
    address: str | None = None,
    token_file: str | os.PathLike | None = None,
    rdir: Path | None = None,
    tls_ca: str | os.PathLike | None = None,
) -> list[Endpoint]:
    """Where to look, in order: explicit arguments, environment, discovery file, default socket.

    `tls_ca` (else $RECAST_ENGINE_TLS_CA) makes TCP endpoints use TLS. Raises UntrustedPath when
    the runtime folder exists but is not private to this user.
    """
    ca = tls_ca or os.environ.get(ENV_TLS_CA)
    ca_path = Path(ca) if ca else None
    if socket:
        return [Endpoint(f"unix:{Path(socket).absolute()}", None, "--socket")]
    if address:
        return [_tcp(address, token_file, "--address", ca_path)]
    if os.environ.get(ENV_SOCKET):
        return [Endpoint(f"unix:{os.environ[ENV_SOCKET]}", None, ENV_SOCKET)]
    if os.environ.get(ENV_ADDRESS):
        return [_tcp(os.environ[ENV_ADDRESS], os.environ.get(ENV_TOKEN_FILE), ENV_ADDRESS, ca_path)]
    rdir = rdir or runtime_dir()
    found: list[Endpoint] = []
    info = read_discovery(rdir) if check_private_dir(rdir) else {}
    where = str(rdir / "engine.json")
    if info.get("socket"):
        found.append(Endpoint(f"unix:{info['socket']}", None, where))
    token_file = Path(str(info.get("token_file") or ""))
    if info.get("tcp") and token_file.is_absolute() and token_file.parent.resolve() == rdir.resolve():
        try:  # only the daemon's own token, in its own folder, goes to the port engine.json names
            found.append(_tcp(info["tcp"], token_file, where, ca_path, private=True))
        except BridgeError:
            pass  # an unreadable or untrusted token file just removes that candidate
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


def serve_command(
    model: str | None = None,
    extra: list[str] | None = None,
    rdir: Path | None = None,
    socket: str | os.PathLike | None = None,
) -> list[str]:
    """`recast-engine serve` as a client starts it on demand: in `rdir`, exiting once idle.

    From PATH when the script is installed, else through this interpreter. `extra` flags come
    first; --runtime-dir, --socket and --idle-exit are added only where `extra` does not set them.
    """
    exe = shutil.which("recast-engine")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "engine.cli", "serve"]
    if model:
        cmd += ["--model", str(model)]
    args = list(extra or [])
    if "--runtime-dir" not in args:
        args += ["--runtime-dir", str(rdir or runtime_dir())]
    if socket and "--socket" not in args:
        args += ["--socket", str(socket)]
    if "--idle-exit" not in args:  # started on demand: it exits once idle instead of lingering
        args += ["--idle-exit", str(ON_DEMAND_IDLE_EXIT)]
    return cmd + args


def start_daemon(
    model: str | None = None,
    rdir: Path | None = None,
    socket: str | os.PathLike | None = None,
    extra: list[str] | None = None,
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    until_loaded: bool = True,
) -> tuple[subprocess.Popen, Endpoint]:
    """Spawn a detached daemon (it outlives its starter) and wait for it.

    Returns once its socket answers health checks: with the pipeline loaded (`until_loaded`), or
    as soon as it serves at all (a studio shows the loading itself). On failure the daemon's log
    tail is in the error. Its output goes to `log_path` (default `<runtime dir>/engine.log`),
    opened without following links; `env` adds variables to its environment.
    """
    rdir = Path(rdir or runtime_dir())
    check_private_dir(rdir, create=True)
    cmd = serve_command(model, extra, rdir, socket)
    log_path = log_path or rdir / "engine.log"
    log = open_log(log_path)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, **env} if env else None)
    finally:
        os.close(log)
    sock = Path(socket) if socket else rdir / "engine.sock"
    endpoint = Endpoint(f"unix:{sock.absolute()}", None, "started on demand")
    service = "pipeline" if until_loaded else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = _tail(log_path)
            if "already running" in tail:  # lost a race with another starter: use that daemon
                return proc, endpoint
            raise DaemonNotFound(f"recast-engine serve stopped while starting (exit {code}): {tail}")
        if sock.exists() and serving(endpoint, service):
            return proc, endpoint
        time.sleep(0.2)
    raise Unavailable(f"recast-engine serve did not become ready in {timeout:.0f} s; see {log_path}")


def open_channel(endpoint: Endpoint, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A channel that sends the endpoint's token with every call.

    Over TLS when the endpoint has a CA; otherwise a token goes only over local TCP credentials,
    which gRPC itself refuses to use with a peer that is not on this machine.
    """
    import grpc

    opts = list(options)
    if endpoint.tls_ca is not None:
        try:
            ca = endpoint.tls_ca.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"tls_ca: cannot read {endpoint.tls_ca} ({exc.strerror})") from None
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
    elif endpoint.token:
        creds = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        return grpc.insecure_channel(endpoint.target, options=opts)
    if endpoint.token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(endpoint.token))
    return grpc.secure_channel(endpoint.target, creds, options=opts)


def serving(endpoint: Endpoint, service: str = "pipeline", timeout: float = 2.0) -> bool:
    """grpc.health.v1 says `service` is SERVING: "pipeline" once the models are loaded, "" the
    daemon as a whole (from the moment it listens until it starts shutting down)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = open_channel(endpoint)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
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
