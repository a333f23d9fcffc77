"""The add-on's pipeline settings, built from the settings table (protos/settings_table.py).

Why a JSON copy: the add-on runs in Blender's own Python, which has neither our packages nor
protobuf, and it is installed as a standalone copy. `recast-bridge blender-install` writes the table
as settings_table.json beside it; the repository's copy (tests, development) reads the table itself.
No bpy here, so a test can check the properties against the table without Blender.
"""

from __future__ import annotations

import json
import os

TABLE_FILE = "settings_table.json"
# The settings on the panel (the rest go in "More settings (JSON)"), named as in `recast-engine edit`;
# each is sent only when the user changed it.
PANEL_SETTINGS = ("steps", "seed", "guidance_scale", "tune_steps", "mask_threshold", "mask_dilate", "feather")
_INT32 = (-(2**31), 2**31 - 1)  # Blender's IntProperty


def load_table(folder: str | None = None) -> dict:
    """The table by setting name: the installed JSON copy, else the repository's table."""
    path = os.path.join(folder or os.path.dirname(os.path.abspath(__file__)), TABLE_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    else:
        from protos.settings_table import table_json

        rows = table_json()
    return {row["name"]: row for row in rows}


def property_specs(table: dict, names: tuple = PANEL_SETTINGS) -> dict:
    """{name: (kind, keyword arguments)} for bpy.props.IntProperty / FloatProperty / BoolProperty.

    Hard limits (min/max) are the valid range where it is closed; where a bound is open or absent the
    UI range stands in (`soft_min`/`soft_max` are always the UI range)."""
    out = {}
    for name in names:
        row = table[name]
        kind = row["kind"]
        if kind not in ("int", "float", "bool"):
            raise ValueError(f"{name}: a {kind} setting has no Blender property here")
        kw = {"name": row["label"], "description": row["description"], "default": row["default"]}
        if kind != "bool":
            lo, hi = row["ui"]
            if row["minimum"] is not None:
                kw["min"] = lo if row["open_min"] else row["minimum"]
            if row["maximum"] is not None:
                kw["max"] = hi if row["open_max"] else row["maximum"]
            kw["soft_min"], kw["soft_max"] = lo, hi
            if kind == "int":
                kw = {k: int(max(_INT32[0], min(_INT32[1], v))) if k in ("min", "max", "soft_min", "soft_max") else v
                      for k, v in kw.items()}
            else:
                kw = {k: float(v) if k in ("default", "min", "max", "soft_min", "soft_max") else v
                      for k, v in kw.items()}
        out[name] = (kind, kw)
    return out
