"""What the user asks the engine for: prompts, target image, parameters and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.model.params import defaults, to_settings
from protos.recast.v1 import engine_pb2 as pb


class Recipe(QObject):
    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.source_prompt = ""
        self.target_prompt = ""
        self.target_path: Path | None = None
        self.model = ""
        self.seed = 0
        self.values: dict[str, Any] = defaults()

    def update(self, **changes: Any) -> None:
        for k, v in changes.items():
            if k in self.values:
                self.values[k] = v
            elif hasattr(self, k):
                setattr(self, k, v)
            else:
                raise KeyError(k)
        self.changed.emit()

    def settings(self) -> pb.EditSettings:
        return to_settings(self.values, self.seed)

    def problems(self) -> list[str]:
        """What is missing before a job can be sent, phrased for the user."""
        out = []
        if not self.source_prompt.strip():
            out.append("Describe the object to replace (source prompt).")
        if not self.target_prompt.strip():
            out.append("Describe the result (target prompt).")
        if self.target_path is None:
            out.append("Drop a target image on the inspector.")
        elif not Path(self.target_path).is_file():
            out.append(f"The target image {self.target_path} does not exist.")
        return out
