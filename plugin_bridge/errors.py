"""Typed errors of the bridge, one class per gRPC status code the daemon documents (recast.v1).

Why typed: host code (a Blender operator, a conform script) reacts differently to "you typed a bad
value" (show it next to the field), "the daemon is gone" (start one, retry) and "a bug" (report it).
Every error keeps the daemon's `field` ("settings.steps") and the status code's name, which is what
the JSON-lines bridge sends to hosts without grpcio.
"""

from __future__ import annotations

import re

import grpc

_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]'\"]*): ")


class BridgeError(Exception):
    """Base class. `code` is a gRPC status code name (or a bridge code such as "PARSE_ERROR")."""

    code = "INTERNAL"
    exit_code = 1
    from_rpc = False  # True when a gRPC call returned it (the daemon's or the channel's status)

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if field is None:
            m = _FIELD.match(message)
            field = m.group(1) if m else None
        self.field = field

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class InvalidArgument(BridgeError):
    code = "INVALID_ARGUMENT"
    exit_code = 2


class NotFound(BridgeError):
    code = "NOT_FOUND"
    exit_code = 2


class FailedPrecondition(BridgeError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(BridgeError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(BridgeError):
    """The daemon is unreachable or draining: start one or retry."""

    code = "UNAVAILABLE"
    exit_code = 3


class DaemonNotFound(Unavailable):
    """No daemon answered at any discovered address (and none was started)."""


class DataLoss(BridgeError):
    code = "DATA_LOSS"


class PermissionDenied(BridgeError):
    code = "PERMISSION_DENIED"


class Unauthenticated(BridgeError):
    code = "UNAUTHENTICATED"


class DeadlineExceeded(BridgeError):
    code = "DEADLINE_EXCEEDED"


class InternalError(BridgeError):
    """A bug in the daemon (INTERNAL, or UNKNOWN which the daemon promises never to send)."""

    code = "INTERNAL"


class Cancelled(BridgeError):
    """The job (or the call) was cancelled."""

    code = "CANCELLED"
    exit_code = 130


class JobInterrupted(BridgeError):
    """The daemon stopped while the job ran; `ResumeJob` can re-queue it."""

    code = "ABORTED"


_BY_CODE: dict[str, type[BridgeError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DataLoss,
        PermissionDenied,
        Unauthenticated,
        DeadlineExceeded,
        InternalError,
        Cancelled,
        JobInterrupted,
    )
}
_BY_CODE["UNKNOWN"] = InternalError
_BY_CODE["ALREADY_EXISTS"] = FailedPrecondition
_BY_CODE["OUT_OF_RANGE"] = InvalidArgument


def error_for_code(code: str, message: str) -> BridgeError:
    """The typed error for a status code name (as in a job's FailedEvent)."""
    cls = _BY_CODE.get(code, BridgeError)
    return cls(message, code=code if cls is BridgeError else None)


def from_rpc_error(exc: grpc.RpcError) -> BridgeError:
    """Translate a failed gRPC call; the daemon's message already names the field first."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    err = error_for_code(name, details)
    err.from_rpc = True
    err.__cause__ = exc
    return err
