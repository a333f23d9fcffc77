"""The inspector: prompts, target image, model, parameters (defaults and tooltips) and seed.

Built from the settings table (protos/settings_table.py) through desktop.model.params: one row per
setting, its range, default and help from the table, the advanced ones in an advanced section. Bound
both ways to the Recipe: widget edits update the recipe, recipe changes (e.g. restored settings)
update the widgets.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.model.params import PARAMS, Param, params_for
from desktop.model.recipe import Recipe
from desktop.widgets.target_well import TargetWell
from protos.settings_table import BY_NAME, SETTINGS


class Inspector(QWidget):
    computeMasks = Signal()
    render = Signal()

    def __init__(self, recipe: Recipe, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recipe = recipe
        self.editors: dict[str, QWidget] = {}
        self._syncing = False
        lay = QVBoxLayout(self)

        prompts = QFormLayout()
        self.source_prompt = QLineEdit(objectName="source-prompt")
        self.source_prompt.setPlaceholderText("a red circle on a striped navy background")
        self.source_prompt.setToolTip("Describe the object to replace and its surroundings, as it is in the clip.")
        self.target_prompt = QLineEdit(objectName="target-prompt")
        self.target_prompt.setPlaceholderText("a blue star on a striped navy background")
        self.target_prompt.setToolTip("Describe the result: the new object in the same surroundings.")
        prompts.addRow("Source", self.source_prompt)
        prompts.addRow("Target", self.target_prompt)
        lay.addLayout(prompts)

        self.target = TargetWell()
        lay.addWidget(self.target)

        form = QFormLayout()
        self.model = QComboBox(objectName="model")
        self.model.setToolTip("The model the engine has loaded. Start the engine with --model to use another.")
        form.addRow("Model", self.model)
        seed_row = QHBoxLayout()
        seed = BY_NAME["seed"]
        lo, hi = (int(x) for x in seed.ui_range())
        self.seed = QSpinBox(objectName="seed")
        self.seed.setRange(lo, hi)
        self.seed.setValue(seed.default)
        self.seed.setToolTip(f"{seed.help_sentence} Change it for a different variation.")
        dice = QPushButton("Random")
        dice.setToolTip("A random seed")
        dice.setFixedWidth(70)
        dice.clicked.connect(lambda: self.seed.setValue(random.randrange(lo, hi)))
        seed_row.addWidget(self.seed)
        seed_row.addWidget(dice)
        form.addRow(seed.label, seed_row)

        self.advanced = QCheckBox("Advanced parameters", objectName="show-advanced")
        adv_inner = QWidget()
        adv_form = QFormLayout(adv_inner)
        adv_form.setContentsMargins(12, 0, 0, 0)
        for s in SETTINGS:
            if s.name == "seed":
                continue
            target = adv_form if s.advanced else form
            params = params_for(s)
            if s.kind == "weights":  # one row of three numbers (previous, current, next frame)
                row = QHBoxLayout()
                for p in params:
                    row.addWidget(self._editor(p))
                target.addRow(s.label, row)
            else:
                for p in params:
                    target.addRow(p.label, self._editor(p))
        lay.addLayout(form)
        adv_inner.setVisible(False)
        self.advanced.toggled.connect(adv_inner.setVisible)
        lay.addWidget(self.advanced)
        lay.addWidget(adv_inner)

        reset = QPushButton("Reset parameters to defaults")
        reset.clicked.connect(self.reset_defaults)
        lay.addWidget(reset)
        buttons = QHBoxLayout()
        self.masks_button = QPushButton("Compute masks", objectName="compute-masks")
        self.masks_button.setToolTip("Ask the engine for masks of the in/out range (Ctrl+M)")
        self.render_button = QPushButton("Render", objectName="render")
        self.render_button.setToolTip("Render the in/out range with the current masks (Ctrl+R)")
        self.masks_button.clicked.connect(self.computeMasks)
        self.render_button.clicked.connect(self.render)
        buttons.addWidget(self.masks_button)
        buttons.addWidget(self.render_button)
        lay.addLayout(buttons)
        lay.addStretch(1)

        self.source_prompt.textChanged.connect(lambda t: self._push(source_prompt=t))
        self.target_prompt.textChanged.connect(lambda t: self._push(target_prompt=t))
        self.seed.valueChanged.connect(lambda v: self._push(seed=int(v)))
        self.model.currentTextChanged.connect(lambda t: self._push(model=t))
        self.target.chosen.connect(lambda p: self._push(target_path=Path(p)))
        recipe.changed.connect(self.sync_from_recipe)
        self.sync_from_recipe()

    def _editor(self, p: Param) -> QWidget:
        tip = p.tooltip
        if p.kind == "bool":
            w: Any = QCheckBox()
            w.toggled.connect(lambda v, n=p.name: self._push(**{n: bool(v)}))
        elif p.kind == "choice":
            w = QComboBox()
            w.addItems(list(p.choices))
            w.currentTextChanged.connect(lambda v, n=p.name: self._push(**{n: v}))
        elif p.kind == "int":
            w = QSpinBox()
            w.setRange(int(p.minimum), int(p.maximum))
            w.valueChanged.connect(lambda v, n=p.name: self._push(**{n: int(v)}))
        else:
            w = QDoubleSpinBox()
            decimals = max(2, len(f"{p.step:g}".split(".")[-1]) if "." in f"{p.step:g}" else 2)
            w.setDecimals(6 if p.step < 1e-3 else decimals)
            w.setRange(p.minimum, p.maximum)
            w.setSingleStep(p.step)
            w.valueChanged.connect(lambda v, n=p.name: self._push(**{n: float(v)}))
        w.setObjectName(f"param-{p.name}")
        w.setToolTip(tip)
        self.editors[p.name] = w
        return w

    def _push(self, **changes: Any) -> None:
        if not self._syncing:
            self.recipe.update(**changes)

    def sync_from_recipe(self) -> None:
        r = self.recipe
        self._syncing = True
        try:
            for edit, text in ((self.source_prompt, r.source_prompt), (self.target_prompt, r.target_prompt)):
                if edit.text() != text:
                    edit.setText(text)
                    edit.setCursorPosition(0)  # show the start of a restored prompt
            self.seed.setValue(r.seed)
            for name, w in self.editors.items():
                v = r.values[name]
                if isinstance(w, QCheckBox):
                    w.setChecked(bool(v))
                elif isinstance(w, QComboBox):
                    w.setCurrentText(str(v))
                else:
                    w.setValue(v)
            self.target.show_path(r.target_path)
        finally:
            self._syncing = False

    def reset_defaults(self) -> None:
        self.recipe.update(**{p.name: p.default for p in PARAMS})

    def set_models(self, names: list[str], active: str) -> None:
        """The engine's models; only the loaded one can run jobs (the contract has no per-job model),
        the others are listed greyed out — Preferences picks the model of an engine the studio starts."""
        if [self.model.itemData(i) for i in range(self.model.count())] == names:
            return
        self._syncing = True
        self.model.clear()
        for name in names:
            self.model.addItem(name if name == active else f"{name} (not loaded)", name)
            if name != active:
                self.model.model().item(self.model.count() - 1).setEnabled(False)
        self.model.setCurrentIndex(max(0, names.index(active)) if active in names else 0)
        self._syncing = False
