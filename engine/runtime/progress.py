"""One progress callback and one cancel flag, shared by every stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from engine.errors import Cancelled

ProgressFn = Callable[[str, int, int], None]  # (stage, step, total)


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class Reporter:
    """Wraps the caller's callback and cancel flag; `step` reports then checks for cancel."""

    def __init__(self, progress: ProgressFn | None = None, cancel: CancelFlag | None = None):
        self.progress = progress
        self.cancel = cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def step(self, stage: str, step: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, step, total)
        self.check()
