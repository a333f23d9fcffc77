"""`recast-studio`: start the desktop editor, or render its window to a PNG (`--snapshot`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from desktop.client.connection import EngineOptions
from plugin_bridge.discovery import runtime_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recast-studio", description="Recast Studio: replace an object in a video.")
    p.add_argument("clip", nargs="?", type=Path, help="video to open")
    p.add_argument("--snapshot", type=Path, metavar="PATH", help="render the window offscreen to a PNG and exit")
    p.add_argument("--frame", type=int, default=None, help="frame to show (with --snapshot)")
    p.add_argument("--view", choices=("source", "overlay", "result", "wipe"), default=None,
                   help="viewer mode to show (with --snapshot)")
    p.add_argument("--size", default="1400x860", help="window size WxH (with --snapshot)")
    p.add_argument("--model", default=None, help="model for an engine the studio starts (serve --model)")
    p.add_argument("--runtime-dir", type=Path, default=None,
                   help="engine runtime folder with its socket and engine.json (default $XDG_RUNTIME_DIR/recast)")
    p.add_argument("--no-start-engine", action="store_true", help="only connect to a running engine")
    p.add_argument("--tls-ca", default="", help="PEM CA of an engine listening with --tls-cert "
                   "(default $RECAST_ENGINE_TLS_CA)")
    p.add_argument("--settings", type=Path, default=None, help="settings file (INI) instead of the user's settings")
    return p


def _settings(path: Path | None):  # noqa: ANN202
    from PySide6.QtCore import QSettings

    from desktop.settings import StudioSettings

    return StudioSettings(QSettings(str(path), QSettings.Format.IniFormat) if path else None)


def _options(args: argparse.Namespace, settings) -> EngineOptions:  # noqa: ANN001
    return EngineOptions(
        runtime_dir=args.runtime_dir or Path(settings.get("engine/runtime_dir", "", str) or runtime_dir()),
        model=args.model or settings.get("engine/model", "", str),
        start_if_missing=not args.no_start_engine and settings.get("engine/start_if_missing", True, bool),
        tls_ca=args.tls_ca,
    )


def snapshot(args: argparse.Namespace) -> int:
    """Window → PNG, offscreen. Uses a running engine if there is one (never starts one)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    from desktop.client.connection import discover
    from desktop.local_preview import open_locally
    from desktop.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    settings = _settings(args.settings)
    options = _options(args, settings)
    win = MainWindow(settings, options)
    w, _, h = args.size.partition("x")
    win.resize(int(w), int(h))
    win.show()
    engine = discover(options) if args.clip else None
    deadline = time.monotonic() + 60
    if engine is not None:
        win.controller.link.adopt(engine)  # the window's own path, minus the search
        win.controller.open_clip(args.clip)
        while time.monotonic() < deadline and (win.doc.clip is None or any(f is None for f in win.doc.frames)):
            app.processEvents()
            time.sleep(0.01)
    elif args.clip:
        open_locally(win.doc, args.clip)
    # let follow-up calls (masks, results of earlier work) land, then settle
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
        app.processEvents()
        if QThreadPool.globalInstance().activeThreadCount():
            quiet_since = time.monotonic()
        time.sleep(0.01)
    if args.frame is not None:
        win.doc.set_playhead(args.frame)
    elif win.doc.clip is not None:
        win.doc.set_playhead(win.doc.frame_count // 2)
    if args.view:
        win.viewer.set_mode(args.view)
    app.processEvents()
    args.snapshot.parent.mkdir(parents=True, exist_ok=True)
    ok = win.grab().save(str(args.snapshot), "PNG")
    win.controller.shutdown(stop_daemon=False)  # never ours: the snapshot only found it
    win.close()
    if not ok:
        print(f"recast-studio: could not write {args.snapshot}", file=sys.stderr)
        return 1
    print(f"recast-studio: wrote {args.snapshot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.snapshot:
        try:
            return snapshot(args)
        except Exception as exc:  # a one-line reason, never a traceback
            from desktop.client.errors import friendly

            print(f"recast-studio: error: {friendly(exc)}", file=sys.stderr)
            return 1
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Recast Studio")
    app.setOrganizationName("Recast")
    settings = _settings(args.settings)
    win = MainWindow(settings, _options(args, settings))
    win.show()
    _close_on_signals(win)
    win.controller.connect_engine()
    if args.clip:
        win.controller.open_clip(args.clip)
    return app.exec()


def _close_on_signals(win) -> None:  # noqa: ANN001
    """Ctrl+C or SIGTERM close the window normally, so an engine the studio started is stopped.
    Qt's loop does not run Python code by itself; a short timer lets the signal handler run."""
    import signal

    from PySide6.QtCore import QTimer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: win.close())
    timer = QTimer(win)
    timer.timeout.connect(lambda: None)
    timer.start(250)
