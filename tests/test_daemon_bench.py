"""`recast-engine bench perf` runs end to end on the tiny model and writes its JSON and plot."""

from __future__ import annotations

import json

import pytest

from engine.bench import perf as bench_perf
from engine.cli import main

pytestmark = pytest.mark.timeout(180)


def test_bench_perf_smoke(tmp_path):
    out = tmp_path / "perf"
    rc = main(
        [
            "bench",
            "perf",
            "--tiny",
            "--frames",
            "3",
            "--size",
            "48",
            "--repeats",
            "1",
            "--steps",
            "6",
            "--tune-steps",
            "1",
            "--skip-cold",
            "--skip-memory",
            "--edit-frames",
            "2",
            "--edit-repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads((out / "perf.json").read_text())
    for key in ("masks_s", "render_s", "first_preview_s", "outside_model_fraction", "daemon_ready_s"):
        assert report[key] == report[key] and report[key] >= 0, key  # a number, not NaN
    assert 0 <= report["outside_model_fraction"] < 1
    for key in ("first_mask_s", "remask_s", "edit_1080p_s", "edit_256_s", "outside_model_fraction_1080p",
                "edit_write_1080p_s"):
        assert report[key] == report[key] and report[key] >= 0, key
    assert report["first_mask_s"] <= report["masks_s"]
    assert report["remask_model_s"] == 0  # a new threshold on the analysed clip: no model pass at all
    assert report["propagate_s"] is None and "issue 17" in report["propagate_note"]
    assert set(report["within_budget"]) >= {"masks_s", "render_s", "first_preview_s"}
    assert (out / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_probe_reports_peak(tiny_model_dir):
    m = bench_perf.memory_probe(str(tiny_model_dir), frames=3, size=32, steps=2, device="cpu", threads=None)
    assert m["frames"] == 3 and m["peak_mb"] >= m["baseline_mb"] > 0
