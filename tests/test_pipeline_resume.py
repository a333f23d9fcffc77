"""A render interrupted after a finished window continues from its checkpoint with the output of an
uninterrupted run, byte for byte: the masks it computed, the overlap blend and the clip's colour shift."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import moving_disc_clip
from test_pipeline import FAST, SRC, TRG, target_image

import engine.pipeline as pipeline_module
from engine.errors import Cancelled
from engine.runtime.cache import TensorCache
from engine.settings import EditSettings


@pytest.mark.parametrize("framing", ["frame", "object"])
def test_a_resumed_render_skips_finished_windows_and_equals_an_uninterrupted_one(
    tiny_pipeline, tmp_path, monkeypatch, framing
):
    clip = moving_disc_clip(10, 40, 40)
    settings = EditSettings(window=4, overlap=1, framing=framing, **FAST)  # windows (0,4) (3,7) (6,10)
    compositors = []  # the layers a render composites with hold the clip's colour shift
    compositor = pipeline_module.Compositor
    monkeypatch.setattr(pipeline_module, "Compositor", lambda *a: compositors.append(compositor(*a)) or compositors[-1])
    whole = tiny_pipeline.render(clip, target_image(), SRC, TRG, settings)
    layers = compositors[-1].layers
    assert layers is not None and layers.shift is not None and np.abs(layers.shift).max() > 0

    checkpoint = TensorCache(tmp_path / "job")
    cancel = threading.Event()
    first: list[int] = []

    def stop_after_first_window(i: int, rgb: np.ndarray, mask: np.ndarray) -> None:
        first.append(i)
        if i == 2:  # frames 0-2 are final once window (0,4) is done
            cancel.set()

    with pytest.raises(Cancelled):
        tiny_pipeline.render(clip, target_image(), SRC, TRG, settings, cancel=cancel,
                             on_frame=stop_after_first_window, checkpoint=checkpoint)
    assert first == [0, 1, 2]

    progress: list[tuple[str, int, int]] = []
    streamed: dict[int, np.ndarray] = {}
    tiny_pipeline._state = None  # as in a new process: nothing of the first run in memory
    tiny_pipeline._loaded_tune_key = ""
    resumed = tiny_pipeline.render(clip, target_image(), SRC, TRG, settings, checkpoint=checkpoint,
                                   progress=lambda *p: progress.append(p),
                                   on_frame=lambda i, rgb, m: streamed.setdefault(i, rgb.copy()))
    assert ("resume_masks", 3, 3) in progress
    assert ("resume_windows", 1, 3) in progress
    assert sum(stage == "generate" and k == total for stage, k, total in progress) == 2  # two windows ran, not 3
    assert sorted(streamed) == list(range(10))  # the finished frames are delivered again too
    assert np.array_equal(resumed.frames, whole.frames) and np.array_equal(resumed.masks, whole.masks)
    assert np.array_equal(np.stack([streamed[i] for i in range(10)]), whole.frames)
