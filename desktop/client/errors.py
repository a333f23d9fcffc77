"""Errors as sentences an editor can act on (never a traceback).

The studio raises and receives the SDK's typed errors (plugin_bridge.errors). The daemon's messages
already name the field ("target_prompt: must not be empty"); for an error a gRPC call returned this
adds what the user can do about its status code. Errors the client phrased itself read as they are.
"""

from __future__ import annotations

import grpc

from plugin_bridge.errors import BridgeError, from_rpc_error

_HINTS = {
    "UNAVAILABLE": "The engine is not reachable. Check that it is running (Engine ▸ Reconnect).",
    "DEADLINE_EXCEEDED": "The engine did not answer in time. It may be busy; try again.",
    "RESOURCE_EXHAUSTED": "This is over one of the engine's limits.",
    "UNAUTHENTICATED": "The engine refused the access token.",
    "PERMISSION_DENIED": "The engine may not use that path.",
    "DATA_LOSS": "The data was damaged on the way; try again.",
    "INTERNAL": "The engine hit an internal problem. Please report it with the message below.",
}


def friendly(exc: BaseException) -> str:
    """One readable message for any error a worker catches."""
    if isinstance(exc, grpc.RpcError):
        exc = from_rpc_error(exc)
    if isinstance(exc, BridgeError):
        return _from_call(exc) if exc.from_rpc else exc.message
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).strip()
    return text or exc.__class__.__name__


def _from_call(exc: BridgeError) -> str:
    code, details = exc.code, exc.message.strip()
    if code == "CANCELLED":
        return "Cancelled."
    hint = _HINTS.get(code, "")
    if code == "UNAVAILABLE" and details and "connect" not in details.lower():
        hint, details = f"The engine is unavailable: {details}", ""
    parts = [p for p in (details, hint) if p]
    return " — ".join(parts) if parts else f"Engine error ({code.lower()})."
