"""Recast Studio's model layer: plain objects and signals, no widgets, no engine."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from PySide6.QtGui import QUndoStack

from desktop.client.errors import friendly
from desktop.model.document import ClipInfo, Document
from desktop.model.jobs import JobInfo, JobList
from desktop.model.masks import MaskStore, MaskVersionInfo
from desktop.model.params import PARAMS, defaults, to_settings
from desktop.model.recipe import Recipe
from desktop.shortcuts import SHORTCUTS, conflicts
from desktop.undo import PaintStroke
from plugin_bridge.errors import FailedPrecondition
from protos.recast.v1 import engine_pb2 as pb


def _doc(n: int = 10) -> Document:
    d = Document()
    d.set_clip(ClipInfo(Path("/x/clip.mp4"), "a" * 64, "c1", n, 64, 48, 24.0))
    return d


def test_range_and_playhead_clamp_and_follow_nle_rules(qapp):
    d = _doc(10)
    seen = []
    d.rangeChanged.connect(lambda a, b: seen.append((a, b)))
    assert (d.in_point, d.out_point, d.range()) == (0, 9, (0, 10))
    d.set_playhead(42)
    assert d.playhead == 9
    d.set_playhead(3)
    d.set_in()
    d.set_playhead(6)
    d.set_out()
    assert d.range() == (3, 7) and seen[-1] == (3, 6)
    d.set_playhead(8)
    d.set_in()  # in after out: the out point moves along
    assert (d.in_point, d.out_point) == (8, 8)
    d.set_playhead(2)
    d.set_out()  # out before in: the in point moves back
    assert (d.in_point, d.out_point) == (2, 2)
    d.step(-5)
    assert d.playhead == 0


def test_paint_stroke_is_one_undo_step_and_tracks_dirty_frames(qapp):
    d = _doc(4)
    store = d.masks
    store.set_versions("w1", 1, [MaskVersionInfo(1, "auto", 0, "", 3)])
    store.load_version(1, {i: np.zeros((48, 64), np.uint8) for i in (1, 2, 3)})
    stack = QUndoStack()
    before = store.mask(2).copy()
    store.mask(2)[10:20, 5:15] = 255  # what the viewer does while the button is down
    cmd = PaintStroke(store, 2, before, store.mask(2).copy(), "Paint")
    assert (cmd.y0, cmd.x0, cmd.before.shape) == (10, 5, (10, 10))
    stack.push(cmd)
    assert store.dirty == {2} and store.dirty_frames().keys() == {1}  # clip frame = asset frame - start
    stack.undo()
    assert not store.mask(2).any() and not store.dirty
    stack.redo()
    assert store.mask(2)[15, 10] == 255 and store.dirty == {2}
    assert stack.count() == 1


def test_params_send_only_what_changed(qapp):
    s = to_settings(defaults(), seed=7)
    assert s.seed == 7 and not s.HasField("steps") and s.mask_method == pb.MASK_METHOD_UNSPECIFIED
    values = {**defaults(), "steps": 3, "mask_method": "otsu", "latent_correction": False, "feather": 0.02}
    s = to_settings(values, seed=0)
    assert (s.steps, s.mask_method, s.latent_correction) == (3, pb.MASK_METHOD_OTSU, False)
    assert abs(s.feather - 0.02) < 1e-6 and not s.HasField("guidance_scale")
    fields = set(pb.EditSettings.DESCRIPTOR.fields_by_name)
    assert all(p.name in fields for p in PARAMS) and all(p.tooltip for p in PARAMS)
    # the studio's own default, always sent: mask jobs use the interactive preset unless the user picks "full"
    assert to_settings(defaults(), seed=0).mask_preset == "interactive"
    assert to_settings({**defaults(), "mask_preset": "full"}, seed=0).mask_preset == "full"


def test_provisional_masks_show_until_the_final_masks_replace_them(qapp):
    store = MaskStore()
    changed: list[int] = []
    store.masksChanged.connect(changed.append)
    final = np.zeros((8, 8), np.uint8)
    store.load_version(1, {0: final.copy(), 1: final.copy()})
    shown = np.full((8, 8), 255, np.uint8)
    store.set_provisional(1, shown)
    assert changed[-1] == 1 and store.mask(1) is shown and not store.can_paint(1)  # shown at once, not painted
    assert store.can_paint(0) and store.mask(0) is not shown
    store.load_version(2, {0: final.copy(), 1: final.copy()})  # the job's final masks
    assert not store.provisional and not store.mask(1).any() and store.can_paint(1)
    store.set_provisional(0, shown)
    store.clear_provisional()  # the job failed or was cancelled
    assert not store.mask(0).any() and changed[-1] == -1


def test_recipe_names_what_is_missing(qapp, tmp_path):
    r = Recipe()
    assert len(r.problems()) == 3
    img = tmp_path / "t.png"
    img.write_bytes(b"x")
    r.update(source_prompt="a red circle", target_prompt="a blue star", target_path=img, steps=3)
    assert r.problems() == [] and r.settings().steps == 3
    with pytest.raises(KeyError):
        r.update(nonsense=1)


def test_shortcut_table_has_the_conventions_and_no_conflicts():
    keys = {k: s.action for s in SHORTCUTS for k in s.keys}
    for k in ("Space", "J", "K", "L", "Left", "Right", "I", "O", "B", "E", "[", "]", "Ctrl+Z", "Ctrl+Shift+Z"):
        assert k in keys, k
    assert conflicts() == []


def test_job_progress_text(qapp):
    jobs = JobList()
    changed = []
    jobs.jobChanged.connect(changed.append)
    j = jobs.add(JobInfo("j1", "render", "c1", position=2))
    assert j.describe() == "queued — 2 ahead"
    jobs.update("j1", state=pb.JOB_STATE_RUNNING, stage="generate", step=2, total=4, eta=3.2)
    assert j.describe() == "generate 2/4, about 3 s left" and j.fraction == 0.5 and changed == ["j1"]
    jobs.update("j1", frames_done=2)
    assert j.describe().endswith("· 2 frames in")
    jobs.update("j1", state=pb.JOB_STATE_FAILED, error="settings.steps: must be at least 1")
    assert j.done and "settings.steps" in j.describe() and jobs.active() == []


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._c, self._d = code, details

    def code(self) -> grpc.StatusCode:
        return self._c

    def details(self) -> str:
        return self._d


def test_errors_read_as_sentences():
    msg = friendly(_Rpc(grpc.StatusCode.INVALID_ARGUMENT, "target_prompt: must not be empty"))
    assert msg == "target_prompt: must not be empty"
    assert "not reachable" in friendly(_Rpc(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert "limits" in friendly(_Rpc(grpc.StatusCode.RESOURCE_EXHAUSTED, "size_bytes: over 1 GiB"))
    assert friendly(FailedPrecondition("Open a clip first.")) == "Open a clip first."
    assert "Traceback" not in friendly(FileNotFoundError(2, "No such file", "/nope.mp4"))


def test_job_events_go_through_one_handler_table(qapp, tmp_path):
    """Every event kind of the contract has a handler; the states they set are the contract's."""
    from PySide6.QtCore import QSettings

    from desktop.client.connection import EngineOptions
    from desktop.controller import Controller
    from desktop.controller.follow import JobFollower
    from desktop.settings import StudioSettings

    assert set(JobFollower.HANDLERS) == {f.name for f in pb.JobEvent.DESCRIPTOR.oneofs_by_name["event"].fields}
    settings = StudioSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    jobs = JobList()
    c = Controller(Document(), jobs, Recipe(), settings, EngineOptions(start_if_missing=False))
    errors_shown: list[str] = []
    c.error.connect(errors_shown.append)
    jobs.add(JobInfo("j1", "mask", "c1"))
    seen = []
    for ev in (pb.JobEvent(seq=1, queued=pb.QueuedEvent(position=2)), pb.JobEvent(seq=2, started=pb.StartedEvent()),
               pb.JobEvent(seq=3, progress=pb.ProgressEvent(stage="masks", step=1, total=3, eta_seconds=2.0)),
               pb.JobEvent(seq=4, finished=pb.FinishedEvent(mask_version=1))):
        c.follower._on_event("j1", ev, {})
        j = jobs.get("j1")
        seen.append((j.state, j.last_seq))
    assert seen == [(pb.JOB_STATE_QUEUED, 1), (pb.JOB_STATE_RUNNING, 2), (pb.JOB_STATE_RUNNING, 3),
                    (pb.JOB_STATE_SUCCEEDED, 4)]
    assert (j.position, j.stage, j.step, j.done, j.describe()) == (2, "masks", 3, True, "finished")
    jobs.add(JobInfo("j2", "render", "c1"))
    c.follower._on_event("j2", pb.JobEvent(seq=1, failed=pb.FailedEvent(code="INTERNAL", message="boom")), {})
    assert jobs.get("j2").state == pb.JOB_STATE_FAILED and errors_shown == ["The render job failed: boom"]


def test_source_frames_fit_a_memory_budget():
    from desktop.controller import display_size

    assert display_size(64, 48, 100) == 0  # small clips at full size
    side = display_size(1920, 1080, 2000, budget=1 << 30)
    assert 320 <= side < 1920
    w, h = side, side * 1080 // 1920
    assert w * h * 3 * 2000 <= (1 << 30) * 1.01


def test_inspector_defaults_are_the_engines():
    """The studio shows the pipeline's own defaults (and sends nothing for them), except its own
    STUDIO_DEFAULTS, which it always sends."""
    from desktop.model.params import STUDIO_DEFAULTS
    from engine.settings import EditSettings

    engine = EditSettings()
    for p in PARAMS:
        if p.name in STUDIO_DEFAULTS:
            assert p.default == STUDIO_DEFAULTS[p.name] != getattr(engine, p.name), p.name
        elif p.name == "mask_method":
            assert engine.mask_threshold != "otsu" and p.default == "threshold"
        elif p.name.startswith("correction_weight_"):  # the three numbers of correction_weights
            assert p.default in engine.correction_weights and p.setting == "correction_weights", p.name
        else:
            assert getattr(engine, p.name) == pytest.approx(p.default), p.name
