"""Shared fixtures: a tiny random SD-unCLIP model in diffusers layout and synthetic clips."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RECAST_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="recast-test-cache-"))

from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Built once per session through the same save path real models use, loaded back by the loader."""
    from engine.shapes_world.model_factory import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-unclip", seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir, tmp_path_factory):
    from engine.pipeline import RecastPipeline

    return RecastPipeline.from_pretrained(tiny_model_dir, device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


def moving_disc_clip(frames: int = 6, height: int = 48, width: int = 48, radius: int | None = None,
                     colour=(220, 40, 40), background=(20, 30, 90)) -> np.ndarray:
    """A disc moving left to right on a striped background: RGB uint8 (frames, h, w, 3)."""
    radius = radius or max(3, min(height, width) // 6)
    clip = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        img = np.empty((height, width, 3), np.uint8)
        img[:] = background
        img[:, (np.arange(width) // 4) % 2 == 1] = np.array(background) // 2 + 40
        cx = int(radius + (width - 2 * radius) * i / max(frames - 1, 1))
        cv2.circle(img, (cx, height // 2), radius, colour, -1, lineType=cv2.LINE_AA)
        clip[i] = img
    return clip


def write_clip(path: Path, frames: np.ndarray, fps: float = 24.0) -> Path:
    """Lossless (FFV1 .avi) so decoded frames equal the written ones byte for byte."""
    from engine.runtime.video_io import write_video

    write_video(path, frames, fps, codec="FFV1")
    return path


@pytest.fixture
def disc_video(tmp_path) -> Path:
    return write_clip(tmp_path / "disc.avi", moving_disc_clip(8, 48, 64))


@pytest.fixture
def target_png(tmp_path) -> Path:
    img = np.full((40, 40, 3), 200, np.uint8)
    cv2.rectangle(img, (8, 8), (32, 32), (40, 80, 220), -1)
    path = tmp_path / "target.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path
