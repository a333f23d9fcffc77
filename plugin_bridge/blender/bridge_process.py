"""The `recast-bridge json` child process, seen from inside Blender (standard library only).

Why a child process: Blender's bundled Python has no grpcio, and an edit takes long enough that
it must not block the UI. The bridge speaks JSON lines; a reader thread turns its stdout into a
queue the add-on drains from a timer (UI) or in a loop (background mode).
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
CONFIG_FILE = "config.json"  # written by `recast-bridge blender-install`: the bridge command to run


class BridgeFailed(Exception):
    """The bridge reported an error (or died); `code` and `field` come from its error line."""

    def __init__(self, message: str, code: str = "BRIDGE", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


def default_command(configured: str = "") -> list[str]:
    """The add-on preference, else the installer's record, else $RECAST_BRIDGE, else `recast-bridge json`."""
    if configured.strip():
        return shlex.split(configured)
    cfg = Path(__file__).with_name(CONFIG_FILE)
    if cfg.is_file():
        try:
            command = json.loads(cfg.read_text()).get("bridge_command")
            if isinstance(command, list) and command:
                return [str(c) for c in command]
        except (OSError, ValueError):
            pass
    if os.environ.get("RECAST_BRIDGE"):
        return shlex.split(os.environ["RECAST_BRIDGE"])
    exe = shutil.which("recast-bridge")
    return [exe or "recast-bridge", "json"]


class BridgeProcess:
    """One running `recast-bridge json`; events arrive on `self.events` (None after its output ends)."""

    def __init__(self, command: list[str]):
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", bufsize=1,
            )
        except OSError as exc:
            raise BridgeFailed(f"cannot start {command[0]!r} ({exc.strerror}); install Recast or set the bridge "
                               "command in the Recast panel") from None
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.stderr_tail.append(f"(not JSON) {line[:200]}")
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip())

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"v": PROTOCOL_VERSION, **request}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise BridgeFailed("the bridge process is gone: " + self.last_stderr()) from None

    def close_input(self) -> None:
        """End of input: the bridge finishes what runs and exits."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def last_stderr(self) -> str:
        return " | ".join(ln for ln in self.stderr_tail if ln.strip())[-800:] or "(no output)"


def edit_request(rid: str, **fields: Any) -> dict:
    return {"id": rid, "op": "edit", **fields}


def outcome(event: dict, rid: str) -> dict | None:
    """For an event about `rid`: the result dict when done; raises on error or cancel; else None."""
    if event.get("id") != rid:
        return None
    kind = event.get("type")
    if kind == "result":
        return event
    if kind == "error":
        raise BridgeFailed(event.get("message", "error"), event.get("code", "BRIDGE"), event.get("field"))
    if kind == "cancelled":
        raise BridgeFailed("the edit was cancelled", "CANCELLED")
    return None


def run_blocking(command: list[str], request: dict, on_event: Callable[[dict], None] | None = None,
                 timeout: float = 3600.0) -> dict:
    """Run one edit to its end (background mode, scripts); returns the `result` event."""
    bridge = BridgeProcess(command)
    rid = str(request.get("id", "edit"))
    try:
        bridge.send({**request, "id": rid})
        bridge.close_input()
        while True:
            try:
                ev = bridge.events.get(timeout=timeout)
            except queue.Empty:
                raise BridgeFailed(f"no answer from the bridge in {timeout:.0f} s") from None
            if ev is None:
                raise BridgeFailed("the bridge ended without a result: " + bridge.last_stderr())
            if on_event is not None:
                on_event(ev)
            done = outcome(ev, rid)
            if done is not None:
                return done
    finally:
        bridge.stop()
