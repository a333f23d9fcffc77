"""The settings table on the wire: a dict of settings by name ↔ a `recast.v1.EditSettings` message.

Why one pair of functions here: the daemon reads messages (engine.daemon.runner), the bridge and the
studio write them (plugin_bridge.settings, desktop.model.params), and each direction follows
protos.settings_table, so a new setting needs no code here. The contract splits two settings: the
words a number setting also takes ("otsu") travel in its second field, an enum (`mask_method`), and
the three correction weights travel as three fields, all or none. Names newer than a client's
contract travel in `extra` as JSON; the daemon decides what they mean.

Only the form of a value is checked here (a number, a whole number, true/false); ranges are the
engine's to check, against the same table (engine.settings.EditSettings.validate).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from protos.recast.v1 import engine_pb2 as pb
from protos.settings_table import BY_NAME, SETTINGS, WEIGHT_PARTS

_UNSIGNED = {FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}
_WORD_FIELDS = {s.proto[1][0]: s for s in SETTINGS if s.words}  # "mask_method" → mask_threshold


class SettingValueError(ValueError):
    """A value that cannot be a setting; `field` names it as the daemon does ("settings.steps")."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _descriptor(name: str) -> FieldDescriptor:
    return pb.EditSettings.DESCRIPTOR.fields_by_name[name]


def word_values(field_name: str) -> dict[str, int]:
    """An enum field's words: {"threshold": 1, "otsu": 2} for `mask_method`."""
    prefix = field_name.upper() + "_"
    return {v.name.removeprefix(prefix).lower(): v.number
            for v in _descriptor(field_name).enum_type.values if v.number != 0}


def float32_value(x: float) -> float:
    """The shortest decimal with the same float32 value: what the sender wrote (0.2, not 0.2000000029)."""
    packed = struct.pack("<f", x)
    for digits in range(6, 10):
        y = float(f"{x:.{digits}g}")
        if struct.pack("<f", y) == packed:
            return y
    return x


def _number(field: str, value: Any, integer: bool, unsigned: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingValueError(field, f"{value!r} is not a number")
    if not math.isfinite(value):
        raise SettingValueError(field, "must be finite")
    if integer:
        if float(value) != int(value):
            raise SettingValueError(field, f"{value!r} is not a whole number")
        if unsigned and value < 0:
            raise SettingValueError(field, "must not be negative")
        return int(value)
    return float(value)


def settings_to_message(values: Mapping[str, Any] | None) -> pb.EditSettings:
    """Only what the caller set (None counts as unset), so the engine's defaults apply to the rest."""
    msg = pb.EditSettings()
    for name, value in (values or {}).items():
        if value is None:
            continue
        field = f"settings.{name}"
        s = BY_NAME.get(name)
        if name in _WORD_FIELDS:  # the enum field itself, e.g. "mask_method": "otsu"
            words = word_values(name)
            number = words.get(str(value).lower())
            if number is None:
                raise SettingValueError(field, f"{value!r} is not " + " or ".join(repr(w) for w in words))
            setattr(msg, name, number)
        elif s is None:
            try:
                msg.extra[name] = json.dumps(value)  # newer than this contract: the daemon decides
            except (TypeError, ValueError):
                raise SettingValueError(field, f"{value!r} is not a JSON value") from None
        elif s.words and isinstance(value, str):
            if value.lower() not in s.words:
                raise SettingValueError(field, f"{value!r} is neither a number nor "
                                        + " nor ".join(repr(w) for w in s.words))
            word_field = s.proto[1][0]
            setattr(msg, word_field, word_values(word_field)[value.lower()])
        elif s.kind == "weights":
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, (list, tuple)) or len(value) != len(s.proto):
                raise SettingValueError(field, f"give three numbers ({', '.join(WEIGHT_PARTS)})")
            for (attr, _), w in zip(s.proto, value):
                try:
                    w = float(w)
                except (TypeError, ValueError):
                    raise SettingValueError(field, f"{w!r} is not a number") from None
                setattr(msg, attr, _number(field, w, False, False))
        elif s.kind == "bool":
            if not isinstance(value, bool):
                raise SettingValueError(field, f"{value!r} is not true or false")
            setattr(msg, s.proto[0][0], value)
        elif s.kind == "choice":
            if not isinstance(value, str):
                raise SettingValueError(field, f"{value!r} is not a string")
            setattr(msg, s.proto[0][0], value)  # which words are allowed is the engine's to say
        else:
            attr = s.proto[0][0]
            number = _number(field, value, s.kind == "int", _descriptor(attr).cpp_type in _UNSIGNED)
            try:
                setattr(msg, attr, number)
            except (ValueError, TypeError) as exc:
                raise SettingValueError(field, f"{value!r} is out of range ({exc})") from None
    return msg


def settings_from_message(msg: pb.EditSettings) -> dict[str, Any]:
    """The settings a message sets, by name (unset fields left out), `extra` decoded from JSON."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        names = [name for name, _ in s.proto]
        if s.kind == "weights":
            present = [msg.HasField(n) for n in names]
            if any(present):
                if not all(present):
                    raise SettingValueError(f"settings.{names[0]}", "set all three correction weights or none")
                values[s.name] = tuple(float32_value(getattr(msg, n)) for n in names)
            continue
        if msg.HasField(names[0]):
            value = getattr(msg, names[0])
            values[s.name] = float32_value(value) if s.kind == "float" else value
        if s.words:
            word = {number: w for w, number in word_values(names[1]).items()}.get(getattr(msg, names[1]))
            if word in s.words:
                values[s.name] = word
    for key, raw in msg.extra.items():
        try:
            value = json.loads(raw)
        except ValueError:
            raise SettingValueError(f"settings.extra[{key!r}]", f"{raw[:80]!r} is not JSON") from None
        values[key] = tuple(value) if isinstance(value, list) else value
    return values
