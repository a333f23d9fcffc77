"""Sequencer strips across Blender versions: which media frames a strip shows, and where results go.

Why a module of its own: Blender 4.4 renamed the sequencer's `sequences` collections to `strips`
(and 5.0 removed the old names), while 3.x only has `sequences`. Everything version-dependent is
here, written against whichever attribute exists, so the operator code is the same everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


def top_level(editor: Any) -> Any:
    """The editor's top-level strip collection: `strips` (4.4+) or `sequences` (3.x–4.3)."""
    coll = getattr(editor, "strips", None)
    return coll if coll is not None else editor.sequences


def all_strips(editor: Any) -> Any:
    coll = getattr(editor, "strips_all", None)
    return coll if coll is not None else editor.sequences_all


@dataclass
class StripRange:
    """What a strip shows: media frames [media_start, media_end) at timeline frames [frame_start, …)."""

    source: str | list[str]  # absolute path of the movie or single image, or an image sequence's files
    media_start: int
    media_end: int
    frame_start: int  # first timeline frame shown (frame_final_start)
    channel: int
    fps: float  # the media's own frame rate (0 if unknown)
    duration: int  # timeline frames the strip covers (a still covers many with one media frame)

    @property
    def count(self) -> int:
        return self.media_end - self.media_start


def strip_range(strip: Any, abspath: Any = os.path.abspath) -> StripRange:
    """The media frames behind a movie or image-sequence strip (trims and hold offsets included).

    A one-image strip is a still: one media frame shown for the strip's whole length.
    """
    if strip.type not in ("MOVIE", "IMAGE"):
        raise ValueError(f"select a movie or image strip (this one is {strip.type})")
    first = int(strip.frame_final_start)
    count = int(strip.frame_final_duration)
    # frame_start is where media frame 0 would sit; the hold offset shifts the content (3.x–4.x).
    media_start = first - int(strip.frame_start) + int(getattr(strip, "animation_offset_start", 0) or 0)
    if strip.type == "MOVIE":
        return StripRange(abspath(strip.filepath), media_start, media_start + count, first, int(strip.channel),
                          float(getattr(strip, "fps", 0.0) or 0.0), count)
    folder = abspath(strip.directory)
    files = [abspath(os.path.join(folder, e.filename)) for e in strip.elements]
    if len(files) == 1:
        return StripRange(files[0], 0, 1, first, int(strip.channel), 0.0, count)
    if media_start < 0 or media_start + count > len(files):
        raise ValueError("the strip shows frames past its images (held frames): trim it to its images first")
    return StripRange(files, media_start, media_start + count, first, int(strip.channel), 0.0, count)


def free_channel(editor: Any, above: int, start: int, end: int) -> int:
    """The lowest channel above `above` with nothing in timeline frames [start, end)."""
    busy: dict[int, list[tuple[int, int]]] = {}
    for s in all_strips(editor):
        busy.setdefault(int(s.channel), []).append((int(s.frame_final_start), int(s.frame_final_end)))
    channel = above + 1
    while any(a < end and start < b for a, b in busy.get(channel, [])):
        channel += 1
    return channel


def place_result(editor: Any, rng: StripRange, folder: str, files: list[str], name: str) -> Any:
    """An image strip of the edited frames on the free channel above, starting on the source's first frame."""
    if not files:
        raise ValueError("the edit returned no frames")
    channel = free_channel(editor, rng.channel, rng.frame_start, rng.frame_start + max(len(files), rng.duration))
    coll = top_level(editor)
    strip = coll.new_image(name=name, filepath=os.path.join(folder, files[0]), channel=channel,
                           frame_start=rng.frame_start)
    for f in files[1:]:
        strip.elements.append(f)
    if len(files) == 1 and rng.duration > 1:  # a still: hold it as long as the source strip
        strip.frame_final_duration = rng.duration
    return strip
