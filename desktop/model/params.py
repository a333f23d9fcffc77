"""The pipeline parameters the inspector offers, derived from the settings table (protos/settings_table.py).

Why derived: the engine's defaults and ranges are declared once, in the table; a copy here would
show a default the engine no longer has and nothing would fail. `to_settings` sends only what the
user changed — unset fields mean "the engine's default", so a newer engine's defaults win unless the
user chose otherwise.

Two settings become more than one widget: `mask_threshold` also takes the word "otsu", offered as a
"Mask method" choice beside the number, and `correction_weights` is three numbers (previous, self,
next frame). The seed has its own row in the inspector (with a "Random" button) and is not a Param.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protos.recast.v1 import engine_pb2 as pb
from protos.settings_table import SETTINGS, Setting
from protos.settings_wire import settings_to_message

METHOD = "threshold"  # the "Mask method" word that means: use the number
# the studio's own defaults where they differ from the engine's, always sent: mask jobs use the interactive
# preset (masks in seconds, to try thresholds on); renders ignore the preset and keep their settings
STUDIO_DEFAULTS: dict[str, Any] = {"mask_preset": "interactive"}


@dataclass(frozen=True)
class Param:
    name: str  # the recipe's key: a setting's name, "mask_method", or a correction weight's proto field
    label: str
    kind: str  # "int", "float", "bool", "choice"
    default: Any
    tooltip: str
    minimum: float = 0
    maximum: float = 0
    step: float = 1
    choices: tuple[str, ...] = ()
    advanced: bool = False
    setting: str = ""  # the table's setting this edits


def _tooltip(s: Setting) -> str:
    return f"{s.help_sentence}\nEngine setting {s.name}, default {s.default_text()}."


def params_for(s: Setting) -> tuple[Param, ...]:
    """The inspector's editors of one table setting."""
    tip = _tooltip(s)
    common = {"tooltip": tip, "advanced": s.advanced, "setting": s.name}
    if s.kind == "weights":
        lo, hi = s.ui_range()
        return tuple(Param(field, f"{s.label} ({part})", "float", w, f"Weight of the {part} frame. {tip}", lo, hi,
                           s.step, advanced=s.advanced, setting=s.name)
                     for (field, _), part, w in zip(s.proto, ("previous", "current", "next"), s.default))
    if s.kind in ("bool", "choice"):
        return (Param(s.name, s.label, s.kind, STUDIO_DEFAULTS.get(s.name, s.default), choices=s.choices,
                      **common),)
    lo, hi = s.ui_range()
    number = Param(s.name, s.label, s.kind, s.default, minimum=lo, maximum=hi, step=s.step, **common)
    if not s.words:
        return (number,)
    method = Param(s.proto[1][0], s.label.split()[0] + " method", "choice", METHOD,
                   choices=(METHOD, *s.words), **common)
    return (method, number)


PARAMS: tuple[Param, ...] = tuple(p for s in SETTINGS if s.name != "seed" for p in params_for(s))

BY_NAME = {p.name: p for p in PARAMS}


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


def changed_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The table's settings whose editors differ from their defaults, by setting name."""
    out: dict[str, Any] = {}
    for s in SETTINGS:
        ps = [BY_NAME[p.name] for p in params_for(s) if p.name in BY_NAME]
        if not ps or all(_same(values.get(p.name, p.default), p.default) for p in ps):
            continue
        if s.kind == "weights":  # all three or none
            out[s.name] = [float(values.get(p.name, p.default)) for p in ps]
        elif s.words and values.get(ps[0].name, METHOD) != METHOD:
            out[s.name] = values[ps[0].name]  # "otsu": the number is not used
        else:
            p = ps[-1]
            value = values.get(p.name, p.default)
            if not _same(value, p.default):
                out[s.name] = {"int": int, "float": float, "bool": bool}.get(p.kind, str)(value)
    return out


def to_settings(values: dict[str, Any], seed: int) -> pb.EditSettings:
    """EditSettings with the seed and every parameter that differs from its default."""
    studio = {k: values.get(k, v) for k, v in STUDIO_DEFAULTS.items()}
    return settings_to_message({**changed_settings(values), **studio, "seed": int(seed)})
