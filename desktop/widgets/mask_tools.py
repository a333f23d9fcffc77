"""The toolbar above the viewer: view mode, brush/eraser, size, overlay opacity, mask versions."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from desktop.model.masks import MaskStore
from desktop.widgets.viewer import MAX_BRUSH, MIN_BRUSH, MODES, Viewer


class MaskTools(QWidget):
    versionChosen = Signal(int)
    saveRequested = Signal()

    def __init__(self, viewer: Viewer, store: MaskStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.store = viewer, store
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)

        self.modes = QButtonGroup(self)
        for i, mode in enumerate(MODES):
            b = QToolButton(text=mode.capitalize(), checkable=True, objectName=f"mode-{mode}")
            b.setToolTip(f"View: {mode} ({i + 1})")
            self.modes.addButton(b, i)
            lay.addWidget(b)
        self.modes.idClicked.connect(lambda i: viewer.set_mode(MODES[i]))
        lay.addSpacing(8)

        self.tools = QButtonGroup(self)
        self.brush = QToolButton(text="Brush", checkable=True, objectName="tool-brush")
        self.brush.setToolTip("Paint the mask (B)")
        self.eraser = QToolButton(text="Eraser", checkable=True, objectName="tool-eraser")
        self.eraser.setToolTip("Erase from the mask (E)")
        self.tools.addButton(self.brush)
        self.tools.addButton(self.eraser)
        self.brush.clicked.connect(lambda: viewer.set_tool("brush"))
        self.eraser.clicked.connect(lambda: viewer.set_tool("eraser"))
        lay.addWidget(self.brush)
        lay.addWidget(self.eraser)

        self.size = QSpinBox(objectName="brush-size")
        self.size.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size.setSuffix(" px")
        self.size.setToolTip("Brush size in frame pixels ([ and ])")
        self.size.valueChanged.connect(viewer.set_brush)
        lay.addWidget(self.size)

        lay.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal, objectName="overlay-opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(72)
        self.opacity.setToolTip("Opacity of the mask overlay")
        self.opacity.valueChanged.connect(lambda v: viewer.set_opacity(v / 100))
        lay.addWidget(self.opacity)
        lay.addSpacing(8)

        lay.addWidget(QLabel("Masks"))
        self.versions = QComboBox(objectName="mask-versions")
        self.versions.setMinimumContentsLength(13)
        self.versions.setToolTip("Mask versions of the range (painted corrections are new versions)")
        self.versions.activated.connect(self._chosen)
        lay.addWidget(self.versions)
        self.save = QToolButton(text="Save masks", objectName="save-masks")
        self.save.setToolTip("Save painted corrections as a new mask version (Ctrl+S)")
        self.save.clicked.connect(self.saveRequested)
        self.save.setEnabled(False)
        lay.addWidget(self.save)
        lay.addStretch(1)

        viewer.modeChanged.connect(self._mode)
        viewer.toolChanged.connect(self._tool)
        viewer.brushChanged.connect(self.size.setValue)
        viewer.opacityChanged.connect(lambda v: self.opacity.setValue(round(v * 100)))
        store.versionsChanged.connect(self._versions)
        store.dirtyChanged.connect(self._dirty)
        self._mode(viewer.mode)
        self._tool(viewer.tool)
        self.size.setValue(viewer.brush)
        self.opacity.setValue(round(viewer.opacity * 100))
        self._versions()

    def _mode(self, mode: str) -> None:
        self.modes.button(MODES.index(mode)).setChecked(True)

    def _tool(self, tool: str) -> None:
        (self.brush if tool == "brush" else self.eraser).setChecked(True)

    def _versions(self) -> None:
        self.versions.blockSignals(True)
        self.versions.clear()
        for v in self.store.versions:
            self.versions.addItem(v.label, v.version)
        i = self.versions.findData(self.store.version)
        self.versions.setCurrentIndex(i)
        self.versions.blockSignals(False)
        self._dirty(bool(self.store.dirty))

    def _dirty(self, dirty: bool) -> None:
        self.save.setEnabled(dirty)
        self.save.setText("Save masks *" if dirty else "Save masks")

    def _chosen(self, index: int) -> None:
        v = self.versions.itemData(index)
        if v is not None and v != self.store.version:
            self.versionChosen.emit(int(v))
