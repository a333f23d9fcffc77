"""The quality benchmark runs end to end on the tiny model and writes JSON, markdown and a chart."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from engine.bench import quality as bq


def test_bench_quality_writes_every_metric_for_every_method(tiny_model_dir, tmp_path):
    parser = argparse.ArgumentParser()
    bq.add_arguments(parser)
    out = tmp_path / "bench"
    args = parser.parse_args(["--clips", "2", "--frames", "3", "--size", "48", "--model", str(tiny_model_dir),
                              "--out", str(out), "--steps", "2", "--tune-steps", "1", "--inversion-refine", "0",
                              "--methods", "full,no_correction,text_only_masks"])
    assert bq.run(args) == 0
    report = json.loads((out / "quality.json").read_text())
    assert len(report["rows"]) == 6
    assert {r["shape_change"] for r in report["rows"]} == {True, False}
    for method in ("full", "no_correction", "text_only_masks"):
        row = report["summary"]["all"][method]
        assert set(bq.METRICS) <= set(row) and all(np.isfinite(row[k]) for k in bq.METRICS)
    # no_correction reuses the full method's masks, so the mask score is identical
    assert report["summary"]["all"]["no_correction"]["mask_iou"] == report["summary"]["all"]["full"]["mask_iou"]
    assert "| full |" in (out / "quality.md").read_text()
    assert (out / "quality.png").stat().st_size > 1000


def test_bench_clips_alternate_shape_changes_and_motions():
    clips = bq.bench_clips(6, 2, 32, seed=3)
    assert [s.shape != s.target_shape for s, _, _ in clips] == [True, False] * 3
    assert len({s.motion for s, _, _ in clips}) == 3


def test_extra_methods_switch_off_one_part_each_and_unknown_ones_are_named(tmp_path):
    from engine.errors import InputError
    from engine.settings import EditSettings

    base = EditSettings()
    no_layers, no_match = bq.method_settings(base, "no_layers"), bq.method_settings(base, "no_color_match")
    assert (no_layers.layered, no_layers.color_match) == (False, base.color_match)
    assert (no_match.layered, no_match.color_match) == (True, 0.0)
    assert base.layered and base.color_match > 0  # the full method has both
    parser = argparse.ArgumentParser()
    bq.add_arguments(parser)
    args = parser.parse_args(["--methods", "full,no_layerz", "--out", str(tmp_path / "b")])
    with pytest.raises(InputError, match="no_layerz") as refused:
        bq.run(args)
    assert refused.value.field == "methods" and "no_color_match" in str(refused.value)


def test_bench_quality_reports_what_the_interactive_mask_preset_costs(tiny_model_dir, tmp_path):
    parser = argparse.ArgumentParser()
    bq.add_arguments(parser)
    out = tmp_path / "bench"
    args = parser.parse_args(["--clips", "2", "--frames", "3", "--size", "48", "--model", str(tiny_model_dir),
                              "--out", str(out), "--steps", "2", "--tune-steps", "1",
                              "--methods", "full,interactive_masks"])
    assert bq.run(args) == 0
    summary = json.loads((out / "quality.json").read_text())["summary"]
    for subset in ("all", "shape_change", "colour_only"):
        row = summary[subset]["interactive_masks"]
        assert row["mask_iou_cost"] == pytest.approx(summary[subset]["full"]["mask_iou"] - row["mask_iou"])
    assert "interactive mask preset costs" in (out / "quality.md").read_text()
