"""Every pipeline setting, declared once: name, type, default, valid range or choices, help, where it
sits in a UI, and its field(s) in the contract's `EditSettings` message.

Why one table here: the engine (`engine.settings.EditSettings`, `recast-engine edit/demo/bench`), the
daemon's and the bridge's translation of the wire message (`protos.settings_wire`), the bridge's flags
(`recast-bridge`), the studio's inspector (`desktop.model.params`) and the Blender add-on all need the
same names, defaults and ranges. Copies drift silently (a UI showing a default the engine no longer
has fails nothing), so they are all built from this table, and tests/test_settings_table.py checks
that each of them agrees with it. `protos/` is the one package every one of them may import.

To add a setting: add a `Setting` below, add its field to `message EditSettings` in
recast/v1/engine.proto (and regenerate with `python -m protos.generate`), and use it in the pipeline.
Measurements behind the defaults are in engine/models/shapes/TRAINING.md ("Why the defaults").

Pure standard library: the Blender add-on, whose Python has no protobuf, reads `table_json()`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("int", "float", "bool", "choice", "weights")
WEIGHT_PARTS = ("previous", "self", "next")


@dataclass(frozen=True)
class Setting:
    """One pipeline setting. Numbers are valid in [minimum, maximum] (None: unbounded; `open_min` /
    `open_max`: the bound itself is excluded); `ui` is the range a spin box or slider offers where
    the valid range is open or unbounded."""

    name: str
    kind: str  # one of KINDS; "weights": three numbers (previous, self, next frame)
    default: Any
    label: str  # short name in a UI
    help: str  # what it does and why, one sentence: CLI help, tooltips, descriptions
    proto: tuple[tuple[str, int], ...]  # (field name, number) in recast.v1.EditSettings
    minimum: float | None = None
    maximum: float | None = None
    open_min: bool = False
    open_max: bool = False
    ui: tuple[float, float] | None = None
    step: float = 1  # a UI's increment
    choices: tuple[str, ...] = ()  # "choice": the allowed words
    words: tuple[str, ...] = ()  # words a number setting also takes ("otsu"); sent in its second proto field
    note: str = ""  # said after the valid range in an error
    advanced: bool = False  # tucked away in a UI's advanced section

    @property
    def flag(self) -> str:
        """The command-line flag, spelled the same by `recast-engine` and `recast-bridge`."""
        return "--" + self.name.replace("_", "-")

    @property
    def annotation(self) -> str:
        return {"int": "int", "float": "float", "bool": "bool", "choice": "str",
                "weights": "tuple[float, float, float]"}[self.kind] + (" | str" if self.words else "")

    def ui_range(self) -> tuple[float, float]:
        """The range a spin box offers: `ui`, else the valid range."""
        if self.ui is not None:
            return self.ui
        assert self.minimum is not None and self.maximum is not None, self.name
        return (self.minimum, self.maximum)

    @property
    def help_sentence(self) -> str:
        """The help as a sentence, for tooltips and descriptions."""
        first = self.help.split(" ", 1)[0]
        text = self.help[:1].upper() + self.help[1:] if first.islower() else self.help
        return text + "."

    def default_text(self) -> str:
        if self.kind == "weights":
            return ",".join(f"{w:g}" for w in self.default)
        return str(self.default)

    def range_text(self) -> str:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            if self.open_min or self.open_max:
                return f"in {'(' if self.open_min else '['}{lo:g}, {hi:g}{')' if self.open_max else ']'}"
            return f"in {lo:g}..{hi:g}"
        if lo is not None:
            return ("> " if self.open_min else ">= ") + f"{lo:g}"
        if hi is not None:
            return ("< " if self.open_max else "<= ") + f"{hi:g}"
        return "any value"

    def in_range(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.minimum is not None and (x <= self.minimum if self.open_min else x < self.minimum):
            return False
        return self.maximum is None or not (x >= self.maximum if self.open_max else x > self.maximum)

    def problem(self, value: Any) -> str | None:
        """Why `value` is not valid for this setting (None: it is), checked against the table alone;
        rules that relate two settings (overlap < window) are the engine's."""
        note = f" ({self.note})" if self.note else ""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "choice":
            if value in self.choices:
                return None
            return "must be " + " or ".join(repr(c) for c in self.choices) + note
        if self.kind == "weights":
            ok = (isinstance(value, (list, tuple)) and len(value) == 3
                  and all(_is_number(w) and self.in_range(float(w)) for w in value))
            return None if ok else f"must be three numbers {self.range_text()} ({', '.join(WEIGHT_PARTS)})"
        if self.words and isinstance(value, str):
            return None if value in self.words else self._number_problem(note)
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and self.in_range(value)
        else:
            ok = _is_number(value) and self.in_range(float(value))
        return None if ok else self._number_problem(note)

    def _number_problem(self, note: str) -> str:
        what = "an integer" if self.kind == "int" else "a number"
        words = "".join(f" or {w!r}" for w in self.words)
        return f"must be {what} {self.range_text()}{words}{note}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _one(name: str, number: int) -> tuple[tuple[str, int], ...]:
    return ((name, number),)


# The order is the engine's (EditSettings' field order, which reports and cache keys follow).
SETTINGS: tuple[Setting, ...] = (
    Setting("steps", "int", 20, "Steps", "DDIM steps for inversion, masks and generation (more: slower and cleaner)",
            _one("steps", 1), 1, 1000),
    Setting("seed", "int", 0, "Seed",
            "random seed of tuning and image-embedding noise: same seed and settings, same result",
            _one("seed", 2), 0, None, ui=(0, 2**31 - 1)),
    Setting("guidance_scale", "float", 10.0, "Guidance",
            "classifier-free guidance scale: how strongly the result follows the target prompt and image "
            "(1 disables guidance)",
            _one("guidance_scale", 3), 1.0, None, ui=(1.0, 30.0), step=0.5, note="1 disables guidance"),
    Setting("source_negative", "bool", True, "Away from source",
            "guide away from the source prompt and frames instead of the empty prompt and zero image: an edit "
            "starts from the inverted source, so this pushes exactly the source → target difference",
            _one("source_negative", 25), advanced=True),
    Setting("noise_level", "int", 0, "Image noise",
            "unCLIP noise level added to the image embeddings (higher follows the target image more loosely)",
            _one("noise_level", 4), 0, 1000),
    Setting("tune_steps", "int", 20, "Tuning steps",
            "one-shot tuning steps on the clip (0 skips tuning: faster, less faithful motion)",
            _one("tune_steps", 5), 0, 5000),
    Setting("tune_lr", "float", 1e-4, "Tuning rate", "one-shot tuning learning rate",
            _one("tune_lr", 6), 0.0, None, open_min=True, ui=(1e-6, 1e-2), step=1e-5, advanced=True),
    Setting("inversion_refine", "int", 1, "Inversion refine", "fixed-point refinements per DDIM inversion step",
            _one("inversion_refine", 7), 0, 10, advanced=True),
    Setting("mask_threshold", "float", 0.3, "Mask threshold",
            "mask threshold as a fraction of the clip's peak noise difference (lower grows the mask), "
            "or 'otsu' for Otsu's threshold per clip",
            (("mask_threshold", 8), ("mask_method", 9)), 0.0, 1.0, open_min=True, open_max=True,
            ui=(0.01, 0.99), step=0.05, words=("otsu",)),
    Setting("mask_dilate", "float", 0.0, "Mask dilation",
            "mask dilation, as a fraction of the frame's shorter side (the feather already blends the edge)",
            _one("mask_dilate", 10), 0.0, 0.5, step=0.01, note="fraction of the short side"),
    Setting("mask_refine", "bool", True, "Refine edges", "snap mask edges to the source frame's edges (GrabCut)",
            _one("mask_refine", 11)),
    Setting("mask_text_only", "bool", False, "Text-only masks", "ablation: compute masks without the target image",
            _one("mask_text_only", 12), advanced=True),
    Setting("feather", "float", 0.01, "Feather", "compositing feather, as a fraction of the frame's shorter side",
            _one("feather", 13), 0.0, 0.5, step=0.005, note="fraction of the short side"),
    Setting("framing", "choice", "frame", "Framing",
            "'object': edit a square crop that follows the mask at the model's native size, so a small object "
            "gets the whole model; 'frame': the whole frame at the working size",
            _one("framing", 26), choices=("frame", "object"),
            note="'frame': whole frames, 'object': a crop that follows the edit region"),
    Setting("renoise", "float", 0.0, "Renoise",
            "share of fresh noise mixed into the inverted start latents inside the mask: the inversion carries "
            "the old outline, fresh noise gives a new shape room (0: the inversion alone)",
            _one("renoise", 27), 0.0, 1.0, step=0.05, note="0: start from the inversion"),
    Setting("layered", "bool", True, "Layers",
            "compose the region in layers: the new object inside the target image's silhouette at the source "
            "object's pose, a temporal clean plate where the old object leaves (off: the whole region is "
            "generated, as in the patent)",
            _one("layered", 28)),
    Setting("color_match", "float", 1.0, "Colour match",
            "with layers: share of the way the new object's median colour moves onto the target image "
            "object's, one shift per clip (0: the model's own colours, which miss some hues)",
            _one("color_match", 29), 0.0, 1.0, step=0.1, note="0: the model's own colours"),
    Setting("latent_correction", "bool", True, "Latent correction",
            "blend latents inside the mask along nearest-neighbour fields between consecutive frames "
            "(steadier objects)",
            _one("latent_correction", 14)),
    Setting("correction_weights", "weights", (0.25, 0.5, 0.25), "Correction weights",
            "latent-correction weights of the previous, current and next frame (sum 1), e.g. 0.25,0.5,0.25",
            (("correction_weight_prev", 15), ("correction_weight_self", 16), ("correction_weight_next", 17)),
            0.0, 1.0, step=0.05, advanced=True),
    Setting("correction_block", "int", 1, "Correction block",
            "UNet up-block whose features give the nearest-neighbour fields",
            _one("correction_block", 18), 0, None, ui=(0, 3), advanced=True),
    Setting("temporal", "bool", True, "Temporal model",
            "inflate the UNet across frames (off: a per-frame ablation without inflation, tuning or "
            "correction, which flickers)",
            _one("temporal", 19)),
    Setting("anchor_first_frame", "bool", True, "Anchor first frame",
            "ST-Attn also attends to the first frame (keeps the object's look stable)",
            _one("anchor_first_frame", 20), advanced=True),
    Setting("window", "int", 16, "Window",
            "frames per window: long clips run in overlapping windows, so memory is bounded by the window",
            _one("window", 21), 2, None, ui=(2, 512), advanced=True),
    Setting("overlap", "int", 4, "Overlap", "frames shared (and blended) by consecutive windows; fewer than the window",
            _one("overlap", 22), 0, None, ui=(0, 511), advanced=True),
    Setting("preview_every", "int", 5, "Preview every", "decode an x0 preview every N denoising steps (0: never)",
            _one("preview_every", 23), 0, None, ui=(0, 1000), advanced=True),
    Setting("cache", "bool", True, "Reuse cache",
            "cache tuned weights and inversions on disk and reuse them for the same clip and settings",
            _one("cache", 24), advanced=True),
    Setting("mask_preset", "choice", "full", "Mask preset",
            "mask jobs: 'interactive' computes masks without tuning, with 8 steps and no inversion refinement "
            "(seconds, for trying thresholds and points; the render tunes with its own settings); 'full': the "
            "edit's own steps and tuning",
            _one("mask_preset", 31), choices=("full", "interactive"),
            note="'interactive': fast masks for mask jobs, 'full': the edit's settings"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
EXTRA_FIELD = ("extra", 30)  # map<string, string> for settings newer than a client's contract


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SETTINGS}


def table_json() -> list[dict[str, Any]]:
    """The table as JSON-able data, for readers without this package (the installed Blender add-on)."""
    out = []
    for s in SETTINGS:
        numeric = s.kind in ("int", "float", "weights")
        out.append({
            "name": s.name, "kind": s.kind, "default": list(s.default) if s.kind == "weights" else s.default,
            "label": s.label, "help": s.help, "description": s.help_sentence,
            "minimum": s.minimum, "maximum": s.maximum, "open_min": s.open_min, "open_max": s.open_max,
            "ui": list(s.ui_range()) if numeric else None, "step": s.step,
            "choices": list(s.choices), "words": list(s.words), "advanced": s.advanced,
        })
    return out


# --- command-line flags: `recast-engine edit / demo / bench quality` and `recast-bridge` ---------------


def _threshold(text: str) -> float | str:
    return text if text in BY_NAME["mask_threshold"].words else float(text)


def _weights(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def add_setting_flags(parser: argparse.ArgumentParser, title: str = "pipeline settings") -> None:
    """One flag per setting. Unset flags stay None, so the engine's defaults apply (the help names them)."""
    group = parser.add_argument_group(title)
    for s in SETTINGS:
        help_text = f"{s.help} (default: {s.default_text()})"
        if s.kind == "bool":
            group.add_argument(s.flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif s.kind == "weights":
            group.add_argument(s.flag, type=_weights, default=None, metavar="P,S,N", help=help_text)
        elif s.words:
            group.add_argument(s.flag, type=_threshold, default=None, help=help_text)
        elif s.kind == "choice":
            group.add_argument(s.flag, type=str, default=None, metavar="{" + ",".join(s.choices) + "}",
                               help=help_text)
        else:
            group.add_argument(s.flag, type=int if s.kind == "int" else float, default=None, help=help_text)


def values_from_flags(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (unset flags left out)."""
    get = args.get if isinstance(args, Mapping) else lambda name: getattr(args, name, None)
    return {s.name: get(s.name) for s in SETTINGS if get(s.name) is not None}
