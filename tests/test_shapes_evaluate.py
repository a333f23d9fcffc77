"""The model-only shape-change probe (`engine.shapes_world.evaluate.inpaint`) on the tiny model."""

from __future__ import annotations

import numpy as np

from engine.shapes_world.evaluate import inpaint


def test_the_inpaint_probe_edits_only_inside_its_region_and_scores_with_the_bench_metrics(tiny_model_dir):
    res = inpaint(tiny_model_dir, n=4, steps=2)
    src, edited, regions = res.pop("inpaint_frames")
    assert src.shape == edited.shape and src.shape[:3] == regions.shape and len(src) == 4
    outside = regions == 0
    assert np.array_equal(edited[outside], src[outside])  # the source, byte for byte, outside the region
    assert not np.array_equal(edited[~outside], src[~outside])  # a random model still repaints inside
    assert set(res) == {"inpaint_shape_iou", "inpaint_removal", "inpaint_color_acc"}
    assert all(0.0 <= v <= 1.0 for v in res.values())
    again = inpaint(tiny_model_dir, n=4, steps=2)
    assert {k: v for k, v in again.items() if k != "inpaint_frames"} == res  # seeded: the same numbers twice
