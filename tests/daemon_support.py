"""Shared helpers of the daemon tests: a tiny model, small clips, a real daemon, a client.

Nothing here mocks our own components: tests talk gRPC to the real daemon (in-process on a
temporary unix socket, or as a `recast-engine serve` subprocess) running the real pipeline on the
tiny random model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np

from protos.recast.v1 import engine_pb2 as pb
from protos.recast.v1 import engine_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[1]
FAST = dict(steps=3, tune_steps=2, window=4, overlap=1, preview_every=1, guidance_scale=2.0)
TERMINAL = {"finished", "failed", "cancelled", "interrupted"}


def short_tmp() -> Path:
    """Unix socket paths must stay under ~100 bytes: pytest's tmp_path can be longer."""
    return Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))


def make_frames(n: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A red disc moving right over a gradient (RGB uint8)."""
    rng = np.random.default_rng(seed)
    bg = np.linspace(40, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        f = bg.astype(np.uint8).copy()
        cv2.circle(f, (12 + 6 * i + int(rng.integers(0, 2)), h // 2), h // 5, (220, 40, 40), -1)
        frames[i] = f
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: float = 12.0) -> Path:
    from engine.runtime.video_io import write_video

    write_video(path, frames, fps)
    return path


def png_bytes(rgb: np.ndarray) -> bytes:
    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    return cv2.imencode(".png", arr)[1].tobytes()


def decode_png(data: bytes, grey: bool = False) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def target_png(h: int = 40, w: int = 40) -> bytes:
    img = np.full((h, w, 3), 128, np.uint8)
    pts = np.array([[w // 2, 4], [w - 6, h - 6], [6, h - 6]], np.int32)
    cv2.fillPoly(img, [pts], (40, 80, 220))
    return png_bytes(img)


def upload_requests(
    data: bytes, filename: str, chunk: int = 64 * 1024, sha: str | None = None, size: int | None = None
) -> Iterator[pb.UploadAssetRequest]:
    header = pb.UploadHeader(
        filename=filename,
        size_bytes=len(data) if size is None else size,
        sha256=sha or hashlib.sha256(data).hexdigest(),
    )
    yield pb.UploadAssetRequest(header=header)
    for i in range(0, len(data), chunk):
        yield pb.UploadAssetRequest(chunk=data[i : i + chunk])


def connect(socket_path: Path) -> tuple[grpc.Channel, pb_grpc.EngineStub]:
    channel = grpc.insecure_channel(
        f"unix:{socket_path}",
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel, pb_grpc.EngineStub(channel)


def upload(stub: pb_grpc.EngineStub, data: bytes, filename: str, chunk: int = 64 * 1024) -> pb.Asset:
    return stub.UploadAsset(upload_requests(data, filename, chunk), timeout=30)


def setup_clip(stub: pb_grpc.EngineStub, folder: Path, n: int = 4) -> tuple[pb.Clip, pb.Asset, np.ndarray]:
    """Uploads a small clip (frames 1..n+1 of n+2) and a target image; returns (clip, target, frames)."""
    frames = make_frames(n + 2)
    video = write_mp4(folder / "source.mp4", frames)
    asset = upload(stub, video.read_bytes(), "source.mp4", chunk=4096)
    clip = stub.CreateClip(pb.CreateClipRequest(asset_id=asset.asset_id, start_frame=1, end_frame=n + 1))
    target = upload(stub, target_png(), "target.png")
    return clip, target, frames


def mask_request(clip: pb.Clip, target: pb.Asset, **settings) -> pb.CreateMaskJobRequest:
    return pb.CreateMaskJobRequest(
        clip_id=clip.clip_id,
        source_prompt="a red circle on a plain gray background",
        target_prompt="a blue triangle on a plain gray background",
        target_asset_id=target.asset_id,
        settings=pb.EditSettings(**{**FAST, **settings}),
    )


def render_request(clip: pb.Clip, target: pb.Asset, mask_version: int = 0, **settings) -> pb.CreateRenderJobRequest:
    return pb.CreateRenderJobRequest(
        clip_id=clip.clip_id,
        source_prompt="a red circle on a plain gray background",
        target_prompt="a blue triangle on a plain gray background",
        target_asset_id=target.asset_id,
        settings=pb.EditSettings(**{**FAST, **settings}),
        mask_version=mask_version,
    )


def watch_all(
    stub: pb_grpc.EngineStub, job_id: str, from_seq: int = 0, timeout: float = 120, **kw
) -> list[pb.JobEvent]:
    return list(stub.Watch(pb.WatchRequest(job_id=job_id, from_seq=from_seq, **kw), timeout=timeout))


def kinds(events: list[pb.JobEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def wait_state(stub: pb_grpc.EngineStub, job_id: str, states: set[int], timeout: float = 60) -> pb.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(pb.GetJobRequest(job_id=job_id))
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}; it is {pb.JobState.Name(job.state)}")


# --- daemon as a subprocess -------------------------------------------------------------------------


class DaemonProcess:
    """`recast-engine serve` in a child process with its own runtime and data folders."""

    def __init__(self, root: Path, model: Path, extra: list[str] | None = None):
        self.root = root
        self.model = model
        self.runtime = root / "run"
        self.data = root / "data"
        self.socket = self.runtime / "engine.sock"
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.log = root / "daemon.log"

    def env(self) -> dict:
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), XDG_RUNTIME_DIR=str(self.root))
        env.pop("PYTEST_CURRENT_TEST", None)
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "--runtime-dir",
            str(self.runtime),
            "--data-dir",
            str(self.data),
            "--model",
            str(self.model),
            "--threads",
            "1",  # the machine is shared: oversubscribed OpenMP threads slow everything down
            *self.extra,
        ]

    def start(self, wait: bool = True) -> DaemonProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=self.env(), stdout=log, stderr=log)
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 60) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists():
                try:
                    ch = grpc.insecure_channel(f"unix:{self.socket}")
                    st = health_pb2_grpc.HealthStub(ch)
                    r = st.Check(health_pb2.HealthCheckRequest(service="pipeline"), timeout=2)
                    ch.close()
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"daemon did not become ready:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


# --- daemon in-process --------------------------------------------------------------------------------


class InProcess:
    """The real Daemon class on a temporary socket in this process (what `serve` runs)."""

    def __init__(self, model: Path, root: Path | None = None, **config):
        from engine.daemon.app import Daemon, DaemonConfig

        self.root = root or short_tmp()
        self.config = DaemonConfig(
            runtime_dir=self.root / "run",
            data_dir=self.root / "data",
            socket_path=self.root / "run" / "engine.sock",
            model=str(model),
            **{"torch_threads": 1, **config},
        )
        self.daemon = Daemon(self.config)

    def __enter__(self) -> InProcess:
        self.daemon.start()
        assert self.daemon.wait_ready(60)
        self.channel, self.stub = connect(self.config.socket_path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.daemon.stop()
        shutil.rmtree(self.root, ignore_errors=True)
