"""Exceptions → gRPC status codes (DESIGN.md §5), and the wrapper that keeps UNKNOWN away.

Why a wrapper on every handler: grpc reports an escaped Python exception as UNKNOWN with a useless
message. Every handler is wrapped so that our own exceptions map to their documented codes and
anything else (a bug) becomes INTERNAL naming the method and the error.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import traceback
from collections.abc import Callable

import grpc

from engine.daemon.jobs import Draining, JobNotFound, WrongState
from engine.daemon.security import PathRefused
from engine.daemon.storage import BlobCorrupt
from engine.errors import Cancelled, InputError, LimitError, ModelError

log = logging.getLogger("recast.daemon")


class NotFound(Exception):
    """An unknown id; the message starts with the field name."""


class DataLoss(Exception):
    """Bytes that do not match their checksum."""


class Unauthenticated(Exception):
    pass


class StreamIdle(Exception):
    """A stream whose client neither sent nor read a message within the idle timeout."""


_C = grpc.StatusCode
_ACCESS = (_C.PERMISSION_DENIED, "permission denied; choose another location or fix its permissions")
# OS errors on a path a client gave: the status code, and what the client can do about it.
_OS_ERRORS: dict[int, tuple[grpc.StatusCode, str]] = {
    errno.EACCES: _ACCESS,
    errno.EPERM: _ACCESS,
    errno.EROFS: (_C.PERMISSION_DENIED, "the volume is read-only; choose a writable folder"),
    errno.ENOSPC: (_C.RESOURCE_EXHAUSTED, "the disk is full; free space there or choose another volume"),
    errno.EDQUOT: (_C.RESOURCE_EXHAUSTED, "the disk quota is used up; free space or choose another volume"),
    errno.EFBIG: (_C.RESOURCE_EXHAUSTED, "the file is larger than the volume allows (FAT: 4 GiB); use another"),
    errno.ELOOP: (_C.INVALID_ARGUMENT, "its symbolic links form a loop; give the real file or folder"),
    errno.ENAMETOOLONG: (_C.INVALID_ARGUMENT, "a name in it, or the whole path, is too long; choose a shorter one"),
    errno.ENOTDIR: (_C.INVALID_ARGUMENT, "a part of it is a file, not a folder"),
    errno.EISDIR: (_C.INVALID_ARGUMENT, "it is a folder; give a file"),
    errno.ENOENT: (_C.INVALID_ARGUMENT, "it does not exist"),
}
# Without a field (an OS error nobody translated), only codes that cannot hide a bug are trusted.
_BARE_OS_CODES = (_C.PERMISSION_DENIED, _C.RESOURCE_EXHAUSTED)


class PathError(Exception):
    """An OS error on a client's path, with its status code and a message naming the field and the fix."""

    def __init__(self, field: str, exc: OSError, code: grpc.StatusCode, hint: str):
        name = os.fsdecode(exc.filename) if exc.filename is not None else ""
        where = f"{name[:60]}…{name[-60:]}" if len(name) > 130 else name
        super().__init__(f"{field}: {where + ': ' if where else ''}{hint} ({exc.strerror})")
        self.field = field
        self.code = code


def path_error(field: str, exc: OSError) -> Exception:
    """The error to raise for an OS error on the path in `field`; unknown errnos stay as they are (INTERNAL)."""
    known = _OS_ERRORS.get(exc.errno)
    return PathError(field, exc, *known) if known else exc


_MAP: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (LimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (JobNotFound, grpc.StatusCode.NOT_FOUND),
    (WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (FileExistsError, grpc.StatusCode.FAILED_PRECONDITION),
    (ModelError, grpc.StatusCode.FAILED_PRECONDITION),
    (Draining, grpc.StatusCode.UNAVAILABLE),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
    (BlobCorrupt, grpc.StatusCode.DATA_LOSS),
    (PathRefused, grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Cancelled, grpc.StatusCode.CANCELLED),
    (StreamIdle, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def code_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, PathError):
        return exc.code
    for kind, code in _MAP:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, OSError) and _OS_ERRORS.get(exc.errno, (None,))[0] in _BARE_OS_CODES:
        return _OS_ERRORS[exc.errno][0]
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, method: str, exc: Exception) -> None:
    code = code_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("bug in %s:\n%s", method, traceback.format_exc())
        message = f"internal error in {method}: {type(exc).__name__}: {exc}"
    else:
        message = str(exc) or type(exc).__name__
    context.abort(code, message[:2000])


def _already_aborted(context: grpc.ServicerContext) -> bool:
    """grpc's own abort raises a bare Exception after recording the code; let it through."""
    state = getattr(context, "_state", None)
    return bool(state is not None and getattr(state, "aborted", False))


def unary(fn: Callable) -> Callable:
    """Wraps a unary-response handler (unary or client-streaming request)."""

    @functools.wraps(fn)
    def wrapper(self, request, context):  # noqa: ANN001
        try:
            return fn(self, request, context)
        except Exception as exc:
            if _already_aborted(context):
                raise
            _abort(context, fn.__name__, exc)

    return wrapper


def streaming(fn: Callable) -> Callable:
    """Wraps a server-streaming handler (a generator)."""

    @functools.wraps(fn)
    def wrapper(self, request, context):  # noqa: ANN001
        try:
            yield from fn(self, request, context)
        except Exception as exc:
            if _already_aborted(context):
                raise
            _abort(context, fn.__name__, exc)

    return wrapper
