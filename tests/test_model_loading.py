"""The loader takes SD-unCLIP diffusers folders only: offline, safetensors, DDIM from the model's config."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.errors import ModelError
from engine.runtime.model_loading import check_model_folder, ddim_schedulers, load_model, resolve_model_folder


def test_tiny_model_is_exact_diffusers_layout(tiny_model_dir):
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableUnCLIPImg2ImgPipeline"
    assert json.loads((tiny_model_dir / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == \
        "PNDMScheduler"
    assert (tiny_model_dir / "tokenizer" / "vocab.json").is_file()
    assert (tiny_model_dir / "tokenizer" / "merges.txt").is_file()
    assert not [p for p in tiny_model_dir.rglob("*") if p.suffix in (".bin", ".pt", ".ckpt")]


def test_loads_back_with_v_prediction_and_ddim(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert model.prediction_type == "v_prediction"
    assert model.dtype == torch.float32
    forward, inverse = ddim_schedulers(model.scheduler_config, 10)
    assert type(forward).__name__ == "DDIMScheduler" and type(inverse).__name__ == "DDIMInverseScheduler"
    assert forward.config.prediction_type == "v_prediction"
    assert forward.config.beta_schedule == model.scheduler_config["beta_schedule"]
    assert list(inverse.timesteps) == sorted(forward.timesteps.tolist())
    ids = model.tokenizer("a red circle on a striped navy background").input_ids
    assert len(ids) == 2 + 8  # every word of the vocabulary is one token


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_refuses_pickle_weights(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    torch.save({"x": torch.zeros(1)}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelError, match="pickle"):
        load_model(folder)


def test_refuses_non_unclip_layouts(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="SD-unCLIP"):
        check_model_folder(folder)
    with pytest.raises(ModelError, match="model_index.json"):
        check_model_folder(tmp_path)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="not found"):
        resolve_model_folder("no-such-model")
