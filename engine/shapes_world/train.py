"""`recast-engine train`: trains every component of the `shapes` model from scratch on shapes-world frames.

Stages, in order, each resumable from its own checkpoint:
1. vae   — reconstruction with object pixels weighted ×9 (a plain-MSE VAE shifts hues), small KL.
2. clip  — text and vision encoders, contrastive on (caption, frame) pairs, plus shape/colour/
           background classification heads on the image embedding so that it must carry shape, and
           a dense head: every patch token predicts the object coverage inside its patch. Without
           that per-token signal the ViT never learned shape from scratch (chance after 1 550 steps);
           with it, shape accuracy leaves chance within a few hundred steps.
3. pools — fixed tables for the UNet stage: VAE latents of rendered frames, every caption's text
           states, image embeddings of other views of each object; the image normalizer's mean/std.
4. unet  — denoising (v or ε) conditioned on text states and on the image embedding noised exactly as
           `StableUnCLIPImg2ImgPipeline.noise_image_embeddings` does, with CFG dropout; EMA weights.
5. focus — continues the UNet with the loss on object cells weighted (×9 by default) and less text
           dropout (`--focus-weight`, `--focus-text-drop`; off unless `--focus-minutes`): the
           object is a small share of every frame, so a plain loss is spent on backgrounds and the
           UNet learns colour long before shape (the shipped model after stage 4 drew blobs).
The embedding comes from a *different* image of the same object (other background, place and size):
the image conditions the object, the text and the surrounding latents the scene.
Output: `OUT/model` in `StableUnCLIPImg2ImgPipeline` layout (safetensors), `OUT/loss.jsonl`,
`OUT/summary.json`. Every batch is a function of (seed, stage, step), so `--resume` is exact.

`--init MODEL` warm-starts a run from a finished model folder (every component but those named in
`--reinit`); `--freeze` keeps components fixed (a frozen VAE skips its stage). That is how a model is
improved in one part without paying for the others again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

STAGES = ("vae", "clip", "pools", "unet", "focus")
WARM_COMPONENTS = ("vae", "text_encoder", "image_encoder", "unet")
COVERAGE_GRID = 4  # each vision token predicts its patch's object coverage on a 4×4 grid
PROBE_STEP = 2**40  # the fixed probe batch: a step index training never reaches
SHARES = {"vae": 0.16, "clip": 0.20, "unet": 0.70}  # of --minutes; pools take what they take


@dataclass
class TrainConfig:
    out: Path
    spec_name: str = "shapes"
    seed: int = 0
    minutes: float = 105.0
    focus_minutes: float = 0.0  # budget of the focus stage, on top of --minutes
    steps: dict[str, int] = field(
        default_factory=lambda: {"vae": 10**9, "clip": 10**9, "unet": 10**9, "focus": 10**9})
    batch: dict[str, int] = field(default_factory=lambda: {"vae": 32, "clip": 64, "unet": 64, "focus": 64})
    lr: dict[str, float] = field(default_factory=lambda: {"vae": 1e-3, "clip": 5e-4, "unet": 5e-4, "focus": 2e-4})
    pool_frames: int = 20000
    object_framing: float = 0.0  # share of pool frames drawn object-framed (what an object-framed edit sees)
    pool_views: int = 32
    text_drop: float = 0.5
    focus_text_drop: float = 0.2
    focus_weight: float = 9.0  # focus stage: loss weight of latent cells covered by the object (as in the VAE)
    image_drop: float = 0.15
    snr_gamma: float = 5.0  # min-SNR loss weighting; 0 = every timestep weighted alike in the target's units
    aux_weight: float = 1.0
    shape_weight: float = 4.0  # shape is the hard attribute (the trial's encoder never learned it)
    coverage_weight: float = 4.0  # per-token object coverage: what lets the ViT learn outlines
    init: Path | None = None  # warm start: a model folder whose weights the components start from
    reinit: tuple[str, ...] = ()  # components built fresh even with `init`
    freeze: tuple[str, ...] = ()  # components no stage trains
    threads: int = 2
    bf16: bool = True
    checkpoint_every_s: float = 120.0
    log_every: int = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run folder (checkpoints, loss log, final model)")
    parser.add_argument("--minutes", type=float, default=105.0, help="wall-time budget of stages vae..unet")
    parser.add_argument("--focus-minutes", type=float, default=0.0,
                        help="extra budget for the object-weighted UNet stage (0 skips it)")
    parser.add_argument("--focus-weight", type=float, default=TrainConfig.focus_weight,
                        help="focus stage: loss weight of latent cells the object covers (background: 1)")
    parser.add_argument("--focus-text-drop", type=float, default=TrainConfig.focus_text_drop,
                        help="focus stage: share of samples trained without their caption")
    parser.add_argument("--snr-gamma", type=float, default=TrainConfig.snr_gamma,
                        help="UNet stages: min-SNR weighting γ; 0 weights every timestep alike (more weight on "
                             "the high-noise steps where an object's shape is chosen)")
    parser.add_argument("--steps", type=int, default=None, help="cap on UNet steps (VAE/CLIP: --vae/--clip-steps)")
    parser.add_argument("--vae-steps", type=int, default=None)
    parser.add_argument("--clip-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    parser.add_argument("--spec", default="shapes",
                        help="shapes, tiny, or a recast_spec.json (e.g. to continue a model built to another spec)")
    parser.add_argument("--pool-frames", type=int, default=20000)
    parser.add_argument("--object-framing", type=float, default=TrainConfig.object_framing,
                        help="share of the UNet's frames drawn object-framed, as object-framed edits see them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true", help="train in fp32 (bf16 autocast is the default)")
    parser.add_argument("--init", default=None, help="model folder to warm-start every component from")
    parser.add_argument("--reinit", nargs="*", default=[], choices=WARM_COMPONENTS,
                        help="with --init: components to build fresh instead (e.g. a new image encoder)")
    parser.add_argument("--freeze", nargs="*", default=[], choices=WARM_COMPONENTS,
                        help="components to keep fixed (a frozen vae skips its stage)")


def run(args: argparse.Namespace) -> int:
    from engine.errors import InputError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise InputError("out", f"{out} is not empty; pass --resume to continue it or choose a new folder")
    cfg = TrainConfig(
        out=out,
        spec_name=args.spec,
        seed=args.seed,
        minutes=args.minutes,
        focus_minutes=args.focus_minutes,
        focus_weight=args.focus_weight,
        focus_text_drop=args.focus_text_drop,
        snr_gamma=args.snr_gamma,
        pool_frames=args.pool_frames,
        object_framing=args.object_framing,
        threads=args.threads,
        bf16=not args.no_bf16,
        init=Path(args.init) if args.init else None,
        reinit=tuple(args.reinit),
        freeze=tuple(args.freeze),
    )
    if cfg.init is not None and not (cfg.init / "model_index.json").is_file():
        raise InputError("init", f"{cfg.init} has no model_index.json; pass a trained model's folder")
    if cfg.focus_weight < 1:
        raise InputError("focus-weight", "must be ≥ 1 (1 weights object cells like the background)")
    if not 0 <= cfg.focus_text_drop <= 1:
        raise InputError("focus-text-drop", "must be a share in 0..1")
    if not 0 <= cfg.object_framing <= 1:
        raise InputError("object-framing", "must be a share in 0..1 (0 = whole frames only)")
    if cfg.snr_gamma < 0:
        raise InputError("snr-gamma", "must be ≥ 0 (0 turns min-SNR weighting off)")
    if cfg.reinit and cfg.init is None:
        raise InputError("reinit", "--reinit only makes sense with --init MODEL; drop it or add --init")
    if cfg.freeze and cfg.init is None and not args.resume:
        raise InputError("freeze", "--freeze keeps weights fixed, so it needs --init MODEL to take them from")
    try:
        _spec(args.spec)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError("spec", f"{args.spec}: not shapes, tiny or a readable recast_spec.json ({exc})") from exc
    for key, value in (("unet", args.steps), ("vae", args.vae_steps), ("clip", args.clip_steps)):
        if value is not None:
            cfg.steps[key] = value
    folder = train(cfg)
    print(f"model written to {folder}")
    return 0


# ------------------------------------------------------------------------------------------- helpers


def _spec(name: str):
    """`shapes`, `tiny`, or the path of a `recast_spec.json` (e.g. a shipped model's own spec)."""
    from engine.shapes_world.model_factory import TINY, load_spec
    from engine.shapes_world.spec import SHAPES

    return {"shapes": SHAPES, "tiny": TINY}.get(name) or load_spec(Path(name))


def to_pixels(images):
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [-1, 1] (the VAE's range)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def clip_pixels(images, feature_extractor):
    """uint8 frames → CLIP pixel_values, as `feature_extractor` would make them at native size."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    size = feature_extractor.crop_size["height"]
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
    mean = torch.tensor(feature_extractor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(feature_extractor.image_std).view(1, 3, 1, 1)
    return (x - mean) / std


def patch_coverage(coverage, size: int, patch: int):
    """(B, H, W) object coverage → (B, patches, 16): each ViT patch's coverage on a 4×4 grid, in the
    order the encoder lays out its patch tokens (row-major)."""
    import torch
    import torch.nn.functional as F

    cov = torch.from_numpy(coverage)[:, None].float()  # (B, 1, H, W)
    if cov.shape[-1] != size:
        cov = F.interpolate(cov, size=(size, size), mode="area")
    g, k = size // patch, COVERAGE_GRID
    cov = F.adaptive_avg_pool2d(cov, g * k)  # (B, 1, g·k, g·k)
    return cov.view(-1, g, k, g, k).permute(0, 1, 3, 2, 4).reshape(-1, g * g, k * k)


def noise_image_embeddings(embeds, noise_level, normalizer, noising_scheduler, noise):
    """Exactly `StableUnCLIPImg2ImgPipeline.noise_image_embeddings`, with a noise level per sample."""
    from diffusers.models.embeddings import get_timestep_embedding

    embeds = normalizer.scale(embeds)
    embeds = noising_scheduler.add_noise(embeds, timesteps=noise_level, noise=noise)
    embeds = normalizer.unscale(embeds)
    level = get_timestep_embedding(noise_level, embeds.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0)
    return torch_cat(embeds, level.to(embeds.dtype))


def torch_cat(a, b):
    import torch

    return torch.cat((a, b), 1)


def text_states(tokenizer, text_encoder, captions: list[str]):
    """Last hidden states as the pipeline computes them (padded to the tokenizer's max length)."""
    ids = tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(ids)[0]


def all_captions() -> list[str]:
    from engine.shapes_world.vocabulary import BACKGROUND_COLOURS, OBJECT_COLOURS, PATTERNS, SHAPES, caption

    return [caption(c, s, p, b) for c in OBJECT_COLOURS for s in SHAPES for p in PATTERNS for b in BACKGROUND_COLOURS]


class Run:
    """Run folder: loss log, stage checkpoints and the list of finished stages."""

    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg, log
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "ckpt").mkdir(exist_ok=True)
        self.state_path = cfg.out / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if self.state_path.exists() else {"done": [], "summary": {}}
        )

    def save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_path)

    def record(self, row: dict) -> None:
        with open(self.cfg.out / "loss.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def ckpt(self, stage: str) -> Path:
        return self.cfg.out / "ckpt" / f"{stage}.pt"

    def save_ckpt(self, stage: str, payload: dict) -> None:
        import torch

        tmp = self.ckpt(stage).with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.ckpt(stage))

    def load_ckpt(self, stage: str) -> dict | None:
        import torch

        p = self.ckpt(stage)
        return torch.load(p, weights_only=True) if p.exists() else None


def loop(run: Run, stage: str, modules: dict, optimizer, step_fn, probe_fn, lr: float, ema=None) -> None:
    """Generic resumable loop: warmup + cosine LR over max(step share, time share), periodic checkpoints,
    a fixed probe batch's loss before and after (the honest "did it learn" number)."""
    import torch

    cfg = run.cfg
    max_steps = cfg.steps[stage]
    budget = 60 * (cfg.focus_minutes if stage == "focus" else cfg.minutes * SHARES[stage])
    ck = run.load_ckpt(stage)
    step, elapsed = 0, 0.0
    if ck is not None:
        for k, m in modules.items():
            m.load_state_dict(ck["modules"][k])
        optimizer.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        step, elapsed = ck["step"], ck["elapsed"]
        run.log(f"[{stage}] resumed at step {step} ({elapsed / 60:.1f} min)")
    summary = run.state["summary"].setdefault(stage, {})
    if "probe_before" not in summary:
        summary["probe_before"] = probe_fn()
    warmup = min(100, max(1, max_steps // 10))

    def save() -> None:
        payload = {
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
        }
        if ema is not None:
            payload["ema"] = ema.state_dict()
        run.save_ckpt(stage, payload)
        run.save_state()

    last_ckpt, t_start, e_start = time.time(), time.time(), elapsed
    for m in modules.values():
        m.train()
    while step < max_steps and elapsed < budget:
        frac = max(step / max_steps, elapsed / budget)
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for g in optimizer.param_groups:
            g["lr"] = lr * scale * g.get("lr_mult", 1.0)
        losses = step_fn(step)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if ema is not None:
            ema.step()
        step += 1
        elapsed = e_start + time.time() - t_start
        if step % cfg.log_every == 0 or step == 1:
            row = {"stage": stage, "step": step, "elapsed_s": round(elapsed, 1), "lr": lr * scale}
            row.update({k: round(float(v.detach() if hasattr(v, "detach") else v), 5) for k, v in losses.items()})
            run.record(row)
            run.log(" ".join(f"{k}={v}" for k, v in row.items()))
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            save()
            last_ckpt = time.time()
    for m in modules.values():
        m.eval()
    if ema is not None:
        ema.copy_to()
    summary.update(steps=step, minutes=round(elapsed / 60, 2), probe_after=probe_fn())
    save()
    run.state["done"].append(stage)
    run.save_state()
    run.log(f"[{stage}] done: {summary}")


class EMA:
    """Exponential moving average of a module's parameters (sampling uses the average)."""

    def __init__(self, module, decay: float = 0.999):
        self.module, self.decay, self.n = module, decay, 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def step(self) -> None:
        import torch

        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        with torch.no_grad():
            for k, v in self.module.state_dict().items():
                if v.dtype.is_floating_point:
                    self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self.shadow[k].copy_(v)

    def copy_to(self) -> None:
        self.module.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        return {"n": self.n, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.n, self.shadow = state["n"], state["shadow"]


# ------------------------------------------------------------------------------------------- stages


def train_vae(run: Run, comps: dict) -> None:
    import torch

    from engine.shapes_world.data import batch_rng, render_batch

    cfg, vae, size = run.cfg, comps["vae"], run.spec.image_size
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr["vae"], weight_decay=0.0)

    def losses(step: int, n: int) -> dict:
        b = render_batch(batch_rng(cfg.seed, 0, step), size, n)
        x, w = to_pixels(b.images), 1.0 + 8.0 * torch.from_numpy(b.coverage)[:, None]
        g = torch.Generator().manual_seed(cfg.seed * 1000003 + step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
            rec = vae.decode(z).sample.float()
        err = (rec - x) ** 2
        rec_loss = (w * err).mean() / w.mean()
        kl = post.kl().float().mean() / post.mean[0].numel()
        psnr = 10 * torch.log10(4.0 / err.detach().mean())
        return {"loss": rec_loss + 1e-4 * kl, "rec": rec_loss.detach(), "kl": kl.detach(), "psnr": psnr}

    def probe() -> float:
        with torch.no_grad():
            return round(float(losses(PROBE_STEP, 32)["rec"]), 5)

    loop(run, "vae", {"vae": vae}, opt, lambda s: losses(s, cfg.batch["vae"]), probe, cfg.lr["vae"])


class ClipHeads:
    """Training-only parts of the CLIP stage: text projection, logit scale, classification heads."""

    def __init__(self, text_hidden: int, dim: int, vision_hidden: int):
        import torch

        from engine.shapes_world.data import BGS, COLOURS
        from engine.shapes_world.vocabulary import PATTERNS, SHAPES

        self.module = torch.nn.ModuleDict(
            {
                "text_proj": torch.nn.Linear(text_hidden, dim, bias=False),
                "shape": torch.nn.Linear(dim, len(SHAPES)),
                "colour": torch.nn.Linear(dim, len(COLOURS)),
                "pattern": torch.nn.Linear(dim, len(PATTERNS)),
                "background": torch.nn.Linear(dim, len(BGS)),
                "coverage": torch.nn.Linear(vision_hidden, COVERAGE_GRID**2),
            }
        )
        self.module.register_parameter("logit_scale", torch.nn.Parameter(torch.tensor(math.log(10.0))))


def train_clip(run: Run, comps: dict) -> None:
    import torch
    import torch.nn.functional as F

    from engine.shapes_world.data import batch_rng, concat, render_batch, shape_group_batch

    cfg, size = run.cfg, run.spec.image_size
    te, ie, tok, fe = comps["text_encoder"], comps["image_encoder"], comps["tokenizer"], comps["feature_extractor"]
    heads = ClipHeads(te.config.hidden_size, ie.config.projection_dim, ie.config.hidden_size).module
    trained = [m for name, m in (("text_encoder", te), ("image_encoder", ie)) if name not in cfg.freeze]
    params = [p for m in [*trained, heads] for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr["clip"], weight_decay=0.01)

    def losses(step: int, n: int) -> dict:
        rng = batch_rng(cfg.seed, 1, step)
        b = concat(render_batch(rng, size, n - n // 2), shape_group_batch(rng, size, n // 2))
        ids = tok(
            b.captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            t = heads["text_proj"](te(ids).pooler_output)
            vis = ie(pixel_values=clip_pixels(b.images, fe))
        t, v = t.float(), vis.image_embeds.float()
        tokens = vis.last_hidden_state[:, 1:].float()  # (B, patches, hidden), class token dropped
        logits = heads.logit_scale.exp().clamp(max=100) * F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T
        same = torch.tensor([[a == c for c in b.captions] for a in b.captions], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        con = -(target * logits.log_softmax(1)).sum(1).mean() / 2 - (target * logits.T.log_softmax(1)).sum(1).mean() / 2
        out: dict[str, Any] = {"contrastive": con.detach()}
        aux = 0.0
        for name, labels in (
            ("shape", b.shape),
            ("colour", b.colour),
            ("pattern", b.pattern),
            ("background", b.background),
        ):
            logit = heads[name](v)
            y = torch.from_numpy(labels)
            aux = aux + F.cross_entropy(logit, y) * (cfg.shape_weight if name == "shape" else 1.0)
            out[f"acc_{name}"] = (logit.argmax(1) == y).float().mean()
        target_cov = patch_coverage(b.coverage, fe.crop_size["height"], ie.config.patch_size)  # (B, patches, 16)
        cov = F.binary_cross_entropy_with_logits(heads["coverage"](tokens), target_cov)
        out["coverage"] = cov.detach()
        out["loss"] = con + cfg.aux_weight * aux + cfg.coverage_weight * cov
        return out

    def probe() -> dict:
        with torch.no_grad():
            r = losses(PROBE_STEP, 64)
            return {k: round(float(v), 4) for k, v in r.items()}

    modules = {"text_encoder": te, "image_encoder": ie, "heads": heads}
    loop(run, "clip", modules, opt, lambda s: losses(s, cfg.batch["clip"]), probe, cfg.lr["clip"])


def build_pools(run: Run, comps: dict) -> dict:
    """Fixed tables the UNet stage samples from (cached in the run folder; cheap to rebuild)."""
    import numpy as np
    import torch

    from engine.shapes_world.data import batch_rng, render_batch
    from engine.shapes_world.vocabulary import OBJECT_COLOURS, SHAPES

    path = run.cfg.out / "ckpt" / "pools.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    cfg, size, vae = run.cfg, run.spec.image_size, comps["vae"]
    t0 = time.time()
    means, stds, caps, classes = [], [], [], []
    cap_index = {c: i for i, c in enumerate(all_captions())}
    with torch.no_grad():
        for b in pool_batches(cfg, size):
            post = vae.encode(to_pixels(b.images)).latent_dist
            means.append(post.mean.half())
            stds.append(post.std.half())
            caps += [cap_index[c] for c in b.captions]
            classes.append(torch.from_numpy(b.object_class))
        n_cls = len(OBJECT_COLOURS) * len(SHAPES)
        views = []
        for c in range(n_cls):
            vb = render_batch(
                batch_rng(cfg.seed, 3, c), size, cfg.pool_views, classes=np.full(cfg.pool_views, c), radius=(0.15, 0.4)
            )
            views.append(
                comps["image_encoder"](pixel_values=clip_pixels(vb.images, comps["feature_extractor"])).image_embeds
            )
        view_embeds = torch.stack(views)  # (48, K, D)
        captions = all_captions()
        text = torch.cat(
            [
                text_states(comps["tokenizer"], comps["text_encoder"], captions[i : i + 256])
                for i in range(0, len(captions), 256)
            ]
        )
        empty = text_states(comps["tokenizer"], comps["text_encoder"], [""])[0]
    mean = torch.cat(means).float()
    scaling = float(1.0 / mean.std())
    pools = {
        "latent_mean": torch.cat(means),
        "latent_std": torch.cat(stds),
        "caption": torch.tensor(caps),
        "object_class": torch.cat(classes),
        "view_embeds": view_embeds,
        "text": text,
        "empty": empty,
        "scaling_factor": torch.tensor(scaling),
        "embed_mean": view_embeds.flatten(0, 1).mean(0, keepdim=True),
        "embed_std": view_embeds.flatten(0, 1).std(0, keepdim=True),
    }
    torch.save(pools, path)
    run.state["summary"]["pools"] = {
        "frames": cfg.pool_frames,
        "object_framed_share": cfg.object_framing,
        "views_per_object": cfg.pool_views,
        "vae_scaling_factor": round(scaling, 5),
        "minutes": round((time.time() - t0) / 60, 2),
    }
    run.state["done"].append("pools")
    run.save_state()
    run.log(f"[pools] {run.state['summary']['pools']}")
    return pools


def pool_batches(cfg: TrainConfig, size: int):
    """The pool's frames, 64 at a time: whole frames, then the `object_framing` share drawn as object
    framing crops them (engine/compose/framing.py). Each batch is a function of (seed, index), so the pools and
    the coverage table re-rendered from them always agree."""
    from engine.shapes_world.data import batch_rng, render_batch

    n_object = round(cfg.pool_frames * cfg.object_framing)
    n_frame = cfg.pool_frames - n_object
    for k in range(0, n_frame, 64):
        yield render_batch(batch_rng(cfg.seed, 2, k), size, min(64, n_frame - k))
    for k in range(0, n_object, 64):
        yield render_batch(batch_rng(cfg.seed, 6, k), size, min(64, n_object - k), framing="object")


def apply_pools(comps: dict, pools: dict) -> None:
    """Set what the pools determine: the VAE scaling factor and the image normalizer's statistics."""
    import torch

    comps["vae"].register_to_config(scaling_factor=float(pools["scaling_factor"]))
    with torch.no_grad():
        comps["image_normalizer"].mean.copy_(pools["embed_mean"])
        comps["image_normalizer"].std.copy_(pools["embed_std"])


def pool_coverage(run: Run, pools: dict, latent_size: int) -> torch.Tensor:
    """Object coverage of every pooled frame at latent resolution, (N, h, w) in [0, 1]. The pool's frames
    are re-rendered from their seeds (no VAE pass), so runs whose pools predate this table get it too."""
    import torch

    if "coverage" not in pools:
        cfg, size = run.cfg, run.spec.image_size
        f = size // latent_size
        covs = []
        for c in (b.coverage for b in pool_batches(cfg, size)):
            covs.append(torch.from_numpy(c.reshape(len(c), latent_size, f, latent_size, f).mean((2, 4))))
        pools["coverage"] = (torch.cat(covs) * 255).round().to(torch.uint8)
        torch.save(pools, run.cfg.out / "ckpt" / "pools.pt")
    return pools["coverage"].float() / 255


def loss_weights(alpha_bar: torch.Tensor, prediction_type: str, gamma: float) -> torch.Tensor:
    """Per-sample weights of the UNet loss. Min-SNR-γ caps the x0-equivalent weight at γ, which for
    v-prediction leaves the high-noise steps (SNR ≈ 0.01–0.2, where a shape is chosen) ~7 % of the
    total; γ = 0 turns it off (all ones: the plain loss in the target's own units)."""
    import torch

    if gamma == 0:
        return torch.ones_like(alpha_bar)
    snr = alpha_bar / (1 - alpha_bar)
    return snr.clamp(max=gamma) / (snr + 1) if prediction_type == "v_prediction" else snr.clamp(max=gamma) / snr


def train_unet(run: Run, comps: dict, pools: dict, stage: str = "unet") -> None:
    """Stage `unet` (plain loss) or `focus` (object cells weighted, text dropped less often)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    cfg, unet = run.cfg, comps["unet"]
    sched = DDPMScheduler.from_config(comps["scheduler"].config)
    pred_type = sched.config.prediction_type
    alphas = sched.alphas_cumprod
    normalizer, noiser = comps["image_normalizer"], comps["image_noising_scheduler"]
    scaling = float(pools["scaling_factor"])
    n_pool, k_views = len(pools["caption"]), pools["view_embeds"].shape[1]
    focus = stage == "focus"
    text_drop = cfg.focus_text_drop if focus else cfg.text_drop
    cover = pool_coverage(run, pools, pools["latent_mean"].shape[-1]) if focus else None  # (N, h, w)
    ema = EMA(unet)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr[stage], weight_decay=0.01)

    def losses(step: int, n: int) -> dict:
        import numpy as np

        rng = np.random.default_rng([cfg.seed, 5 if focus else 4, step])
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step + (31 if focus else 17))
        idx = torch.from_numpy(rng.integers(0, n_pool, n))
        mean, std = pools["latent_mean"][idx].float(), pools["latent_std"][idx].float()
        z0 = (mean + std * torch.randn(mean.shape, generator=g)) * scaling
        text = pools["text"][pools["caption"][idx]].clone()
        drop_text = torch.from_numpy(rng.random(n) < text_drop)
        text[drop_text] = pools["empty"]
        views = torch.from_numpy(rng.integers(0, k_views, n))
        emb = pools["view_embeds"][pools["object_class"][idx], views]
        level = torch.from_numpy(np.where(rng.random(n) < 0.5, 0, rng.integers(0, 1000, n)))
        with torch.no_grad():
            cond = noise_image_embeddings(emb, level, normalizer, noiser, torch.randn(emb.shape, generator=g))
        cond[torch.from_numpy(rng.random(n) < cfg.image_drop)] = 0.0
        t = torch.from_numpy(rng.integers(0, sched.config.num_train_timesteps, n))
        noise = torch.randn(z0.shape, generator=g)
        zt = sched.add_noise(z0, noise, t)
        target = sched.get_velocity(z0, noise, t) if pred_type == "v_prediction" else noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = unet(zt, t, encoder_hidden_states=text, class_labels=cond).sample
        err = F.mse_loss(pred.float(), target, reduction="none").mean(1)  # (n, h, w)
        per = err.mean((1, 2))
        if cover is not None:
            w = 1.0 + (cfg.focus_weight - 1.0) * cover[idx]
            per_w = (w * err).mean((1, 2)) / w.mean((1, 2))
        else:
            per_w = per
        weight = loss_weights(alphas[t], pred_type, cfg.snr_gamma)
        out = {"loss": (weight * per_w).mean(), "mse": per.mean().detach()}
        if cover is not None:
            c = cover[idx]
            out["object_mse"] = ((err * c).sum() / c.sum().clamp(min=1e-6)).detach()
        return out

    def probe() -> dict:
        with torch.no_grad():
            r = losses(PROBE_STEP, 64)
            return {k: round(float(v), 5) for k, v in r.items() if k != "loss"}

    loop(run, stage, {"unet": unet}, opt, lambda s: losses(s, cfg.batch[stage]), probe, cfg.lr[stage], ema=ema)


# ------------------------------------------------------------------------------------------- driver


def widen_time_projections(state: dict, target: dict) -> dict:
    """Map a UNet's additive time projections onto scale-shift ones: scale 0, shift = the old bias.

    Not exact (the shift now comes after the GroupNorm instead of before it), but close enough for
    training to continue rather than start over."""
    import torch

    out = dict(state)
    for key, value in state.items():
        if "time_emb_proj" in key and key in target and target[key].shape[0] == 2 * value.shape[0]:
            out[key] = torch.cat([torch.zeros_like(value), value])
    return out


def warm_start(comps: dict, folder: Path, names: list[str]) -> None:
    """Load `names`' weights from a saved model folder (strict: the spec must match, except that an
    additive-time UNet may start a scale-shift one)."""
    from safetensors.torch import load_file

    for name in names:
        files = sorted((folder / name).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{folder / name} has no safetensors weights to warm-start {name} from")
        state = {k: v for f in files for k, v in load_file(f).items()}  # sharded weights: every file
        if name == "unet":
            state = widen_time_projections(state, comps[name].state_dict())
        comps[name].load_state_dict(state)


def train(cfg: TrainConfig, log=print) -> Path:
    """Run (or resume) every stage and write `cfg.out/model`. Returns the model folder."""
    import torch

    from engine.shapes_world.model_factory import build_components, save_unclip_folder

    torch.set_num_threads(cfg.threads)
    run = Run(cfg, log)
    run.spec = _spec(cfg.spec_name)
    t0 = time.time()
    comps = build_components(run.spec, seed=cfg.seed, tokenizer_dir=cfg.out / "tokenizer")
    if cfg.init is not None:
        warm_start(comps, cfg.init, [c for c in WARM_COMPONENTS if c not in cfg.reinit])
    for name in cfg.freeze:
        comps[name].requires_grad_(False)
    done = run.state["done"]

    def restore(stage: str, modules: dict) -> None:
        ck = run.load_ckpt(stage)
        for k, m in modules.items():
            if k in ck["modules"]:
                m.load_state_dict(ck["modules"][k])
            m.eval()

    if "vae" in done:
        restore("vae", {"vae": comps["vae"]})
    elif "vae" in cfg.freeze:
        comps["vae"].eval()
    else:
        train_vae(run, comps)
    comps["vae"].requires_grad_(False)
    if "clip" in done:
        restore("clip", {"text_encoder": comps["text_encoder"], "image_encoder": comps["image_encoder"]})
    elif not {"text_encoder", "image_encoder"} <= set(cfg.freeze):  # both frozen: nothing to train
        train_clip(run, comps)
    comps["text_encoder"].requires_grad_(False)
    comps["image_encoder"].requires_grad_(False)
    pools = build_pools(run, comps)
    apply_pools(comps, pools)
    if "unet" in done:
        ck = run.load_ckpt("unet")
        comps["unet"].load_state_dict(ck["ema"]["shadow"])
    elif "unet" not in cfg.freeze:
        train_unet(run, comps, pools)
    if "focus" in done:
        comps["unet"].load_state_dict(run.load_ckpt("focus")["ema"]["shadow"])
    elif cfg.focus_minutes > 0:
        train_unet(run, comps, pools, stage="focus")
    comps["unet"].eval()
    folder = save_unclip_folder(comps, cfg.out / "model")
    (folder / "recast_spec.json").write_text(json.dumps(asdict(run.spec), indent=2))
    run.state["summary"]["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    run.state["summary"]["last_session_minutes"] = round((time.time() - t0) / 60, 2)
    run.save_state()
    (cfg.out / "summary.json").write_text(json.dumps(run.state["summary"], indent=2))
    return folder
