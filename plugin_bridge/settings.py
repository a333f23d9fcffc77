"""Pipeline settings as hosts spell them, turned into the contract's `EditSettings` message.

Why derived from the proto descriptor: the bridge may not import `engine.settings`, yet its flags
must match `recast-engine edit` (one flag per engine setting, same spelling) and its JSON settings
must match both. The descriptor mirrors the engine's dataclass field by field, except for two
settings that the contract splits: `mask_threshold` may be "otsu" (→ `mask_method`), and
`correction_weights` (P,S,N) is three fields. Names newer than this contract travel in `extra` and
the daemon validates them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from plugin_bridge.errors import InvalidArgument
from protos.recast.v1 import engine_pb2 as pb
from protos.settings_help import SETTING_HELP

_WEIGHTS = ("correction_weight_prev", "correction_weight_self", "correction_weight_next")
_NOT_SETTINGS = {"mask_method", "extra", *_WEIGHTS}
_INT = {FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}



def setting_fields() -> dict[str, FieldDescriptor | None]:
    """Engine setting names in the engine's order; None marks `correction_weights` (three fields)."""
    out: dict[str, FieldDescriptor | None] = {}
    for f in pb.EditSettings.DESCRIPTOR.fields:
        if f.name == _WEIGHTS[0]:
            out["correction_weights"] = None
        elif f.name not in _NOT_SETTINGS:
            out[f.name] = f
    return out


def _number(name: str, value: Any, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"settings.{name}: {value!r} is not a number", field=f"settings.{name}")
    if not math.isfinite(value):
        raise InvalidArgument(f"settings.{name}: must be finite", field=f"settings.{name}")
    if integer:
        if float(value) != int(value):
            raise InvalidArgument(f"settings.{name}: {value!r} is not a whole number", field=f"settings.{name}")
        if value < 0:
            raise InvalidArgument(f"settings.{name}: must not be negative", field=f"settings.{name}")
        return int(value)
    return float(value)


def settings_message(values: Mapping[str, Any] | None) -> pb.EditSettings:
    """Only what the caller set; ranges are the daemon's to check (one source of truth)."""
    msg = pb.EditSettings()
    known = setting_fields()
    for name, value in (values or {}).items():
        if value is None:
            continue
        field = f"settings.{name}"
        if name == "mask_threshold" and isinstance(value, str):
            if value.lower() != "otsu":
                raise InvalidArgument(f"{field}: {value!r} is neither a number nor 'otsu'", field=field)
            msg.mask_method = pb.MASK_METHOD_OTSU
        elif name == "mask_method":
            method = {"otsu": pb.MASK_METHOD_OTSU, "threshold": pb.MASK_METHOD_THRESHOLD}.get(str(value).lower())
            if method is None:
                raise InvalidArgument(f"{field}: {value!r} is not 'threshold' or 'otsu'", field=field)
            msg.mask_method = method
        elif name == "correction_weights":
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise InvalidArgument(f"{field}: give three numbers (previous, self, next)", field=field)
            for attr, w in zip(_WEIGHTS, value):
                try:
                    w = float(w)
                except (TypeError, ValueError):
                    raise InvalidArgument(f"{field}: {w!r} is not a number", field=field) from None
                setattr(msg, attr, _number(name, w, False))
        elif name in known:
            desc = known[name]
            assert desc is not None
            if desc.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
                if not isinstance(value, bool):
                    raise InvalidArgument(f"{field}: {value!r} is not true or false", field=field)
                setattr(msg, name, value)
            elif desc.cpp_type == FieldDescriptor.CPPTYPE_STRING:
                if not isinstance(value, str):
                    raise InvalidArgument(f"{field}: {value!r} is not a string", field=field)
                setattr(msg, name, value)  # which words are allowed is the daemon's to say
            else:
                number = _number(name, value, desc.cpp_type in _INT)
                try:
                    setattr(msg, name, number)
                except (ValueError, TypeError) as exc:
                    raise InvalidArgument(f"{field}: {value!r} is out of range ({exc})", field=field) from None
        else:
            msg.extra[name] = json.dumps(value)  # newer than this contract: the daemon decides
    return msg


def settings_dict(msg: pb.EditSettings) -> dict[str, Any]:
    """The inverse of `settings_message`, for reports and sidecar files."""
    out: dict[str, Any] = {}
    for desc, value in msg.ListFields():
        if desc.name in _WEIGHTS or desc.name in ("extra", "mask_method"):
            continue
        out[desc.name] = round(value, 6) if isinstance(value, float) else value
    if msg.mask_method == pb.MASK_METHOD_OTSU:
        out["mask_threshold"] = "otsu"
    if msg.HasField(_WEIGHTS[0]):
        out["correction_weights"] = [round(getattr(msg, w), 6) for w in _WEIGHTS]
    for key, raw in msg.extra.items():
        out[key] = json.loads(raw)
    return out


# --- command-line flags (spelled exactly as `recast-engine edit`) ----------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _threshold(text: str) -> float | str:
    return text if text == "otsu" else float(text)


def _weights(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per engine setting; unset flags stay None so the daemon's defaults apply."""
    group = parser.add_argument_group("pipeline settings (as in `recast-engine edit`; unset = engine default)")
    for name, desc in setting_fields().items():
        help_text = SETTING_HELP.get(name, name)
        if name == "correction_weights":
            group.add_argument(_flag(name), type=_weights, default=None, metavar="P,S,N", help=help_text)
        elif name == "mask_threshold":
            group.add_argument(_flag(name), type=_threshold, default=None, help=help_text)
        elif desc is not None and desc.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif desc is not None and desc.cpp_type in _INT:
            group.add_argument(_flag(name), type=int, default=None, help=help_text)
        elif desc is not None and desc.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            group.add_argument(_flag(name), type=str, default=None, help=help_text)
        else:
            group.add_argument(_flag(name), type=float, default=None, help=help_text)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in setting_fields() if getattr(args, name, None) is not None}
