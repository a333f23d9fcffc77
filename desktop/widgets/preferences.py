"""Preferences: how the studio finds or starts its engine. Stored in QSettings; used on the next
connect (Engine ▸ Reconnect)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from desktop.client.connection import EngineOptions
from desktop.settings import StudioSettings


class Preferences(QDialog):
    def __init__(self, settings: StudioSettings, options: EngineOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings, self.options = settings, options
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)
        self.model = QLineEdit(options.model, objectName="pref-model")
        self.model.setPlaceholderText("shapes (the shipped model)")
        self.model.setToolTip("Model folder or cache id for an engine the studio starts (recast-engine serve --model)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.runtime = QLineEdit(str(options.runtime_dir), objectName="pref-runtime")
        self.runtime.setToolTip("Where the engine keeps its socket and engine.json (default $XDG_RUNTIME_DIR/recast)")
        form.addRow("Engine folder", self.runtime)
        self.start = QCheckBox("Start an engine when none is running (and stop it on exit)", objectName="pref-start")
        self.start.setChecked(options.start_if_missing)
        form.addRow("", self.start)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder (diffusers layout)")
        if folder:
            self.model.setText(folder)

    def accept(self) -> None:
        self.options.model = self.model.text().strip()
        self.options.runtime_dir = Path(self.runtime.text().strip() or self.options.runtime_dir).expanduser()
        self.options.start_if_missing = self.start.isChecked()
        self.settings.set("engine/model", self.options.model)
        self.settings.set("engine/runtime_dir", str(self.options.runtime_dir))
        self.settings.set("engine/start_if_missing", self.options.start_if_missing)
        super().accept()
