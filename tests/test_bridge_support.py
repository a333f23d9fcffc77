"""Helpers of the bridge tests (no tests here): source clips whose frames can be told apart, a real
daemon on a temporary socket, and a `recast-bridge json` child process to talk to."""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import opentimelineio as otio
import pytest
from conftest import write_clip
from daemon_support import InProcess

REPO = Path(__file__).resolve().parents[1]
# Cheap pipeline: a few steps, one tuning step, small windows.
FAST = {"steps": 3, "tune_steps": 1, "window": 4, "overlap": 1, "preview_every": 0, "guidance_scale": 2.0}
SOURCE_PROMPT = "a red circle on a plain gray background"
TARGET_PROMPT = "a blue square on a plain gray background"


def needs_adapter(name: str) -> pytest.MarkDecorator:
    """Skip where an OpenTimelineIO adapter plugin (otio-cmx3600-adapter, otio-fcp-adapter …) is missing."""
    return pytest.mark.skipif(name not in otio.adapters.available_adapter_names(),
                              reason=f"the OpenTimelineIO adapter {name!r} is not installed")


def source_frames(n: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """A disc moving over a background whose grey level encodes the frame number (20 + 15·i)."""
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        f = np.full((h, w, 3), 20 + 15 * i, np.uint8)
        cv2.circle(f, (10 + 3 * i, h // 2), h // 6, (220, 40, 40), -1)
        frames[i] = f
    return frames


def write_source(path: Path, n: int = 12, fps: float = 24.0) -> tuple[Path, np.ndarray]:
    frames = source_frames(n)
    return write_clip(path, frames, fps), frames


def write_target(path: Path) -> Path:
    img = np.full((40, 40, 3), 128, np.uint8)
    cv2.rectangle(img, (8, 8), (32, 32), (40, 80, 220), -1)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def decode(data: bytes | Path, grey: bool = False) -> np.ndarray:
    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_video(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def frame_numbers(frames: np.ndarray, masks: np.ndarray | None = None) -> list[int]:
    """Which source frame each picture shows, read from the background level outside the edit."""
    out = []
    for k, f in enumerate(frames):
        keep = np.ones(f.shape[:2], bool) if masks is None else masks[k] == 0
        keep[:, :] &= (np.abs(f.astype(int) - f[..., :1].astype(int)).max(-1) < 12)  # grey pixels only
        level = float(np.median(f[keep][:, 0])) if keep.any() else -1.0
        out.append(round((level - 20) / 15))
    return out


def assert_outside_mask_is_source(result: np.ndarray, mask: np.ndarray, source: np.ndarray) -> None:
    """Pixels the compositing mask leaves alone are the source frame's, byte for byte."""
    keep = mask == 0
    assert keep.any(), "the mask covers the whole frame; nothing to compare"
    assert np.array_equal(result[keep], source[keep])


def start_daemon(model_dir: Path) -> InProcess:
    return InProcess(model_dir).__enter__()


class BridgeSession:
    """`recast-bridge json` as a child process, with a line reader that never blocks the test."""

    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin_bridge.cli", "json", *args], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1,
        )
        self.lines: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def send(self, **request: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"v": 1, **request}) + "\n")
        self.proc.stdin.flush()

    def next(self, timeout: float = 120) -> dict | None:
        return self.lines.get(timeout=timeout)

    def until(self, rid: object, kinds: set[str], timeout: float = 120) -> list[dict]:
        """Every line up to and including the first of `kinds` about request `rid`."""
        seen = []
        while True:
            ev = self.next(timeout)
            assert ev is not None, f"bridge ended early: {self.proc.stderr.read() if self.proc.stderr else ''}"
            seen.append(ev)
            if ev.get("id") == rid and ev["type"] in kinds:
                return seen

    def close(self, timeout: float = 120) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        return code
