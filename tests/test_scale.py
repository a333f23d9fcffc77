"""Full scale in CI: SD-2.1-unCLIP's topology at small widths through every stage (`bench scale --scaled`),
and the memory plan's parts: SDPA everywhere, gradient checkpointing, the window chosen from free memory."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from engine.bench import sd21_factory as f


def _structure(module: torch.nn.Module) -> list[tuple[str, str, int | None]]:
    """Every submodule's name, type and (for attention) head count: the topology without widths."""
    return [(n, type(m).__name__, getattr(m, "heads", None)) for n, m in module.named_modules()]


@pytest.fixture(scope="module")
def full_meta() -> dict:
    """The full-size components without memory (meta tensors): configs and structure only."""
    with torch.device("meta"):
        return f.build_components(f.FULL)


def test_scaled_spec_has_the_full_topology(tmp_path, full_meta):
    full = full_meta
    scaled = f.build_components(f.SCALED, tokenizer_dir=tmp_path / "tokenizer")
    for name in f.WEIGHTED:
        assert _structure(scaled[name]) == _structure(full[name]), name
    assert 860e6 < f.count_parameters(full["unet"]) < 875e6  # 865 M + the 2048 → 1280 class projection
    for comps, spec in ((full, f.FULL), (scaled, f.SCALED)):
        unet = comps["unet"].config
        assert list(unet.attention_head_dim) == [5, 10, 20, 20] and unet.use_linear_projection
        assert unet.class_embed_type == "projection"
        assert unet.projection_class_embeddings_input_dim == 2 * spec.projection_dim
        assert comps["image_encoder"].config.projection_dim == spec.projection_dim
        assert comps["image_normalizer"].mean.shape[-1] == spec.projection_dim
        assert len(comps["vae"].config.block_out_channels) == 4  # f8
        assert len(comps["tokenizer"]) == f.VOCAB_SIZE
        assert comps["text_encoder"].config.num_hidden_layers == 23
    assert full["unet"].config.block_out_channels == (320, 640, 1280, 1280)
    assert full["text_encoder"].config.hidden_size == 1024 and full["image_encoder"].config.hidden_size == 1280
    merges = (tmp_path / "tokenizer" / "merges.txt").read_text().splitlines()[1:]
    assert len(merges) == f.VOCAB_SIZE - 514  # 512 byte tokens, 2 specials, the rest merges
    ids = scaled["tokenizer"]("a red disc").input_ids  # made-up merges: words split into a few pieces
    assert ids[0] == f.VOCAB_SIZE - 2 and ids[-1] == f.VOCAB_SIZE - 1 and len(ids) < 2 + len("a red disc")


def test_bench_scale_runs_every_stage_on_the_scaled_model(tmp_path):
    from engine.bench.scale import ORDER
    from engine.cli import main

    out, model_dir = tmp_path / "out", tmp_path / "sd21"
    assert main(["bench", "scale", "--scaled", "--frames", "2", "--steps", "2", "--tune-steps", "1",
                 "--model-dir", str(model_dir), "--out", str(out), "--threads", "1"]) == 0
    result = json.loads((out / "scale.json").read_text())
    assert all(list((model_dir / c).glob("*.fp16.safetensors")) for c in f.WEIGHTED)
    assert "/snapshots/" in result["load"]["hf_cache_folder"]
    assert [r["size"] for r in result["runs"]] == ["128x128", "128x72"]
    assert result["runs"][1]["working_size"] == "128x64"  # non-square at a multiple of 64
    for r in result["runs"]:
        assert set(ORDER) <= set(r["stages"])  # every stage ran and was measured
        assert all(r["stages"][s]["unet_passes"] > 0 for s in ("tune", "invert", "masks", "generate"))
        assert all(s["peak_bytes"] > 0 for s in r["stages"].values())
    assert result["estimate"]["frames"] == 24 and result["estimate"]["total_s"] > 0
    md = (out / "scale.md").read_text()
    assert "Estimate: 24 frames" in md and " m |" in md and " c |" in md


@pytest.fixture(scope="module")
def scaled_unet():
    from engine.diffusion.inflate import inflate_unet

    unet = f.build_components(f.SCALED)["unet"].eval().requires_grad_(False)
    inflate_unet(unet)
    return unet


def test_no_attention_builds_a_full_matrix(scaled_unet):
    """ST-Attn, cross-attention and T-Attn all go through scaled_dot_product_attention."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from engine.diffusion.inflate import SparseCausalAttnProcessor, _transformer_blocks

    blocks = _transformer_blocks(scaled_unet)
    assert blocks
    for _, block in blocks:
        assert isinstance(block.attn1.processor, SparseCausalAttnProcessor)
        assert isinstance(block.attn2.processor, AttnProcessor2_0)
        assert isinstance(block.temporal_attn.attn.processor, AttnProcessor2_0)


def test_gradient_checkpointing_gives_the_same_tuning(scaled_unet, full_meta):
    from engine.diffusion.tuning import tune, wants_checkpointing

    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(3, 4, 16, 16, generator=g), torch.randn(1, 77, 32, generator=g)
    labels = torch.randn(3, 32, generator=g)
    config = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
              "beta_end": 0.012, "prediction_type": "v_prediction"}
    results = []
    for checkpointing in (False, True):
        unet = copy.deepcopy(scaled_unet)
        results.append(tune(unet, latents, text, labels, config, 2, 1e-3, 3, 0, checkpointing=checkpointing))
    (plain, plain_losses), (ckpt, ckpt_losses) = results
    assert plain_losses == pytest.approx(ckpt_losses, rel=1e-5)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6)
    assert not wants_checkpointing(scaled_unet, 16, (16, 16))  # small sizes: off, results untouched
    assert wants_checkpointing(full_meta["unet"], 1, (64, 64))  # 512² on the real UNet: on


def test_window_from_free_memory(tiny_pipeline):
    from engine.settings import EditSettings

    settings = EditSettings()
    same, record = tiny_pipeline.choose_window(40, 48, 48, settings)
    assert same == settings and record["chosen_by"] == "free memory"  # small model: the default window
    need = tiny_pipeline.frame_bytes(48, 48)
    small, record = tiny_pipeline.choose_window(40, 48, 48, settings, free_bytes=int(6 * need / 0.7) + 1)
    assert (small.window, small.overlap) == (6, 1) and record["window"] == 6
    assert tiny_pipeline.choose_window(40, 48, 48, settings, free_bytes=1)[0].window == 2


def test_edit_records_the_window_choice(tiny_model_dir, disc_video, tmp_path):
    import cv2
    import numpy as np

    from engine.cli import main

    cv2.imwrite(str(tmp_path / "t.png"), np.full((32, 32, 3), 200, np.uint8))
    common = [str(disc_video), "--target-image", str(tmp_path / "t.png"), "--source-prompt", "a red circle",
              "--target-prompt", "a blue star", "--model", str(tiny_model_dir), "--quiet", "--steps", "2",
              "--tune-steps", "1", "--threads", "1"]
    for extra, chosen_by, window in (([], "free memory", 16), (["--window", "3", "--overlap", "1"], "--window", 3)):
        out = tmp_path / chosen_by.strip("-").replace(" ", "_")
        assert main(["edit", *common, "--out", str(out), *extra]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["window"]["chosen_by"] == chosen_by and report["settings"]["window"] == window
