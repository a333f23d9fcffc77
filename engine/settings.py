"""Every knob of an edit in one validated dataclass shared by the CLI, the daemon and the pipeline.

The knobs themselves (names, defaults, ranges, help) are declared once in protos/settings_table.py,
which the bridge and the studio read as well; `EditSettings` is built from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, make_dataclass
from typing import Any

from engine.errors import InputError, LimitError
from protos.settings_table import SETTINGS


def _validate(self: Any) -> Any:
    """Each setting against the table's range or choices, then the rules that relate settings."""
    for s in SETTINGS:
        problem = s.problem(getattr(self, s.name))
        if problem:
            raise InputError(s.name, problem)
    w = tuple(float(x) for x in self.correction_weights)
    if abs(sum(w) - 1) >= 1e-6:
        raise InputError("correction_weights", "must be three non-negative numbers summing to 1 (previous, self, next)")
    self.correction_weights = w
    if self.overlap >= self.window:
        raise InputError("overlap", "must be in 0..window-1")
    return self


def _to_dict(self: Any) -> dict:
    return asdict(self)


def _from_dict(cls: type, data: dict) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(unknown[0], f"is not a setting; known settings: {', '.join(sorted(known))}")
    return cls(**data).validate()


# Fields, defaults and ranges come from the settings table (protos/settings_table.py), which every front
# end reads too; this module adds only what needs the engine: the checks that relate two settings.
EditSettings = make_dataclass(
    "EditSettings",
    [(s.name, s.annotation, s.default) for s in SETTINGS],
    namespace={
        "__doc__": "Every setting of an edit (see protos/settings_table.py); `validate()` returns self or "
                   "raises InputError naming the field.",
        "validate": _validate,
        "to_dict": _to_dict,
        "from_dict": classmethod(_from_dict),
    },
)
EditSettings.__module__ = __name__


@dataclass(frozen=True)
class Limits:
    """Size limits, checked before any decoding or model work."""

    max_frames: int = 2000
    max_clip_pixels: int = 2000 * 1920 * 1080  # frames × height × width
    max_prompt_chars: int = 1000

    def check_clip(self, frames: int, height: int, width: int, field: str = "range") -> None:
        if frames > self.max_frames:
            raise LimitError(field, f"{frames} frames exceed the limit of {self.max_frames}; edit a shorter range")
        if frames * height * width > self.max_clip_pixels:
            raise LimitError(field, f"{frames}×{height}×{width} pixels exceed the limit of "
                             f"{self.max_clip_pixels}; edit a shorter range")

    def check_prompt(self, field: str, prompt: str) -> None:
        if not prompt or not prompt.strip():
            raise InputError(field, "is empty; describe the scene, e.g. 'a red circle on a plain gray background'")
        if len(prompt) > self.max_prompt_chars:
            raise LimitError(field, f"is {len(prompt)} characters; the limit is {self.max_prompt_chars}")
        if any(ord(c) < 32 and c not in "\t\n" for c in prompt):
            raise InputError(field, "contains control characters")
