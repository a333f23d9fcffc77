"""The settings table (protos/settings_table.py) and everything built from it agree.

Each pipeline setting is declared once; the engine's dataclass, the wire message, both CLIs, the
studio's inspector and the Blender add-on's properties are derived from it. This checks each of them
against the table, so a copy that drifts (a UI default the engine no longer has) fails here.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from protos.recast.v1 import engine_pb2 as pb
from protos.settings_table import BY_NAME, EXTRA_FIELD, SETTINGS, table_json
from protos.settings_wire import SettingValueError, settings_from_message, settings_to_message

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = pb.EditSettings.DESCRIPTOR
CPP = {
    "int": {FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64},
    "float": {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE},
    "weights": {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE},
    "bool": {FieldDescriptor.CPPTYPE_BOOL},
    "choice": {FieldDescriptor.CPPTYPE_STRING},
}


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings if opt.startswith("--")}


def _sub(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def _values(s, offset: int = 0):  # noqa: ANN202 - a valid value of the setting that is not its default
    if s.kind == "bool":
        return not s.default
    if s.kind == "choice":
        return next(c for c in s.choices if c != s.default)
    if s.kind == "weights":
        return (0.2, 0.6, 0.2)
    lo, hi = s.ui_range()
    value = s.default + s.step if s.default + s.step <= hi else s.default - s.step
    return int(value) if s.kind == "int" else value


# --- the table itself -------------------------------------------------------------------------------


def test_the_table_is_consistent():
    assert len(BY_NAME) == len(SETTINGS)
    for s in SETTINGS:
        assert s.kind in CPP, s.name
        assert s.help and s.label and "default" not in s.help.lower(), s.name  # the default is shown beside it
        assert s.problem(s.default) is None, s.name
        if s.kind in ("int", "float", "weights"):
            lo, hi = s.ui_range()
            assert lo < hi and s.problem(lo if s.kind != "weights" else (lo,) * 3) is None, s.name
            assert s.problem(hi if s.kind != "weights" else (hi,) * 3) is None, s.name
            if s.kind != "weights":
                assert lo <= s.default <= hi, s.name
        if s.kind == "choice":
            assert s.default in s.choices and s.choices, s.name


# --- the contract -----------------------------------------------------------------------------------


def test_every_setting_is_its_proto_field():
    """Name, number and type of every field; and the message has no field the table does not declare."""
    declared = {EXTRA_FIELD[0]: EXTRA_FIELD[1]}
    for s in SETTINGS:
        for i, (name, number) in enumerate(s.proto):
            declared[name] = number
            field = DESCRIPTOR.fields_by_name.get(name)
            assert field is not None, f"{s.name}: no field {name} in EditSettings"
            assert field.number == number, f"{name} is field {field.number}, the table says {number}"
            if s.words and i == 1:  # the words' enum (mask_method)
                assert field.enum_type is not None, name
                assert set(s.words) <= {v.name.lower().removeprefix(name + "_") for v in field.enum_type.values}
            else:
                assert field.cpp_type in CPP[s.kind], f"{name}: wrong type for a {s.kind} setting"
                assert field.has_presence, f"{name} must be `optional`: unset means the engine's default"
        assert len(s.proto) == (3 if s.kind == "weights" else 2 if s.words else 1), s.name
        if s.kind != "weights":
            assert s.proto[0][0] == s.name, s.name
    assert {f.name: f.number for f in DESCRIPTOR.fields} == declared


def test_the_proto_repeats_no_defaults():
    text = (ROOT / "protos" / "recast" / "v1" / "engine.proto").read_text()
    body = text[text.index("message EditSettings {"):]
    body = body[:body.index("\n}")]
    assert not re.search(r"\bdefault\b", body, re.IGNORECASE), "defaults live in protos/settings_table.py"
    assert "protos/settings_table.py" in text[:text.index("message EditSettings {")]


def test_proto_dict_proto_round_trips():
    every = pb.EditSettings(mask_method=pb.MASK_METHOD_OTSU, extra={"future_knob": "[1, 2]"})
    for s in SETTINGS:
        value = _values(s)
        if s.kind == "weights":
            for (name, _), w in zip(s.proto, value):
                setattr(every, name, w)
        elif not s.words:  # a word (otsu) replaces the number: set one of the two, below
            setattr(every, s.name, value)
    values = settings_from_message(every)
    assert values["mask_threshold"] == "otsu" and values["future_knob"] == (1, 2)
    assert values["correction_weights"] == (0.2, 0.6, 0.2) and values["feather"] == _values(BY_NAME["feather"])
    assert settings_to_message(values) == every
    every.ClearField("mask_method")
    every.mask_threshold = 0.35
    assert settings_from_message(every)["mask_threshold"] == 0.35
    assert settings_to_message(settings_from_message(every)) == every
    for msg in (pb.EditSettings(), pb.EditSettings(steps=3, feather=0.02, framing="object")):
        assert settings_to_message(settings_from_message(msg)) == msg
    defaults = {s.name: s.default for s in SETTINGS}
    assert settings_from_message(settings_to_message(defaults)) == defaults
    with pytest.raises(SettingValueError) as info:
        settings_from_message(pb.EditSettings(correction_weight_prev=0.5))
    assert info.value.field == "settings.correction_weight_prev"


def test_the_daemon_reads_what_the_bridge_writes():
    from engine.daemon.runner import settings_from_proto
    from engine.settings import EditSettings

    assert settings_from_proto(settings_to_message({})) == EditSettings()
    changed = {s.name: _values(s) for s in SETTINGS if s.name != "mask_threshold"}
    engine = settings_from_proto(settings_to_message(changed))
    for name, value in changed.items():
        assert getattr(engine, name) == pytest.approx(value), name


# --- the engine -------------------------------------------------------------------------------------


def test_edit_settings_is_the_table():
    from engine.settings import EditSettings

    assert [f.name for f in fields(EditSettings)] == [s.name for s in SETTINGS]
    for f in fields(EditSettings):
        assert f.default is not MISSING and f.default == BY_NAME[f.name].default, f.name
    assert EditSettings().validate().to_dict() == {s.name: s.default for s in SETTINGS}
    assert EditSettings.from_dict({"steps": 3}).steps == 3


@pytest.mark.parametrize("s", [s for s in SETTINGS if s.kind in ("int", "float")], ids=lambda s: s.name)
def test_the_engine_checks_the_tables_ranges(s):
    from engine.errors import InputError
    from engine.settings import EditSettings

    base = {"window": 512, "overlap": 0} if s.name in ("window", "overlap") else {}
    for bound, is_open, outside in ((s.minimum, s.open_min, -1), (s.maximum, s.open_max, 1)):
        if bound is None:
            continue
        step = 1 if s.kind == "int" else 1e-6
        inside = bound - outside * step if is_open else bound
        if s.name == "overlap" and outside == 1:
            continue
        EditSettings(**{**base, s.name: type(s.default)(inside)}).validate()
        bad = bound if is_open else bound + outside * step
        with pytest.raises(InputError) as info:
            EditSettings(**{**base, s.name: type(s.default)(bad)}).validate()
        assert info.value.field == s.name and s.range_text() in str(info.value)


# --- both command lines -----------------------------------------------------------------------------


def _cli_parsers() -> dict[str, argparse.ArgumentParser]:
    from engine.cli import build_parser as engine_parser
    from plugin_bridge.cli import build_parser as bridge_parser

    engine = engine_parser()
    return {"recast-engine edit": _sub(engine, "edit"), "recast-engine demo": _sub(engine, "demo"),
            "recast-engine bench quality": _sub(engine, "bench", "quality"),
            "recast-bridge otio": _sub(bridge_parser(), "otio")}


@pytest.mark.parametrize("command", sorted(_cli_parsers()))
def test_the_command_lines_offer_exactly_the_tables_flags(command):
    parser = _cli_parsers()[command]
    flags = _flags(parser)
    group = next(g for g in parser._action_groups if g.title.startswith("pipeline settings"))
    in_group = {opt for a in group._group_actions for opt in a.option_strings if not opt.startswith("--no-")}
    assert in_group == {s.flag for s in SETTINGS}
    for s in SETTINGS:
        action = flags[s.flag]
        assert action.default is None  # unset: the engine's default applies
        assert action.help == f"{s.help} (default: {s.default_text()})"
        assert isinstance(action, argparse.BooleanOptionalAction) == (s.kind == "bool"), s.name
    given = parser.parse_args([*_required(command), "--steps", "3", "--no-cache", "--mask-threshold", "otsu",
                               "--correction-weights", "0.2,0.6,0.2"])
    from protos.settings_table import values_from_flags

    assert values_from_flags(given) == {"steps": 3, "cache": False, "mask_threshold": "otsu",
                                        "correction_weights": (0.2, 0.6, 0.2)}


def _required(command: str) -> list[str]:
    if command == "recast-engine edit":
        return ["v.mp4", "--target-image", "t.png", "--source-prompt", "a", "--target-prompt", "b", "--out", "o"]
    if command == "recast-bridge otio":
        return ["in.otio", "--clip", "0", "--target-image", "t.png", "--source-prompt", "a",
                "--target-prompt", "b", "--out-timeline", "o.otio"]
    return []


def test_engine_flags_left_unset_give_the_engines_defaults():
    from engine.cli.edit import settings_from_args
    from engine.settings import EditSettings

    args = _cli_parsers()["recast-engine demo"].parse_args([])
    assert settings_from_args(args) == EditSettings()


# --- the studio ---------------------------------------------------------------------------------------


def test_the_inspector_has_one_row_per_setting_with_the_tables_range_and_default(qapp):
    from PySide6.QtWidgets import QCheckBox, QComboBox

    from desktop.model.params import STUDIO_DEFAULTS, defaults, params_for, to_settings
    from desktop.model.recipe import Recipe
    from desktop.widgets.inspector import Inspector

    inspector = Inspector(Recipe())
    seed = BY_NAME["seed"]
    assert (inspector.seed.minimum(), inspector.seed.maximum()) == seed.ui_range()
    assert inspector.seed.value() == seed.default
    editors = dict(inspector.editors)
    for s in SETTINGS:
        if s.name == "seed":
            continue
        params = params_for(s)
        assert params and all(p.setting == s.name and p.advanced == s.advanced for p in params), s.name
        for p in params:
            w = editors.pop(p.name)
            assert s.help_sentence in w.toolTip(), p.name
            if s.kind == "bool":
                assert isinstance(w, QCheckBox) and w.isChecked() == s.default, p.name
            elif p.kind == "choice":
                words = list(s.choices) if s.kind == "choice" else ["threshold", *s.words]
                assert isinstance(w, QComboBox), p.name
                assert [w.itemText(i) for i in range(w.count())] == words
                studio = STUDIO_DEFAULTS.get(s.name, s.default)  # the studio's own default where it has one
                assert w.currentText() == (studio if s.kind == "choice" else "threshold")
            else:
                assert (w.minimum(), w.maximum()) == pytest.approx(s.ui_range()), p.name
                expected = s.default[params.index(p)] if s.kind == "weights" else s.default
                assert w.value() == pytest.approx(expected), p.name
    assert not editors, f"editors for no setting: {sorted(editors)}"
    # the engine's defaults are sent as unset; the studio's own defaults are always sent
    assert to_settings(defaults(), seed=0) == pb.EditSettings(seed=0, **STUDIO_DEFAULTS)


def test_the_studio_sends_changed_settings_as_the_wire_expects(qapp):
    from desktop.model.params import defaults, to_settings

    values = {**defaults(), "mask_method": "otsu", "correction_weight_self": 0.6, "correction_weight_prev": 0.2,
              "correction_weight_next": 0.2, "tune_steps": 4000, "mask_text_only": True, "correction_block": 2}
    msg = to_settings(values, seed=5)
    assert settings_from_message(msg) == {"seed": 5, "mask_threshold": "otsu", "correction_weights": (0.2, 0.6, 0.2),
                                          "tune_steps": 4000, "mask_text_only": True, "correction_block": 2,
                                          "mask_preset": "interactive"}


# --- the Blender add-on -------------------------------------------------------------------------------


def _settings_props():  # noqa: ANN202 - the add-on's bpy-free module, loaded by path as in Blender
    import importlib.util

    spec = importlib.util.spec_from_file_location("recast_settings_props",
                                                  ROOT / "plugin_bridge" / "blender" / "settings_props.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_blender_properties(specs: dict) -> None:
    for name, (kind, kw) in specs.items():
        s = BY_NAME[name]
        assert kind == s.kind and kw["default"] == s.default and kw["name"] == s.label, name
        assert kw["description"] == s.help_sentence, name
        if kind in ("int", "float"):
            lo, hi = s.ui_range()
            assert (kw["soft_min"], kw["soft_max"]) == pytest.approx((lo, hi)), name
            for key in ("min", "max"):
                if key in kw:
                    assert s.problem(type(s.default)(kw[key])) is None, f"{name}: Blender's {key} is not valid"
            assert ("min" in kw) == (s.minimum is not None) and ("max" in kw) == (s.maximum is not None), name


def test_blender_properties_come_from_the_table(tmp_path):
    props = _settings_props()
    _check_blender_properties(props.property_specs(props.load_table()))

    from plugin_bridge.blender_install import TABLE_FILE, install

    addon = install(tmp_path, ["recast-bridge", "json"])  # the standalone copy reads the JSON beside it
    assert TABLE_FILE == props.TABLE_FILE
    assert json.loads((addon / TABLE_FILE).read_text(encoding="utf-8")) == json.loads(json.dumps(table_json()))
    installed = props.load_table(str(addon))
    assert installed == props.load_table()
    _check_blender_properties(props.property_specs(installed))


def test_the_addon_declares_no_pipeline_property_of_its_own():
    tree = ast.parse((ROOT / "plugin_bridge" / "blender" / "__init__.py").read_text())
    group = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RecastSettings")
    own = {n.target.id for n in group.body if isinstance(n, ast.AnnAssign)}
    assert not own & set(BY_NAME), "pipeline properties are built from the settings table"
