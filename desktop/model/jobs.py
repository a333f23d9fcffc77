"""The engine jobs the studio follows: state, stage, progress and ETA, fed by Watch events.

States are the contract's JobState numbers; their names and which of them end a job come from the
shared table (plugin_bridge.job_states).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from protos.job_states import ENDED_STATES, state_name
from protos.recast.v1 import engine_pb2 as pb


@dataclass
class JobInfo:
    job_id: str
    kind: str  # "mask" or "render"
    clip_id: str
    state: int = pb.JOB_STATE_QUEUED  # a JobState number
    position: int = 0
    stage: str = ""
    step: int = 0
    total: int = 0
    eta: float = -1.0
    error: str = ""
    last_seq: int = 0
    frames_done: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    def describe(self) -> str:
        """One line for the job panel: what it is doing now."""
        if self.state == pb.JOB_STATE_QUEUED:
            return "queued — runs next" if self.position == 0 else f"queued — {self.position} ahead"
        if self.state == pb.JOB_STATE_RUNNING:
            eta = f", about {self.eta:.0f} s left" if self.eta >= 0 else ""
            frames = f" · {self.frames_done} frames in" if self.frames_done else ""
            return f"{self.stage or 'starting'} {self.step}/{self.total}{eta}{frames}" if self.total else "starting"
        if self.state == pb.JOB_STATE_FAILED:
            return f"failed: {self.error}"
        if self.state == pb.JOB_STATE_SUCCEEDED:
            return f"finished — {self.frames_done} frames" if self.kind == "render" else "finished"
        return state_name(self.state)


class JobList(QObject):
    """All followed jobs, newest last."""

    jobAdded = Signal(str)
    jobChanged = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, JobInfo] = {}

    def add(self, job: JobInfo) -> JobInfo:
        if job.job_id in self.jobs:
            return self.jobs[job.job_id]
        self.jobs[job.job_id] = job
        self.jobAdded.emit(job.job_id)
        return job

    def get(self, job_id: str) -> JobInfo | None:
        return self.jobs.get(job_id)

    def update(self, job_id: str, **changes: object) -> None:
        job = self.jobs[job_id]
        for k, v in changes.items():
            setattr(job, k, v)
        self.jobChanged.emit(job_id)

    def active(self) -> list[JobInfo]:
        return [j for j in self.jobs.values() if not j.done]
