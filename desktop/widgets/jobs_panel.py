"""The job panel: one row per engine job with state, stage, progress, ETA and its own cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget

from desktop.model.jobs import JobInfo, JobList
from protos.recast.v1 import engine_pb2 as pb


class JobRow(QWidget):
    def __init__(self, job: JobInfo, cancel: Signal, show: Signal, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = job.job_id
        self.setObjectName(f"job-{job.job_id}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.title = QLabel(f"<b>{job.kind.capitalize()}</b> <span style='color:#888'>{job.job_id[:8]}</span>")
        self.cancel = QPushButton("Cancel", objectName=f"cancel-{job.job_id}")
        self.cancel.setToolTip("Cancel this job (it stops within one denoising step)")
        self.cancel.clicked.connect(lambda: cancel.emit(self.job_id))
        self.show_button = QPushButton("Show", objectName=f"show-{job.job_id}")
        self.show_button.setToolTip("Show this render's frames in the viewer (and export them)")
        self.show_button.clicked.connect(lambda: show.emit(self.job_id))
        self.kind = job.kind
        top.addWidget(self.title, 1)
        top.addWidget(self.show_button)
        top.addWidget(self.cancel)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        self.refresh(job)

    def refresh(self, job: JobInfo) -> None:
        self.status.setText(job.describe())
        self.bar.setValue(1000 if job.state == pb.JOB_STATE_SUCCEEDED else int(1000 * job.fraction))
        self.cancel.setEnabled(not job.done)
        self.cancel.setVisible(not job.done)
        self.show_button.setVisible(job.kind == "render" and job.state == pb.JOB_STATE_SUCCEEDED)


class JobsPanel(QWidget):
    cancelRequested = Signal(str)
    showRequested = Signal(str)

    def __init__(self, jobs: JobList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.rows: dict[str, JobRow] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        inner = QWidget()
        self.list = QVBoxLayout(inner)
        self.list.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.empty = QLabel("No jobs yet. Compute masks or render.")
        self.empty.setStyleSheet("color: #888")
        self.list.addWidget(self.empty)
        scroll.setWidget(inner)
        outer.addWidget(scroll)
        jobs.jobAdded.connect(self._add)
        jobs.jobChanged.connect(self._changed)

    def _add(self, job_id: str) -> None:
        self.empty.hide()
        row = JobRow(self.jobs.get(job_id), self.cancelRequested, self.showRequested)
        self.rows[job_id] = row
        self.list.insertWidget(0, row)  # newest on top

    def _changed(self, job_id: str) -> None:
        row = self.rows.get(job_id)
        if row is not None:
            row.refresh(self.jobs.get(job_id))
