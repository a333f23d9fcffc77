"""A short real training run on the tiny spec: every component's loss on a fixed probe batch goes down,
the result loads as a StableUnCLIPImg2ImgPipeline folder, and a resumed run picks up where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.shapes_world.train import TrainConfig, train  # noqa: E402


def tiny_config(out: Path, steps: int) -> TrainConfig:
    cfg = TrainConfig(out=out, spec_name="tiny", seed=3, minutes=30.0, pool_frames=128, pool_views=4, threads=1)
    cfg.steps = {"vae": steps, "clip": steps, "unet": steps, "focus": steps}
    cfg.batch = {"vae": 16, "clip": 32, "unet": 32, "focus": 32}
    cfg.lr = {"vae": 2e-3, "clip": 2e-3, "unet": 2e-3, "focus": 1e-3}
    cfg.log_every = 5
    return cfg


def test_short_training_lowers_every_loss_and_saves_a_pipeline_folder(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, 25)
    cfg.focus_minutes = 30.0  # capped by steps
    folder = train(cfg, log=lambda *_: None)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["vae"]["probe_after"] < 0.8 * s["vae"]["probe_before"]
    assert s["clip"]["probe_after"]["loss"] < s["clip"]["probe_before"]["loss"]
    assert s["clip"]["probe_after"]["contrastive"] < s["clip"]["probe_before"]["contrastive"]
    assert s["unet"]["probe_after"]["mse"] < s["unet"]["probe_before"]["mse"]
    # the focus stage starts from the trained UNet and lowers the loss on object cells further
    assert s["focus"]["probe_before"]["mse"] == pytest.approx(s["unet"]["probe_after"]["mse"], rel=0.2)
    assert s["focus"]["probe_after"]["object_mse"] < s["focus"]["probe_before"]["object_mse"]
    rows = [json.loads(line) for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"vae", "clip", "unet", "focus"}

    from diffusers import StableUnCLIPImg2ImgPipeline

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(folder, use_safetensors=True)
    assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))
    assert pipe.vae.config.scaling_factor == pytest.approx(s["pools"]["vae_scaling_factor"], rel=1e-3)
    assert not torch.allclose(pipe.image_normalizer.std, torch.ones_like(pipe.image_normalizer.std))


def test_resume_continues_a_stage(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, 4)
    cfg.steps = {"vae": 4, "clip": 2, "unet": 2}
    train(cfg, log=lambda *_: None)
    cfg2 = tiny_config(tmp_path, 4)
    cfg2.steps = {"vae": 4, "clip": 2, "unet": 5}
    # unet is marked done; resuming with a larger cap must not retrain finished stages
    state = json.loads((tmp_path / "state.json").read_text())
    state["done"].remove("unet")
    (tmp_path / "state.json").write_text(json.dumps(state))
    train(cfg2, log=lambda *_: None)
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "loss.jsonl").read_text().splitlines()
        if json.loads(line)["stage"] == "unet"
    ]
    assert steps[-1] == 5 and json.loads((tmp_path / "summary.json").read_text())["vae"]["steps"] == 4


def test_patch_coverage_follows_the_encoders_token_order() -> None:
    import numpy as np

    from engine.shapes_world.train import patch_coverage

    cov = np.zeros((1, 64, 64), np.float32)
    cov[0, 0:2, 8:10] = 1.0  # top-left 2×2 corner of the patch in row 0, column 1
    cov[0, 56:64, 56:64] = 1.0  # the whole last patch
    out = patch_coverage(cov, 64, 8)  # (1, 64 patches, 16)
    assert out.shape == (1, 64, 16)
    assert out[0, 1, 0] == 1.0 and out[0, 1, 1:].sum() == 0.0
    assert torch.all(out[0, 63] == 1.0)
    assert out[0].sum() == 1 + 16
    # a frame at another size is resampled to the encoder's size first
    assert torch.allclose(patch_coverage(np.repeat(np.repeat(cov, 2, 1), 2, 2), 64, 8), out)


def test_warm_start_keeps_frozen_parts_and_rebuilds_the_reinitialised_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    base = train(tiny_config(tmp_path / "base", 2), log=lambda *_: None)
    cfg = tiny_config(tmp_path / "warm", 3)
    cfg.init, cfg.reinit, cfg.freeze = base, ("image_encoder",), ("vae", "text_encoder")
    cfg.seed = 11
    folder = train(cfg, log=lambda *_: None)

    def weights(f: Path, name: str) -> dict:
        return load_file(next((f / name).glob("*.safetensors")))

    for name in ("vae", "text_encoder"):
        a, b = weights(base, name), weights(folder, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = weights(base, "image_encoder"), weights(folder, "image_encoder")
    assert not torch.equal(a["vision_model.embeddings.patch_embedding.weight"],
                           b["vision_model.embeddings.patch_embedding.weight"])
    stages = {json.loads(r)["stage"] for r in (tmp_path / "warm" / "loss.jsonl").read_text().splitlines()}
    assert stages == {"clip", "unet"}  # the frozen VAE's stage is skipped
    # the UNet continued from the base model: its loss before training is the base's loss after
    s0 = json.loads((tmp_path / "base" / "summary.json").read_text())
    s1 = json.loads((tmp_path / "warm" / "summary.json").read_text())
    assert s1["unet"]["probe_before"]["mse"] < s0["unet"]["probe_before"]["mse"]


def test_reinit_without_init_is_refused_naming_the_field(tmp_path: Path) -> None:
    import argparse

    from engine.errors import InputError
    from engine.shapes_world.train import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "x"), "--reinit", "image_encoder"]))
    assert err.value.field == "reinit" and not (tmp_path / "x").exists()
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "y"), "--init", str(tmp_path)]))
    assert err.value.field == "init"
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "z"), "--freeze", "vae"]))
    assert err.value.field == "freeze" and not (tmp_path / "z").exists()
    (tmp_path / "bad.json").write_text('{"image_size": 64, "no_such_field": 1}')
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "w"), "--spec", str(tmp_path / "bad.json")]))
    assert err.value.field == "spec" and "no_such_field" in str(err.value) and not (tmp_path / "w").exists()
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "v"), "--focus-weight", "0.5"]))
    assert err.value.field == "focus-weight" and not (tmp_path / "v").exists()
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "u"), "--snr-gamma", "-1"]))
    assert err.value.field == "snr-gamma" and not (tmp_path / "u").exists()
    with pytest.raises(InputError) as err:
        run(parser.parse_args(["--out", str(tmp_path / "t"), "--object-framing", "1.5"]))
    assert err.value.field == "object-framing" and not (tmp_path / "t").exists()


def test_min_snr_weights_starve_high_noise_and_gamma_zero_does_not() -> None:
    """Why `--snr-gamma 0` exists: with v-prediction, min-SNR-5 gives the steps from t = 600 on (where
    an object's shape is chosen) about 7 % of the loss; unweighted they get their 40 % share."""
    import torch
    from diffusers import DDPMScheduler

    from engine.shapes_world.train import loss_weights

    alpha_bar = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    capped = loss_weights(alpha_bar, "v_prediction", 5.0)
    share = float(capped[600:].sum() / capped.sum())
    assert 0.05 < share < 0.09
    assert float(capped[999]) < 0.01 and float(capped[200]) > 0.7
    plain = loss_weights(alpha_bar, "v_prediction", 0.0)
    assert torch.equal(plain, torch.ones_like(alpha_bar))
    eps = loss_weights(alpha_bar, "epsilon", 5.0)
    assert float(eps[999]) == 1.0 and float(eps[0]) < 0.01  # ε-prediction: capped only at low noise


def test_a_scale_shift_unet_warm_starts_from_an_additive_one(tmp_path: Path) -> None:
    """The scale half of each time projection starts at 0 and the shift half is the old bias, so the
    new UNet begins close to the old one (not exact: the shift now follows the GroupNorm)."""
    import dataclasses

    from safetensors.torch import load_file

    from engine.shapes_world.model_factory import TINY, load_spec

    base = train(tiny_config(tmp_path / "base", 2), log=lambda *_: None)
    spec = dataclasses.replace(TINY, unet_time_scale_shift="scale_shift")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
    assert load_spec(spec_file) == spec
    cfg = tiny_config(tmp_path / "ss", 3)
    cfg.spec_name, cfg.init, cfg.freeze = str(spec_file), base, ("vae", "text_encoder", "image_encoder")
    cfg.steps["unet"] = 0  # the warm-started weights themselves
    folder = train(cfg, log=lambda *_: None)
    old = load_file(next((base / "unet").glob("*.safetensors")))
    new = load_file(next((folder / "unet").glob("*.safetensors")))
    proj = [k for k in old if "time_emb_proj" in k]
    assert proj and all(new[k].shape[0] == 2 * old[k].shape[0] for k in proj)
    for k in proj:
        half = old[k].shape[0]
        assert torch.count_nonzero(new[k][:half]) == 0 and torch.equal(new[k][half:], old[k])
    assert all(torch.equal(old[k], new[k]) for k in old if k not in proj)
    assert json.loads((folder / "unet" / "config.json").read_text())["resnet_time_scale_shift"] == "scale_shift"
    s0 = json.loads((tmp_path / "base" / "summary.json").read_text())
    s1 = json.loads((tmp_path / "ss" / "summary.json").read_text())
    assert s1["unet"]["probe_before"]["mse"] < s0["unet"]["probe_before"]["mse"]  # not a fresh start


def test_object_framed_pool_frames_centre_the_object_and_leave_the_rest_as_before(tmp_path: Path) -> None:
    """The pool is whole frames (the very batches of a run without object framing), then crops as object
    framing cuts them: the object near the middle at radius ≈ 0.3 (engine/compose/framing.py)."""
    import numpy as np

    from engine.shapes_world.data import CROP_JITTER, batch_rng, render_batch
    from engine.shapes_world.train import pool_batches

    cfg = TrainConfig(out=tmp_path, pool_frames=100, object_framing=0.5)
    frame_part, object_part = list(pool_batches(cfg, 32))
    assert len(frame_part.captions) == len(object_part.captions) == 50
    assert np.array_equal(frame_part.images, render_batch(batch_rng(0, 2, 0), 32, 50).images)
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    for cov in object_part.coverage:
        area = cov.sum()
        centre = np.array([(cov * xs).sum(), (cov * ys).sum()]) / area / 32
        assert np.abs(centre - 0.5).max() <= CROP_JITTER + 0.08  # a triangle's centroid sits off its middle
        assert area / 32**2 > 0.05  # large: a crop gives the object the frame
    plain = TrainConfig(out=tmp_path, pool_frames=100)
    assert [len(b.captions) for b in pool_batches(plain, 32)] == [64, 36]
