"""Issue 23: masks in seconds at any resolution, on the real pipeline and daemon with the tiny model.

- A new threshold, dilation or refinement on an analysed clip reuses the stored noise difference:
  a forward hook on the real UNet counts no call (in the same pipeline and in a new one that finds
  the difference in the disk cache).
- Mask jobs stream provisional masks, marked provisional, before the final masks; the final masks
  replace them (a replay after the job holds none).
- At 1080p the image-space work runs inside the region's box: outside the region the output is the
  source, byte for byte, and GrabCut refinement keeps to the mask's box.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from conftest import moving_disc_clip
from daemon_support import InProcess, decode_png, kinds, mask_request, setup_clip, watch_all

from engine.compose.region import region_box
from engine.diffusion.masks import grabcut_refine, masks_from_difference
from engine.pipeline import RecastPipeline
from engine.settings import EditSettings

FAST = dict(steps=3, tune_steps=2, window=4, overlap=1, guidance_scale=2.0)
SRC, TRG = "a red circle on a plain gray background", "a blue triangle on a plain gray background"


def _target(size: int = 48) -> np.ndarray:
    img = np.full((size, size, 3), 128, np.uint8)
    pts = np.array([[size // 2, 4], [size - 6, size - 6], [6, size - 6]], np.int32)
    cv2.fillPoly(img, [pts], (40, 80, 220))
    return img


def _unet_calls(pipe: RecastPipeline) -> list[int]:
    calls = [0]
    pipe.model.unet.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_rethreshold_runs_no_model_pass(tiny_model_dir, tmp_path):
    frames, target = moving_disc_clip(4, 48, 48), _target()
    pipe = RecastPipeline.from_pretrained(tiny_model_dir, device="cpu", cache_dir=tmp_path / "cache")
    calls = _unet_calls(pipe)
    settings = EditSettings(**FAST, mask_preset="interactive")
    pipe.compute_masks(frames, target, SRC, TRG, settings)
    assert calls[0] > 0
    (key, diff), = pipe._differences.items()
    assert key == pipe.difference_key(frames, target, SRC, TRG, dataclasses.replace(settings, tune_steps=0, steps=8,
                                                                                    inversion_refine=0))
    calls[0] = 0
    new = dataclasses.replace(settings, mask_threshold=0.5, mask_dilate=0.05, mask_refine=False, layered=False)
    masks = pipe.compute_masks(frames, target, SRC, TRG, new)
    assert calls[0] == 0, "a new threshold ran the UNet"
    assert np.array_equal(masks, masks_from_difference(diff, (48, 48), 0.5, 0.05, frames, False))

    # a new pipeline (a restarted daemon) finds the difference in the disk cache, keyed by content
    again = RecastPipeline.from_pretrained(tiny_model_dir, device="cpu", cache_dir=tmp_path / "cache")
    calls_again = _unet_calls(again)
    assert np.array_equal(again.compute_masks(frames, target, SRC, TRG, new), masks)
    assert calls_again[0] == 0
    # another clip is analysed afresh
    again.compute_masks(frames[::-1].copy(), target, SRC, TRG, new)
    assert calls_again[0] > 0


def test_mask_job_streams_provisional_masks_then_replaces_them(tiny_model_dir):
    with InProcess(tiny_model_dir) as d:
        clip, target, _ = setup_clip(d.stub, d.root)
        job = d.stub.CreateMaskJob(mask_request(clip, target, mask_preset="interactive"))
        events = watch_all(d.stub, job.job_id)
        seen = kinds(events)
        assert seen[-1] == "finished"
        provisional = [e.provisional_mask for e in events if e.WhichOneof("event") == "provisional_mask"]
        assert provisional and all(p.provisional for p in provisional)
        assert {p.frame_index for p in provisional} == set(range(clip.frame_count))
        first_final = seen.index("result_frame")
        assert seen.index("provisional_mask") < first_final  # they come before the final masks
        assert "provisional_mask" not in seen[first_final:]
        for p in provisional:  # grey masks of the frame's shape (small frames: full size)
            mask = decode_png(p.mask.data, grey=True)
            assert mask.shape == (clip.height, clip.width) and set(np.unique(mask)) <= {0, 255}
        # replaced: once the job ended, a replay holds only the final masks
        replay = kinds(watch_all(d.stub, job.job_id))
        assert "provisional_mask" not in replay and replay.count("result_frame") == clip.frame_count
        # a clip already analysed: a new threshold streams nothing provisional, it is final at once
        again = d.stub.CreateMaskJob(mask_request(clip, target, mask_preset="interactive", mask_threshold=0.5))
        assert "provisional_mask" not in kinds(watch_all(d.stub, again.job_id))
        skipped = kinds(watch_all(d.stub, job.job_id, skip_previews=True))
        assert "provisional_mask" not in skipped


def test_1080p_output_outside_the_region_is_the_source_byte_for_byte(tiny_pipeline):
    frames = np.empty((2, 1080, 1920, 3), np.uint8)
    rng = np.random.default_rng(0)
    frames[:] = rng.integers(0, 256, (1, 1080, 1920, 3), dtype=np.uint8)  # noise: any leak shows
    masks = np.zeros((2, 1080, 1920), np.uint8)
    for i in range(2):
        cv2.circle(frames[i], (700 + 40 * i, 500), 120, (220, 40, 40), -1)
        cv2.circle(masks[i], (700 + 40 * i, 500), 140, 255, -1)
    settings = EditSettings(**FAST, layered=True, feather=0.01)
    box = region_box(masks, settings.feather)
    assert box is not None  # the region-bound path runs
    result = tiny_pipeline.render(frames, _target(), SRC, TRG, settings, masks=masks)
    y0, y1, x0, x1 = box
    outside = np.ones(masks.shape, bool)
    outside[:, y0:y1, x0:x1] = False
    assert np.array_equal(result.frames[outside], frames[outside])
    assert not result.masks[outside].any()
    untouched = result.masks == 0  # inside the box too: where nothing is edited, the source
    assert np.array_equal(result.frames[untouched], frames[untouched])
    assert (result.frames[masks > 0] != frames[masks > 0]).any()


def test_1080p_refinement_stays_in_the_mask_box():
    frame = np.full((1080, 1920, 3), (90, 120, 60), np.uint8)
    cv2.circle(frame, (900, 540), 150, (220, 40, 40), -1)
    coarse = np.zeros((1080, 1920), np.uint8)
    cv2.rectangle(coarse, (770, 410), (1030, 670), 1, -1)  # blocky and a little small, like a latent mask
    band = round(0.1 * 1080)
    refined = grabcut_refine(frame, coarse, band)
    truth = np.zeros((1080, 1920), np.uint8)
    cv2.circle(truth, (900, 540), 150, 1, -1)
    iou = (refined & (truth > 0)).sum() / (refined | (truth > 0)).sum()
    assert iou > 0.9
    ys, xs = np.nonzero(refined)
    assert ys.min() >= 410 - 2 * band and xs.max() <= 1030 + 2 * band
