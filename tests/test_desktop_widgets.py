"""Recast Studio's widgets, offscreen and without an engine: keyboard, painting, views, settings,
the shortcuts sheet, readable errors and `--snapshot`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_disc_clip, write_clip
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from desktop.client.connection import EngineOptions
from desktop.imaging import overlay
from desktop.local_preview import open_locally
from desktop.main_window import MainWindow
from desktop.model.masks import MaskVersionInfo
from desktop.settings import StudioSettings
from desktop.shortcuts import SHORTCUTS
from desktop.widgets.shortcuts_sheet import ShortcutsSheet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clip_file(tmp_path) -> Path:
    return write_clip(tmp_path / "disc.avi", moving_disc_clip(12, 48, 64))


def window(qtbot, tmp_path: Path) -> MainWindow:
    settings = StudioSettings(QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    options = EngineOptions(runtime_dir=tmp_path / "no-engine", start_if_missing=False)
    win = MainWindow(settings, options)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)  # window shortcuts need the active window
    return win


def press(win: MainWindow, k, mod=Qt.KeyboardModifier.NoModifier) -> None:
    win.viewer.setFocus()
    QTest.keyClick(win.viewer, k, mod)


def with_masks(win: MainWindow) -> None:
    """Masks as a mask job would leave them (version 1 of frames 2..9)."""
    store = win.doc.masks
    store.set_versions("w", 2, [MaskVersionInfo(1, "auto", 0, "", 8)])
    store.load_version(1, {i: np.zeros((48, 64), np.uint8) for i in range(2, 10)})


def test_every_shortcut_is_an_action_and_on_the_sheet(qtbot, tmp_path):
    win = window(qtbot, tmp_path)
    for s in SHORTCUTS:
        assert [k.toString() for k in win.actions_by_id[s.action].shortcuts()][0], s.action
        assert callable(getattr(win, f"act_{s.action}"))
    sheet = ShortcutsSheet(win)
    qtbot.addWidget(sheet)
    texts = {sheet.table.item(r, 2).text() for r in range(sheet.table.rowCount())}
    assert texts == {s.label for s in SHORTCUTS}


def test_keyboard_transport_and_range(qtbot, tmp_path, clip_file):
    win = window(qtbot, tmp_path)
    open_locally(win.doc, clip_file)
    doc = win.doc
    for _ in range(3):
        press(win, Qt.Key.Key_Right)
    press(win, Qt.Key.Key_I)
    press(win, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert doc.playhead == 12 - 1  # clamped at the last frame
    press(win, Qt.Key.Key_Left)
    press(win, Qt.Key.Key_O)
    assert doc.range() == (3, 11)
    press(win, Qt.Key.Key_Home)
    assert doc.playhead == 3
    assert "in 3  out 10" in win.frame_label.text()
    # L plays forwards (again: faster), K stops, J backwards, Space toggles
    press(win, Qt.Key.Key_L)
    assert win.playback.speed == 1
    press(win, Qt.Key.Key_L)
    assert win.playback.speed == 2
    qtbot.waitUntil(lambda: doc.playhead > 4, timeout=3000)
    press(win, Qt.Key.Key_K)
    assert not win.playback.playing
    press(win, Qt.Key.Key_J)
    assert win.playback.speed == -1
    press(win, Qt.Key.Key_Space)
    assert not win.playback.playing
    press(win, Qt.Key.Key_X, Qt.KeyboardModifier.AltModifier)
    assert doc.range() == (0, 12)
    # typing in a prompt types, it does not move the playhead
    at = doc.playhead
    win.inspector.source_prompt.setFocus()
    QTest.keyClicks(win.inspector.source_prompt, "lion")
    assert win.recipe.source_prompt == "lion" and doc.playhead == at


def test_brush_eraser_size_opacity_and_one_undo_step_per_stroke(qtbot, tmp_path, clip_file, monkeypatch):
    win = window(qtbot, tmp_path)
    open_locally(win.doc, clip_file)
    with_masks(win)
    doc, viewer = win.doc, win.viewer
    doc.set_playhead(5)
    press(win, Qt.Key.Key_B)
    assert viewer.mode == "overlay" and win.tools.brush.isChecked()
    size = viewer.brush
    press(win, Qt.Key.Key_BracketRight)
    assert viewer.brush > size and win.tools.size.value() == viewer.brush
    press(win, Qt.Key.Key_BracketLeft)
    press(win, Qt.Key.Key_BracketLeft)
    assert viewer.brush < size
    viewer.set_brush(8)
    r = viewer.image_rect()

    def at(fx: float, fy: float) -> QPoint:
        return QPoint(int(r.x() + r.width() * fx), int(r.y() + r.height() * fy))

    def stroke(points: list[QPoint]) -> None:
        QTest.mousePress(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
        for p in points[1:]:
            QTest.mouseMove(viewer, p)
        QTest.mouseRelease(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])

    viewer.composed()
    QTest.mousePress(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(0.2, 0.5))
    QTest.mouseMove(viewer, at(0.4, 0.5))
    # mid-stroke only the touched rectangle is redrawn; it must equal a full recomposition
    assert np.array_equal(viewer._rgb, overlay(doc.frame(5), doc.masks.mask(5), viewer.opacity))
    QTest.mouseMove(viewer, at(0.6, 0.5))
    QTest.mouseMove(viewer, at(0.8, 0.5))
    QTest.mouseRelease(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(0.8, 0.5))
    painted = doc.masks.mask(5).copy()
    assert painted[24, 20:45].min() == 255 and win.controller.undo.count() == 1  # four moves, one step
    press(win, Qt.Key.Key_E)
    assert viewer.tool == "eraser"
    stroke([at(0.5, 0.5)])
    assert doc.masks.mask(5)[24, 32] == 0 and win.controller.undo.count() == 2
    press(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(doc.masks.mask(5), painted)
    press(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.masks.mask(5).any() and not doc.masks.dirty and not win.tools.save.isEnabled()
    press(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(doc.masks.mask(5), painted) and win.tools.save.isEnabled()
    # the overlay shows the mask at the chosen opacity
    win.tools.opacity.setValue(100)
    assert viewer.opacity == 1.0
    img = viewer.composed()
    assert img.pixelColor(32, 24).red() == 255 and img.pixelColor(32, 24).blue() == 200
    # no mask on frame 0: painting says why instead of doing nothing silently
    doc.set_playhead(0)
    notices: list[str] = []
    viewer.notice.connect(notices.append)
    stroke([at(0.5, 0.5)])
    assert notices and "compute masks" in notices[0].lower()
    # unsaved corrections are never dropped silently: quitting asks first
    asked: list[str] = []

    def answer(button):  # noqa: ANN001, ANN202
        return lambda *a, **k: asked.append(a[2]) or button

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    assert not win.close() and win.isVisible() and "not saved" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Discard))
    assert win.close() and len(asked) == 2


def test_views_and_wipe(qtbot, tmp_path, clip_file):
    win = window(qtbot, tmp_path)
    open_locally(win.doc, clip_file)
    doc, viewer = win.doc, win.viewer
    doc.set_playhead(4)
    result = np.zeros((48, 64, 3), np.uint8)
    result[..., 1] = 255
    doc.begin_result("job")
    doc.set_result(4, result)
    press(win, "3")
    assert viewer.mode == "result" and viewer.composed().pixelColor(10, 10).green() == 255
    press(win, "4")
    viewer.wipe = 0.5
    viewer._invalidate()
    img = viewer.composed()
    assert img.pixelColor(60, 10).green() == 255 and img.pixelColor(5, 10).green() != 255
    r = viewer.image_rect()
    QTest.mousePress(viewer, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(r.x() + r.width() * 0.9), int(r.center().y())))
    assert viewer.wipe > 0.85
    press(win, "1")
    assert viewer.composed().pixelColor(60, 10).green() != 255


def test_settings_and_recent_files_persist(qtbot, tmp_path, clip_file):
    win = window(qtbot, tmp_path)
    win.recipe.update(source_prompt="a red circle", steps=7, mask_method="otsu", seed=42)
    win.viewer.set_brush(33)
    win.settings.add_recent(clip_file)
    win.close()
    again = window(qtbot, tmp_path)
    assert again.recipe.source_prompt == "a red circle" and again.recipe.seed == 42
    assert again.recipe.values["steps"] == 7 and again.recipe.values["mask_method"] == "otsu"
    assert again.inspector.editors["steps"].value() == 7 and again.viewer.brush == 33
    assert again.settings.recent_files() == [str(clip_file.resolve())]
    assert [a.text() for a in again.recent_menu.actions()][0] == str(clip_file.resolve())


def test_no_engine_is_a_sentence_not_a_traceback(qtbot, tmp_path, clip_file):
    win = window(qtbot, tmp_path)
    win.controller.connect_engine()
    qtbot.waitUntil(lambda: win.controller.state == "disconnected" and bool(win.last_error), timeout=10000)
    assert "No engine is running" in win.last_error and win.banner.isVisible()
    assert "disconnected" in win.engine_label.text()
    win.act_render()
    assert "Traceback" not in win.last_error and "engine" in win.last_error.lower()


def test_a_message_that_arrives_after_the_window_is_gone_is_dropped(qtbot, tmp_path):
    """Worker threads finish on their own schedule: a result fetched after close still makes the
    controller report it. With the window deleted that must go nowhere, not raise in the event loop."""
    import shiboken6

    win = window(qtbot, tmp_path)
    controller = win.controller
    controller.message.emit("while open")
    assert win.statusBar().currentMessage() == "while open"
    win.close()
    shiboken6.delete(win)
    with qtbot.captureExceptions() as raised:
        controller.message.emit("after close")
    assert raised == []


def test_snapshot_writes_the_window_to_png(tmp_path, clip_file):
    out = tmp_path / "shot.png"
    env = {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "desktop", "--snapshot", str(out), str(clip_file), "--size", "1280x800",
                        "--settings", str(tmp_path / "s.ini")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape[:2] == (800, 1280) and img.std() > 10
    bad = subprocess.run([sys.executable, "-m", "desktop", "--snapshot", str(out.with_name("x.png")),
                          str(tmp_path / "missing.mp4")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "missing.mp4" in bad.stderr


def test_long_sessions_do_not_exhaust_none(tmp_path):
    """200k void Qt calls (hours of use) in a process without torch. PySide6 6.12.0 dropped a reference
    to None on each and aborted with none_dealloc; pyproject.toml excludes that release."""
    code = (
        "import desktop, sys\n"
        "from PySide6.QtWidgets import QApplication, QLabel\n"
        "app = QApplication([])\n"
        "label = QLabel('x')\n"
        "for i in range(200_000):\n"
        "    label.setToolTip('t')\n"
        "print('ok', 'torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.split() == ["ok", "False"]


def test_the_app_starts_and_quits_cleanly_on_sigterm(tmp_path, clip_file):
    env = {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "desktop", "--no-start-engine", "--settings",
                             str(tmp_path / "s.ini"), str(clip_file)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time

        time.sleep(2.0)
        assert proc.poll() is None, proc.communicate()[1]
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat).contains("window/geometry")


def test_preferences_choose_how_the_engine_is_found(qtbot, tmp_path):
    from desktop.widgets.preferences import Preferences

    win = window(qtbot, tmp_path)
    prefs = Preferences(win.settings, win.controller.options, win)
    qtbot.addWidget(prefs)
    prefs.model.setText("/models/sd21-unclip")
    prefs.runtime.setText(str(tmp_path / "rt"))
    prefs.start.setChecked(True)
    prefs.accept()
    opts = win.controller.link.options
    assert (opts.model, opts.runtime_dir, opts.start_if_missing) == ("/models/sd21-unclip", tmp_path / "rt", True)
    win.settings.sync()
    from desktop.app import _options, build_parser

    again = _options(build_parser().parse_args([]), StudioSettings(QSettings(str(tmp_path / "studio.ini"),
                                                                             QSettings.Format.IniFormat)))
    assert (again.model, again.runtime_dir, again.start_if_missing) == ("/models/sd21-unclip", tmp_path / "rt", True)
