"""`recast-engine demo`: render a shapes-world clip, edit it with the shipped model, show and score it.

A red circle moves on a striped navy background; the target image shows a blue star elsewhere. The
output folder holds the source and edited videos, frames, masks, the target image, `compare.png`
(rows of source / mask / edited frames) and a report with the clip's ground-truth metrics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from engine.cli.edit import (
    ProgressBar,
    add_runtime_arguments,
    add_settings_arguments,
    apply_threads,
    check_output,
    settings_from_args,
)
from engine.shapes_world.clips import ClipSpec, clip_target_image, render_clip
from engine.shapes_world.render import Background

DEMO_SPEC = ClipSpec(
    colour="red", shape="circle", background=Background("navy", "striped", angle=90.0, period=0.15), motion="translate",
    start=(0.28, 0.5), velocity=(0.44, 0.0), radius=(0.2, 0.2), target_colour="blue", target_shape="star",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="recast-demo", help="output folder (default: ./recast-demo)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_runtime_arguments(parser)
    parser.add_argument("--frames", type=int, default=16, help="clip length (default: 16)")
    parser.add_argument("--size", type=int, default=256, help="clip height and width in pixels (default: 256)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_arguments(parser)


def compare_sheet(source: np.ndarray, masks: np.ndarray, edited: np.ndarray, columns: int = 8) -> np.ndarray:
    """Rows of source / mask / edited for `columns` frames spread over the clip."""
    idx = np.linspace(0, len(source) - 1, min(columns, len(source))).round().astype(int)
    mask_rgb = np.repeat(masks[..., None], 3, axis=-1)
    rows = [np.concatenate(list(arr[idx]), axis=1) for arr in (source, mask_rgb, edited)]
    return np.concatenate(rows, axis=0)


def run(args: argparse.Namespace) -> int:
    from engine.cli.edit import render_to_folder
    from engine.errors import InputError
    from engine.pipeline import RecastPipeline
    from engine.runtime import video_io
    from engine.shapes_world.metrics import clip_metrics

    t0 = time.perf_counter()
    out = Path(args.out).absolute()
    check_output(out, args.overwrite)
    if not 2 <= args.frames <= 256:
        raise InputError("frames", "must be in 2..256")
    if not 32 <= args.size <= 1024:
        raise InputError("size", "must be in 32..1024")
    settings = settings_from_args(args)
    apply_threads(args)
    clip = render_clip(DEMO_SPEC, args.frames, args.size, args.size)
    target = clip_target_image(DEMO_SPEC, args.size, args.size, seed=1)
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    pipeline = RecastPipeline.from_pretrained(args.model, device=args.device)
    timings["load"] = time.perf_counter() - tick
    fps = 12.0
    scores: dict[str, float] = {}

    def extras(tmp: Path, result, report: dict) -> None:
        video_io.write_video(tmp / "source.mp4", clip.frames, fps)
        video_io.write_png(tmp / "target.png", target)
        video_io.write_png(tmp / "compare.png", compare_sheet(clip.frames, result.region_masks, result.frames))
        scores.update(clip_metrics(result.frames, clip.frames, result.region_masks > 0, clip.clean_plate,
                                   clip.masks, clip.target_footprints, DEMO_SPEC.target_colour,
                                   clip.target_centroids))
        report["metrics"] = scores

    m = pipeline.model
    report = {"demo": {"source": DEMO_SPEC.source_caption, "target": DEMO_SPEC.target_caption},
              "model": {"name": m.name, "folder": str(m.folder), "prediction_type": m.prediction_type},
              "device": str(m.device), "source_size": [args.size, args.size]}
    bar = ProgressBar(not args.quiet)
    try:
        report = render_to_folder(pipeline, clip.frames, fps, target, DEMO_SPEC.source_caption,
                                  DEMO_SPEC.target_caption, settings, out, report, timings, t0, bar, extras)
    finally:
        bar.close()
    print(f"demo: '{DEMO_SPEC.source_caption}' → '{DEMO_SPEC.target_caption}'")
    print(f"  edited {report['frame_count']} frames of {args.size}×{args.size} in "
          f"{report['timings_s']['total']:.1f} s on {report['device']} (model: {m.name})")
    for name in ("source.mp4", "edited.mp4", "compare.png", "frames/", "masks/", "report.json"):
        print(f"  {out / name}")
    print("  metrics: " + json.dumps({k: round(v, 3) for k, v in scores.items()}))
    return 0
