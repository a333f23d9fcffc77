"""The whole pipeline on the tiny model: compositing exactness, windows, caching and cancel."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import moving_disc_clip

from engine.compose.composite import composite, compositing_mask, working_size
from engine.compose.windows import blend_weights, plan_windows
from engine.errors import Cancelled, InputError
from engine.settings import EditSettings

SRC = "a red circle on a striped navy background"
TRG = "a blue square on a striped navy background"
FAST = dict(steps=4, tune_steps=2, inversion_refine=0, guidance_scale=3.0)


def target_image() -> np.ndarray:
    img = np.full((40, 40, 3), 200, np.uint8)
    img[8:32, 8:32] = (40, 80, 220)
    return img


@pytest.mark.parametrize("frames,height,width,window,overlap", [(4, 96, 160, 16, 4), (10, 40, 40, 4, 1)])
def test_outside_the_mask_output_is_the_source_byte_for_byte(tiny_pipeline, frames, height, width, window,
                                                             overlap):
    """A non-square clip at full resolution, and a clip longer than one window."""
    clip = moving_disc_clip(frames, height, width)
    settings = EditSettings(window=window, overlap=overlap, **FAST)
    seen: list[int] = []
    result = tiny_pipeline.render(clip, target_image(), SRC, TRG, settings,
                                  on_frame=lambda i, rgb, m: seen.append(i))
    assert seen == list(range(frames))  # every frame streamed once, in order
    assert result.frames.shape == clip.shape and result.masks.shape == clip.shape[:3]
    outside = result.masks == 0
    assert outside.any() and (~outside).any(), "the test needs both regions"
    assert np.array_equal(result.frames[outside], clip[outside])
    inside = result.masks == 255
    assert not np.array_equal(result.frames[inside], clip[inside])
    wh = tiny_pipeline.last_working_size
    assert wh[0] % tiny_pipeline.model.downsample == 0 and wh[1] % tiny_pipeline.model.downsample == 0
    assert abs(wh[1] / wh[0] - width / height) < 0.35


def test_painted_masks_are_used_as_given(tiny_pipeline):
    clip = moving_disc_clip(3, 32, 48)
    painted = np.zeros(clip.shape[:3], np.uint8)
    painted[:, 8:20, 10:30] = 255
    result = tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(feather=0, **FAST), masks=painted)
    assert np.array_equal(result.masks, painted)
    assert np.array_equal(result.frames[:, :8], clip[:, :8])
    with pytest.raises(InputError, match="masks"):
        tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(**FAST), masks=painted[:, :10])


def test_masks_then_render_reuses_the_cached_tuning_and_inversion(tiny_pipeline):
    clip = moving_disc_clip(4, 32, 32, colour=(40, 180, 60))
    stages: list[str] = []
    settings = EditSettings(**FAST)
    tiny_pipeline.compute_masks(clip, target_image(), SRC, TRG, settings, progress=lambda s, i, n: stages.append(s))
    assert "tune" in stages and "invert" in stages
    stages.clear()
    tiny_pipeline.render(clip, target_image(), SRC, TRG, settings, progress=lambda s, i, n: stages.append(s))
    assert "tune" not in stages and "invert" not in stages and "generate" in stages


def test_cancel_stops_within_one_step(tiny_pipeline):
    clip = moving_disc_clip(3, 32, 32)
    cancel = threading.Event()
    generate_steps: list[int] = []

    def progress(stage: str, step: int, total: int) -> None:
        if stage == "generate":
            generate_steps.append(step)
            if step == 2:
                cancel.set()

    with pytest.raises(Cancelled):
        tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(steps=6, tune_steps=1), progress=progress,
                             cancel=cancel)
    assert generate_steps == [1, 2]


def test_bad_arguments_name_the_field(tiny_pipeline):
    clip = moving_disc_clip(2, 32, 32)
    with pytest.raises(InputError, match="source_prompt"):
        tiny_pipeline.compute_masks(clip, target_image(), "  ", TRG)
    with pytest.raises(InputError, match="target_image"):
        tiny_pipeline.compute_masks(clip, np.zeros((4, 4), np.uint8), SRC, TRG)
    with pytest.raises(InputError, match="frames"):
        tiny_pipeline.compute_masks(clip.astype(np.float32), target_image(), SRC, TRG)
    with pytest.raises(InputError, match="overlap"):
        EditSettings(window=4, overlap=4).validate()
    with pytest.raises(InputError, match="correction_weights"):
        EditSettings(correction_weights=(0.5, 0.5, 0.5)).validate()


def test_windows_cover_the_clip_and_blend_to_one():
    for frames, size, overlap in [(40, 16, 4), (16, 16, 4), (5, 16, 4), (17, 8, 3)]:
        windows = plan_windows(frames, size, overlap)
        assert windows[0][0] == 0 and windows[-1][1] == frames
        assert all(e - s <= size for s, e in windows)
        total = np.zeros(frames)
        for (s, e), w in zip(windows, blend_weights(windows, frames)):
            total[s:e] += w
        assert np.allclose(total, 1.0)


def test_compositing_is_exact_where_the_mask_is_zero():
    rng = np.random.RandomState(0)
    source = (rng.rand(30, 50, 3) * 255).astype(np.uint8)
    generated = rng.rand(10, 16, 3)
    region = np.zeros((30, 50), np.uint8)
    region[10:20, 20:30] = 255
    weight = compositing_mask(region, feather=0.1)
    out = composite(source, generated, weight)
    assert weight[0, 0] == 0 and weight[15, 25] == 255
    assert np.array_equal(out[weight == 0], source[weight == 0])
    assert (weight[region > 0] >= 128).all()
    assert working_size(96, 160, 32, 4) == (20, 32)
    assert working_size(1080, 1920, 768, 64) == (448, 768)


def test_source_negative_guides_along_the_source_to_target_difference(tiny_pipeline):
    """With the source as CFG negative, guidance scales only what the target asks to change: when the
    target asks for nothing new (same prompt, the clip's own frame as image), any scale gives the
    unguided result; the empty-prompt negative instead moves it."""
    still = np.repeat(moving_disc_clip(1, 32, 32), 3, axis=0)  # three identical frames
    masks = np.zeros(still.shape[:3], np.uint8)
    masks[:, 4:28, 4:28] = 255
    base = dict(FAST, feather=0, cache=False)

    def run(**kw):
        return tiny_pipeline.render(still, still[0], SRC, SRC, EditSettings(**{**base, **kw}), masks=masks).frames

    plain = run(guidance_scale=1.0).astype(int)
    from_source = run(guidance_scale=8.0, source_negative=True).astype(int)
    from_empty = run(guidance_scale=8.0, source_negative=False).astype(int)
    assert np.abs(from_source - plain).max() <= 2
    assert np.abs(from_empty - plain).mean() > 10 * max(np.abs(from_source - plain).mean(), 0.05)


def test_a_new_image_encoder_invalidates_cached_tuning_and_inversions(tiny_model_dir, tmp_path):
    """The caches are keyed by the model's weights; the image encoder alone changing must change the key
    (the frame embeddings the tuning and inversion saw are different)."""
    import shutil

    from engine.pipeline import RecastPipeline

    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = RecastPipeline.from_pretrained(folder, device="cpu", cache_dir=tmp_path / "cache").model_id
    again = RecastPipeline.from_pretrained(folder, device="cpu", cache_dir=tmp_path / "cache").model_id
    weights = next((folder / "image_encoder").glob("*.safetensors"))
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    after = RecastPipeline.from_pretrained(folder, device="cpu", cache_dir=tmp_path / "cache").model_id
    assert before == again and after != before


def test_renoise_gives_the_mask_fresh_noise_and_leaves_the_rest(tiny_pipeline):
    clip = moving_disc_clip(3, 32, 48)
    painted = np.zeros(clip.shape[:3], np.uint8)
    painted[:, 8:24, 12:36] = 255
    runs = {share: tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(renoise=share, **FAST),
                                        masks=painted)
            for share in (0.0, 1.0)}
    for result in runs.values():
        outside = result.masks == 0
        assert np.array_equal(result.frames[outside], clip[outside])
    inside = painted > 0
    assert not np.array_equal(runs[0.0].frames[inside], runs[1.0].frames[inside])
    with pytest.raises(InputError, match="renoise"):
        tiny_pipeline.render(clip, target_image(), SRC, TRG, EditSettings(renoise=1.5, **FAST), masks=painted)
