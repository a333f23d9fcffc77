"""The studio's link to its engine: find or start it, watch its health, find it again after a
restart, and stop it on exit if the studio started it.

Connection state changes on its own schedule (polls, restarts) and several parts of the studio
react to it, so it is an object of its own; the controller only needs "here is a live engine"
signals and `client()` for its calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.client import connection
from desktop.client.connection import Engine, EngineOptions
from desktop.client.workers import Task
from plugin_bridge.client import RecastClient
from plugin_bridge.errors import Unavailable
from protos.recast.v1 import engine_pb2 as pb


class EngineLink(QObject):
    stateChanged = Signal(str, str)  # "connecting" / "connected" / "loading" / "disconnected", detail
    infoChanged = Signal(object)  # pb.EngineInfo, after connecting and on every poll
    connected = Signal()  # a (new) engine is live: re-attach to its jobs
    restored = Signal()  # the same channel answers again after an outage or a restart between polls
    error = Signal(str)

    def __init__(self, options: EngineOptions) -> None:
        super().__init__()
        self.options = options
        self.engine: Engine | None = None
        self.state = "disconnected"
        self._connecting = False
        self._quiet = False
        self._closing = False
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(2000)
        self.poll_timer.timeout.connect(self.poll)

    @property
    def connecting(self) -> bool:
        return self._connecting

    def client(self) -> RecastClient:
        """The SDK client of the live engine; callable from worker threads, a readable error when offline."""
        engine = self.engine
        if engine is None:
            raise Unavailable("Not connected to the engine (Engine ▸ Reconnect).")
        return engine.client

    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[str], None]) -> None:
        task = Task(fn)
        task.done.connect(done)
        task.failed.connect(failed)
        task.start()

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.stateChanged.emit(state, detail)

    # --- connecting ----------------------------------------------------------------------------------

    def connect_engine(self, allow_start: bool | None = None, quiet: bool = False) -> None:
        """Find the user's daemon or start one (unless told not to); errors are reported unless quiet."""
        if self._connecting:
            return
        self._connecting, self._quiet = True, quiet
        opts = EngineOptions(**{**self.options.__dict__})
        if allow_start is not None:
            opts.start_if_missing = allow_start
        self._set_state("connecting", "looking for the engine…")

        def work() -> Engine:
            try:
                log = connection.default_log_path()
            except OSError:
                log = None  # no private folder for the studio's log: the engine logs in its runtime folder
            return connection.connect(opts, log)

        self._run(work, done=self.adopt, failed=self._failed)

    def adopt(self, engine: Engine) -> None:
        """Use this live engine from now on (also how `--snapshot` hands over the one it found)."""
        self._connecting = False
        if self._closing:
            engine.close(stop_daemon=True)
            return
        old, self.engine = self.engine, engine
        if old is not None and old is not engine:
            old.client.close()
            if old.process is not None and engine.process is None and old.process.pid == engine.info.pid:
                engine.process = old.process  # still ours to stop on exit
        self._show(engine.info)
        self.poll_timer.start()
        self.connected.emit()

    def _failed(self, message: str) -> None:
        self._connecting = False
        self._set_state("disconnected", message)
        if not self._quiet:
            self.error.emit(message)

    def _show(self, info: pb.EngineInfo) -> None:
        model = next((m.name for m in info.models if m.active), "?")
        where = "started by the studio" if self.engine and self.engine.started_by_us else "running"
        detail = f"engine {info.version} on {info.device}, model {Path(model).name}, {where}"
        if info.queued_jobs:
            detail += f", {info.queued_jobs} queued"
        if info.pipeline_ready and not info.model_loaded:
            detail += ", model unloaded while idle"
        if info.idle_exit_seconds:
            detail += f", exits after {info.idle_exit_seconds} s idle"
        if info.draining:
            self._set_state("disconnected", "the engine is shutting down")
            return
        self._set_state("connected" if info.pipeline_ready else "loading", detail)
        self.infoChanged.emit(info)

    # --- health --------------------------------------------------------------------------------------

    def poll(self) -> None:
        """Engine status every few seconds; a lost engine is looked for again (never spawned twice)."""
        if self.engine is None or self._connecting:
            return
        client = self.engine.client
        self._run(lambda: client.info(timeout=3), done=self._polled, failed=self._poll_failed)

    def _polled(self, info: pb.EngineInfo) -> None:
        was = self.state
        before = self.engine.info.instance_id if self.engine is not None else ""
        if self.engine is not None:
            self.engine.info = info  # the channel reconnects by itself, maybe to a restarted daemon
        self._show(info)
        # a daemon that restarted between two polls never looked disconnected: its new instance id tells
        restarted = bool(before) and info.instance_id != before
        if self.state != "disconnected" and (was == "disconnected" or restarted):
            self.restored.emit()

    def _poll_failed(self, message: str) -> None:
        if self.state != "disconnected":
            self._set_state("disconnected", message)
        e = self.engine
        ours_alive = e is not None and e.process is not None and e.process.poll() is None
        if not ours_alive:  # look for the user's daemon again (a restarted one), quietly
            self.connect_engine(allow_start=False, quiet=True)

    # --- the end -------------------------------------------------------------------------------------

    def close(self, stop_daemon: bool = True) -> None:
        """Close the channel; stop the daemon only if the studio started it (and `stop_daemon`)."""
        self._closing = True
        self.poll_timer.stop()
        if self.engine is not None:
            self.engine.close(stop_daemon=stop_daemon)
            self.engine = None
