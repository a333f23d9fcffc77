"""Recast Studio starts its own engine when none runs, shares a running one, and stops only its own."""

from __future__ import annotations

import pytest
from daemon_support import short_tmp
from PySide6.QtCore import QSettings

from desktop.client import connection
from desktop.client.connection import EngineOptions
from desktop.main_window import MainWindow
from desktop.settings import StudioSettings
from plugin_bridge.errors import DaemonNotFound

pytestmark = pytest.mark.timeout(180)


def test_studio_starts_an_engine_and_stops_it_on_exit(qtbot, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the engine's log goes here
    root = short_tmp()
    options = EngineOptions(runtime_dir=root / "run", model=str(tiny_model_dir), start_if_missing=True,
                            extra_env={"XDG_DATA_HOME": str(root / "data")}, serve_args=["--threads", "1"])
    win = MainWindow(StudioSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)), options)
    qtbot.addWidget(win)
    win.show()
    win.controller.connect_engine()
    qtbot.waitUntil(lambda: win.controller.state in ("connected", "loading"), timeout=120000)
    engine = win.controller.engine
    assert engine.started_by_us and "started by the studio" in win.engine_label.text()
    assert (root / "run" / "engine.json").exists()

    # another client (a second studio, a plugin) finds the same daemon instead of starting one
    other = connection.connect(EngineOptions(runtime_dir=root / "run", start_if_missing=False))
    assert other.info.pid == engine.info.pid and not other.started_by_us
    other.close()

    assert "listening" in (tmp_path / "state" / "recast" / "studio-engine.log").read_text()
    process = engine.process
    win.close()  # quitting the studio stops the engine it started, gracefully
    assert process.poll() is not None
    assert not (root / "run" / "engine.json").exists()


def test_a_daemon_that_cannot_start_is_reported_in_words(tmp_path):
    root = short_tmp()
    options = EngineOptions(runtime_dir=root / "run", model=str(tmp_path / "no-such-model"), start_timeout=60,
                            extra_env={"XDG_DATA_HOME": str(root / "data")}, serve_args=["--no-such-flag"])
    with pytest.raises(DaemonNotFound) as exc:
        connection.connect(options, log_path=root / "engine.log")
    assert "stopped while starting" in str(exc.value) and "Traceback" not in str(exc.value)
