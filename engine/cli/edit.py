"""`recast-engine edit`: edit a frame range of a video file and write frames, masks, mp4 and a report.

Output is built in a temporary folder beside `--out` and renamed into place at the end, so a failed
or interrupted run leaves nothing at `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from engine.errors import InputError
from engine.settings import EditSettings, Limits
from protos.settings_table import add_setting_flags, values_from_flags


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of the settings table, named the same everywhere (edit, demo, bench, bridge)."""
    add_setting_flags(parser, "pipeline settings")


def settings_from_args(args: argparse.Namespace) -> EditSettings:
    return EditSettings(**values_from_flags(args)).validate()


def parse_range(text: str | None) -> tuple[int, int | None]:
    if not text:
        return 0, None
    try:
        start_s, end_s = text.split(":")
        return int(start_s or 0), (int(end_s) if end_s else None)
    except ValueError:
        raise InputError("range", f"'{text}' is not START:END in frames (end exclusive), e.g. 0:16") from None


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Where an edit runs: model, device, CPU threads (shared by edit, demo and bench quality)."""
    parser.add_argument("--model", help="model folder, shipped model name or HF cache id (default: shapes)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")


def apply_threads(args: argparse.Namespace) -> None:
    """Oversubscribed OpenMP threads spin at barriers: on a busy 2-core machine a run got >100× slower."""
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise InputError("threads", "must be at least 1")
        import torch

        torch.set_num_threads(args.threads)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="source video file (any format OpenCV reads)")
    parser.add_argument("--target-image", required=True, help="image of the object to put in the video")
    parser.add_argument("--source-prompt", required=True, help="describes the source clip")
    parser.add_argument("--target-prompt", required=True, help="describes the edited clip")
    parser.add_argument("--range", help="START:END frames, end exclusive (default: whole clip)")
    add_runtime_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (created; must not exist)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--max-frames", type=int, default=Limits.max_frames, help="refuse longer ranges")
    parser.add_argument("--max-clip-pixels", type=int, default=Limits.max_clip_pixels,
                        help="refuse ranges whose frames × height × width exceed this")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--format", default="h264",
                        help="output: prores (422 HQ .mov), prores4444 (mask as alpha), dnxhr (HQX .mov), h264 or "
                             "h265 (.mp4 review copies), ffv1 (lossless .mkv), png or tiff (16-bit) or exr sequences "
                             "under frames/ (default: h264)")
    parser.add_argument("--matte", action="store_true", help="also write the compositing mask as a grey movie")
    parser.add_argument("--strict-depth", action="store_true",
                        help="refuse a --format shallower than the source instead of warning")
    parser.add_argument("--offload", action="store_true",
                        help="CUDA: keep the VAE on the CPU between calls too (8–12 GB cards); no effect on CPU")
    add_settings_arguments(parser)


class ProgressBar:
    """A tqdm bar per stage on stderr."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr is not None
        self.stage = None
        self.bar = None

    def __call__(self, stage: str, step: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:>9}", file=sys.stderr, leave=True, dynamic_ncols=True)
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise InputError("out", f"{out} exists; pass --overwrite to replace it or choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError("out", f"{out} exists and is not a folder")
    if not out.parent.exists():
        raise InputError("out", f"the parent folder {out.parent} does not exist")


def publish(tmp: Path, out: Path) -> None:
    """Rename the finished temporary folder into place; an old `out` is removed only afterwards."""
    trash = None
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, trash)
    os.replace(tmp, out)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def run_edit(source: str, target_image: str, source_prompt: str, target_prompt: str, out: Path,
             settings: EditSettings, frame_range: tuple[int, int | None] = (0, None), model: str | None = None,
             device: str | None = None, overwrite: bool = False, limits: Limits | None = None,
             progress=None, pipeline=None, auto_window: bool = False, offload: bool = False,
             output_format: str = "h264", matte: bool = False, strict_depth: bool = False) -> dict:
    """Validate everything cheap first, then load, edit and write. Returns the report.
    `auto_window` (no --window given): the window is chosen from free memory, recorded in the report."""
    from engine.runtime import video_io

    limits = limits or Limits()
    t0 = time.perf_counter()
    out = Path(out).absolute()
    check_output(out, overwrite)
    from engine.runtime import media_out

    fmt = media_out.get_format(output_format)
    info = video_io.probe_media(source)
    count, fps, height, width = info.count, info.fps, info.height, info.width
    start, end = video_io.check_range(frame_range[0], frame_range[1], count)
    limits.check_clip(end - start, height, width)
    media_out.warn(media_out.check_format(fmt, info, strict_depth))
    target = video_io.read_image(target_image)
    limits.check_prompt("source_prompt", source_prompt)
    limits.check_prompt("target_prompt", target_prompt)
    settings.validate()

    timings: dict[str, float] = {}
    tick = time.perf_counter()
    if pipeline is None:
        from engine.pipeline import RecastPipeline

        pipeline = RecastPipeline.from_pretrained(model, device=device, limits=limits, offload=offload)
    timings["load"] = time.perf_counter() - tick
    tick = time.perf_counter()
    frames, fps = video_io.read_frames(source, start, end)
    timings["read"] = time.perf_counter() - tick

    m = pipeline.model
    report = {
        "source": str(Path(source).absolute()),
        "range": [start, end],
        "source_size": [height, width],
        "target_image": str(Path(target_image).absolute()),
        "model": {"name": m.name, "folder": str(m.folder), "prediction_type": m.prediction_type},
        "device": str(m.device),
        "dtype": str(m.dtype).replace("torch.", ""),
        "window": {"window": settings.window, "overlap": settings.overlap, "chosen_by": "--window"},
    }
    if auto_window:
        settings, report["window"] = pipeline.choose_window(end - start, height, width, settings)
    output = {"format": fmt, "source": source, "info": info, "start": start, "matte": matte}
    return render_to_folder(pipeline, frames, fps, target, source_prompt, target_prompt, settings, out, report,
                            timings, t0, progress, output=output)


def render_to_folder(pipeline, frames, fps: float, target, source_prompt: str, target_prompt: str,
                     settings: EditSettings, out: Path, report: dict, timings: dict, t0: float, progress=None,
                     before_publish=None, output: dict | None = None) -> dict:
    """Render into a temporary folder beside `out`: frames/, masks/, edited.mp4, report.json; then
    `before_publish(tmp, result, report)` adds its own files, and the folder is renamed into place.
    `output` (format, source, info, start, matte) writes the chosen format from the source at its depth
    (engine/runtime/media_out.py) instead of the plain edited.mp4."""
    from engine.runtime import video_io

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "frames").mkdir()
        (tmp / "masks").mkdir()

        def on_frame(i: int, rgb, mask) -> None:
            video_io.write_png(tmp / "frames" / f"{i:05d}.png", rgb)
            video_io.write_png(tmp / "masks" / f"{i:05d}.png", mask)

        result = pipeline.render(frames, target, source_prompt, target_prompt, settings, progress=progress,
                                 on_frame=on_frame)
        timings.update(result.timings)
        tick = time.perf_counter()
        if output is None:
            video_io.write_video(tmp / "edited.mp4", result.frames, fps)
        else:
            from engine.runtime import media_out

            report["output"] = media_out.write_outputs(
                tmp, output["format"], output["source"], output["info"], output["start"], result.frames,
                result.masks, output["matte"])
        timings["write_video"] = time.perf_counter() - tick
        report.update({
            "frame_count": int(len(frames)),
            "fps": fps,
            "working_size": list(pipeline.last_working_size),
            "source_prompt": source_prompt,
            "target_prompt": target_prompt,
            "settings": settings.to_dict(),
            "tune_loss": {"first": result.tune_losses[0], "last": result.tune_losses[-1]}
            if result.tune_losses else None,
            "mask_coverage": float((result.region_masks > 0).mean()),
        })
        if before_publish is not None:
            before_publish(tmp, result, report)
        timings["total"] = time.perf_counter() - t0
        report["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        publish(tmp, out)
        return report
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    bar = ProgressBar(not args.quiet)
    try:
        report = run_edit(
            args.source, args.target_image, args.source_prompt, args.target_prompt, Path(args.out),
            settings_from_args(args), parse_range(args.range), args.model, args.device, args.overwrite,
            Limits(max_frames=args.max_frames, max_clip_pixels=args.max_clip_pixels), progress=bar,
            auto_window=getattr(args, "window", None) is None, offload=args.offload, output_format=args.format,
            matte=args.matte, strict_depth=args.strict_depth)
    finally:
        bar.close()
    t = report["timings_s"]
    print(f"edited {report['frame_count']} frames in {t['total']:.1f} s → {Path(args.out).absolute()}")
    return 0
