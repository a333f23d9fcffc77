"""`recast-engine edit` end to end, and every bad input: one-line error, non-zero exit, nothing left."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import moving_disc_clip, write_clip

from engine.cli import main

SRC = "a red circle on a striped navy background"
TRG = "a blue square on a striped navy background"
FAST = ["--steps", "3", "--tune-steps", "1", "--inversion-refine", "0", "--quiet"]


def edit_args(video, target, out, model, *extra):
    return [
        "edit", str(video), "--target-image", str(target), "--source-prompt", SRC, "--target-prompt", TRG,
        "--model", str(model), "--out", str(out), *FAST, *extra,
    ]


def test_edit_writes_frames_masks_video_and_report(tiny_model_dir, disc_video, target_png, tmp_path):
    out = tmp_path / "result"
    code = subprocess.run([sys.executable, "-m", "engine.cli", *edit_args(disc_video, target_png, out,
                                                                          tiny_model_dir, "--range", "2:7")],
                          capture_output=True, text=True, timeout=300)
    assert code.returncode == 0, code.stderr[-3000:]
    frames = sorted((out / "frames").glob("*.png"))
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(5)]
    assert len(masks) == 5
    first = cv2.imread(str(frames[0]))
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert first.shape == (48, 64, 3) and mask.shape == (48, 64) and mask.dtype == np.uint8
    source = moving_disc_clip(8, 48, 64)[2]
    edited = cv2.cvtColor(first, cv2.COLOR_BGR2RGB)
    assert np.array_equal(edited[mask == 0], source[mask == 0])  # PNG is lossless: byte for byte
    report = json.loads((out / "report.json").read_text())
    assert report["frame_count"] == 5 and report["range"] == [2, 7] and report["fps"] == 24.0
    assert report["device"] == "cpu" and report["model"]["prediction_type"] == "v_prediction"
    assert {"load", "generate", "total"} <= set(report["timings_s"])
    assert report["settings"]["steps"] == 3
    cap = cv2.VideoCapture(str(out / "edited.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.get(cv2.CAP_PROP_FPS) == 24.0
    cap.release()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".result")]
    # an existing --out is refused, then replaced with --overwrite
    assert main(edit_args(disc_video, target_png, out, tiny_model_dir)) != 0
    assert main(edit_args(disc_video, target_png, out, tiny_model_dir, "--overwrite", "--range", "0:2")) == 0
    assert len(list((out / "frames").glob("*.png"))) == 2


def _pickle_model(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    torch.save({"w": torch.zeros(1)}, folder / "vae" / "diffusion_pytorch_model.bin")
    return folder


def _sd_model(tiny_model_dir, tmp_path):
    folder = tmp_path / "sd"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


BAD = {
    "unreadable video": (lambda d, t, m, p: (p / "x.mp4").write_text("not a video") or p / "x.mp4", None, [],
                         "source"),
    "empty video": (lambda d, t, m, p: (p / "e.mp4").write_bytes(b"") or p / "e.mp4", None, [], "source"),
    "missing video": (lambda d, t, m, p: p / "nope.mp4", None, [], "source"),
    "range outside": (None, None, ["--range", "4:20"], "range"),
    "range reversed": (None, None, ["--range", "5:2"], "range"),
    "range garbage": (None, None, ["--range", "a:b"], "range"),
    "missing target": (None, lambda d, t, m, p: p / "none.png", [], "target_image"),
    "non-image target": (None, lambda d, t, m, p: (p / "t.png").write_text("hello") or p / "t.png", [],
                         "target_image"),
    "empty source prompt": (None, None, ["--source-prompt", " "], "source_prompt"),
    "empty target prompt": (None, None, ["--target-prompt", ""], "target_prompt"),
    "over size limit": (None, None, ["--max-clip-pixels", "1000"], "range"),
    "bad setting": (None, None, ["--overlap", "99"], "overlap"),
    "bad threads": (None, None, ["--threads", "0"], "threads"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_one_line_error_and_leaves_nothing(case, tiny_model_dir, disc_video, target_png, tmp_path,
                                                          capsys):
    video_fn, target_fn, extra, field = BAD[case]
    video = video_fn(disc_video, target_png, tiny_model_dir, tmp_path) if video_fn else disc_video
    target = target_fn(disc_video, target_png, tiny_model_dir, tmp_path) if target_fn else target_png
    out = tmp_path / "out"
    before = set(tmp_path.iterdir())
    code = main(edit_args(video, target, out, tiny_model_dir) + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and field in err[0], err
    assert not out.exists() and set(tmp_path.iterdir()) == before


@pytest.mark.parametrize("maker,words", [(_pickle_model, "pickle"), (_sd_model, "SD-unCLIP")])
def test_bad_model_folders_are_refused(maker, words, tiny_model_dir, disc_video, target_png, tmp_path, capsys):
    model = maker(tiny_model_dir, tmp_path)
    out = tmp_path / "out"
    code = main(edit_args(disc_video, target_png, out, model))
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and words in err[0], err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_failure_mid_run_leaves_nothing(tiny_model_dir, tmp_path, target_png, capsys):
    """A setting only the loaded model can check fails after the output folder was started: nothing stays."""
    video = write_clip(tmp_path / "short.avi", moving_disc_clip(3, 32, 32))
    out = tmp_path / "out"
    code = main(edit_args(video, target_png, out, tiny_model_dir, "--correction-block", "9"))
    assert code != 0 and "correction_block" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
