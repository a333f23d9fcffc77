"""Pipeline settings as hosts spell them, turned into the contract's `EditSettings` message.

Why thin: the bridge may not import `engine.settings`, yet its flags must match `recast-engine edit`
(one flag per setting, same spelling, same help and defaults) and its JSON settings must match both.
So the names, flags and the dict ↔ message translation all come from protos/ (settings_table.py and
settings_wire.py), which the engine reads too; this module only speaks the bridge's errors.
Names newer than this contract travel in `extra` and the daemon validates them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from plugin_bridge.errors import InvalidArgument
from protos.recast.v1 import engine_pb2 as pb
from protos.settings_table import add_setting_flags, values_from_flags
from protos.settings_wire import SettingValueError, settings_from_message, settings_to_message


def settings_message(values: Mapping[str, Any] | None) -> pb.EditSettings:
    """Only what the caller set; ranges are the daemon's to check (against the same table)."""
    try:
        return settings_to_message(values)
    except SettingValueError as exc:
        raise InvalidArgument(str(exc), field=exc.field) from None


def settings_dict(msg: pb.EditSettings) -> dict[str, Any]:
    """The inverse of `settings_message`, for reports and sidecar files."""
    try:
        return settings_from_message(msg)
    except SettingValueError as exc:
        raise InvalidArgument(str(exc), field=exc.field) from None


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, spelled as `recast-engine edit`; unset flags stay None (the engine's default)."""
    add_setting_flags(parser, "pipeline settings (as in `recast-engine edit`; unset = engine default)")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return values_from_flags(args)
