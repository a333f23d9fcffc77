"""`recast-engine bench quality`: ground-truth quality of the full method and its ablations.

Seeded shapes-world clips across backgrounds, motions and sizes, half of them shape changes. Every
clip is edited by the full method and by three ablations (DESIGN §4): per-frame (no inflation, tuning
or correction), text-only masks (target branch without the target image) and no latent correction;
on request also without layers, without colour match, and with the interactive mask preset's masks
(`interactive_masks`: its mask_iou cost against the full method is in the summary, per condition).
Writes `quality.json` (per clip and summary), `quality.md` (tables) and `quality.png` (a chart).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from engine.cli.edit import add_runtime_arguments, add_settings_arguments, apply_threads, settings_from_args

METHODS = ("full", "per_frame", "text_only_masks", "no_correction")  # DESIGN §4's, run by default
# what the layered composite and the colour match add; what the interactive mask preset costs (the studio's
# mask jobs: masks without tuning, 8 steps), rendered with the full settings like the full method
EXTRA_METHODS = ("no_layers", "no_color_match", "interactive_masks")
METRICS = ("mask_iou", "bg_psnr", "color_acc", "shape_iou", "removal", "flicker", "track_err")
HIGHER_IS_BETTER = {"mask_iou": True, "bg_psnr": True, "color_acc": True, "shape_iou": True, "removal": True,
                    "flicker": False, "track_err": False}
TARGETS = {"mask_iou": 0.70, "bg_psnr": 35.0, "color_acc": 0.85, "shape_iou": 0.60, "removal": 0.85,
           "track_err": 3.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=int, default=24, help="number of clips (default 24, half shape changes)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--size", type=int, default=128, help="clip size in pixels (default 128)")
    parser.add_argument("--bench-seed", type=int, default=0, help="seed of the clip set (default 0)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list of {', '.join(METHODS + EXTRA_METHODS)} (default: the first four)")
    add_runtime_arguments(parser)
    parser.add_argument("--out", default="bench-quality", help="output folder (default ./bench-quality)")
    add_settings_arguments(parser)


def method_settings(base, method: str):
    if method == "per_frame":
        return dataclasses.replace(base, temporal=False, tune_steps=0, latent_correction=False)
    if method == "text_only_masks":
        return dataclasses.replace(base, mask_text_only=True)
    if method == "no_correction":
        return dataclasses.replace(base, latent_correction=False)
    if method == "no_layers":
        return dataclasses.replace(base, layered=False)
    if method == "no_color_match":
        return dataclasses.replace(base, color_match=0.0)
    if method == "interactive_masks":  # the preset applies to the masks only (compute_masks)
        return dataclasses.replace(base, mask_preset="interactive")
    return base


def bench_clips(n: int, frames: int, size: int, seed: int) -> list:
    """Seeded clips: alternating shape change / colour-only, cycling motions, sizes from the spec."""
    from engine.shapes_world.clips import MOTIONS, clip_target_image, random_clip_spec, render_clip

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spec = random_clip_spec(rng, shape_change=(i % 2 == 0), motion=MOTIONS[i % len(MOTIONS)])
        out.append((spec, render_clip(spec, frames, size, size), clip_target_image(spec, size, size, seed=seed + i)))
    return out


def summarise(rows: list[dict]) -> dict:
    summary: dict = {}
    for subset, keep in (("all", lambda r: True), ("shape_change", lambda r: r["shape_change"]),
                         ("colour_only", lambda r: not r["shape_change"])):
        chosen = [r for r in rows if keep(r)]
        summary[subset] = {}
        for method in {r["method"] for r in chosen}:
            vals = [r["metrics"] for r in chosen if r["method"] == method]
            summary[subset][method] = {k: float(np.mean([v[k] for v in vals])) for k in METRICS}
            summary[subset][method]["seconds"] = float(np.mean([r["seconds"] for r in chosen
                                                                if r["method"] == method]))
        if "full" in summary[subset] and "interactive_masks" in summary[subset]:  # what the preset costs
            summary[subset]["interactive_masks"]["mask_iou_cost"] = (
                summary[subset]["full"]["mask_iou"] - summary[subset]["interactive_masks"]["mask_iou"])
    return summary


def markdown(summary: dict, methods: list[str]) -> str:
    lines = []
    for subset, table in summary.items():
        lines += [f"### {subset}", "", "| method | " + " | ".join(METRICS) + " | s/clip |",
                  "|---|" + "---|" * (len(METRICS) + 1)]
        for m in methods:
            if m in table:
                vals = " | ".join(f"{table[m][k]:.3f}" for k in METRICS)
                lines.append(f"| {m} | {vals} | {table[m]['seconds']:.1f} |")
        if "mask_iou_cost" in table.get("interactive_masks", {}):
            lines += ["", f"The interactive mask preset costs {table['interactive_masks']['mask_iou_cost']:+.3f} "
                          "mask_iou against the full mask settings."]
        lines.append("")
    targets = ", ".join(f"{k} {'≥' if HIGHER_IS_BETTER[k] else '≤'} {v}" for k, v in TARGETS.items())
    lines.append(f"Targets for the full method: {targets}.")
    return "\n".join(lines) + "\n"


def chart(summary: dict, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary["all"]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3 * len(METRICS), 3.2))
    for ax, metric in zip(axes, METRICS):
        present = [m for m in methods if m in table]
        ax.bar(range(len(present)), [table[m][metric] for m in present],
               color=["#3465a4", "#cc0000", "#73d216", "#f57900", "#75507b", "#c17d11", "#555753"][: len(present)])
        ax.set_xticks(range(len(present)), present, rotation=45, ha="right", fontsize=7)
        ax.set_title(metric + (" ↑" if HIGHER_IS_BETTER[metric] else " ↓"), fontsize=9)
        if metric in TARGETS:
            ax.axhline(TARGETS[metric], color="k", linestyle="--", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from engine.errors import InputError
    from engine.pipeline import RecastPipeline
    from engine.shapes_world.metrics import clip_metrics

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS + EXTRA_METHODS))
    if unknown:
        raise InputError("methods", f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS + EXTRA_METHODS)}")
    if args.clips < 1:
        raise InputError("clips", "must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = settings_from_args(args)
    apply_threads(args)
    pipe = RecastPipeline.from_pretrained(args.model, device=args.device)
    rows: list[dict] = []
    clips = bench_clips(args.clips, args.frames, args.size, args.bench_seed)
    for ci, (spec, clip, target) in enumerate(clips):
        masks_full = None
        for method in methods:
            settings = method_settings(base, method)
            tick = time.perf_counter()
            masks = masks_full if method == "no_correction" and masks_full is not None else None
            if method == "interactive_masks":
                masks = pipe.compute_masks(clip.frames, target, spec.source_caption, spec.target_caption, settings)
            result = pipe.render(clip.frames, target, spec.source_caption, spec.target_caption, settings,
                                 masks=masks)
            if method == "full":
                masks_full = result.region_masks
            metrics = clip_metrics(result.frames, clip.frames, result.region_masks > 0, clip.clean_plate,
                                   clip.masks, clip.target_footprints, spec.target_colour, clip.target_centroids)
            rows.append({"clip": ci, "method": method, "source": spec.source_caption, "target": spec.target_caption,
                         "motion": spec.motion, "shape_change": spec.shape != spec.target_shape,
                         "seconds": time.perf_counter() - tick, "metrics": metrics})
            print(f"clip {ci + 1}/{len(clips)} {method:>15}: " +
                  " ".join(f"{k}={metrics[k]:.3f}" for k in METRICS), flush=True)
    summary = summarise(rows)
    report = {"model": str(pipe.model.folder), "device": str(pipe.model.device), "clips": args.clips,
              "frames": args.frames, "size": args.size, "bench_seed": args.bench_seed,
              "settings": base.to_dict(), "summary": summary, "rows": rows}
    (out / "quality.json").write_text(json.dumps(report, indent=2))
    (out / "quality.md").write_text(markdown(summary, methods))
    chart(summary, methods, out / "quality.png")
    print(markdown(summary, methods))
    print(f"wrote {out / 'quality.json'}, {out / 'quality.md'}, {out / 'quality.png'}")
    return 0
