"""`recast-engine bench scale`: SD-2.1-unCLIP's architecture (random weights) through every stage.

1. Builds the components from the published configs (engine.bench.sd21_factory), saves them in the
   diffusers layout with safetensors and an fp16 variant (or reuses --model-dir when it holds them),
   and lays a Hugging Face cache folder (models--org--name/snapshots/<hash>/…) over the same files.
2. Loads through Recast's normal loader from the plain folder, then from the cache by its id.
3. For each size: inflate, then a render with layers on, which runs encode, tune, invert, masks,
   layers, generate (latent correction on), decode + composite. `RecastPipeline.on_stage` marks each
   stage's start and end; a sampling thread takes the peak RSS per stage (on CUDA:
   `torch.cuda.max_memory_allocated`, reset per stage), and forward hooks count and time UNet passes.
4. Estimates 24 frames at 512² with the default settings from the measured figures (see `estimate`).
`scale.json` is rewritten after every stage, so an interrupted run leaves its data; `scale.md` at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

# the stages as the pipeline names them (its `_timed` blocks); "decode" also composites each finished frame
ORDER = ("inflate", "encode", "tune", "invert", "masks", "layers", "composite", "generate", "decode")
GIB = 1 << 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--frames", type=int, default=2, help="frames per clip (default 2)")
    parser.add_argument("--size", type=int, default=None,
                        help="square clip size; default: 512×512 and the non-square 768×432")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: EditSettings' 20)")
    parser.add_argument("--tune-steps", type=int, default=None, help="tuning steps (default: EditSettings')")
    parser.add_argument("--offload", action="store_true", help="CUDA: VAE on the CPU between calls too")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--model-dir", type=Path, default=Path("out/sd21-random"),
                        help="where the random SD-2.1-unCLIP folder is written (reused when complete)")
    parser.add_argument("--out", type=Path, default=Path("out/bench_scale"))
    parser.add_argument("--scaled", action="store_true",
                        help="the same topology at CI widths (sd21_factory.SCALED) instead of the full size")


class StageMeter:
    """Peak memory, seconds and UNet passes per stage; a stage may run several times (windows)."""

    def __init__(self, device, on_change=None):
        import psutil
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"
        self.process = psutil.Process()
        self.stage: str | None = None
        self.stages: dict[str, dict[str, float]] = {}
        self.on_change = on_change
        self._peak = 0
        self._unet_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def memory(self) -> int:
        return int(self.torch.cuda.memory_allocated()) if self.cuda else int(self.process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            if not self.cuda:
                self._peak = max(self._peak, self.memory())

    def enter(self, stage: str) -> None:
        self.stage = stage
        rec = self.stages.setdefault(stage, {"seconds": 0.0, "unet_passes": 0, "unet_samples": 0,
                                             "unet_seconds": 0.0, "peak_bytes": 0, "start_bytes": self.memory()})
        rec["_t0"] = time.perf_counter()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        self._peak = self.memory()

    def leave(self, stage: str) -> None:
        rec = self.stages[stage]
        if self.cuda:
            self.torch.cuda.synchronize()
            peak = int(self.torch.cuda.max_memory_allocated())
        else:
            peak = max(self._peak, self.memory())
        rec["seconds"] += time.perf_counter() - rec.pop("_t0")
        rec["peak_bytes"] = max(rec["peak_bytes"], peak)
        self.stage = None
        if self.on_change is not None:
            self.on_change()

    def __call__(self, stage: str, entering: bool) -> None:  # RecastPipeline.on_stage
        (self.enter if entering else self.leave)(stage)

    def watch_unet(self, unet) -> None:
        def pre(mod, args, kwargs):
            if self.cuda:
                self.torch.cuda.synchronize()
            self._unet_start = time.perf_counter()

        def post(mod, args, kwargs, out):
            if self.cuda:
                self.torch.cuda.synchronize()
            if self.stage is not None:
                rec = self.stages[self.stage]
                rec["unet_passes"] += 1
                rec["unet_samples"] += int((args[0] if args else kwargs["sample"]).shape[0])
                rec["unet_seconds"] += time.perf_counter() - self._unet_start
            return out

        unet.register_forward_pre_hook(pre, with_kwargs=True)
        unet.register_forward_hook(post, with_kwargs=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def clip(frames: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc moving over a gradient (the source) and a differently coloured square (the target)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 96)], -1)
    out = np.repeat(base[None].astype(np.uint8), frames, 0)
    r = min(height, width) // 6
    for i in range(frames):
        cx, cy = width // 3 + i * width // (6 * max(frames, 1)), height // 2
        out[i][(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (220, 40, 40)
    target = np.full((256, 256, 3), 230, np.uint8)
    target[64:192, 64:192] = (40, 60, 220)
    return out, target


def build_or_reuse(folder: Path, record: dict, scaled: bool = False) -> None:
    from engine.bench import sd21_factory as f

    done = folder / "recast_sd21_random.json"
    if done.is_file():
        record["build"] = json.loads(done.read_text()) | {"reused": True}
        return
    t0 = time.perf_counter()
    comps = f.build_components(f.SCALED if scaled else f.FULL, tokenizer_dir=folder / "tokenizer")
    params = {k: f.count_parameters(comps[k]) for k in f.WEIGHTED}
    t1 = time.perf_counter()
    f.save_model(comps, folder)
    del comps
    gc.collect()
    info = {"spec": "scaled" if scaled else "full", "parameters": params, "build_s": round(t1 - t0, 1),
            "save_s": round(time.perf_counter() - t1, 1),
            "bytes_on_disk": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}
    done.write_text(json.dumps(info, indent=2))
    record["build"] = info | {"reused": False}


def load_both(folder: Path, cache_root: Path, device: str, offload: bool, record: dict):
    """Recast's loader from the plain folder (then freed) and from the HF cache by id (kept)."""
    import huggingface_hub.constants as hub

    from engine.bench.sd21_factory import hf_cache_layout
    from engine.runtime.model_loading import load_model

    t0 = time.perf_counter()
    plain = load_model(folder, device=device, offload=offload)
    record["load"] = {"plain_folder_s": round(time.perf_counter() - t0, 1), "dtype": str(plain.dtype),
                      "variant": plain.variant or "fp32 files", "offloaded": list(plain.offloaded)}
    del plain
    gc.collect()
    snapshot = hf_cache_layout(folder, cache_root)
    saved, hub.HF_HUB_CACHE = hub.HF_HUB_CACHE, str(cache_root)  # the id resolves in this cache only
    try:
        t0 = time.perf_counter()
        model = load_model("recast/sd21-unclip-random", device=device, offload=offload)
    finally:
        hub.HF_HUB_CACHE = saved
    assert model.folder.resolve() == snapshot.resolve(), (model.folder, snapshot)
    record["load"] |= {"hf_cache_s": round(time.perf_counter() - t0, 1), "hf_cache_folder": str(model.folder)}
    return model


def estimate(run: dict, frames: int = 24) -> dict:
    """24 frames at 512² with default settings, from one measured run at that size.

    UNet stages (invert, masks, generate): samples per (frame · step) and seconds per sample as
    measured, times the frame-windows the default window plan gives (window 16, overlap 4 → frames
    run twice where windows overlap) and the default steps; their time outside UNet passes scales the
    same way. Tune: seconds per (frame · step), times the default window and tune steps. Encode and
    layers: per frame, times `frames`; decode + composite per frame-window. Linear in batch size: a
    GPU runs larger batches more efficiently, so on a GPU this is an upper bound.
    """
    from engine.compose.windows import plan_windows
    from engine.settings import EditSettings

    d = EditSettings()
    framewin = sum(e - s for s, e in plan_windows(frames, d.window, d.overlap))
    n, steps, tsteps = run["frames"], run["steps"], run["tune_steps"]
    measured_fw = sum(e - s for s, e in plan_windows(n, d.window, d.overlap))  # the run's own frame-windows
    out: dict[str, float] = {}
    for name, rec in run["stages"].items():
        s = rec["seconds"]
        if name in ("invert", "masks", "generate"):
            out[name] = s / (measured_fw * steps) * framewin * d.steps
        elif name == "tune":
            out[name] = s / (min(n, d.window) * max(tsteps, 1)) * d.window * d.tune_steps
        elif name in ("encode", "layers", "composite"):
            out[name] = s / n * frames
        elif name == "decode":
            out[name] = s / measured_fw * framewin
        else:
            out[name] = s
    return {"frames": frames, "settings": {"steps": d.steps, "tune_steps": d.tune_steps, "window": d.window,
                                           "overlap": d.overlap}, "frame_windows": framewin,
            "seconds": {k: round(v, 1) for k, v in out.items()}, "total_s": round(sum(out.values()), 1)}


def memory_table(result: dict, frame_counts=(2, 8, 16, 24)) -> list[dict]:
    """frames × size → peak per stage: measured where run; else computed: the measured peak plus
    `RecastPipeline.frame_bytes` for each frame more in one window (the window bounds memory, so
    frames past 16 add nothing; inflate and layers hold no per-frame model tensors and stay flat: the
    clip's own pixels are under 1 MB a frame at 512²)."""
    from engine.settings import EditSettings

    window = EditSettings().window
    rows = []
    for run in result["runs"]:
        n, per_frame = run["frames"], run.get("frame_bytes_computed", 0)
        for f in frame_counts:
            row = {"size": run["size"], "frames": f, "stages": {}}
            for name, rec in run["stages"].items():
                if f == n:
                    row["stages"][name] = (rec["peak_bytes"], "measured")
                else:
                    grow = 0 if name in ("inflate", "layers") else per_frame * (min(f, window) - min(n, window))
                    row["stages"][name] = (int(rec["peak_bytes"] + grow), "computed")
            rows.append(row)
    return rows


PLAN = """## The memory plan (what full size uses, on a GPU and on this CPU)

- Attention: ST-Attn (`SparseCausalAttnProcessor`), cross-attention and T-Attn (both diffusers'
  `AttnProcessor2_0`) call `scaled_dot_product_attention`; none builds a (queries × keys) matrix in Python.
  T-Attn attends over frames per latent cell, so even its math fallback holds cells × heads × frames².
- Tuning: gradient checkpointing of the UNet's blocks (`engine.diffusion.tuning.wants_checkpointing`:
  on once window × latent cells × first-level channels ≥ 2²⁰, i.e. for SD at 512² from one frame; never
  for the shapes or tiny models). Same result within float tolerance (tests/test_scale.py).
- Encoders: on CUDA the text and image encoders stay on the CPU and move to the GPU only for their
  calls (forward hooks in `engine.runtime.model_loading`), so the GPU holds the UNet and VAE while the
  UNet works. On the CPU all weights are in RAM either way.
- VAE: slicing (one image at a time) and tiling (above the VAE's sample size only, which the working
  size never exceeds) on CUDA and for every model native at 512 or more.
- `--offload` (edit, bench scale): on CUDA the VAE's encoder and decoder also stay on the CPU between
  calls, for 8–12 GB cards (bf16 weights: UNet 1.7 GB on the GPU). No effect on the CPU, where there is
  no device memory to save.
- Precision: CUDA runs bf16 (fp16 where bf16 is missing) and reads the fp16 variant files when the
  folder has them; the CPU runs fp32.
- Window: `recast-engine edit` without `--window` takes the largest window (at most the default 16)
  whose computed need (`RecastPipeline.frame_bytes`) fits 70 % of the free memory (device memory on
  CUDA, available RAM otherwise), and records the choice in report.json (`window`). The same window
  always gives the same result; small models always get the default.

## On a GPU

`scripts/bench_scale_cuda.sh` runs `recast-engine bench scale --device cuda --frames 24 --size 512`
(the paper's workload, default settings) and writes docs/bench/scale-cuda/. It has been run here only
with `--device cpu`: this machine has no GPU.
"""


def write_md(result: dict, path: Path) -> None:
    lines = ["# bench scale: SD-2.1-unCLIP architecture, random weights", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {result['machine']}. Device {result['device']}, dtype {result['load'].get('dtype')}.", "",
             "Weights: " + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in result["build"]["parameters"].items())
             + " parameters. Loaded through `engine.runtime.model_loading.load_model` from the plain folder "
             f"({result['load']['plain_folder_s']} s) and from the Hugging Face cache layout by id "
             f"({result['load'].get('hf_cache_s')} s).", ""]
    for run in result["runs"]:
        lines += [f"## {run['size']} (working {run['working_size']}), {run['frames']} frames, "
                  f"{run['steps']} DDIM steps, {run['tune_steps']} tune steps", "",
                  "| stage | seconds | UNet passes (samples) | s / UNet pass | s / UNet sample | peak memory GiB |",
                  "|---|---|---|---|---|---|"]
        for name in [*ORDER, *(s for s in run["stages"] if s not in ORDER)]:
            rec = run["stages"].get(name)
            if rec is None:
                continue
            p = rec["unet_passes"]
            per_pass = f"{rec['seconds'] / p:.2f}" if p else "–"
            per_sample = f"{rec['unet_seconds'] / rec['unet_samples']:.2f}" if p else "–"
            lines.append(f"| {name} | {rec['seconds']:.1f} | {p} ({rec['unet_samples']}) | {per_pass} | "
                         f"{per_sample} | {rec['peak_bytes'] / GIB:.2f} |")
        lines += ["", f"Memory before the run (weights loaded): {run['baseline_bytes'] / GIB:.2f} GiB. "
                  f"Load average at the end: {run.get('load_average_1m_at_end', '?')} on "
                  f"{os.cpu_count()} cores. "
                  "'s / UNet pass' is the stage's seconds over its passes (tune: forward, backward and step); "
                  "'s / UNet sample' is time inside UNet forwards over the samples they carried.", ""]
    if "estimate" in result:
        e = result["estimate"]
        lines += ["## Estimate: 24 frames at 512², default settings", "",
                  f"{e['total_s']:.0f} s in all on this device ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in e["seconds"].items()) + f"); settings {e['settings']}, "
                  f"{e['frame_windows']} frame-windows.", "", estimate.__doc__.strip().replace("\n    ", " "), ""]
    lines += ["## Peak memory per stage (GiB): frames × size", "",
              "m = measured, c = computed (" + memory_table.__doc__.split(":", 1)[1].strip().replace("\n    ", " ")
              + ")", "", "| size | frames | " + " | ".join(ORDER) + " |", "|---|---|" + "---|" * len(ORDER)]
    for row in memory_table(result):
        cells = [f"{row['stages'][s][0] / GIB:.1f} {row['stages'][s][1][0]}" if s in row["stages"] else "–"
                 for s in ORDER]
        lines.append(f"| {row['size']} | {row['frames']} | " + " | ".join(cells) + " |")
    lines += ["", *result.get("notes", []), "", PLAN]
    path.write_text("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from engine.cli.edit import apply_threads
    from engine.pipeline import RecastPipeline
    from engine.settings import EditSettings

    apply_threads(args)
    args.out.mkdir(parents=True, exist_ok=True)
    args.model_dir.mkdir(parents=True, exist_ok=True)
    sizes = [(args.size, args.size)] if args.size else [(512, 512), (432, 768)]
    if args.scaled and args.size is None:  # native 128²: the same aspect ratios, small
        sizes = [(128, 128), (72, 128)]
    base = EditSettings()
    settings = EditSettings(steps=args.steps or base.steps,
                            tune_steps=base.tune_steps if args.tune_steps is None else args.tune_steps,
                            cache=False, layered=True, latent_correction=True).validate()
    result: dict[str, Any] = {
        "command": "recast-engine bench scale " + " ".join(sys.argv[sys.argv.index("scale") + 1:])
        if "scale" in sys.argv else "recast-engine bench scale",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": args.device, "runs": [], "notes": []}
    json_path = args.out / "scale.json"

    def save() -> None:
        json_path.write_text(json.dumps(result, indent=2, default=str))

    build_or_reuse(args.model_dir, result, args.scaled)
    save()
    model = load_both(args.model_dir, args.model_dir.with_name(args.model_dir.name + "-hfcache"),
                      args.device, args.offload, result)
    save()
    current: dict[str, Any] = {}
    meter = StageMeter(model.device, on_change=save)
    meter.watch_unet(model.unet)
    meter.enter("inflate")
    pipe = RecastPipeline(model)
    meter.leave("inflate")
    inflate = meter.stages.pop("inflate")
    pipe.on_stage = meter
    try:
        for h, w in sizes:
            gc.collect()
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            frames, target = clip(args.frames, h, w)
            meter.stages = {"inflate": dict(inflate)}
            current = {"size": f"{w}x{h}", "frames": args.frames, "steps": settings.steps,
                       "tune_steps": settings.tune_steps, "baseline_bytes": meter.memory(),
                       "frame_bytes_computed": pipe.frame_bytes(h, w), "stages": meter.stages}
            result["runs"].append(current)
            t0 = time.perf_counter()
            pipe.render(frames, target, "a red disc on a gradient", "a blue square on a gradient", settings)
            current["working_size"] = "x".join(map(str, pipe.last_working_size[::-1]))
            current["total_s"] = round(time.perf_counter() - t0, 1)
            current["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)  # a shared machine?
            save()
        square = [r for r in result["runs"] if r["size"] in ("512x512", "128x128")]
        if square:
            result["estimate"] = estimate(square[0])
    finally:
        meter.close()
        save()
    if model.device.type == "cpu":
        result["notes"].append(
            "On the CPU peak memory is RSS. The safetensors weights are memory-mapped and count once first "
            "touched, so the first size's early stages include weights paging in (7.7 GB in all at full size); "
            "the allocator keeps freed memory, so a stage's peak is never below the previous stage's.")
    if settings.steps < base.steps or settings.tune_steps < base.tune_steps:
        result["notes"].append(f"Steps reduced to {settings.steps} DDIM / {settings.tune_steps} tune steps to fit "
                               "the time on this machine; the estimate scales per-step figures to the defaults.")
    save()
    write_md(result, args.out / "scale.md")
    print(f"bench scale: {json_path} and {args.out / 'scale.md'}")
    return 0
