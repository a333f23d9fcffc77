"""RecastPipeline: the stages of DESIGN §2 as separately callable steps over one loaded model.

    pipe = RecastPipeline.from_pretrained("shapes")
    masks = pipe.compute_masks(frames, target, "a red circle ...", "a blue star ...", settings)
    result = pipe.render(frames, target, "a red circle ...", "a blue star ...", settings, masks=masks)

Frames are RGB uint8 (frames, H, W, 3) at the source size. Every stage reports through one
`progress(stage, step, total)` callback and checks one `cancel` flag (anything with `is_set()`)
between steps. Tuned weights and inversions are cached by content and settings, in memory for the
clip at hand and on disk across runs, so masks then render never tune or invert twice.

A `checkpoint` store (one per job, e.g. the daemon's) makes a run resumable: the computed masks and
each finished window's running blend go there as they end, and a later run with the same store and
inputs restores them and continues with the next window. What later windows depend on is exactly
that running blend; the clip's colour shift is fixed again by replaying the composite of the
finished frames in order. So the output equals an uninterrupted run's, byte for byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.compose import composite as comp
from engine.compose import framing
from engine.compose.compositor import Compositor
from engine.compose.layers import grow_masks, shape_layers
from engine.compose.region import BoxedCompositor, box_feather, grow_in_box, region_box
from engine.compose.windows import blend_weights, plan_windows
from engine.diffusion.conditioning import (
    branch,
    encode_images,
    encode_text,
    image_class_labels,
    unconditional,
)
from engine.diffusion.ddim import make_ladder
from engine.diffusion.generation import generate
from engine.diffusion.inflate import inflate_unet, load_trainable_state, trainable_state
from engine.diffusion.inversion import invert
from engine.diffusion.masks import latent_masks, masks_from_difference, noise_difference
from engine.diffusion.tuning import tune
from engine.errors import InputError
from engine.runtime.cache import TensorCache, content_key
from engine.runtime.model_loading import LoadedModel, load_model
from engine.runtime.progress import CancelFlag, ProgressFn, Reporter
from engine.settings import EditSettings, Limits

# first-level feature maps (latent cells × first-level channels) one frame of a window holds at the heaviest
# stage, computed for SD's UNet: per sample ~6 in skip connections and ~20 in one block's working set (SDPA
# q/k/v over 3 frames' keys, GEGLU), ×2 samples per frame under CFG, rounded up (docs/bench/scale.md)
FRAME_ACTIVATIONS = 64

PreviewFn = Callable[[int, np.ndarray], None]  # (frame index in the clip, RGB uint8 at source size)
FrameFn = Callable[[int, np.ndarray, np.ndarray], None]  # (frame index, RGB uint8, mask uint8)
MaskFn = Callable[[int, np.ndarray], None]  # (frame index, provisional mask uint8 0/255, ≤ PROVISIONAL_SIZE px)

PROVISIONAL_SIZE = 512  # longer side of provisional masks: they are for showing, at once, at any frame size
DIFFERENCES_KEPT = 8  # noise differences held in memory, for re-thresholding recent clips without the disk
# every setting a noise difference depends on (besides the inputs and the tuning steps actually run)
DIFFERENCE_SETTINGS = ("steps", "seed", "noise_level", "tune_lr", "inversion_refine", "mask_text_only", "temporal",
                       "anchor_first_frame", "window", "overlap")
# the interactive mask preset: no tuning (the render tunes), 8 steps, no inversion refinement
INTERACTIVE_MASKS = {"tune_steps": 0, "steps": 8, "inversion_refine": 0}


def mask_settings(settings: EditSettings) -> EditSettings:
    """The settings a mask job computes with: the interactive preset's, or the edit's own."""
    if settings.mask_preset == "interactive":
        return dataclasses.replace(settings, **INTERACTIVE_MASKS)
    return settings


@dataclass
class RenderResult:
    frames: np.ndarray  # (frames, H, W, 3) uint8, edited
    masks: np.ndarray  # (frames, H, W) uint8 compositing weights (255 = edited: generated or clean plate)
    region_masks: np.ndarray  # (frames, H, W) uint8 0/255: the masks the render used
    timings: dict[str, float] = field(default_factory=dict)
    tune_losses: list[float] = field(default_factory=list)


@dataclass
class ClipState:
    """Intermediates of one clip under one set of settings (the in-memory cache)."""

    key: str
    source: np.ndarray  # (frames, H, W, 3) uint8 at source size
    working: np.ndarray  # (frames, h, w, 3) uint8 at working size
    latents: torch.Tensor  # (frames, c, h/s, w/s)
    source_text: torch.Tensor  # (1, tokens, dim)
    frame_labels: torch.Tensor  # (frames, 2 * projection_dim) per-frame source image class vectors
    tune_key: str = ""
    tune_losses: list[float] = field(default_factory=list)
    trajectories: dict[str, list[torch.Tensor]] = field(default_factory=dict)


def renoised(z_T: torch.Tensor, mask: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """z_T with √share of fresh noise inside the mask (variance kept: √(1−share)·z + √share·ε)."""
    if share <= 0:
        return z_T
    noise = torch.randn(z_T.shape, generator=torch.Generator().manual_seed(seed)).to(z_T.device, z_T.dtype)
    mixed = (1 - share) ** 0.5 * z_T + share**0.5 * noise
    return mask * mixed + (1 - mask) * z_T


class RecastPipeline:
    def __init__(self, model: LoadedModel, cache: TensorCache | None = None, limits: Limits | None = None):
        self.model = model
        self.cache = cache if cache is not None else TensorCache()
        self.limits = limits or Limits()
        self.context = inflate_unet(model.unet)
        self._fresh = trainable_state(model.unet)  # untrained T-Attn, original Q projections
        self._loaded_tune_key = ""
        self._state: ClipState | None = None
        self._differences: dict[str, np.ndarray] = {}  # difference_key → (frames, h, w) noise difference
        self.timings: dict[str, float] = {}
        self.on_stage: Callable[[str, bool], None] | None = None
        # every component's weights: a new image encoder changes the frame embeddings the tuning and
        # inversion caches were made with, even when the UNet file is untouched
        weights = sorted(model.folder.glob("*/*.safetensors"))
        stat = [(str(w.relative_to(model.folder)), w.stat().st_size, int(w.stat().st_mtime)) for w in weights]
        self.model_id = content_key(str(model.folder.resolve()), stat, str(model.dtype))

    @classmethod
    def from_pretrained(cls, model: str | Path | None = None, device: str | None = None,
                        cache_dir: str | Path | None = None, limits: Limits | None = None,
                        cache_max_bytes: int | None = None, offload: bool = False) -> RecastPipeline:
        cache = TensorCache(cache_dir, max_bytes=cache_max_bytes) if cache_dir else None
        return cls(load_model(model, device=device, offload=offload), cache, limits)

    # ---- helpers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _timed(self, stage: str):
        """Adds the block's seconds to `timings[stage]`; `on_stage(stage, entering)` (e.g. a benchmark's
        per-stage memory meter) hears where each stage starts and ends."""
        start = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(stage, True)
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
            if self.on_stage is not None:
                self.on_stage(stage, False)

    def frame_bytes(self, height: int, width: int) -> int:
        """Computed memory one frame of a window needs at its heaviest stage (CFG generation, or tuning
        with checkpointing), for a (height, width) source: FRAME_ACTIVATIONS first-level feature maps."""
        m = self.model
        h, w = comp.working_size(height, width, m.native_size, m.downsample)
        cells = (h // m.vae_scale) * (w // m.vae_scale)
        return FRAME_ACTIVATIONS * cells * m.unet.config.block_out_channels[0] * torch.finfo(m.dtype).bits // 8

    def choose_window(self, frames: int, height: int, width: int, settings: EditSettings,
                      free_bytes: int | None = None) -> tuple[EditSettings, dict]:
        """`settings` with the largest window (at most the default) whose computed need fits in 70 % of
        the free memory (device memory on CUDA, available RAM otherwise), and the overlap scaled down
        with it; and a record of the choice for report.json. Where the default window fits, as for
        every small model, the settings come back unchanged. The choice is only a window: the same
        window always gives the same result."""
        if free_bytes is None:
            if self.model.device.type == "cuda":
                free_bytes = int(torch.cuda.mem_get_info(self.model.device)[0])
            else:
                import psutil

                free_bytes = int(psutil.virtual_memory().available)
        need = self.frame_bytes(height, width)
        default = EditSettings()
        window = max(2, min(default.window, int(0.7 * free_bytes) // max(need, 1)))
        chosen = settings if window == settings.window else dataclasses.replace(
            settings, window=window, overlap=min(settings.overlap, window // 4))
        record = {"window": chosen.window, "overlap": chosen.overlap, "chosen_by": "free memory",
                  "free_bytes": free_bytes, "frame_bytes_computed": need, "frames": frames}
        return chosen, record

    def _validate(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str, target_prompt: str,
                  settings: EditSettings) -> None:
        settings.validate()
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError("frames", "must be RGB uint8 shaped (frames, height, width, 3)")
        if len(frames) == 0:
            raise InputError("frames", "the clip is empty")
        self.limits.check_clip(*frames.shape[:3])
        if (not isinstance(target_image, np.ndarray) or target_image.dtype != np.uint8 or target_image.ndim != 3
                or target_image.shape[-1] != 3 or min(target_image.shape[:2]) < 1):
            raise InputError("target_image", "must be an RGB uint8 image shaped (height, width, 3)")
        self.limits.check_prompt("source_prompt", source_prompt)
        self.limits.check_prompt("target_prompt", target_prompt)
        if settings.correction_block >= len(self.model.unet.up_blocks):
            raise InputError("correction_block", f"must be below {len(self.model.unet.up_blocks)} for this model")

    # ---- stages --------------------------------------------------------------------------------

    def prepare(self, frames: np.ndarray, source_prompt: str, settings: EditSettings,
                reporter: Reporter) -> ClipState:
        """Resize to the working size, VAE-encode, and encode the source conditioning."""
        m = self.model
        h, w = comp.working_size(*frames.shape[1:3], m.native_size, m.downsample)
        key = content_key(self.model_id, frames.shape, frames, source_prompt, settings.noise_level, settings.seed)
        if self._state is not None and self._state.key == key:
            return self._state
        with self._timed("encode"):
            working = comp.resize_frames(frames, (h, w))
            latents = comp.encode_frames(m.vae, working, m.device, m.dtype)
            reporter.step("encode", 1, 2)
            gen = torch.Generator().manual_seed(settings.seed)
            labels = image_class_labels(m, encode_images(m, working), settings.noise_level, gen)
            text = encode_text(m, source_prompt)
            reporter.step("encode", 2, 2)
        self._state = ClipState(key, frames, working, latents, text, labels)
        return self._state

    def forget(self) -> None:
        """Drops the in-memory intermediates (encoded clip, trajectories, noise differences): the next
        call analyses its clip afresh, as a new clip (benchmarks)."""
        self._state = None
        self._differences.clear()

    @property
    def last_working_size(self) -> tuple[int, int]:
        return tuple(self._state.working.shape[1:3]) if self._state is not None else (0, 0)

    def target_conditioning(self, target_image: np.ndarray, target_prompt: str, settings: EditSettings,
                            use_image: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(text (1, tokens, dim), class vector (1, dim)); without the image the class vector is zero."""
        m = self.model
        text = encode_text(m, target_prompt)
        if not use_image:
            dim = m.unet.config.projection_class_embeddings_input_dim
            return text, torch.zeros(1, dim, device=m.device, dtype=m.dtype)
        gen = torch.Generator().manual_seed(settings.seed)
        return text, image_class_labels(m, encode_images(m, [target_image]), settings.noise_level, gen)

    def tune(self, state: ClipState, settings: EditSettings, reporter: Reporter) -> None:
        """One-shot tune (or load cached tuned weights); the per-frame ablation uses the fresh weights."""
        self.context.anchor_first = settings.anchor_first_frame
        self.context.per_frame = not settings.temporal
        steps = settings.tune_steps if settings.temporal else 0
        key = content_key(state.key, steps, settings.tune_lr, settings.window, settings.anchor_first_frame)
        state.tune_key = key
        if self._loaded_tune_key == key:
            return
        load_trainable_state(self.model.unet, self._fresh)
        self._loaded_tune_key = ""
        if steps > 0:
            cached = self.cache.get("tuned", key) if settings.cache else None
            with self._timed("tune"):
                if cached is not None:
                    load_trainable_state(self.model.unet, {k: v.to(self.model.device) for k, v in cached.items()})
                    reporter.step("tune", steps, steps)
                else:
                    state_dict, losses = tune(self.model.unet, state.latents, state.source_text, state.frame_labels,
                                              self.model.scheduler_config, steps, settings.tune_lr,
                                              settings.window, settings.seed, reporter)
                    state.tune_losses = losses
                    if settings.cache:
                        self.cache.put("tuned", key, state_dict)
        self._loaded_tune_key = key

    def invert(self, state: ClipState, settings: EditSettings, window: tuple[int, int],
               reporter: Reporter) -> list[torch.Tensor]:
        """DDIM-invert one window of the clip; the trajectory is cached in memory and on disk."""
        key = content_key(state.tune_key, settings.steps, settings.inversion_refine, window)
        if key in state.trajectories:
            return state.trajectories[key]
        cached = self.cache.get("inversion", key) if settings.cache else None
        with self._timed("invert"):
            if cached is not None:
                traj = [cached[str(i)].to(self.model.device, self.model.dtype) for i in range(len(cached))]
                reporter.step("invert", settings.steps, settings.steps)
            else:
                s, e = window
                cond = branch(state.source_text, state.frame_labels[s:e], e - s)
                ladder = make_ladder(self.model.scheduler_config, settings.steps)
                traj = invert(self.model.unet, state.latents[s:e], cond, ladder, self.model.prediction_type,
                              reporter, refine=settings.inversion_refine)
                # the layout of a cached one: kernels are picked by memory layout, and a run that inverts
                # must give the bytes of one that loads the inversion (a resumed job, a second render)
                traj = [t.contiguous() for t in traj]
                if settings.cache:
                    self.cache.put("inversion", key, {str(i): t for i, t in enumerate(traj)})
        state.trajectories[key] = traj
        return traj

    def _start(self, frames, target_image, source_prompt, target_prompt, settings, progress, cancel):
        settings = settings or EditSettings()
        self._validate(frames, target_image, source_prompt, target_prompt, settings)
        reporter = Reporter(progress, cancel)
        reporter.check()
        state = self.prepare(frames, source_prompt, settings, reporter)
        self.tune(state, settings, reporter)
        return settings, reporter, state

    def compute_masks(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str, target_prompt: str,
                      settings: EditSettings | None = None, progress: ProgressFn | None = None,
                      cancel: CancelFlag | None = None, checkpoint: TensorCache | None = None,
                      on_mask: MaskFn | None = None) -> np.ndarray:
        """Target-aware masks, (frames, H, W) uint8 0/255 at the source size (version 1 of a clip's masks),
        under the settings' `mask_preset`. `on_mask(i, mask)` gets provisional masks as they are known
        (see `mask_difference`). A clip already analysed with the same inputs and difference settings
        reuses its stored noise difference: only thresholding and refinement run, no model pass.
        `checkpoint`: see the module's docstring."""
        settings = mask_settings(settings or EditSettings())
        self._validate(frames, target_image, source_prompt, target_prompt, settings)
        reporter = Reporter(progress, cancel)
        reporter.check()
        return self._masks(frames, target_image, source_prompt, target_prompt, settings, reporter, checkpoint,
                           None, on_mask)

    def difference_key(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str,
                       target_prompt: str, settings: EditSettings) -> str:
        """Content key of a clip's noise difference: every input and setting it depends on, none of the
        post-processing ones (threshold, dilation, refinement, layers), so those reuse it."""
        tune_steps = settings.tune_steps if settings.temporal else 0
        parts = {k: getattr(settings, k) for k in DIFFERENCE_SETTINGS}
        return content_key("difference", self.model_id, frames.shape, frames, source_prompt, target_image,
                           target_prompt, tune_steps, parts)

    def mask_difference(self, state: ClipState, target_image: np.ndarray, target_prompt: str,
                        settings: EditSettings, reporter: Reporter,
                        checkpoint: TensorCache | None = None, on_mask: MaskFn | None = None) -> np.ndarray:
        """The raw target-aware signal: mean |ε_src − ε_trg| per latent cell, (frames, h, w), windows blended.
        With `on_mask`, each window's frames get provisional masks (normalised over that window alone, no
        refinement, at most PROVISIONAL_SIZE px) after its first mask step and again when it ends."""
        m = self.model
        n, H, W = state.source.shape[:3]
        text_t, label_t = self.target_conditioning(target_image, target_prompt, settings,
                                                   use_image=not settings.mask_text_only)
        ladder = make_ladder(m.scheduler_config, settings.steps)
        windows = plan_windows(n, settings.window, settings.overlap)
        diff = np.zeros((n, *state.latents.shape[2:]), np.float32)
        key = content_key("difference", state.tune_key, target_image, target_prompt, dataclasses.asdict(settings))
        first = _restore_windows(checkpoint, key, windows, diff, reporter, "resume_masks")
        scale = min(1.0, PROVISIONAL_SIZE / max(H, W))
        small = (max(1, round(H * scale)), max(1, round(W * scale)))
        for wi, ((s, e), weight) in enumerate(zip(windows, blend_weights(windows, n))):
            if wi < first:
                continue
            traj = self.invert(state, settings, (s, e), reporter)
            on_step = None
            if on_mask is not None:
                def on_step(k: int, partial: torch.Tensor, s: int = s) -> None:
                    if k == 1 or k == len(ladder):
                        with self._timed("provisional"):
                            provisional = masks_from_difference(partial.cpu().numpy(), small, settings.mask_threshold,
                                                                settings.mask_dilate)
                            for i, mask in enumerate(provisional):
                                on_mask(s + i, mask)
            with self._timed("masks"):
                src = branch(state.source_text, state.frame_labels[s:e], e - s)
                trg = branch(text_t, label_t, e - s)
                d = noise_difference(m.unet, traj[0], src, trg, ladder, m.prediction_type, reporter, on_step)
                diff[s:e] += d.cpu().numpy() * weight[:, None, None].astype(np.float32)
            _save_window(checkpoint, key, windows, wi, diff)
        return diff

    def _difference(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str, target_prompt: str,
                    settings: EditSettings, reporter: Reporter, checkpoint: TensorCache | None,
                    state: ClipState | None, on_mask: MaskFn | None, key: str) -> np.ndarray:
        """The noise difference stored under `key` (memory, then disk), else computed and stored."""
        diff = self._differences.get(key)
        if diff is None and settings.cache:
            cached = self.cache.get("difference", key)
            diff = cached["diff"].numpy() if cached is not None else None
        if diff is not None:
            reporter.step("masks", 1, 1)
        else:
            if state is None:
                state = self.prepare(frames, source_prompt, settings, reporter)
                self.tune(state, settings, reporter)
            diff = self.mask_difference(state, target_image, target_prompt, settings, reporter, checkpoint, on_mask)
            if settings.cache:
                self.cache.put("difference", key, {"diff": torch.from_numpy(diff)})
        self._differences[key] = diff
        while len(self._differences) > DIFFERENCES_KEPT:  # the oldest first: dicts keep insertion order
            self._differences.pop(next(iter(self._differences)))
        return diff

    def _masks(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str, target_prompt: str,
               settings: EditSettings, reporter: Reporter, checkpoint: TensorCache | None = None,
               state: ClipState | None = None, on_mask: MaskFn | None = None) -> np.ndarray:
        """Masks from the clip's noise difference; `state` (prepared and tuned) is made only when the
        difference is not stored yet."""
        dkey = self.difference_key(frames, target_image, source_prompt, target_prompt, settings)
        key = content_key("masks", dkey, dataclasses.asdict(settings))
        saved = checkpoint.get("masks", key) if checkpoint is not None else None
        if saved is not None:
            count = len(plan_windows(len(frames), settings.window, settings.overlap))
            reporter.step("resume_masks", count, count)
            return saved["masks"].numpy()
        diff = self._difference(frames, target_image, source_prompt, target_prompt, settings, reporter, checkpoint,
                                state, on_mask, dkey)
        with self._timed("masks"):
            masks = masks_from_difference(diff, frames.shape[1:3], settings.mask_threshold,
                                          settings.mask_dilate, frames, settings.mask_refine)
            if settings.layered and not settings.mask_text_only:  # the outline comes from the target image
                masks = grow_in_box(frames, masks, settings.feather,
                                    lambda f, mk, feather: grow_masks(f, mk, target_image, feather))
        if checkpoint is not None:
            checkpoint.put("masks", key, {"masks": torch.from_numpy(np.ascontiguousarray(masks))})
        return masks

    def render(self, frames: np.ndarray, target_image: np.ndarray, source_prompt: str, target_prompt: str,
               settings: EditSettings | None = None, masks: np.ndarray | None = None,
               progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
               on_preview: PreviewFn | None = None, on_frame: FrameFn | None = None,
               checkpoint: TensorCache | None = None) -> RenderResult:
        """Generate and composite every frame. `masks` (frames, H, W) uint8, e.g. painted corrections;
        computed when omitted. `checkpoint`: see the module's docstring."""
        self.timings = {}
        settings, reporter, state = self._start(frames, target_image, source_prompt, target_prompt, settings,
                                                progress, cancel)
        n, H, W = frames.shape[:3]
        if masks is None:
            masks = self._masks(frames, target_image, source_prompt, target_prompt, settings, reporter, checkpoint,
                                state)
        elif masks.shape != (n, H, W):
            raise InputError("masks", f"must be shaped {(n, H, W)} like the frames, got {tuple(masks.shape)}")
        compositor = self._compositor(frames, masks, target_image, settings)
        if compositor.boxes is not None:  # the crops are the clip the model edits: tuned and inverted on their own
            crop_settings = dataclasses.replace(settings, framing="frame", feather=0.0, layered=False)
            settings, reporter, state = self._start(compositor.clip, target_image, source_prompt, target_prompt,
                                                    crop_settings, progress, cancel)
        out = self._generate(state, compositor, target_image, target_prompt, settings, reporter,
                             on_preview, on_frame, checkpoint)
        return RenderResult(out, compositor.weights, masks, dict(self.timings), list(state.tune_losses))

    def _compositor(self, frames: np.ndarray, masks: np.ndarray, target_image: np.ndarray,
                    settings: EditSettings) -> Compositor | BoxedCompositor:
        """Layers and compositing of the render: on large frames inside the region's box (engine.compose.region),
        its edges on the working grid so the generated pixels of the box are whole working pixels."""
        m = self.model
        H, W = frames.shape[1:3]
        h, w = comp.working_size(H, W, m.native_size, m.downsample)
        align = (H // math.gcd(H, h), W // math.gcd(W, w))
        box = region_box(masks, settings.feather, align) if settings.framing == "frame" else None
        part_frames, part_masks, feather = frames, masks, settings.feather
        if box is not None:
            y0, y1, x0, x1 = box
            part_frames, part_masks = frames[:, y0:y1, x0:x1], masks[:, y0:y1, x0:x1]
            feather = box_feather(settings.feather, (H, W), box)
        layers = None
        if settings.layered:
            with self._timed("layers"):
                layers = shape_layers(part_frames, part_masks, target_image, feather, settings.color_match)
        with self._timed("composite"):
            boxes = framing.crop_boxes(masks) if settings.framing == "object" else None
            inner = Compositor(part_frames, part_masks, feather, layers, boxes, m.native_size)
            return inner if box is None else BoxedCompositor(frames, masks, inner, box)

    def _generate(self, state: ClipState, compositor: Compositor | BoxedCompositor, target_image: np.ndarray,
                  target_prompt: str,
                  settings: EditSettings, reporter: Reporter, on_preview: PreviewFn | None,
                  on_frame: FrameFn | None, checkpoint: TensorCache | None) -> np.ndarray:
        """Mask-guided generation of `compositor.clip`, window by window, each frame composited as soon as
        every window that holds it is done; returns the output frames (n, H, W, 3) uint8."""
        m = self.model
        masks = compositor.clip_masks
        n = len(masks)
        text_t, label_t = self.target_conditioning(target_image, target_prompt, settings)
        uncond = None if settings.source_negative else unconditional(m, 1)  # the CFG baseline, if not the source
        ladder = make_ladder(m.scheduler_config, settings.steps)
        weights_c = settings.correction_weights if settings.latent_correction and settings.temporal else None
        windows = plan_windows(n, settings.window, settings.overlap)
        acc = np.zeros((n, *state.working.shape[1:3], 3), np.float32)  # blended generated frames
        out = np.empty_like(compositor.frames)

        def finish(i: int) -> None:
            out[i] = compositor.frame(i, acc[i])
            if on_frame is not None:
                on_frame(i, out[i], compositor.weights[i])
            reporter.step("composite", i + 1, n)

        key = content_key("render", state.tune_key, masks, target_image, target_prompt, dataclasses.asdict(settings))
        first = _restore_windows(checkpoint, key, windows, acc, reporter, "resume_windows")
        done = n if first == len(windows) else windows[first][0]
        for i in range(done):  # in order: the first final frames fix the clip's colour shift again
            finish(i)
        for wi, ((s, e), weight) in enumerate(zip(windows, blend_weights(windows, n))):
            if wi < first:
                continue
            traj = self.invert(state, settings, (s, e), reporter)
            lmask = latent_masks(masks[s:e], state.latents.shape[2:], m.device, m.dtype)
            preview = None
            if on_preview is not None:
                def preview(step: int, x0: torch.Tensor, s: int = s) -> None:
                    with self._timed("preview"):
                        dec = comp.decode_latents(m.vae, x0)
                        for i, img in enumerate(dec):
                            on_preview(s + i, compositor.frame(s + i, img, final=False))
            with self._timed("generate"):
                if uncond is None:  # guide along source → target, not nothing → target
                    negative = branch(state.source_text, state.frame_labels[s:e], e - s)
                else:
                    negative = branch(uncond.text, uncond.class_labels, e - s)
                start = renoised(traj[0], lmask, settings.renoise, settings.seed + s)
                z0 = generate(m.unet, [start, *traj[1:]], branch(text_t, label_t, e - s), negative, lmask, ladder,
                              m.prediction_type, settings.guidance_scale, weights_c, settings.correction_block,
                              reporter, preview, settings.preview_every)
            with self._timed("decode"):
                acc[s:e] += comp.decode_latents(m.vae, z0) * weight[:, None, None, None].astype(np.float32)
                _save_window(checkpoint, key, windows, wi, acc)
                final = e if wi == len(windows) - 1 else windows[wi + 1][0]
                for i in range(done, final):
                    finish(i)
                done = final
        return out


def _restore_windows(checkpoint: TensorCache | None, key: str, windows: list[tuple[int, int]], acc: np.ndarray,
                     reporter: Reporter, stage: str) -> int:
    """Puts the running blend saved after each finished window back into `acc`, in order; returns how
    many windows were finished (0 without a checkpoint) and reports them as progress of `stage`."""
    first = 0
    for wi, (s, e) in enumerate(windows if checkpoint is not None else ()):
        saved = checkpoint.get("window", content_key(key, wi))
        if saved is None or tuple(saved["acc"].shape) != acc[s:e].shape:
            break
        acc[s:e] = saved["acc"].numpy()  # includes every earlier window's share of these frames
        first = wi + 1
    if first:
        reporter.step(stage, first, len(windows))
    return first


def _save_window(checkpoint: TensorCache | None, key: str, windows: list[tuple[int, int]], wi: int,
                 acc: np.ndarray) -> None:
    """Saves the running blend of window `wi`'s frames once it is finished (not the last: the run ends)."""
    if checkpoint is not None and wi < len(windows) - 1:
        s, e = windows[wi]
        checkpoint.put("window", content_key(key, wi), {"acc": torch.from_numpy(np.ascontiguousarray(acc[s:e]))})
