"""What every part of the controller shares: the models, the engine link, workers and status signals.

Each part (clips, restore, jobs, follow, masks, results, export) holds one concern and this
context; all of them run on the GUI thread only, handing engine calls to `run` (the thread pool).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.client.workers import Task
from desktop.engine_link import EngineLink
from desktop.model.document import Document
from desktop.model.jobs import JobList
from desktop.model.recipe import Recipe
from desktop.settings import StudioSettings
from plugin_bridge.client import RecastClient


class Context(QObject):
    message = Signal(str)  # status-bar text
    error = Signal(str)  # a readable problem (the window shows it; never a traceback)

    def __init__(self, doc: Document, jobs: JobList, recipe: Recipe, settings: StudioSettings,
                 link: EngineLink) -> None:
        super().__init__()
        self.doc, self.jobs, self.recipe, self.settings, self.link = doc, jobs, recipe, settings, link
        self._clips: dict[str, tuple[str, int]] = {}  # engine clip id → (asset id, start frame)

    def run(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
            item: Callable[[Any], None] | None = None, failed: Callable[[str], None] | None = None) -> Task:
        """`fn(*args)` on the thread pool; `done`, `item` (streamed parts) and `failed` on the GUI thread.
        Failures go to `error` unless `failed` says otherwise."""
        task = Task(fn, *args, streaming=item is not None)
        if done:
            task.done.connect(done)
        if item:
            task.item.connect(item)
        task.failed.connect(failed or self.error.emit)
        return task.start()

    def client(self) -> RecastClient:
        """The live engine's SDK client (from worker threads too); Unavailable when offline."""
        return self.link.client()

    def need_engine(self) -> bool:
        if self.link.engine is None:
            self.error.emit("Not connected to the engine yet (Engine ▸ Reconnect).")
            return False
        return True

    def remember_clip(self, clip_id: str, asset_id: str, start: int) -> None:
        """Which asset an engine clip is cut from, and at which frame, so its frames map to the document."""
        self._clips[clip_id] = (asset_id, start)

    def doc_frame(self, clip_id: str, index: int) -> int | None:
        """Asset frame of a clip frame, if that clip belongs to the open document."""
        asset_id, start = self._clips.get(clip_id, ("", 0))
        if self.doc.clip is None or asset_id != self.doc.clip.asset_id:
            return None
        return start + index
