"""Every keyboard shortcut of the studio, declared once (napari's keybindings-as-data).

The main window builds its QActions from this table and the shortcuts sheet lists it, so the two
can never disagree. Conventions follow NLEs (DESIGN.md §6): J/K/L shuttle, I/O in/out, etc.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    action: str  # id of the handler (MainWindow.act_<action>)
    keys: tuple[str, ...]  # QKeySequence strings
    label: str
    group: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("play_pause", ("Space",), "Play / pause", "Playback"),
    Shortcut("shuttle_back", ("J",), "Play backwards (again: faster)", "Playback"),
    Shortcut("stop", ("K",), "Stop", "Playback"),
    Shortcut("shuttle_forward", ("L",), "Play forwards (again: faster)", "Playback"),
    Shortcut("prev_frame", ("Left",), "Previous frame", "Playback"),
    Shortcut("next_frame", ("Right",), "Next frame", "Playback"),
    Shortcut("back_10", ("Shift+Left",), "Back 10 frames", "Playback"),
    Shortcut("forward_10", ("Shift+Right",), "Forward 10 frames", "Playback"),
    Shortcut("go_in", ("Home",), "Go to the in point", "Playback"),
    Shortcut("go_out", ("End",), "Go to the out point", "Playback"),
    Shortcut("mark_in", ("I",), "Mark in at the playhead", "Range"),
    Shortcut("mark_out", ("O",), "Mark out at the playhead", "Range"),
    Shortcut("clear_range", ("Alt+X",), "Clear in and out", "Range"),
    Shortcut("brush", ("B",), "Brush: paint the mask", "Masks"),
    Shortcut("eraser", ("E",), "Eraser: remove from the mask", "Masks"),
    Shortcut("smaller_brush", ("[",), "Smaller brush", "Masks"),
    Shortcut("bigger_brush", ("]",), "Bigger brush", "Masks"),
    Shortcut("undo", ("Ctrl+Z",), "Undo the last stroke", "Masks"),
    Shortcut("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "Masks"),
    Shortcut("save_masks", ("Ctrl+S",), "Save corrections as a new mask version", "Masks"),
    Shortcut("compute_masks", ("Ctrl+M",), "Compute masks for the range", "Engine"),
    Shortcut("render", ("Ctrl+R",), "Render the range", "Engine"),
    Shortcut("view_source", ("1",), "View: source", "View"),
    Shortcut("view_overlay", ("2",), "View: mask overlay", "View"),
    Shortcut("view_result", ("3",), "View: result", "View"),
    Shortcut("view_wipe", ("4",), "View: wipe compare", "View"),
    Shortcut("open", ("Ctrl+O",), "Open a clip", "File"),
    Shortcut("export_mp4", ("Ctrl+E",), "Export the render as MP4", "File"),
    Shortcut("shortcuts_sheet", ("?", "F1"), "Show this sheet", "Help"),
    Shortcut("quit", ("Ctrl+Q",), "Quit", "File"),
)

BY_ACTION = {s.action: s for s in SHORTCUTS}


def conflicts() -> list[str]:
    """Keys bound twice (a test keeps this empty)."""
    seen: dict[str, str] = {}
    out = []
    for s in SHORTCUTS:
        for k in s.keys:
            if k in seen:
                out.append(f"{k}: {seen[k]} and {s.action}")
            seen[k] = s.action
    return out
