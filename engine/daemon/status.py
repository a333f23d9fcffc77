"""Exceptions → gRPC status codes (DESIGN.md §5), and the wrapper that keeps UNKNOWN away.

Why a wrapper on every handler: grpc reports an escaped Python exception as UNKNOWN with a useless
message. Every handler is wrapped so that our own exceptions map to their documented codes and
anything else (a bug) becomes INTERNAL naming the method and the error.
"""

from __future__ import annotations

import functools
import logging
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
)


def code_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _MAP:
        if isinstance(exc, kind):
            return code
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
