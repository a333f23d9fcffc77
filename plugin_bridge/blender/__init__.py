"""Recast for Blender's Video Sequencer: edit the selected strip's frames, get the result one channel up.

Why it looks like this: Blender's Python has no grpcio, so the add-on runs `recast-bridge json` as
a child process and talks JSON lines to it (bridge_process.py). In the UI the operator is modal — a
timer drains the bridge's events into a progress bar, Esc cancels the job — so Blender never
blocks; in background mode (`blender -b`, or bpy as a module) it runs to the end in place. Only
settings the user touched are sent; everything else is the engine's default. Version differences
(`sequences` in 3.x, `strips` in 4.4+) live in strips.py.

The command the add-on runs is never scene data: a .blend file travels between users, and a
command stored in it would run on a click, past Blender's auto-run protection. It comes from the
add-on's preferences (kept in the user's own userpref.blend), the installer's config.json, or
$RECAST_BRIDGE (bridge_process.default_command).
"""

import json
import os
import re
import time
import uuid

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import settings_props, strips
from .bridge_process import BridgeFailed, BridgeProcess, default_command, edit_request, outcome, run_blocking

bl_info = {
    "name": "Recast",
    "author": "Recast",
    "version": (0, 1, 0),
    "blender": (3, 0, 0),
    "location": "Sequencer > Sidebar > Recast",
    "description": "Replace an object in the selected strip with the object of a target image",
    "category": "Sequencer",
}

# Blender reads the property annotations below at class creation: no `from __future__ import annotations`,
# and Blender 3.0–3.6 run Python 3.9/3.10, so `X | None` annotations stay in quotes.
# Edits in flight in this Blender session (module state, so a crash never leaves a saved file "busy").
_BUSY: set = set()
CANCELLED = "cancelled"
# Settings on the panel, sent only when the user changed them (RNA `is_property_set`), named as in
# `recast-engine edit`; their defaults, ranges and descriptions come from the settings table.
PIPELINE_SETTINGS = settings_props.PANEL_SETTINGS
_PROPERTIES = {"int": IntProperty, "float": FloatProperty, "bool": BoolProperty}


class RecastSettings(bpy.types.PropertyGroup):
    source_prompt: StringProperty(name="Source prompt", description="Describes the clip as it is")
    target_prompt: StringProperty(name="Target prompt", description="Describes the clip after the edit")
    target_image: StringProperty(name="Target image", subtype="FILE_PATH",
                                 description="Image of the object to put into the clip")
    extra_settings: StringProperty(name="More settings (JSON)", default="",
                                   description='Other engine settings as JSON, e.g. {"window": 8}')
    status: StringProperty(name="Status", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    last_job: StringProperty(default="")
    last_output: StringProperty(default="")


for _name, (_kind, _kwargs) in settings_props.property_specs(settings_props.load_table()).items():
    RecastSettings.__annotations__[_name] = _PROPERTIES[_kind](**_kwargs)  # read by register_class


class RecastPreferences(bpy.types.AddonPreferences):
    """Per-user settings of the add-on, saved in the user's preferences and never in a .blend file."""

    bl_idname = __package__

    bridge_command: StringProperty(name="Bridge command", default="",
                                   description="Command line of the JSON bridge (default: recast-bridge json)")

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop(self, "bridge_command")


def _configured_command(context: bpy.types.Context) -> str:
    """The bridge command from the add-on's preferences ("" when unset, or registered outside Blender's list)."""
    addon = context.preferences.addons.get(__package__)
    prefs = getattr(addon, "preferences", None)
    return prefs.bridge_command if prefs is not None else ""


def _editor(context: bpy.types.Context):  # noqa: ANN202
    scene = context.scene
    return scene.sequence_editor if scene is not None else None


def _request(context: bpy.types.Context, rng: strips.StripRange, rid: str) -> dict:
    s = context.scene.recast
    settings = {name: getattr(s, name) for name in PIPELINE_SETTINGS if s.is_property_set(name)}
    if s.extra_settings.strip():
        try:
            extra = json.loads(s.extra_settings)
        except ValueError as exc:
            raise BridgeFailed(f"More settings is not JSON ({exc})", "INVALID_ARGUMENT", "extra_settings") from None
        if not isinstance(extra, dict):
            raise BridgeFailed("More settings must be a JSON object", "INVALID_ARGUMENT", "extra_settings")
        settings.update(extra)
    for name in ("source_prompt", "target_prompt", "target_image"):
        if not getattr(s, name).strip():
            raise BridgeFailed(f"{name.replace('_', ' ')} is empty", "INVALID_ARGUMENT", name)
    fps = context.scene.render.fps / context.scene.render.fps_base
    first = rng.source[0] if isinstance(rng.source, list) else rng.source
    name = os.path.splitext(os.path.basename(first))[0]
    if isinstance(rng.source, list):  # plate.1001.png → plate
        name = re.sub(r"[._-]?\d+$", "", name) or name
    return edit_request(
        rid, source=rng.source, start_frame=rng.media_start, end_frame=rng.media_end, fps=rng.fps or fps,
        target_image=bpy.path.abspath(s.target_image), source_prompt=s.source_prompt, target_prompt=s.target_prompt,
        settings=settings, output={"format": "png"}, name=name,
    )


def _show_progress(s: RecastSettings, ev: dict) -> None:
    kind = ev.get("type")
    if kind == "progress" and ev.get("total"):
        s.progress = min(1.0, ev["step"] / ev["total"])
        s.status = f"{ev['stage']} {ev['step']}/{ev['total']}"
    elif kind == "queued":
        s.status = f"queued (position {ev.get('position', 0)})"
    elif kind == "accepted":
        s.last_job = ev.get("job_id", "")
        s.status = "accepted"


def _finish(context: bpy.types.Context, rng: strips.StripRange, result: dict):  # noqa: ANN201 - a strip
    s = context.scene.recast
    first = rng.source[0] if isinstance(rng.source, list) else rng.source
    name = f"{os.path.basename(first)} recast"
    strip = strips.place_result(_editor(context), rng, result["media"], result["files"], name)
    s.last_output = result["media"]
    s.last_job = result.get("job_id", s.last_job)
    s.status = f"done: {len(result['files'])} frames on channel {strip.channel}"
    s.progress = 1.0
    return strip


class SEQUENCER_OT_recast_edit(bpy.types.Operator):
    """Edit the active strip's frames with Recast and add the result on the channel above"""

    bl_idname = "sequencer.recast_edit"
    bl_label = "Recast Strip"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", default=False, description="Block until done (always so in background mode)")

    # Run state of the modal operator (plain attributes: annotations would be read as RNA properties).
    _bridge = None
    _timer = None
    _rid = ""
    _range = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        ed = _editor(context)
        strip = ed.active_strip if ed is not None else None
        return strip is not None and strip.type in {"MOVIE", "IMAGE"} and not _BUSY

    def _prepare(self, context: bpy.types.Context) -> "tuple[strips.StripRange, dict] | None":
        try:
            rng = strips.strip_range(_editor(context).active_strip, bpy.path.abspath)
            fps = context.scene.render.fps / context.scene.render.fps_base
            if rng.fps and abs(rng.fps - fps) > 0.01:
                self.report({"WARNING"}, f"the movie runs at {rng.fps:.3f} fps, the scene at {fps:.3f}: "
                            "frames are matched one to one")
            self._rid = f"blender-{uuid.uuid4().hex[:8]}"
            return rng, _request(context, rng, self._rid)
        except (BridgeFailed, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        prepared = self._prepare(context)
        if prepared is None:
            return {"CANCELLED"}
        rng, request = prepared
        if not (bpy.app.background or self.wait):
            return self._start_modal(context, rng, request)
        s = context.scene.recast
        try:
            command = default_command(_configured_command(context))
            result = run_blocking(command, request, lambda ev: _show_progress(s, ev))
        except BridgeFailed as exc:
            s.status = f"failed: {exc}"
            self.report({"ERROR"}, f"Recast: {exc}")
            return {"CANCELLED"}
        _finish(context, rng, result)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return self.execute(context)

    # --- modal (UI) ---------------------------------------------------------------------------------

    def _start_modal(self, context: bpy.types.Context, rng: strips.StripRange, request: dict) -> set[str]:
        s = context.scene.recast
        try:
            self._bridge = BridgeProcess(default_command(_configured_command(context)))
            self._bridge.send(request)
        except BridgeFailed as exc:
            self.report({"ERROR"}, f"Recast: {exc}")
            return {"CANCELLED"}
        self._range = rng
        _BUSY.add(self._rid)
        s.progress, s.status = 0.0, "starting"
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        s = context.scene.recast
        if event.type == "ESC" and self._bridge is not None:
            self._bridge.send({"id": f"{self._rid}-cancel", "op": "cancel", "target": self._rid})
            s.status = "cancelling"
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        assert self._bridge is not None and self._range is not None
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            try:
                ev = self._bridge.events.get_nowait()
            except Exception:
                break
            if ev is None:
                return self._end(context, f"the bridge stopped: {self._bridge.last_stderr()}")
            _show_progress(s, ev)
            context.window_manager.progress_update(int(s.progress * 100))
            try:
                done = outcome(ev, self._rid)
            except BridgeFailed as exc:
                return self._end(context, CANCELLED if exc.code == "CANCELLED" else str(exc))
            if done is not None:
                _finish(context, self._range, done)
                return self._end(context, None)
        for area in context.screen.areas if context.screen else []:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _end(self, context: bpy.types.Context, error: "str | None") -> set[str]:
        s = context.scene.recast
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
        wm.progress_end()
        if self._bridge is not None:
            self._bridge.stop(timeout=2.0)
        _BUSY.discard(self._rid)
        if error == CANCELLED:
            s.status = "cancelled"
            self.report({"WARNING"}, "Recast: cancelled")
            return {"CANCELLED"}
        if error:
            s.status = f"failed: {error}"
            self.report({"ERROR"}, f"Recast: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


class SEQUENCER_PT_recast(bpy.types.Panel):
    bl_label = "Recast"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Recast"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.recast
        col = self.layout.column()
        for name in ("source_prompt", "target_prompt", "target_image"):
            col.prop(s, name)
        box = col.box()
        for name in PIPELINE_SETTINGS:
            box.prop(s, name)
        box.prop(s, "extra_settings")
        col.operator(SEQUENCER_OT_recast_edit.bl_idname, icon="SEQUENCE")
        if s.status:
            col.label(text=s.status)
        if _BUSY:
            col.prop(s, "progress", slider=True)


CLASSES = (RecastPreferences, RecastSettings, SEQUENCER_OT_recast_edit, SEQUENCER_PT_recast)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.recast = PointerProperty(type=RecastSettings)


def unregister() -> None:
    del bpy.types.Scene.recast
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
