"""The committed recast.v1 code must be what the .proto files generate: clients build on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from protos import generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    assert written, "no generated files"
    for fresh in written:
        committed = generate.PACKAGE_DIR / fresh.name
        assert committed.exists(), f"{committed} missing: run `python -m protos.generate`"
        assert committed.read_text() == fresh.read_text(), (
            f"{committed.name} is stale: run `python -m protos.generate` and commit the result"
        )


def test_generated_code_imports_as_package() -> None:
    from protos.recast.v1 import engine_pb2, engine_pb2_grpc

    assert engine_pb2.DESCRIPTOR.package == "recast.v1"
    assert "Engine" in engine_pb2.DESCRIPTOR.services_by_name
    assert hasattr(engine_pb2_grpc, "EngineStub")


def test_every_message_and_field_is_documented() -> None:
    """Other teams build on the contract: every message and field carries a comment."""
    text = (generate.PACKAGE_DIR / "engine.proto").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(text):
        s = line.strip()
        if s.startswith("message ") and not s.endswith("{}"):
            if not text[i - 1].strip().startswith("//") and "Request" not in s and "Response" not in s:
                undocumented.append(s)
    assert not undocumented, undocumented


def test_edit_settings_message_mirrors_the_pipeline_settings() -> None:
    """Every pipeline setting can be sent over gRPC, and every message field is a pipeline setting."""
    from dataclasses import fields

    from engine.daemon.runner import settings_from_proto
    from engine.settings import EditSettings
    from protos.recast.v1 import engine_pb2 as pb

    special = {"mask_method", "extra", "correction_weight_prev", "correction_weight_self", "correction_weight_next"}
    message_fields = {f.name for f in pb.EditSettings.DESCRIPTOR.fields} - special
    setting_fields = {f.name for f in fields(EditSettings)} - {"correction_weights"}
    assert message_fields == setting_fields

    msg = pb.EditSettings(
        steps=7,
        seed=3,
        guidance_scale=2.5,
        noise_level=10,
        tune_steps=4,
        tune_lr=0.001,
        inversion_refine=2,
        mask_method=pb.MASK_METHOD_OTSU,
        mask_dilate=0.05,
        mask_refine=True,
        mask_text_only=True,
        feather=0.02,
        latent_correction=False,
        correction_weight_prev=0.2,
        correction_weight_self=0.6,
        correction_weight_next=0.2,
        correction_block=0,
        temporal=False,
        anchor_first_frame=False,
        window=8,
        overlap=2,
        preview_every=2,
        cache=False,
    )
    s = settings_from_proto(msg)
    assert (s.steps, s.seed, s.noise_level, s.tune_steps, s.window, s.overlap, s.preview_every) == (
        7,
        3,
        10,
        4,
        8,
        2,
        2,
    )
    assert s.mask_threshold == "otsu" and s.mask_refine and s.mask_text_only and not s.cache
    assert s.correction_weights == pytest.approx((0.2, 0.6, 0.2)) and not s.temporal and not s.latent_correction
    assert settings_from_proto(pb.EditSettings()) == EditSettings()  # unset = the pipeline's defaults
    assert settings_from_proto(pb.EditSettings(extra={"steps": "9"})).steps == 9
