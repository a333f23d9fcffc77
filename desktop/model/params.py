"""The pipeline parameters the inspector offers, declared as data (mirrors recast.v1.EditSettings).

Why a table: the inspector builds its form from it, tooltips and defaults live in one place, and
`to_settings` sends only what the user changed — unset fields mean "the engine's default", so a
newer engine's defaults win unless the user chose otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protos.recast.v1 import engine_pb2 as pb


@dataclass(frozen=True)
class Param:
    name: str  # EditSettings field
    label: str
    kind: str  # "int", "float", "bool", "choice"
    default: Any
    tooltip: str
    minimum: float = 0
    maximum: float = 0
    step: float = 1
    choices: tuple[str, ...] = ()
    advanced: bool = False


PARAMS: tuple[Param, ...] = (
    Param("steps", "Steps", "int", 20, "DDIM steps for inversion, masks and generation. More is slower and cleaner.",
          1, 1000),
    Param("guidance_scale", "Guidance", "float", 10.0,
          "How strongly the result follows the target prompt and image (1 = no guidance).", 1, 30, 0.5),
    Param("source_negative", "Away from source", "bool", True,
          "Guide away from the source's look rather than from nothing: recolours more reliably.", advanced=True),
    Param("tune_steps", "Tuning steps", "int", 20,
          "One-shot tuning on the source clip; 0 skips tuning (faster, less faithful motion).", 0, 2000),
    Param("tune_lr", "Tuning rate", "float", 1e-4, "Learning rate of the one-shot tuning.", 1e-6, 1e-2, 1e-5,
          advanced=True),
    Param("noise_level", "Image noise", "int", 0,
          "unCLIP noise on the target image's embedding: higher follows the image more loosely.", 0, 1000),
    Param("mask_method", "Mask method", "choice", "threshold",
          "Fixed threshold, or Otsu's threshold chosen per clip.", choices=("threshold", "otsu")),
    Param("mask_threshold", "Mask threshold", "float", 0.3,
          "Share of the peak source/target difference that counts as 'edit'. Lower grows the mask.", 0.01, 0.99,
          0.05),
    Param("mask_dilate", "Mask dilation", "float", 0.0, "Grow the mask by this share of the frame's shorter side.",
          0, 0.5, 0.01),
    Param("mask_refine", "Refine edges", "bool", True, "Snap mask edges to the source frame (GrabCut)."),
    Param("feather", "Feather", "float", 0.01, "Soft compositing edge, as a share of the shorter side.", 0, 0.5,
          0.005),
    Param("framing", "Framing", "choice", "frame",
          "Object: edit a crop that follows the mask, so a small object gets the model's full size.",
          choices=("frame", "object")),
    Param("renoise", "Renoise", "float", 0.0,
          "Fresh noise inside the mask at the start: room for a new shape (0 follows the source's outline).",
          0, 1, 0.05),
    Param("layered", "Layers", "bool", True,
          "The new object takes the target image's outline at the old object's pose; the rest of the old "
          "object becomes background seen in other frames."),
    Param("color_match", "Colour match", "float", 1.0,
          "With layers: move the new object's colour this share of the way to the target image's.", 0, 1, 0.1),
    Param("latent_correction", "Latent correction", "bool", True,
          "Blend each frame's latents with its matched neighbours inside the mask (steadier objects)."),
    Param("temporal", "Temporal model", "bool", True,
          "Off: edit frame by frame without inflation, tuning or correction (an ablation; flickers)."),
    Param("anchor_first_frame", "Anchor first frame", "bool", True,
          "Frames also attend to the first frame: keeps the object's look stable.", advanced=True),
    Param("window", "Window", "int", 16, "Frames processed together; long clips run in overlapping windows.", 2,
          512, advanced=True),
    Param("overlap", "Overlap", "int", 4, "Frames shared by neighbouring windows (blended).", 0, 511, advanced=True),
    Param("preview_every", "Preview every", "int", 5, "Decode a preview every N denoising steps (0: none).", 0, 1000,
          advanced=True),
    Param("inversion_refine", "Inversion refine", "int", 1, "Fixed-point iterations per inversion step.", 0, 10,
          advanced=True),
    Param("cache", "Reuse cache", "bool", True, "Reuse tuned weights and inversions of the same clip and settings.",
          advanced=True),
)

BY_NAME = {p.name: p for p in PARAMS}


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


def to_settings(values: dict[str, Any], seed: int) -> pb.EditSettings:
    """EditSettings with the seed and every parameter that differs from its default."""
    s = pb.EditSettings(seed=seed)
    for name, value in values.items():
        p = BY_NAME.get(name)
        if p is None or _same(value, p.default):
            continue
        if name == "mask_method":
            s.mask_method = pb.MASK_METHOD_OTSU if value == "otsu" else pb.MASK_METHOD_THRESHOLD
        elif p.kind == "choice":
            setattr(s, name, str(value))
        elif p.kind == "bool":
            setattr(s, name, bool(value))
        elif p.kind == "int":
            setattr(s, name, int(value))
        else:
            setattr(s, name, float(value))
    return s
