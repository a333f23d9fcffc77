"""Honest quality numbers for a trained `shapes` model folder (written into its TRAINING.md).

- VAE: PSNR and object-colour exactness on held-out frames.
- Vision encoder: does the image embedding carry shape and colour? Nearest class-mean accuracy on
  held-out target images (class means from other images).
- UNet: sample from noise at native size with a plain-background caption and/or a target image's
  embedding (CFG, DDIM), then classify the sampled object's colour (nearest palette colour) and shape
  (best-fitting outline by IoU) against what was asked. The shape classifier is checked on rendered
  frames first, so its own error is known.
- With `--inpaint`: a shape change in a perfect edit region (`inpaint`), scored with the benchmark's
  metrics; it separates what the model can draw from what masks and inversion allow.

Run: `python -m engine.shapes_world.evaluate MODEL_DIR [--n 48] [--inpaint] [--json OUT] [--grid PNG]`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from engine.shapes_world.render import Background, Pose, object_mask, render_target_image, shape_outline
from engine.shapes_world.vocabulary import BACKGROUND_COLOURS, OBJECT_COLOURS, SHAPES, caption

COLOURS = list(OBJECT_COLOURS)


def _outline_stats(shape: str) -> tuple[float, np.ndarray]:
    """Area and centroid of the unit outline (shoelace formula)."""
    p = shape_outline(shape)
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    c = np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)
    return abs(area), c


def classify_object(image: np.ndarray, bg_rgb: tuple[int, int, int]) -> tuple[str | None, str | None, float]:
    """(colour, shape, fit IoU) of the object on a plain background; (None, None, 0) if there is none."""
    diff = np.abs(image.astype(np.int16) - np.array(bg_rgb, np.int16)).max(-1)
    obj = diff > 40
    if obj.sum() < 6:
        return None, None, 0.0
    palette = np.array([OBJECT_COLOURS[c] for c in COLOURS], np.float32)
    px = image[obj].astype(np.float32)
    nearest = ((px[:, None] - palette[None]) ** 2).sum(-1).argmin(1)
    colour = COLOURS[int(np.bincount(nearest, minlength=len(COLOURS)).argmax())]
    h, w = obj.shape
    ys, xs = np.nonzero(obj)
    best, best_iou = None, -1.0
    for shape in SHAPES:
        area, c = _outline_stats(shape)
        r = math.sqrt(obj.sum() / area) / min(h, w)
        for dr in (0.94, 1.0, 1.06):
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    cx = (xs.mean() + 0.5 + dx) / w - c[0] * r * dr * min(h, w) / w
                    cy = (ys.mean() + 0.5 + dy) / h - c[1] * r * dr * min(h, w) / h
                    m = object_mask(shape, Pose(cx, cy, r * dr), h, w)
                    iou = (m & obj).sum() / max(1, (m | obj).sum())
                    if iou > best_iou:
                        best, best_iou = shape, float(iou)
    return colour, best, best_iou


def border_colour(image: np.ndarray) -> tuple[int, int, int]:
    """The background colour of a plain-background sample: median of the border pixels (the image-only
    mode does not say which background to draw)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def classifier_self_check(n: int = 60, size: int = 64, seed: int = 1) -> float:
    """Shape accuracy of `classify_object` on rendered (unrotated) objects."""
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n):
        shape, colour, bg = SHAPES[i % 6], COLOURS[i % 8], list(BACKGROUND_COLOURS)[i % 6]
        img, _ = render_target_image(colour, shape, size, size, rng, background=Background(bg, "plain"))
        hits += classify_object(img, BACKGROUND_COLOURS[bg])[1] == shape
    return hits / n


def _load(folder: str | Path, steps: int):
    """(pipeline, native pixel size, DDIM scheduler set to `steps`) for a model folder."""
    from diffusers import DDIMScheduler, StableUnCLIPImg2ImgPipeline

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(folder, use_safetensors=True)
    size = pipe.unet.config.sample_size * 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    sched = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False)
    sched.set_timesteps(steps)
    return pipe, size, sched


def _embed(pipe, images: np.ndarray):
    """uint8 images → the vision encoder's image embeddings."""
    import torch

    from engine.shapes_world.train import clip_pixels

    with torch.no_grad():
        return pipe.image_encoder(pixel_values=clip_pixels(images, pipe.feature_extractor)).image_embeds


def _image_labels(pipe, images: np.ndarray):
    """uint8 target images → the UNet's class vectors at image noise level 0, as training made them."""
    import torch

    from engine.shapes_world.train import noise_image_embeddings

    emb = _embed(pipe, images)
    zeros = torch.zeros(len(images), dtype=torch.long)
    with torch.no_grad():
        return noise_image_embeddings(
            emb, zeros, pipe.image_normalizer, pipe.image_noising_scheduler, torch.zeros_like(emb)
        )


def evaluate(folder: str | Path, n: int = 48, steps: int = 25, guidance: float = 4.0, seed: int = 0) -> dict:
    import torch

    from engine.shapes_world.train import text_states, to_pixels

    torch.manual_seed(seed)
    pipe, size, sched = _load(folder, steps)
    rng = np.random.default_rng(seed)
    out: dict = {"classifier_self_check_shape_acc": classifier_self_check(size=size)}

    # VAE
    from engine.shapes_world.data import batch_rng, render_batch

    b = render_batch(batch_rng(seed + 99, 9, 0), size, 32)
    with torch.no_grad():
        x = to_pixels(b.images)
        rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    rec_u8 = ((rec + 1) * 127.5).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)
    mse = ((rec_u8.astype(float) - b.images.astype(float)) ** 2).mean()
    inner = b.coverage > 0.99
    palette = np.array([OBJECT_COLOURS[c] for c in COLOURS], np.float32)
    hits = [
        (((rec_u8[i][inner[i]].astype(np.float32)[:, None] - palette) ** 2).sum(-1).argmin(1) == b.colour[i]).mean()
        for i in range(len(b.images))
        if inner[i].any()
    ]
    out["vae_psnr_db"] = round(10 * math.log10(255**2 / mse), 2)
    out["vae_object_colour_acc"] = round(float(np.mean(hits)), 4)

    # vision encoder: nearest class mean
    classes = np.arange(48)
    ref = render_batch(batch_rng(seed + 7, 9, 1), size, 48 * 6, classes=np.repeat(classes, 6), radius=(0.15, 0.4))
    means = torch.nn.functional.normalize(_embed(pipe, ref.images).view(48, 6, -1).mean(1), dim=-1)
    test = render_batch(batch_rng(seed + 7, 9, 2), size, 96, radius=(0.12, 0.35))
    pred = (torch.nn.functional.normalize(_embed(pipe, test.images), dim=-1) @ means.T).argmax(1).numpy()
    out["vision_shape_acc"] = round(float((pred % 6 == test.shape).mean()), 4)
    out["vision_colour_acc"] = round(float((pred // 6 == test.colour).mean()), 4)

    # UNet samples
    empty = text_states(pipe.tokenizer, pipe.text_encoder, [""])
    modes = {"text+image": (True, True), "image_only": (False, True), "text_only": (True, False)}
    samples: dict[str, list] = {m: [] for m in modes}
    cases = []
    for i in range(n):
        colour, shape = COLOURS[i % 8], SHAPES[(i // 8 + i) % 6]
        bg = list(BACKGROUND_COLOURS)[int(rng.integers(6))]
        target_bg = Background(list(BACKGROUND_COLOURS)[int(rng.integers(6))], "plain")
        cases.append((colour, shape, bg, render_target_image(colour, shape, size, size, rng, background=target_bg)[0]))
    with torch.no_grad():
        text_all = text_states(pipe.tokenizer, pipe.text_encoder, [caption(c, s, "plain", b) for c, s, b, _ in cases])
    lab_all = _image_labels(pipe, np.stack([t for *_, t in cases]))
    ls = pipe.unet.config.sample_size
    for mode, (use_text, use_image) in modes.items():
        text = text_all if use_text else empty.expand(n, -1, -1)
        lab = lab_all if use_image else torch.zeros_like(lab_all)
        z = torch.randn((n, pipe.unet.config.in_channels, ls, ls), generator=torch.Generator().manual_seed(seed))
        imgs = _sample(pipe, sched, z * sched.init_noise_sigma, text, lab, empty.expand(n, -1, -1), guidance)
        for (colour, shape, bg, _), img in zip(cases, imgs, strict=True):
            got_c, got_s, fit = classify_object(img, border_colour(img))
            samples[mode].append(
                {
                    "colour": colour,
                    "shape": shape,
                    "bg": bg,
                    "got_colour": got_c,
                    "got_shape": got_s,
                    "fit_iou": round(fit, 3),
                    "image": img,
                }
            )
        s = samples[mode]
        out[f"sample_{mode}_colour_acc"] = round(float(np.mean([r["got_colour"] == r["colour"] for r in s])), 4)
        out[f"sample_{mode}_shape_acc"] = round(float(np.mean([r["got_shape"] == r["shape"] for r in s])), 4)
        out[f"sample_{mode}_fit_iou"] = round(float(np.mean([r["fit_iou"] for r in s])), 4)
    out["samples"] = samples
    return out


def _sample(pipe, sched, z, text, lab, empty, guidance: float, keep=None) -> np.ndarray:
    """CFG DDIM from `z` (n, c, h, w) to uint8 (n, H, W, 3). `keep` = (region (n, 1, h, w), z0, noise):
    outside the region every step is reset to z0 noised to that step's level (an edit's blending)."""
    import torch

    with torch.no_grad():
        for k, t in enumerate(sched.timesteps):
            o = pipe.unet(
                torch.cat([z, z]),
                t,
                encoder_hidden_states=torch.cat([empty, text]),
                class_labels=torch.cat([torch.zeros_like(lab), lab]),
            ).sample
            u, c = o.chunk(2)
            z = sched.step(u + guidance * (c - u), t, z).prev_sample
            if keep is not None:
                region, z0, noise = keep
                last = k + 1 == len(sched.timesteps)
                known = z0 if last else sched.add_noise(z0, noise, sched.timesteps[k + 1 : k + 2])
                z = region * z + (1 - region) * known
        imgs = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    return ((imgs + 1) * 127.5).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


def inpaint(folder: str | Path, n: int = 48, steps: int = 25, guidance: float = 4.0, seed: int = 5) -> dict:
    """A shape change with a perfect edit region, without masks, inversion or tuning: object-framed
    crops whose caption and target image name another shape and colour, the region (source ∪ target
    footprint, dilated 2 px) started from fresh noise and the rest held to the noised source latents.
    Scored with the benchmark's own shape_iou / removal / color_acc: the most an edit can get from
    the model alone."""
    import cv2
    import torch

    from engine.shapes_world import metrics
    from engine.shapes_world.data import object_crop_scene
    from engine.shapes_world.render import render_background, render_scene
    from engine.shapes_world.train import text_states, to_pixels

    pipe, size, sched = _load(folder, steps)
    rng = np.random.default_rng(seed)
    cases = []  # (source frame, clean plate, source footprint, target footprint, region, caption, target image, colour)
    for i in range(n):
        s = object_crop_scene(rng)
        shape = SHAPES[(SHAPES.index(s.shape) + 1 + i % 5) % 6]
        colour = COLOURS[(COLOURS.index(s.colour) + 1 + i % 7) % 8]
        src_fp = object_mask(s.shape, s.pose, size, size)
        trg_fp = object_mask(shape, s.pose, size, size)
        region = cv2.dilate((src_fp | trg_fp).astype(np.uint8), np.ones((5, 5), np.uint8))
        target_bg = Background(list(BACKGROUND_COLOURS)[int(rng.integers(6))], "plain")
        cases.append(
            (
                render_scene(s, size, size),
                render_background(s.background, size, size),
                src_fp,
                trg_fp,
                region,
                caption(colour, shape, s.background.pattern, s.background.colour),
                render_target_image(colour, shape, size, size, rng, background=target_bg)[0],
                colour,
            )
        )
    src = np.stack([c[0] for c in cases])
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z0 = pipe.vae.encode(to_pixels(src)).latent_dist.mean * pipe.vae.config.scaling_factor
        text = text_states(pipe.tokenizer, pipe.text_encoder, [c[5] for c in cases])
        empty = text_states(pipe.tokenizer, pipe.text_encoder, [""]).expand(n, -1, -1)
    lab = _image_labels(pipe, np.stack([c[6] for c in cases]))
    region = torch.nn.functional.adaptive_max_pool2d(  # any covered pixel frees its latent cell
        torch.from_numpy(np.stack([c[4] for c in cases])).float()[:, None], z0.shape[-1]
    )
    noise = torch.randn(z0.shape, generator=gen)
    fresh = torch.randn(z0.shape, generator=gen)
    start = region * fresh + (1 - region) * sched.add_noise(z0, noise, sched.timesteps[:1])
    out = _sample(pipe, sched, start, text, lab, empty, guidance, keep=(region, z0, noise))
    scores: dict[str, list[float]] = {"shape_iou": [], "removal": [], "color_acc": []}
    edited = []
    for (frame, plate, src_fp, trg_fp, reg, _cap, _img, colour), gen_img in zip(cases, out, strict=True):
        o = np.where(reg[..., None] > 0, gen_img, frame)  # pasted inside the region only, as an edit does
        edited.append(o)
        scores["shape_iou"].append(metrics.shape_iou(o, plate, trg_fp))
        scores["removal"].append(metrics.removal(o, plate, src_fp, trg_fp))
        scores["color_acc"].append(metrics.color_acc(o, trg_fp, plate, colour))
    res: dict = {f"inpaint_{k}": round(float(np.mean(v)), 4) for k, v in scores.items()}
    res["inpaint_frames"] = (src, np.stack(edited), np.stack([c[4] for c in cases]))
    return res


def main(argv: list[str] | None = None) -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--json", default=None)
    p.add_argument("--grid", default=None, help="write a PNG grid: samples per mode (+ source, edited with --inpaint)")
    p.add_argument(
        "--inpaint", action="store_true", help="also the shape-change probe with a perfect edit region (see `inpaint`)"
    )
    a = p.parse_args(argv)
    res = evaluate(a.model, n=a.n)
    samples = res.pop("samples")
    rows = [np.concatenate([r["image"] for r in samples[m][:16]], 1) for m in samples]
    if a.inpaint:
        res.update(inpaint(a.model, n=a.n))
        src, edited, _regions = res.pop("inpaint_frames")
        rows += [np.concatenate(list(src[:16]), 1), np.concatenate(list(edited[:16]), 1)]
    if a.grid:
        cv2.imwrite(a.grid, np.concatenate(rows, 0)[..., ::-1])
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
