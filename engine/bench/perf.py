"""`recast-engine bench perf`: the performance budgets of DESIGN.md §8, measured.

What it measures, and how:
- cold `recast-engine edit` of a 16-frame 256×256 shapes clip: a fresh process, wall clock;
- a warm daemon (the real one, in this process, over its unix socket): mask job with the interactive
  preset (the studio's mask jobs), its first provisional mask after the request, a new threshold on
  the analysed clip, render job with those masks, first preview after the job started; medians over
  several new clips;
- an edit of a 24-frame clip at 1920×1080 and at 256×256 side by side (decode, masks, render), with
  its time outside model passes; writing the output is timed apart and not counted as either;
- time outside model passes: forward hooks on every model component (UNet, VAE encoder/decoder,
  text and image encoders) plus a timer around autograd's backward, against the jobs' wall time;
- peak memory against frame count: one fresh process per clip length, peak RSS after model load.
Writes `perf.json` and `perf.png` to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BUDGETS = {
    "cold_edit_s": 30.0,
    "masks_s": 3.0,
    "render_s": 10.0,
    "first_preview_s": 1.0,
    "outside_model_fraction": 0.20,
    "memory_ratio_128_vs_16": 1.5,
    "first_mask_s": 1.0,
    "remask_s": 0.5,
    "propagate_s": 1.0,
    "outside_model_fraction_1080p": 0.20,
    "edit_1080p_vs_256": 1.5,
}
REMASK_THRESHOLD = 0.4  # the re-threshold job's new threshold (the default is 0.3)
EDIT_SIZES = {"256": (256, 256), "1080p": (1080, 1920)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model folder or name (default: the shipped 'shapes')")
    parser.add_argument("--tiny", action="store_true", help="benchmark a tiny random model instead (smoke test)")
    parser.add_argument(
        "--random-shapes",
        action="store_true",
        help="a randomly initialised model of the shapes architecture: the speed and memory of the shipped "
        "model before it is trained",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--size", type=int, default=256, help="clip size in pixels (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="new clips for the warm-daemon medians")
    parser.add_argument("--memory-frames", default="16,32,64,128", help="clip lengths for the memory curve")
    parser.add_argument("--memory-steps", type=int, default=4, help="DDIM steps in the memory runs")
    parser.add_argument("--steps", type=int, default=None, help="override EditSettings.steps")
    parser.add_argument("--tune-steps", type=int, default=None, help="override EditSettings.tune_steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-edit", action="store_true", help="skip the 1080p vs 256² edit")
    parser.add_argument("--edit-frames", type=int, default=24, help="frames of the 1080p vs 256² edit (default 24)")
    parser.add_argument("--edit-repeats", type=int, default=3, help="repeats of that edit (median)")
    parser.add_argument("--out", type=Path, default=Path("out/bench_perf"))


# --- inputs -------------------------------------------------------------------------------------------


def make_clip(frames: int, size: int, seed: int) -> tuple[Any, Any, str, str]:
    """A shapes-world clip (frames, target image, prompts) with known content."""
    import numpy as np

    from engine.shapes_world.clips import clip_target_image, random_clip_spec, render_clip

    spec = random_clip_spec(np.random.default_rng(seed), shape_change=True)
    clip = render_clip(spec, frames, size, size)
    return clip.frames, clip_target_image(spec, size, size, seed), spec.source_caption, spec.target_caption


def write_inputs(folder: Path, frames: Any, target: Any) -> tuple[Path, Path]:
    from engine.runtime.video_io import write_png, write_video

    video, image = folder / "clip.avi", folder / "target.png"
    write_video(video, frames, 24.0, codec="FFV1")  # lossless: the benchmark sees the exact frames
    write_png(image, target)
    return video, image


def settings_overrides(args: argparse.Namespace) -> dict[str, int]:
    out = {}
    if args.steps is not None:
        out["steps"] = args.steps
    if args.tune_steps is not None:
        out["tune_steps"] = args.tune_steps
    return out


# --- model-time clock -----------------------------------------------------------------------------------


class ModelClock:
    """Wall time spent inside model forward and backward passes (nested calls counted once)."""

    def __init__(self, model: Any):
        import torch

        self.total = 0.0
        self._depth = 0
        self._t0 = 0.0
        self._handles = []
        modules = [model.unet, model.vae.encoder, model.vae.decoder, model.text_encoder, model.image_encoder]
        for m in modules:
            self._handles.append(m.register_forward_pre_hook(lambda *_: self._enter()))
            self._handles.append(m.register_forward_hook(lambda *_: self._exit()))
        self._backward = torch.autograd.backward

        def timed_backward(*a: Any, **kw: Any) -> Any:
            self._enter()
            try:
                return self._backward(*a, **kw)
            finally:
                self._exit()

        torch.autograd.backward = timed_backward

    def _enter(self) -> None:
        if self._depth == 0:
            self._t0 = time.perf_counter()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.total += time.perf_counter() - self._t0

    def close(self) -> None:
        import torch

        for h in self._handles:
            h.remove()
        torch.autograd.backward = self._backward


# --- measurements -----------------------------------------------------------------------------------------


def cold_edit(
    model: str, folder: Path, frames: Any, target: Any, src: str, trg: str, overrides: dict, threads: int | None
) -> float:
    """A fresh `recast-engine edit` process, start to exit."""
    video, image = write_inputs(folder, frames, target)
    cmd = [
        sys.executable,
        "-m",
        "engine.cli",
        "edit",
        str(video),
        "--target-image",
        str(image),
        "--source-prompt",
        src,
        "--target-prompt",
        trg,
        "--model",
        model,
        "--out",
        str(folder / "edit"),
        "--quiet",
    ]
    for k, v in overrides.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"recast-engine edit failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return wall


def warm_daemon(args: argparse.Namespace, model: str, overrides: dict) -> dict:
    """The real daemon in this process; a client over its unix socket; one new clip per repeat."""
    import grpc

    from engine.daemon.app import Daemon, DaemonConfig
    from protos.recast.v1 import engine_pb2 as pb
    from protos.recast.v1 import engine_pb2_grpc as pb_grpc

    root = Path(tempfile.mkdtemp(prefix="rcb", dir="/tmp"))
    config = DaemonConfig(
        runtime_dir=root / "run",
        data_dir=root / "data",
        socket_path=root / "run" / "s.sock",
        model=model,
        device=args.device,
        torch_threads=args.threads,
    )
    daemon = Daemon(config)
    t0 = time.perf_counter()
    daemon.start()
    daemon.wait_ready(600)
    ready_s = time.perf_counter() - t0
    if daemon.host.pipe is None:
        raise RuntimeError(f"the daemon could not load the model: {daemon.host.error}")
    clock = ModelClock(daemon.host.pipe.model)
    channel = grpc.insecure_channel(f"unix:{config.socket_path}")
    stub = pb_grpc.EngineStub(channel)
    runs: list[dict] = []
    try:
        for r in range(args.repeats + 1):  # run 0 warms up the process (first-call overheads)
            frames, target, src, trg = make_clip(args.frames, args.size, seed=1000 + r)
            folder = root / f"clip{r}"
            folder.mkdir()
            video, image = write_inputs(folder, frames, target)
            asset = stub.ImportAsset(pb.ImportAssetRequest(path=str(video)))
            tgt = stub.ImportAsset(pb.ImportAssetRequest(path=str(image)))
            clip = stub.CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id))
            common = dict(clip_id=clip.clip_id, source_prompt=src, target_prompt=trg, target_asset_id=tgt.asset_id)
            interactive = pb.EditSettings(**overrides, mask_preset="interactive")  # the studio's mask jobs
            mask = _timed_job(stub, clock, stub.CreateMaskJob, pb.CreateMaskJobRequest(**common, settings=interactive))
            interactive.mask_threshold = REMASK_THRESHOLD
            remask = _timed_job(stub, clock, stub.CreateMaskJob,
                                pb.CreateMaskJobRequest(**common, settings=interactive))
            render_req = pb.CreateRenderJobRequest(mask_version=mask["mask_version"], **common,
                                                   settings=pb.EditSettings(**overrides))
            render = _timed_job(stub, clock, stub.CreateRenderJob, render_req)
            if r > 0:
                runs.append({"masks": mask, "remask": remask, "render": render})
    finally:
        clock.close()
        channel.close()
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)

    def med(key: str, field: str) -> float:
        return statistics.median(run[key][field] for run in runs)

    model_time = sum(run[k]["model_s"] for run in runs for k in ("masks", "render"))
    job_time = sum(run[k]["server_s"] for run in runs for k in ("masks", "render"))
    return {
        "daemon_ready_s": ready_s,
        "masks_s": med("masks", "client_s"),
        "first_mask_s": med("masks", "first_mask_s"),
        "remask_s": med("remask", "client_s"),
        "remask_model_s": max(run["remask"]["model_s"] for run in runs),
        "propagate_s": None,
        "propagate_note": "not built: propagating a stroke over the clip belongs to issue 17",
        "render_s": med("render", "client_s"),
        "first_preview_s": med("render", "first_preview_s"),
        "first_result_frame_s": med("render", "first_result_s"),
        "outside_model_fraction": 1.0 - model_time / job_time if job_time else float("nan"),
        "outside_model_fraction_masks": 1.0
        - sum(r["masks"]["model_s"] for r in runs) / sum(r["masks"]["server_s"] for r in runs),
        "outside_model_fraction_render": 1.0
        - sum(r["render"]["model_s"] for r in runs) / sum(r["render"]["server_s"] for r in runs),
        "daemon_io_fraction": sum(run[k]["timings"].get("daemon_io", 0.0) for run in runs for k in ("masks", "render"))
        / job_time
        if job_time
        else float("nan"),
        "runs": runs,
    }


def _timed_job(stub: Any, clock: ModelClock, submit: Any, request: Any) -> dict:
    from protos.recast.v1 import engine_pb2 as pb

    model_before = clock.total
    t0 = time.perf_counter()
    job = submit(request)
    started = first_preview = first_result = None
    first_mask = float("nan")
    finished = None
    for event in stub.Watch(pb.WatchRequest(job_id=job.job_id, skip_result_images=True)):
        kind = event.WhichOneof("event")
        if kind == "started":
            started = event.time_unix_ms
        elif kind == "preview" and first_preview is None:
            first_preview = event.time_unix_ms
        elif kind in ("provisional_mask", "result_frame") and first_mask != first_mask:  # after the request
            first_mask = time.perf_counter() - t0
        elif kind == "result_frame" and first_result is None:
            first_result = event.time_unix_ms
        elif kind == "finished":
            finished = event.finished
        elif kind in ("failed", "cancelled", "interrupted"):
            raise RuntimeError(f"benchmark job ended {kind}: {event}")
    client_s = time.perf_counter() - t0
    assert finished is not None and started is not None
    return {
        "client_s": client_s,
        "server_s": finished.wall_seconds,
        "model_s": clock.total - model_before,
        "first_preview_s": (first_preview - started) / 1000 if first_preview else float("nan"),
        "first_result_s": (first_result - started) / 1000 if first_result else float("nan"),
        "first_mask_s": first_mask,
        "timings": dict(finished.timings),
        "mask_version": finished.mask_version,
    }


def edit_sizes(args: argparse.Namespace, model: str, overrides: dict) -> dict:
    """The same edit (one shapes clip, default settings, nothing cached) at 256² and 1920×1080, side by
    side in one process and one run: decode the lossless source, masks and render (`recast-engine edit`'s
    work); writing the output video is timed apart. Medians over `--edit-repeats`."""
    import numpy as np

    from engine.pipeline import RecastPipeline
    from engine.runtime.video_io import read_frames, read_image, write_video
    from engine.settings import EditSettings
    from engine.shapes_world.clips import clip_target_image, random_clip_spec, render_clip

    pipe = RecastPipeline.from_pretrained(model, device=args.device)
    clock = ModelClock(pipe.model)
    settings = EditSettings(**overrides, cache=False)
    spec = random_clip_spec(np.random.default_rng(2024), shape_change=True)
    out: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="rce", dir="/tmp"))
    try:
        runs: dict[str, list[dict]] = {name: [] for name in EDIT_SIZES}
        for r in range(args.edit_repeats):
            for name, (h, w) in EDIT_SIZES.items():  # alternating, so both see the same machine
                video, image = write_inputs(folder, render_clip(spec, args.edit_frames, h, w).frames,
                                            clip_target_image(spec, h, w, 0))
                pipe.forget()  # a new analysis each time, like a new clip
                model0, t0 = clock.total, time.perf_counter()
                frames, fps = read_frames(video)
                target = read_image(image)
                result = pipe.render(frames, target, spec.source_caption, spec.target_caption, settings)
                edit_s = time.perf_counter() - t0
                model_s = clock.total - model0
                t1 = time.perf_counter()
                write_video(folder / f"out_{name}.mp4", result.frames, fps)
                runs[name].append({"edit_s": edit_s, "model_s": model_s, "write_s": time.perf_counter() - t1,
                                   "timings": dict(result.timings)})
                print(f"edit {name} ({r + 1}/{args.edit_repeats}): {edit_s:.1f} s, model passes {model_s:.1f} s, "
                      f"writing {runs[name][-1]['write_s']:.1f} s", flush=True)
    finally:
        clock.close()
        shutil.rmtree(folder, ignore_errors=True)
    for name, rows in runs.items():
        out[f"edit_{name}_s"] = statistics.median(row["edit_s"] for row in rows)
        out[f"edit_write_{name}_s"] = statistics.median(row["write_s"] for row in rows)
        out[f"outside_model_fraction_{name}"] = 1.0 - sum(r["model_s"] for r in rows) / sum(r["edit_s"] for r in rows)
    out["edit_1080p_vs_256"] = out["edit_1080p_s"] / out["edit_256_s"]
    out["edit_runs"] = runs
    return out


def memory_probe(model: str, frames: int, size: int, steps: int, device: str | None, threads: int | None) -> dict:
    """Runs in a fresh process (see `main`): peak RSS of one render of `frames` frames."""
    import psutil
    import torch

    from engine.pipeline import RecastPipeline
    from engine.settings import EditSettings

    if threads:
        torch.set_num_threads(threads)
    pipe = RecastPipeline.from_pretrained(model, device=device)
    clip, target, src, trg = make_clip(frames, size, seed=7)
    baseline = psutil.Process().memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        proc = psutil.Process()
        while not stop.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    pipe.render(clip, target, src, trg, EditSettings(steps=steps, tune_steps=2, cache=False))
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    peak_rss = peak[0]  # sampled during the render only: ru_maxrss would include model loading
    return {
        "frames": frames,
        "baseline_mb": baseline / 2**20,
        "peak_mb": peak_rss / 2**20,
        "net_mb": (peak_rss - baseline) / 2**20,
        "wall_s": wall,
        "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def memory_curve(args: argparse.Namespace, model: str) -> list[dict]:
    out = []
    for n in [int(x) for x in args.memory_frames.split(",") if x.strip()]:
        cmd = [
            sys.executable,
            "-m",
            "engine.bench.perf",
            "--memory-probe",
            str(n),
            "--size",
            str(args.size),
            "--model",
            model,
            "--memory-steps",
            str(args.memory_steps),
        ]
        if args.device:
            cmd += ["--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if result.returncode != 0:
            raise RuntimeError(f"memory probe for {n} frames failed:\n{result.stderr[-2000:]}")
        out.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return out


# --- report -----------------------------------------------------------------------------------------------


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    names = [k for k in ("cold_edit_s", "masks_s", "render_s", "first_preview_s", "first_mask_s", "remask_s",
                         "edit_256_s", "edit_1080p_s") if report.get(k) is not None]
    values = [report[k] for k in names]
    ax.bar(names, values, color="#4c72b0")
    budgets = {**BUDGETS, "edit_1080p_s": BUDGETS["edit_1080p_vs_256"] * report.get("edit_256_s", float("nan"))}
    marked = [k for k in names if k in budgets]
    ax.scatter(marked, [budgets[k] for k in marked], color="#c44e52", marker="_", s=900, label="budget", zorder=3)
    ax.set_yscale("log")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylabel("seconds (median)")
    ax.set_title("latency")
    ax.legend()
    ax = axes[1]
    if report.get("memory"):
        xs = [m["frames"] for m in report["memory"]]
        ax.plot(xs, [m["peak_mb"] for m in report["memory"]], "o-", label="peak RSS")
        ax.plot(xs, [m["net_mb"] for m in report["memory"]], "s--", label="peak − after load")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.legend()
    ax.set_xlabel("frames")
    ax.set_ylabel("MiB")
    ax.set_title("memory vs clip length")
    ax = axes[2]
    labels = ["masks", "render", "all", "edit 256²", "edit 1080p"]
    fractions = [
        report.get("outside_model_fraction_masks"),
        report.get("outside_model_fraction_render"),
        report.get("outside_model_fraction"),
        report.get("outside_model_fraction_256"),
        report.get("outside_model_fraction_1080p"),
    ]
    ax.bar(labels, [f if f is not None else 0 for f in fractions], color="#55a868")
    ax.axhline(BUDGETS["outside_model_fraction"], color="#c44e52", label="budget")
    ax.set_ylim(0, 1)
    ax.set_title("time outside model passes")
    ax.legend()
    fig.suptitle(
        f"recast bench perf — {report['model']} on {report['device']}, "
        f"{report['config']['frames']}×{report['config']['size']}²"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="recast-bench-"))
    try:
        if args.tiny or args.random_shapes:
            from engine.shapes_world.model_factory import TINY, build_tiny_model

            spec = TINY
            if args.random_shapes:
                from engine.shapes_world.spec import SHAPES as spec
            model = str(build_tiny_model(scratch / "random", spec=spec))
        else:
            from engine.runtime.model_loading import resolve_model_folder

            model = str(resolve_model_folder(args.model))
        overrides = settings_overrides(args)
        report: dict[str, Any] = {
            "model": "tiny (random)"
            if args.tiny
            else "shapes architecture (random weights)"
            if args.random_shapes
            else (args.model or "shapes"),
            "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
            "config": {
                "frames": args.frames,
                "size": args.size,
                "repeats": args.repeats,
                "settings": overrides,
                "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
            },
            "budgets": BUDGETS,
        }
        if not args.skip_cold:
            frames, target, src, trg = make_clip(args.frames, args.size, seed=999)
            (scratch / "cold").mkdir()
            report["cold_edit_s"] = cold_edit(
                model, scratch / "cold", frames, target, src, trg, overrides, args.threads
            )
            print(f"cold edit: {report['cold_edit_s']:.2f} s", flush=True)
        warm = warm_daemon(args, model, overrides)
        report.update(warm)
        print(
            f"warm daemon: masks {warm['masks_s']:.2f} s, render {warm['render_s']:.2f} s, "
            f"first preview {warm['first_preview_s']:.2f} s, first mask {warm['first_mask_s']:.2f} s, "
            f"re-threshold {warm['remask_s']:.2f} s, outside model "
            f"{100 * warm['outside_model_fraction']:.0f} % "
            f"(daemon bookkeeping {100 * warm['daemon_io_fraction']:.0f} %)",
            flush=True,
        )
        if not args.skip_edit:
            report.update(edit_sizes(args, model, overrides))
            print(f"edit 1080p {report['edit_1080p_s']:.1f} s vs 256² {report['edit_256_s']:.1f} s "
                  f"({report['edit_1080p_vs_256']:.2f}×); outside model passes at 1080p "
                  f"{100 * report['outside_model_fraction_1080p']:.0f} %", flush=True)
        if not args.skip_memory:
            report["memory"] = memory_curve(args, model)
            by = {m["frames"]: m for m in report["memory"]}
            if 16 in by and 128 in by:
                report["memory_ratio_128_vs_16"] = by[128]["peak_mb"] / by[16]["peak_mb"]
                report["memory_net_ratio_128_vs_16"] = by[128]["net_mb"] / max(by[16]["net_mb"], 1e-9)
            for m in report["memory"]:
                print(f"memory: {m['frames']} frames peak {m['peak_mb']:.0f} MiB (+{m['net_mb']:.0f} after load)")
        report["within_budget"] = {k: report[k] <= v for k, v in BUDGETS.items() if report.get(k) is not None}
        (args.out / "perf.json").write_text(json.dumps(report, indent=2))
        plot(report, args.out / "perf.png")
        print(f"wrote {args.out / 'perf.json'} and {args.out / 'perf.png'}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def main() -> int:
    """Entry of the memory-probe child process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-probe", type=int, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", required=True)
    parser.add_argument("--memory-steps", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args()
    print(json.dumps(memory_probe(a.model, a.memory_probe, a.size, a.memory_steps, a.device, a.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
