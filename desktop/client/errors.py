"""Engine errors as sentences an editor can act on (never a traceback).

The daemon's messages already name the field ("target_prompt: must not be empty"); this adds what
the user can do about the status code.
"""

from __future__ import annotations

import grpc

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "The engine is not reachable. Check that it is running (Engine ▸ Reconnect).",
    grpc.StatusCode.DEADLINE_EXCEEDED: "The engine did not answer in time. It may be busy; try again.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "This is over one of the engine's limits.",
    grpc.StatusCode.UNAUTHENTICATED: "The engine refused the access token.",
    grpc.StatusCode.PERMISSION_DENIED: "The engine may not use that path.",
    grpc.StatusCode.DATA_LOSS: "The data was damaged on the way; try again.",
    grpc.StatusCode.INTERNAL: "The engine hit an internal problem. Please report it with the message below.",
}


class StudioError(Exception):
    """A problem already phrased for the user."""


def friendly(exc: BaseException) -> str:
    """One readable message for any error a worker catches."""
    if isinstance(exc, StudioError):
        return str(exc)
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        code = exc.code()
        details = (exc.details() or "").strip() if hasattr(exc, "details") else ""
        hint = _HINTS.get(code, "")
        if code == grpc.StatusCode.UNAVAILABLE and details and "connect" not in details.lower():
            hint = f"The engine is unavailable: {details}"
            details = ""
        if code == grpc.StatusCode.CANCELLED:
            return "Cancelled."
        parts = [p for p in (details, hint) if p]
        return " — ".join(parts) if parts else f"Engine error ({code.name.lower()})."
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).strip()
    return text or exc.__class__.__name__
