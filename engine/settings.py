"""Every knob of an edit, with defaults, in one validated dataclass shared by CLI, daemon and bridge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from engine.errors import InputError, LimitError


@dataclass
class EditSettings:
    steps: int = 20  # DDIM steps for inversion, masks and generation
    seed: int = 0
    guidance_scale: float = 10.0
    # An edit starts from the inverted source, which pulls towards the source's look. Guiding away from
    # the source's own conditioning (instead of the empty prompt and zero image vector) pushes exactly
    # the source → target difference (8-clip probe, colour-only clips: colour_acc 0.60 with the empty
    # baseline at guidance 5 → 0.98 with the source baseline at guidance 10).
    source_negative: bool = True
    noise_level: int = 0  # unCLIP image-embedding noise level
    tune_steps: int = 20  # one-shot tuning steps; 0 skips tuning
    tune_lr: float = 1e-4
    inversion_refine: int = 1  # fixed-point iterations per inversion step
    mask_threshold: float | str = 0.3  # fraction of the clip's peak difference, or "otsu"
    mask_dilate: float = 0.0  # × the frame's shorter side (the feather already blends the edge)
    mask_refine: bool = True  # snap to the source frame's edges (GrabCut): bench mask_iou 0.52 → 0.81
    mask_text_only: bool = False  # ablation: target branch without the target image
    feather: float = 0.01  # × the frame's shorter side
    # "object": render a square crop that follows the edit region (engine/framing.py), so a small object
    # gets the model's whole native size; "frame": the whole frame at the working size.
    framing: str = "frame"
    # Share of fresh noise mixed into the inverted start latents inside the mask: the inverted source
    # carries the old outline, so a new shape needs room (0 = start from the inversion alone).
    renoise: float = 0.0
    # Compose the region in layers: the target image's silhouette at the source object's pose takes the
    # generated pixels and grows the mask to hold the new shape (engine/shape_prior.py); the rest of the
    # region the old object leaves takes a temporal clean plate (engine/clean_plate.py). Off: the whole
    # region is generated, as in the patent's method.
    layered: bool = True
    # With layers: share of the way the new object's median colour moves onto the target image object's
    # (one shift per clip, so no flicker). 0 keeps the model's colours, which miss some hues: bench
    # colour_acc 0.847 without, 0.963 with (docs/bench/quality.md).
    color_match: float = 1.0
    latent_correction: bool = True
    correction_weights: tuple[float, float, float] = (0.25, 0.5, 0.25)
    correction_block: int = 1  # UNet up-block whose features give the nearest-neighbour fields
    temporal: bool = True  # False: per-frame ablation (no inflation, tuning or correction)
    anchor_first_frame: bool = True
    window: int = 16  # frames per window
    overlap: int = 4  # frames shared by consecutive windows
    preview_every: int = 5  # decode an x0 preview every N steps (0: never)
    cache: bool = True

    def validate(self) -> EditSettings:
        def need(ok: bool, field: str, msg: str) -> None:
            if not ok:
                raise InputError(field, msg)

        need(isinstance(self.steps, int) and 1 <= self.steps <= 1000, "steps", "must be an integer in 1..1000")
        need(self.guidance_scale >= 1.0, "guidance_scale", "must be >= 1 (1 disables guidance)")
        need(0 <= self.noise_level <= 1000, "noise_level", "must be in 0..1000")
        need(0 <= self.tune_steps <= 5000, "tune_steps", "must be in 0..5000")
        need(self.tune_lr > 0, "tune_lr", "must be positive")
        need(0 <= self.inversion_refine <= 10, "inversion_refine", "must be in 0..10")
        need(self.mask_threshold == "otsu" or (isinstance(self.mask_threshold, (int, float))
                                               and 0 < float(self.mask_threshold) < 1),
             "mask_threshold", "must be a number in (0, 1) or 'otsu'")
        need(0 <= self.mask_dilate <= 0.5, "mask_dilate", "must be in 0..0.5 (fraction of the short side)")
        need(0 <= self.feather <= 0.5, "feather", "must be in 0..0.5 (fraction of the short side)")
        need(0 <= self.renoise <= 1, "renoise", "must be a share in 0..1 (0: start from the inversion)")
        need(0 <= self.color_match <= 1, "color_match", "must be a share in 0..1 (0: the model's own colours)")
        need(self.framing in ("frame", "object"), "framing", "must be 'frame' (whole frames) or 'object' "
             "(a crop that follows the edit region)")
        w = tuple(float(x) for x in self.correction_weights)
        need(len(w) == 3 and min(w) >= 0 and abs(sum(w) - 1) < 1e-6, "correction_weights",
             "must be three non-negative numbers summing to 1 (previous, self, next)")
        self.correction_weights = w  # type: ignore[assignment]
        need(self.correction_block >= 0, "correction_block", "must be >= 0")
        need(self.window >= 2, "window", "must be at least 2 frames")
        need(0 <= self.overlap < self.window, "overlap", "must be in 0..window-1")
        need(self.preview_every >= 0, "preview_every", "must be >= 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EditSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(unknown[0], f"is not a setting; known settings: {', '.join(sorted(known))}")
        return cls(**data).validate()


@dataclass(frozen=True)
class Limits:
    """Size limits, checked before any decoding or model work."""

    max_frames: int = 2000
    max_clip_pixels: int = 2000 * 1920 * 1080  # frames × height × width
    max_prompt_chars: int = 1000

    def check_clip(self, frames: int, height: int, width: int) -> None:
        if frames > self.max_frames:
            raise LimitError("range", f"{frames} frames exceed the limit of {self.max_frames}; edit a shorter range")
        if frames * height * width > self.max_clip_pixels:
            raise LimitError("range", f"{frames}×{height}×{width} pixels exceed the limit of "
                             f"{self.max_clip_pixels}; edit a shorter range")

    def check_prompt(self, field: str, prompt: str) -> None:
        if not prompt or not prompt.strip():
            raise InputError(field, "is empty; describe the scene, e.g. 'a red circle on a plain gray background'")
        if len(prompt) > self.max_prompt_chars:
            raise LimitError(field, f"is {len(prompt)} characters; the limit is {self.max_prompt_chars}")
