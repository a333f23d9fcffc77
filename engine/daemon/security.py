"""Who may talk to the daemon and which paths it may touch (DESIGN.md §5).

Why this matters: the daemon reads and writes media on the user's behalf. Over the unix socket the
kernel's file permissions (folder 0700, socket 0600) are the authentication. TCP is opt-in, loopback
only, and needs a bearer token kept in a 0600 file; anything beyond loopback also needs TLS. Path
operations (import, export) act on the daemon's file system, so they are only offered to callers on
the same machine, and every path is resolved and checked before use.
"""

from __future__ import annotations

import fcntl
import hmac
import ipaddress
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc

from engine.errors import InputError, RecastError
from protos.token_file import UntrustedToken, check_token_folder, read_token_file


class SecurityError(RecastError):
    """The daemon refuses to start (or to act) because a security rule would be broken."""


class PathRefused(Exception):
    """A path operation that is not allowed for this caller or onto this path: PERMISSION_DENIED."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


# --- locations ------------------------------------------------------------------------------------


def runtime_dir(create: bool = True) -> Path:
    """$XDG_RUNTIME_DIR/recast (or /tmp/recast-UID), created 0700 and checked to be ours."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "recast" if base else Path(f"/tmp/recast-{os.getuid()}")
    if create:
        ensure_private_dir(path)
    return path


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "recast" / "engine"


def ensure_private_dir(path: Path, field: str = "folder") -> None:
    """Creates `path` with mode 0700, or checks that an existing one is ours, private and not a symlink.

    An existing folder open to others is refused, never chmodded: it may be the user's home or a
    shared folder whose access is not ours to change. `field` names the option that chose the folder.
    """
    try:
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SecurityError(f"{field}: {path} must be a real folder, not a link or file")
    if st.st_uid != os.getuid():
        raise SecurityError(f"{field}: {path} belongs to another user (uid {st.st_uid})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecurityError(
            f"{field}: {path} is open to other users (mode {mode:o}); Recast keeps sockets and data only in a "
            f"private folder: choose another one, or run `chmod 700 {path}` if no one else needs it")


# --- one daemon per user --------------------------------------------------------------------------


class InstanceLock:
    """An flock on a file: released by the kernel when the process dies, even on `kill -9`."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SecurityError(
                f"another recast engine daemon is already running (pid {holder or '?'}, lock {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# --- tokens and listen addresses --------------------------------------------------------------------


def load_or_create_token(path: Path) -> str:
    """Reads the bearer token, or creates a fresh one if missing.

    Refuses a token file in a folder everyone may write, a link (opened with O_NOFOLLOW), anything
    but a regular file, another user's file, and a file others can read (fstat of the open file, so
    what is checked is what is read).
    """
    try:
        check_token_folder(path)
    except UntrustedToken as exc:
        raise SecurityError(str(exc)) from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _existing_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token


def _existing_token(path: Path) -> str:
    try:
        token = read_token_file(path, private=True)
    except UntrustedToken as exc:
        raise SecurityError(str(exc)) from None
    except OSError as exc:
        raise SecurityError(f"token file {path} cannot be read ({exc.strerror})") from None
    if len(token) < 16:
        raise SecurityError(f"token file {path} holds no token of at least 16 characters")
    return token


def parse_listen(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError("--listen", f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(address: str, has_token: bool, has_tls: bool) -> None:
    """Loopback needs a token; anything else needs TLS and a token."""
    host, _ = parse_listen(address)
    if not has_token:
        raise SecurityError(f"--listen {address} needs a bearer token (--token-file)")
    if not is_loopback_host(host) and not has_tls:
        raise SecurityError(
            f"--listen {address} is not a loopback address; it needs TLS (--tls-cert, --tls-key) and a token"
        )


def is_local_peer(peer: str) -> bool:
    """gRPC peer strings: 'unix:…', 'ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000'."""
    if peer.startswith("unix:"):
        return True
    if peer.startswith("ipv4:"):
        return is_loopback_host(peer[5:].rpartition(":")[0])
    if peer.startswith("ipv6:"):
        return is_loopback_host(peer[5:].rpartition(":")[0].strip("[]"))
    return False


# --- paths ----------------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _absolute(field: str, raw: str) -> Path:
    if not raw:
        raise InputError(field, "must not be empty")
    if "\x00" in raw:
        raise InputError(field, "contains a NUL byte")
    p = Path(raw)
    if not p.is_absolute():
        raise InputError(field, f"{raw!r} is not an absolute path")
    return p


def resolve_import_path(raw: str, private_roots: Iterable[Path]) -> Path:
    """An existing regular file the user can read, not inside the daemon's own folders."""
    p = _absolute("path", raw)
    try:
        resolved = p.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("path", f"{raw} does not exist") from None
    except (OSError, RuntimeError) as exc:
        raise InputError("path", f"{raw} cannot be resolved ({exc})") from None
    st = os.stat(resolved)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("path", f"{resolved} is not a regular file")
    for root in private_roots:
        if _inside(resolved, root.resolve()):
            raise PathRefused("path", f"{resolved} is inside the engine's private folder")
    if not os.access(resolved, os.R_OK):
        raise PathRefused("path", f"{resolved} is not readable")
    return resolved


def resolve_export_path(raw: str, protected_files: Iterable[Path], private_roots: Iterable[Path]) -> Path:
    """A new path in an existing folder; never a source file, never inside the engine's folders."""
    p = _absolute("path", raw)
    if p.name in ("", ".", ".."):
        raise InputError("path", f"{raw!r} does not name a file or folder")
    try:
        parent = p.parent.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("path", f"folder {p.parent} does not exist") from None
    if not parent.is_dir():
        raise InputError("path", f"{p.parent} is not a folder")
    target = parent / p.name
    for f in protected_files:
        if target == f:
            raise PathRefused("path", f"{target} is a source file; exports never write onto a source")
    for root in private_roots:
        if _inside(target, root.resolve()):
            raise PathRefused("path", f"{target} is inside the engine's private folder")
    if os.path.lexists(target):
        raise FileExistsError(f"path: {target} already exists; exports only create new paths")
    if not os.access(parent, os.W_OK):
        raise PathRefused("path", f"folder {parent} is not writable")
    return target


# --- discovery file -------------------------------------------------------------------------------


def write_private_json(path: Path, payload: dict) -> None:
    """Atomic 0600 JSON write (discovery file)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- bearer token check on every call -----------------------------------------------------------------


class TokenInterceptor(grpc.ServerInterceptor):
    """Calls over TCP must carry `authorization: Bearer <token>`; unix-socket calls need none.

    Why wrap the handler instead of deciding in `intercept_service`: only the handler's context
    knows the peer (unix socket vs TCP).
    """

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def _allowed(self, context: grpc.ServicerContext) -> bool:
        if context.peer().startswith("unix:"):
            return True
        for key, value in context.invocation_metadata():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(got, self._expected)
        return False

    def intercept_service(self, continuation: Callable, handler_call_details):  # noqa: ANN001
        handler = continuation(handler_call_details)
        if handler is None:
            return None

        def guard(behavior: Callable) -> Callable:
            def wrapped(request_or_iterator, context):  # noqa: ANN001
                if not self._allowed(context):
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or wrong bearer token")
                return behavior(request_or_iterator, context)

            return wrapped

        for attr, factory in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            behavior = getattr(handler, attr)
            if behavior is not None:
                return factory(
                    guard(behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler
