"""Turns user intent into engine calls and engine answers into model updates.

`Controller` assembles one part per concern and wires them to the engine link:

| part | concern |
|---|---|
| `context.Context` | the models, the link, the thread pool, the status signals (shared by all) |
| `clips.Clips` | opening a video: import, streaming its frames |
| `restore.Restorer` | bringing back earlier work on a clip opened again |
| `jobs.JobSubmitter` | mask and render jobs for the marked range, cancelling |
| `follow.JobFollower` | watching jobs; one handler per event kind |
| `masks.MaskSync` | loading mask versions, saving painted ones |
| `results.Results` | which render is on screen and which one exports |
| `export.Exporter` | File ▸ Export |

Engine calls run as Tasks on the thread pool and jobs are followed by WatchWorker threads; the
parts only ever run on the GUI thread, reacting to their signals. Widgets never talk to the engine.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoStack

from desktop.client.connection import Engine, EngineOptions
from desktop.controller.clips import Clips, display_size
from desktop.controller.context import Context
from desktop.controller.export import Exporter
from desktop.controller.follow import JobFollower
from desktop.controller.jobs import JobSubmitter
from desktop.controller.masks import MaskSync
from desktop.controller.restore import Restorer
from desktop.controller.results import Results
from desktop.engine_link import EngineLink
from desktop.model.document import Document
from desktop.model.jobs import JobList
from desktop.model.recipe import Recipe
from desktop.settings import StudioSettings

__all__ = ["Controller", "display_size"]


class Controller(QObject):
    def __init__(self, doc: Document, jobs: JobList, recipe: Recipe, settings: StudioSettings,
                 options: EngineOptions) -> None:
        super().__init__()
        self.options = options
        self.link = EngineLink(options)
        self.ctx = ctx = Context(doc, jobs, recipe, settings, self.link)
        self.undo = QUndoStack(self)  # one paint stroke, one step (desktop.undo.PaintStroke)
        self.results = Results(ctx)
        self.masks = MaskSync(ctx, self.undo)
        self.restorer = Restorer(ctx, self.masks, self.results)
        self.clips = Clips(ctx, self.undo, self.results, self.restorer)
        self.follower = JobFollower(ctx, self.masks, self.results)
        self.submitter = JobSubmitter(ctx, self.follower)
        self.exporter = Exporter(ctx, self.results)

        # what the window observes
        self.message, self.error = ctx.message, ctx.error
        self.clipOpened, self.framesDone = self.clips.opened, self.clips.framesDone
        self.masksLoaded, self.maskSaved = self.masks.loaded, self.masks.saved
        self.exported = self.exporter.exported
        # what the window asks for, each served by one part
        self.open_clip = self.clips.open
        self.compute_masks, self.render, self.cancel = (self.submitter.compute_masks, self.submitter.render,
                                                        self.submitter.cancel)
        self.load_masks, self.save_masks = self.masks.load, self.masks.save
        self.load_results = self.results.load
        self.export = self.exporter.export
        self.reattach = self.follower.reattach

        self.link.connected.connect(self._linked)
        self.link.restored.connect(self._restored)
        self.link.error.connect(ctx.error)
        self.link.infoChanged.connect(lambda _info: self.follower.reattach_if_due())

    @property
    def engine(self) -> Engine | None:
        return self.link.engine

    @property
    def state(self) -> str:
        return self.link.state

    @property
    def finished_render(self) -> str:
        return self.results.finished_render

    @property
    def jobs_listed(self) -> bool:
        return self.follower.jobs_listed

    @jobs_listed.setter
    def jobs_listed(self, value: bool) -> None:
        self.follower.jobs_listed = value

    def connect_engine(self, allow_start: bool | None = None) -> None:
        self.link.connect_engine(allow_start)

    def shutdown(self, stop_daemon: bool = True) -> None:
        """Stop following jobs (they keep running) and stop the daemon if the studio started it."""
        self.follower.stop()
        self.link.close(stop_daemon)

    def _linked(self) -> None:
        self.follower.jobs_listed = False
        self.follower.reattach()
        self.clips.open_pending()

    def _restored(self) -> None:
        self.ctx.message.emit("Engine connection restored.")
        self.follower.reattach()
