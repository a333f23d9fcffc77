"""The target image well: drop an image (or click to choose one) and see it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import QFileDialog, QLabel, QWidget

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def image_path_from_drop(event: QDropEvent | QDragEnterEvent) -> Path | None:
    for url in event.mimeData().urls():
        p = Path(url.toLocalFile())
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    return None


class TargetWell(QLabel):
    chosen = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("target-well")
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(140, 110)
        self.setStyleSheet("QLabel#target-well { border: 2px dashed #777; border-radius: 6px; color: #aaa; }")
        self.setToolTip("The object the edit should put in the clip. Drop an image here or click to choose one.")
        self.show_path(None)

    def show_path(self, path: Path | None) -> None:
        if path is None:
            self.setPixmap(QPixmap())
            self.setText("Drop the target image here\n(or click to choose)")
            return
        img = QImage(str(path))
        if img.isNull():
            self.setText(f"Cannot read\n{Path(path).name}")
            return
        self.setPixmap(QPixmap.fromImage(img).scaled(self.width() - 8, self.height() - 8,
                                                     Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation))
        self.setToolTip(str(path))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if image_path_from_drop(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        p = image_path_from_drop(event)
        if p is not None:
            event.acceptProposedAction()
            self.chosen.emit(p)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        name, _ = QFileDialog.getOpenFileName(self, "Target image", "",
                                              "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)")
        if name:
            self.chosen.emit(Path(name))
