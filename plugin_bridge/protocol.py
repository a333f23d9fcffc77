"""The JSON-lines protocol of `recast-bridge json`: its schema, version and request checking.

Why a protocol of our own: the Python inside Blender or Resolve has no grpcio, but it can start a
process and exchange one JSON object per line. The schema below (JSON Schema 2020-12, printed by
`recast-bridge json --schema`, documented in docs/bridge.md) is the contract for those hosts.
Every line carries `"v": 1`; a host that sees a higher `protocol` in `hello` knows what to expect.
Requests are checked here by hand, so the bridge needs no jsonschema at run time; a test checks
that this checker and the published schema agree.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20
MAX_FRAME = (1 << 31) - 1

OPS = ("hello", "info", "edit", "cancel")
EVENT_TYPES = (
    "hello", "info", "ack", "accepted", "queued", "started", "progress", "frame", "result", "cancelled", "error",
)
# Codes of the bridge itself; daemon errors carry gRPC status code names (INVALID_ARGUMENT, …).
PROTOCOL_CODES = ("PARSE_ERROR", "INVALID_REQUEST", "UNKNOWN_OP", "UNSUPPORTED_VERSION")

_ID = {"type": ["string", "integer", "null"], "description": "Echoed in every line about this request."}
_PATH = {"type": "string", "minLength": 1, "description": "Absolute path on this machine."}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://recast.invalid/schemas/bridge-jsonl-v1.json",
    "title": "recast-bridge json protocol, version 1",
    "description": "One JSON object per line on stdin (requests) and stdout (events).",
    "$defs": {
        "request": {
            "type": "object",
            "required": ["v", "op"],
            "properties": {
                "v": {"const": PROTOCOL_VERSION},
                "id": _ID,
                "op": {"enum": list(OPS)},
            },
            "allOf": [
                {
                    "if": {"properties": {"op": {"const": "edit"}}},
                    "then": {"$ref": "#/$defs/edit_request"},
                },
                {
                    "if": {"properties": {"op": {"const": "cancel"}}},
                    "then": {"required": ["target"], "properties": {"target": {"type": ["string", "integer"]}}},
                },
            ],
        },
        "edit_request": {
            "type": "object",
            "required": ["source", "target_image", "source_prompt", "target_prompt"],
            "properties": {
                "source": {
                    "oneOf": [_PATH, {"type": "array", "minItems": 1, "items": _PATH}],
                    "description": "A movie or image file, or an image sequence as the list of its files in order.",
                },
                "fps": {"type": "number", "exclusiveMinimum": 0,
                        "description": "Frame rate of an image-sequence source (default 24)."},
                "target_image": _PATH,
                "source_prompt": {"type": "string", "minLength": 1},
                "target_prompt": {"type": "string", "minLength": 1},
                "start_frame": {"type": "integer", "minimum": 0, "maximum": MAX_FRAME, "default": 0},
                "end_frame": {
                    "type": "integer", "minimum": 0, "maximum": MAX_FRAME, "default": 0,
                    "description": "One past the last frame; 0 = to the end of the media.",
                },
                "name": {"type": "string", "description": "Used in the output folder's name."},
                "settings": {
                    "type": "object",
                    "description": "Pipeline settings by `recast-engine edit` name (steps, seed, guidance_scale, "
                    "tune_steps, mask_threshold (number or \"otsu\"), correction_weights [p, s, n], …).",
                    "additionalProperties": {"type": ["number", "boolean", "string", "array"]},
                },
                "output": {
                    "type": "object",
                    "properties": {
                        "format": {"enum": ["png", "mp4"], "default": "png"},
                        "path": {**_PATH, "description": "A new folder (must not exist). Default: "
                                 "<source folder>/recast_edits/<name>_<start>-<end>."},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "event": {
            "type": "object",
            "required": ["v", "id", "type"],
            "properties": {
                "v": {"const": PROTOCOL_VERSION},
                "id": _ID,
                "type": {"enum": list(EVENT_TYPES)},
            },
            "allOf": [
                {"if": {"properties": {"type": {"const": "error"}}},
                 "then": {"required": ["code", "message"], "properties": {
                     "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}},
                {"if": {"properties": {"type": {"const": "progress"}}},
                 "then": {"required": ["stage", "step", "total"], "properties": {
                     "stage": {"type": "string"}, "step": {"type": "integer"}, "total": {"type": "integer"},
                     "eta_seconds": {"type": "number"}}}},
                {"if": {"properties": {"type": {"const": "result"}}},
                 "then": {"required": ["job_id", "folder", "media", "format", "frame_count", "files",
                                       "start_frame", "end_frame", "fps"]}},
                {"if": {"properties": {"type": {"const": "accepted"}}},
                 "then": {"required": ["job_id", "clip_id"]}},
                {"if": {"properties": {"type": {"const": "hello"}}},
                 "then": {"required": ["protocol", "bridge_version", "ops"]}},
            ],
        },
    },
    "oneOf": [{"$ref": "#/$defs/request"}, {"$ref": "#/$defs/event"}],
}


class ProtocolError(Exception):
    """A request line the bridge cannot act on; answered with an error event, never a crash."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _need(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ProtocolError("INVALID_REQUEST", f"{field}: {message}", field)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def request_id(obj: Any) -> Any:
    """The id to echo, even from a request that fails checking (None if unusable)."""
    if isinstance(obj, dict):
        rid = obj.get("id")
        if rid is None or isinstance(rid, str) or _is_int(rid):
            return rid
    return None


def check_request(obj: Any) -> dict:
    """Validate one parsed request line against the schema's rules; return it."""
    if not isinstance(obj, dict):
        raise ProtocolError("INVALID_REQUEST", "request: each line must be a JSON object", "request")
    if "v" not in obj:
        raise ProtocolError("INVALID_REQUEST", f"v: missing; send \"v\": {PROTOCOL_VERSION}", "v")
    if obj["v"] != PROTOCOL_VERSION or isinstance(obj["v"], bool):
        raise ProtocolError("UNSUPPORTED_VERSION",
                            f"v: protocol version {obj['v']!r} is not supported; this bridge speaks {PROTOCOL_VERSION}",
                            "v")
    rid = obj.get("id")
    _need(rid is None or isinstance(rid, str) or _is_int(rid), "id", "must be a string, an integer or null")
    op = obj.get("op")
    _need(isinstance(op, str), "op", f"missing; one of {', '.join(OPS)}")
    if op not in OPS:
        raise ProtocolError("UNKNOWN_OP", f"op: {op!r} is not one of {', '.join(OPS)}", "op")
    if op == "cancel":
        target = obj.get("target")
        _need(isinstance(target, str) or _is_int(target), "target", "the id of the edit request to cancel")
    if op == "edit":
        src = obj.get("source")
        is_list = isinstance(src, list) and bool(src) and all(isinstance(p, str) and p for p in src)
        _need((isinstance(src, str) and bool(src)) or is_list, "source",
              "a path, or a non-empty list of image paths, is required")
        _need(isinstance(obj.get("target_image"), str) and bool(obj["target_image"]), "target_image",
              "a path (non-empty string) is required")
        if "fps" in obj:
            fps = obj["fps"]
            _need(isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0, "fps", "must be > 0")
        for key in ("source_prompt", "target_prompt"):
            _need(isinstance(obj.get(key), str) and bool(obj[key]), key, "a non-empty string is required")
        for key in ("start_frame", "end_frame"):
            if key in obj:
                _need(_is_int(obj[key]) and 0 <= obj[key] <= MAX_FRAME, key, f"must be an integer in 0..{MAX_FRAME}")
        if "name" in obj:
            _need(isinstance(obj["name"], str), "name", "must be a string")
        settings = obj.get("settings", {})
        _need(isinstance(settings, dict), "settings", "must be an object of setting names to values")
        for k, v in settings.items():
            _need(isinstance(v, (int, float, bool, str, list)), f"settings.{k}", "must be a number, boolean, "
                  "string or array")
        output = obj.get("output", {})
        _need(isinstance(output, dict), "output", "must be an object")
        unknown = sorted(set(output) - {"format", "path"})
        _need(not unknown, f"output.{unknown[0] if unknown else ''}", "is not an output option (format, path)")
        if "format" in output:
            _need(output["format"] in ("png", "mp4"), "output.format", "must be \"png\" or \"mp4\"")
        if "path" in output:
            _need(isinstance(output["path"], str) and bool(output["path"]), "output.path", "must be a path")
    return obj


def event(rid: Any, kind: str, **fields: Any) -> dict:
    return {"v": PROTOCOL_VERSION, "id": rid, "type": kind, **fields}


def error_event(rid: Any, code: str, message: str, field: str | None = None) -> dict:
    out = event(rid, "error", code=code, message=message)
    if field:
        out["field"] = field
    return out
