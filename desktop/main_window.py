"""The main window: assembles the views, builds actions from the shortcut table, persists settings.

It holds no editing logic of its own: handlers forward to the document, the viewer, the playback
or the controller.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.client.connection import EngineOptions
from desktop.controller import Controller
from desktop.model.document import Document
from desktop.model.jobs import JobList
from desktop.model.params import BY_NAME
from desktop.model.recipe import Recipe
from desktop.playback import Playback
from desktop.settings import StudioSettings
from desktop.shortcuts import SHORTCUTS
from desktop.undo import PaintStroke
from desktop.widgets.inspector import Inspector
from desktop.widgets.jobs_panel import JobsPanel
from desktop.widgets.mask_tools import MaskTools
from desktop.widgets.preferences import Preferences
from desktop.widgets.shortcuts_sheet import ShortcutsSheet
from desktop.widgets.timeline import Timeline
from desktop.widgets.viewer import Viewer

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
VIDEO_FILTER = "Video (*.mp4 *.mov *.mkv *.avi *.webm *.m4v);;All files (*)"


class ErrorBanner(QWidget):
    """The latest problem, in words, above the viewer; dismissable, never modal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error-banner")
        self.setStyleSheet("#error-banner { background: #5a1f24; } QLabel { color: #ffd9d9; }")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, settings: StudioSettings | None = None, options: EngineOptions | None = None) -> None:
        super().__init__()
        self.settings = settings or StudioSettings()
        self.doc = Document()
        self.jobs = JobList()
        self.recipe = Recipe()
        self.controller = Controller(self.doc, self.jobs, self.recipe, self.settings, options or EngineOptions())
        self.playback = Playback(self.doc)
        self.last_error = ""
        self.setWindowTitle("Recast Studio")
        self.setAcceptDrops(True)
        self.resize(1400, 860)

        self.viewer = Viewer(self.doc)
        self.tools = MaskTools(self.viewer, self.doc.masks)
        self.timeline = Timeline(self.doc)
        self.banner = ErrorBanner()
        self.frame_label = QLabel()
        centre = QWidget()
        col = QVBoxLayout(centre)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        col.addWidget(self.banner)
        col.addWidget(self.tools)
        col.addWidget(self.viewer, 1)
        col.addWidget(self.frame_label)
        col.addWidget(self.timeline)
        self.setCentralWidget(centre)

        self.inspector = Inspector(self.recipe)
        self.jobs_panel = JobsPanel(self.jobs)
        scroll = QScrollArea()
        scroll.setWidget(self.inspector)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.inspector.sizeHint().width() + 16)
        for title, widget, name in (("Inspector", scroll, "inspector"), ("Jobs", self.jobs_panel, "jobs")):
            dock = QDockWidget(title, self, objectName=f"dock-{name}")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.engine_label = QLabel("engine: not connected")
        self.statusBar().addPermanentWidget(self.engine_label)
        self._build_actions()
        self._build_menus()
        self._wire()
        self.restore_settings()
        self._update_frame_label()

    # --- construction --------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        """One QAction per row of the shortcut table; the handler is `act_<action>`."""
        self.actions_by_id: dict[str, QAction] = {}
        for s in SHORTCUTS:
            a = QAction(s.label, self)
            a.setShortcuts([QKeySequence(k) for k in s.keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(getattr(self, f"act_{s.action}"))
            self.addAction(a)
            self.actions_by_id[s.action] = a
        self.actions_by_id["undo"].setEnabled(False)
        self.actions_by_id["redo"].setEnabled(False)

    def _build_menus(self) -> None:
        a = self.actions_by_id
        file = self.menuBar().addMenu("&File")
        file.addAction(a["open"])
        self.recent_menu = file.addMenu("Open &Recent")
        file.addSeparator()
        file.addAction(a["export_mp4"])
        png = file.addAction("Export PNG sequence…")
        png.triggered.connect(lambda: self.act_export_png())
        file.addSeparator()
        file.addAction(a["quit"])
        edit = self.menuBar().addMenu("&Edit")
        for k in ("undo", "redo", "save_masks"):
            edit.addAction(a[k])
        edit.addSeparator()
        prefs = edit.addAction("Preferences…")
        prefs.triggered.connect(lambda: Preferences(self.settings, self.controller.options, self).exec())
        mark = self.menuBar().addMenu("&Mark")
        for k in ("mark_in", "mark_out", "clear_range", "go_in", "go_out"):
            mark.addAction(a[k])
        view = self.menuBar().addMenu("&View")
        for k in ("view_source", "view_overlay", "view_result", "view_wipe", "brush", "eraser"):
            view.addAction(a[k])
        engine = self.menuBar().addMenu("E&ngine")
        engine.addAction(a["compute_masks"])
        engine.addAction(a["render"])
        reconnect = engine.addAction("Reconnect")
        reconnect.triggered.connect(lambda: self.controller.connect_engine())
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(a["shortcuts_sheet"])
        self._refresh_recent()

    def _wire(self) -> None:
        c, d = self.controller, self.doc
        c.error.connect(self.show_error)
        c.message.connect(self.show_message)  # a method, not a lambda: Qt drops it with the window, so a
        # message that lands after close (a result fetched late) does not reach a deleted window
        c.link.stateChanged.connect(self._engine_state)
        c.link.infoChanged.connect(self._engine_info)
        c.clipOpened.connect(self._clip_opened)
        c.undo.canUndoChanged.connect(self.actions_by_id["undo"].setEnabled)
        c.undo.canRedoChanged.connect(self.actions_by_id["redo"].setEnabled)
        self.viewer.strokeFinished.connect(self._stroke)
        self.viewer.notice.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.timeline.seek.connect(d.set_playhead)
        self.tools.versionChosen.connect(self._switch_version)
        self.tools.saveRequested.connect(self.act_save_masks)
        self.inspector.computeMasks.connect(self.act_compute_masks)
        self.inspector.render.connect(self.act_render)
        self.jobs_panel.cancelRequested.connect(c.cancel)
        self.jobs_panel.showRequested.connect(c.load_results)
        d.playheadChanged.connect(self._update_frame_label)
        d.rangeChanged.connect(self._update_frame_label)
        d.clipChanged.connect(self._update_frame_label)

    # --- feedback ------------------------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.last_error = text
        self.banner.show_message(text)
        self.statusBar().showMessage(text, 10000)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _engine_state(self, state: str, detail: str) -> None:
        self.engine_label.setText(f"engine: {state}" + (f" — {detail}" if detail else ""))

    def _engine_info(self, info: object) -> None:
        names = [m.name for m in info.models]
        active = next((m.name for m in info.models if m.active), "")
        self.inspector.set_models(names, active)

    def _update_frame_label(self, *_: object) -> None:
        d = self.doc
        if d.clip is None:
            self.frame_label.setText("")
            return
        fps = d.clip.fps or 24.0
        t = d.playhead / fps
        self.frame_label.setText(
            f"frame {d.playhead} / {d.frame_count - 1}   {int(t // 60):02d}:{t % 60:05.2f}   "
            f"in {d.in_point}  out {d.out_point}  ({d.out_point - d.in_point + 1} frames)   {d.clip.path.name}"
        )

    def _clip_opened(self, path: str) -> None:
        self.setWindowTitle(f"{Path(path).name} — Recast Studio")
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for f in files:
            act = self.recent_menu.addAction(f)
            act.triggered.connect(lambda _=False, f=f: self.open_path(f))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear")
            clear.triggered.connect(lambda: (self.settings.clear_recent(), self._refresh_recent()))

    def _stroke(self, frame: int, before: object, after: object) -> None:
        cmd = PaintStroke(self.doc.masks, frame, before, after,
                          f"{'Paint' if self.viewer.tool == 'brush' else 'Erase'} on frame {frame}")
        if not cmd.empty:
            self.controller.undo.push(cmd)

    def confirm_discard(self, what: str) -> bool:
        """Unsaved mask corrections are never dropped silently: save them, drop them, or stay."""
        if not self.doc.masks.dirty:
            return True
        n = len(self.doc.masks.dirty)
        answer = QMessageBox.question(
            self, "Unsaved mask corrections",
            f"{n} painted frame(s) are not saved yet. Save them as a new mask version before {what}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            self.controller.save_masks()
            return False  # go on once it is saved
        return answer == QMessageBox.StandardButton.Discard

    def open_path(self, path: str | Path) -> None:
        if self.confirm_discard("opening another clip"):
            self.controller.open_clip(path)

    def _switch_version(self, version: int) -> None:
        if self.confirm_discard("switching versions"):
            self.controller.load_masks(version)
        else:
            self.tools._versions()  # show the current version again

    # --- actions (named after the shortcut table) -------------------------------------------------------

    def act_play_pause(self) -> None:
        self.playback.toggle()

    def act_shuttle_back(self) -> None:
        self.playback.shuttle(-1)

    def act_stop(self) -> None:
        self.playback.stop()

    def act_shuttle_forward(self) -> None:
        self.playback.shuttle(1)

    def act_prev_frame(self) -> None:
        self.playback.stop()
        self.doc.step(-1)

    def act_next_frame(self) -> None:
        self.playback.stop()
        self.doc.step(1)

    def act_back_10(self) -> None:
        self.doc.step(-10)

    def act_forward_10(self) -> None:
        self.doc.step(10)

    def act_go_in(self) -> None:
        self.doc.set_playhead(self.doc.in_point)

    def act_go_out(self) -> None:
        self.doc.set_playhead(self.doc.out_point)

    def act_mark_in(self) -> None:
        self.doc.set_in()

    def act_mark_out(self) -> None:
        self.doc.set_out()

    def act_clear_range(self) -> None:
        self.doc.set_range(0, max(0, self.doc.frame_count - 1))

    def act_brush(self) -> None:
        self.viewer.set_tool("brush")

    def act_eraser(self) -> None:
        self.viewer.set_tool("eraser")

    def act_smaller_brush(self) -> None:
        self.viewer.grow_brush(False)

    def act_bigger_brush(self) -> None:
        self.viewer.grow_brush(True)

    def act_undo(self) -> None:
        self.controller.undo.undo()

    def act_redo(self) -> None:
        self.controller.undo.redo()

    def act_save_masks(self) -> None:
        self.controller.save_masks()

    def act_compute_masks(self) -> None:
        self.controller.compute_masks()

    def act_render(self) -> None:
        self.controller.render()

    def act_view_source(self) -> None:
        self.viewer.set_mode("source")

    def act_view_overlay(self) -> None:
        self.viewer.set_mode("overlay")

    def act_view_result(self) -> None:
        self.viewer.set_mode("result")

    def act_view_wipe(self) -> None:
        self.viewer.set_mode("wipe")

    def act_open(self) -> None:
        start = self.settings.get("paths/last_dir", "", str)
        name, _ = QFileDialog.getOpenFileName(self, "Open a clip", start, VIDEO_FILTER)
        if name:
            self.settings.set("paths/last_dir", str(Path(name).parent))
            self.open_path(name)

    def _export_dialog(self, fmt: str) -> None:
        if not self.controller.finished_render:
            self.show_error("Nothing to export yet: render the range first and wait for it to finish.")
            return
        base = self.doc.clip.path.with_name(self.doc.clip.path.stem + "_recast") if self.doc.clip else Path("recast")
        if fmt == "mp4":
            name, _ = QFileDialog.getSaveFileName(self, "Export MP4", str(base.with_suffix(".mp4")), "MP4 (*.mp4)")
        else:
            name = QFileDialog.getSaveFileName(self, "Export PNG sequence into a new folder", str(base))[0]
        if name:
            self.controller.export(name, fmt)

    def act_export_mp4(self) -> None:
        self._export_dialog("mp4")

    def act_export_png(self) -> None:
        self._export_dialog("png")

    def act_shortcuts_sheet(self) -> None:
        ShortcutsSheet(self).exec()

    def act_quit(self) -> None:
        self.close()

    # --- drag and drop -------------------------------------------------------------------------------

    @staticmethod
    def _dropped_video(event: QDragEnterEvent | QDropEvent) -> Path | None:
        for url in event.mimeData().urls():
            p = Path(url.toLocalFile())
            if p.suffix.lower() in VIDEO_SUFFIXES:
                return p
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_video(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        p = self._dropped_video(event)
        if p is not None:
            event.acceptProposedAction()
            self.open_path(p)

    # --- settings ------------------------------------------------------------------------------------

    def restore_settings(self) -> None:
        s, r = self.settings, self.recipe
        geometry = s.get("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = s.get("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        values = {}
        for name, p in BY_NAME.items():
            kind = {"int": int, "float": float, "bool": bool, "choice": str}[p.kind]
            values[name] = s.get(f"params/{name}", p.default, kind)
        target = s.get("recipe/target_path", "", str)
        r.update(source_prompt=s.get("recipe/source_prompt", "", str),
                 target_prompt=s.get("recipe/target_prompt", "", str),
                 target_path=Path(target) if target and Path(target).is_file() else None,
                 seed=s.get("recipe/seed", 0, int), **values)
        self.viewer.set_brush(s.get("paint/brush", self.viewer.brush, int))
        self.viewer.set_opacity(s.get("paint/opacity", self.viewer.opacity, float))

    def save_settings(self) -> None:
        s, r = self.settings, self.recipe
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("recipe/source_prompt", r.source_prompt)
        s.set("recipe/target_prompt", r.target_prompt)
        s.set("recipe/target_path", str(r.target_path) if r.target_path else "")
        s.set("recipe/seed", r.seed)
        for name, value in r.values.items():
            s.set(f"params/{name}", value)
        s.set("paint/brush", self.viewer.brush)
        s.set("paint/opacity", self.viewer.opacity)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.confirm_discard("quitting"):
            event.ignore()
            return
        self.playback.stop()
        self.save_settings()
        self.controller.shutdown()
        super().closeEvent(event)
