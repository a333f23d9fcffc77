"""`recast-bridge otio`: edit one clip of an editor's timeline and hand back a conformed timeline.

Why through OpenTimelineIO: one lossless core model, with lossy adapters at the edge (native
.otio, EDL, FCP XML for Premiere, Kdenlive, and Resolve's OTIO export), so one conform serves every
NLE. The rules that make it safe for an editor:
- frame-exact: the edit covers exactly the clip's `source_range` (or the part inside the in/out
  marks), counted in the media's frames, also for clips that start mid-media and 29.97/23.976 fps;
- the edited clip lands on exactly the record frames of the original, on a new track above it
  (default) or relinked in place (`--replace`);
- nothing is overwritten: media goes into a new folder beside the source, the timeline to a new
  file; the output timeline is built once with a placeholder before any rendering, so an adapter
  that cannot hold the result (an EDL has one video track) fails in a second, not after the render.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from plugin_bridge.errors import InvalidArgument
from plugin_bridge.sequence import MAX_SEQUENCE_IMAGES

if TYPE_CHECKING:
    import opentimelineio as otio

    from plugin_bridge.client import RecastClient
    from plugin_bridge.edit import EditResult

EDL_SUFFIXES = (".edl",)
TEXT_ADAPTERS = ("otio_json", "cmx_3600", "fcp_xml", "fcpx_xml", "kdenlive")


def _otio():  # noqa: ANN202 - imported lazily: `recast-bridge json` never needs it
    import opentimelineio

    return opentimelineio


# --- reading and selecting ---------------------------------------------------------------------------


def smpte_rate(rate: float) -> float:
    """29.97 → 30000/1001 (what SMPTE timecode maths and the adapters expect)."""
    ot = _otio().opentime
    return ot.RationalTime.nearest_smpte_timecode_rate(rate) if rate > 0 else rate


def read_timeline(path: str | os.PathLike, rate: float | None = None) -> otio.schema.Timeline:
    """Any timeline an installed adapter reads. EDLs hold no rate: `rate` (default 24) is used."""
    otio = _otio()
    p = Path(path)
    if not p.is_file():
        raise InvalidArgument(f"timeline: {p} does not exist or is not a file")
    kwargs: dict[str, Any] = {}
    if p.suffix.lower() in EDL_SUFFIXES:
        kwargs["rate"] = smpte_rate(rate or 24.0)
    try:
        result = otio.adapters.read_from_file(str(p), **kwargs)
    except Exception as exc:  # adapters raise many kinds; the user needs the file and the reason
        raise InvalidArgument(f"timeline: {p} could not be read ({type(exc).__name__}: {exc})") from None
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise InvalidArgument(f"timeline: {p} holds {len(timelines)} timelines; export just one")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise InvalidArgument(f"timeline: {p} holds a {type(result).__name__}, not a timeline")
    return result


@dataclass
class Selection:
    """The part of one clip to edit, in the stack's (record) time and in the clip's media time."""

    track_index: int  # in timeline.tracks (bottom to top)
    child_index: int  # in that track
    clip: Any  # otio.schema.Clip
    record: Any  # TimeRange in timeline.tracks' time
    source: Any  # TimeRange in the clip's source_range time
    whole: bool  # the whole clip (not a marked part of it)


def video_clips(timeline: otio.schema.Timeline) -> list[tuple[int, int, Any]]:
    """(track index, child index, clip) of every clip on enabled video tracks, bottom track first."""
    otio = _otio()
    out = []
    for ti, track in enumerate(timeline.tracks):
        if not isinstance(track, otio.schema.Track) or track.kind != otio.schema.TrackKind.Video:
            continue
        if not track.enabled:
            continue
        for ci, child in enumerate(track):
            if isinstance(child, otio.schema.Clip) and child.enabled:
                out.append((ti, ci, child))
    return out


def record_range(timeline: otio.schema.Timeline, track_index: int, clip: Any) -> Any:
    """Where a clip sits in the stack's time (honours a track's own offset, as EDLs use)."""
    track = timeline.tracks[track_index]
    return track.transformed_time_range(clip.range_in_parent(), timeline.tracks)


def parse_mark(text: str, rate: float, start: Any | None) -> Any:
    """A timecode (HH:MM:SS:FF, ';' for drop-frame) or a frame number, as stack time."""
    ot = _otio().opentime
    text = text.strip()
    if text.lstrip("-").isdigit():
        return ot.RationalTime(int(text), rate)
    try:
        t = ot.from_timecode(text, smpte_rate(rate))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"in: {text!r} is not a timecode HH:MM:SS:FF or a frame number ({exc})") from None
    t = ot.RationalTime(round(t.value_rescaled_to(rate)), rate)
    if start is not None:
        t = t - start.rescaled_to(rate)
    return t


def _frames(t: Any, rate: float) -> int:
    return round(t.value_rescaled_to(rate))


def select_clip(
    timeline: otio.schema.Timeline, clip: str | None = None, mark_in: str | None = None, mark_out: str | None = None,
) -> Selection:
    """By name (or 0-based index among video clips), or the topmost clip under the in/out marks."""
    otio = _otio()
    clips = video_clips(timeline)
    if not clips:
        raise InvalidArgument("clip: the timeline has no clips on an enabled video track")
    if clip is not None:
        if mark_in or mark_out:
            raise InvalidArgument("clip: give --clip or --in/--out, not both")
        named = [c for c in clips if c[2].name == clip]
        if len(named) > 1:
            where = ", ".join(f"track {t} item {i}" for t, i, _ in named)
            raise InvalidArgument(f"clip: {len(named)} clips are named {clip!r} ({where}); select by index")
        if not named and clip.isdigit() and int(clip) < len(clips):
            named = [clips[int(clip)]]
        if not named:
            names = ", ".join(repr(c[2].name) for c in clips[:20])
            raise InvalidArgument(
                f"clip: no video clip named {clip!r}; clips: {names} (or an index 0..{len(clips) - 1})"
            )
        ti, ci, item = named[0]
        rec = record_range(timeline, ti, item)
        return Selection(ti, ci, item, rec, item.trimmed_range(), True)

    if not (mark_in and mark_out):
        raise InvalidArgument("clip: select a clip with --clip NAME_OR_INDEX, or mark it with --in and --out")
    rate = timeline.duration().rate
    t_in = parse_mark(mark_in, rate, timeline.global_start_time)
    t_out = parse_mark(mark_out, rate, timeline.global_start_time)
    if t_out <= t_in:
        raise InvalidArgument(f"out: {mark_out} is not after the in mark {mark_in} (the out mark is exclusive)")
    marks = otio.opentime.range_from_start_end_time(t_in, t_out)
    best: list[tuple[int, int, Any, Any]] = []
    for ti, ci, item in clips:
        rec = record_range(timeline, ti, item)
        if rec.intersects(marks):
            if best and best[0][0] != ti:
                if ti > best[0][0]:
                    best = []
                else:
                    continue
            best.append((ti, ci, item, rec))
    if not best:
        raise InvalidArgument(f"in: no video clip lies between {mark_in} and {mark_out}")
    if len(best) > 1:
        names = ", ".join(repr(b[2].name) for b in best)
        raise InvalidArgument(f"in: the marks span {len(best)} clips ({names}) on track {best[0][0]}; mark inside one")
    ti, ci, item, rec = best[0]
    start = max(rec.start_time, t_in)
    end = min(rec.end_time_exclusive(), t_out)
    part = otio.opentime.range_from_start_end_time(start, end)
    src = item.trimmed_range()
    offset = part.start_time - rec.start_time
    source = otio.opentime.TimeRange(
        src.start_time + offset.rescaled_to(src.start_time.rate), part.duration.rescaled_to(src.duration.rate)
    )
    whole = part.start_time == rec.start_time and part.duration == rec.duration
    return Selection(ti, ci, item, part, source, whole)


# --- media ------------------------------------------------------------------------------------------


def url_to_path(url: str, base: Path) -> Path:
    """file:// URLs (with or without localhost), plain paths, and paths relative to the timeline."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        path = unquote(parsed.path)
        if parsed.netloc and parsed.netloc not in ("", "localhost"):
            path = f"//{parsed.netloc}{path}"
        return Path(path)
    p = Path(unquote(url)) if "%" in url and not Path(url).exists() else Path(url)
    return p if p.is_absolute() else (base / p)


def path_to_url(path: Path, like: str) -> str:
    """The same style as the source's reference: a file:// URL if it used one, else a plain path."""
    return Path(path).absolute().as_uri() if like.startswith("file:") else str(Path(path).absolute())


def source_media(
    sel: Selection, timeline_path: Path, override: str | os.PathLike | None = None
) -> Path | list[Path]:
    """The selected clip's media: a file (`override` first, for EDLs that name only a reel), or the
    list of an image sequence's files in order."""
    otio = _otio()
    ref = sel.clip.media_reference
    if override:
        path = Path(override)
    elif isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        path = url_to_path(ref.target_url, timeline_path.parent)
    elif isinstance(ref, otio.schema.ImageSequenceReference):
        if ref.available_range is None:
            raise InvalidArgument(f"clip: the image sequence of {sel.clip.name!r} has no available range (length)")
        count = ref.number_of_images_in_sequence()
        if not 0 < count <= MAX_SEQUENCE_IMAGES:
            raise InvalidArgument(f"clip: the image sequence of {sel.clip.name!r} has {count} images by its "
                                  f"available range; a sequence may have 1 to {MAX_SEQUENCE_IMAGES}: fix the range")
        return [url_to_path(ref.target_url_for_image_number(i), timeline_path.parent) for i in range(count)]
    else:
        kind = type(ref).__name__ if ref is not None else "no media"
        raise InvalidArgument(f"clip: {sel.clip.name!r} has {kind}, not a media file (ExternalReference) to edit; "
                              "give its file with --source-media")
    if not path.is_file():
        raise InvalidArgument(f"clip: media of {sel.clip.name!r} is missing: {path}")
    return path


def media_frame_range(sel: Selection, fps: float, frame_count: int, media_start: str | None = None) -> tuple[int, int]:
    """The clip's source range as media frames [start, end), counted at the media's own rate.

    The origin is the media's first frame: `--media-start` if given, else the reference's
    `available_range` start (a file's start timecode), else 0.
    """
    ot = _otio().opentime
    src = sel.source
    rate = src.start_time.rate
    ref = sel.clip.media_reference
    if media_start:
        origin = parse_mark(media_start, rate, None)
    elif getattr(ref, "available_range", None) is not None:
        origin = ref.available_range.start_time
    else:
        origin = ot.RationalTime(0, rate)
    start = round((src.start_time - origin).to_seconds() * fps)
    count = round(src.duration.to_seconds() * fps)
    if count <= 0:
        raise InvalidArgument(f"clip: {sel.clip.name!r} has an empty source range")
    if start < 0 or start + count > frame_count:
        raise InvalidArgument(
            f"clip: {sel.clip.name!r} uses media frames {start}..{start + count} but its media has {frame_count} "
            f"frames (0..{frame_count}); if the media's timecode does not start at the timeline's origin, "
            "give --media-start TC"
        )
    return start, start + count


# --- the new timeline --------------------------------------------------------------------------------


def _check_effects(clip: Any) -> None:
    otio = _otio()
    for fx in clip.effects:
        if isinstance(fx, otio.schema.TimeEffect):
            raise InvalidArgument(f"clip: {clip.name!r} has a time effect ({fx.effect_name or type(fx).__name__}); "
                                  "remove speed changes and freeze frames before conforming")


def edited_reference(media: str, fmt: str, like_url: str, duration: Any) -> Any:
    """A reference to the edited media whose frames start at 0 and last the edited duration."""
    otio = _otio()
    rate = duration.rate
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), duration)
    if fmt == "png":
        folder = Path(media)
        return otio.schema.ImageSequenceReference(
            target_url_base=path_to_url(folder, like_url).rstrip("/") + "/",
            name_prefix="frame_", name_suffix=".png", start_frame=0, frame_step=1, rate=rate,
            frame_zero_padding=6, available_range=available,
        )
    return otio.schema.ExternalReference(target_url=path_to_url(Path(media), like_url), available_range=available)


def _fresh_identity(clip: Any) -> None:
    """Drop adapter metadata that names the *source* media (an EDL reel, FCP ids) from a relinked clip."""
    for key, fields in (("cmx_3600", ("reel", "comments")), ("fcp_xml", ("@id",))):
        md = clip.metadata.get(key)
        if md is not None:
            for f in fields:
                if f in md:
                    del md[f]


def build_timeline(
    timeline: otio.schema.Timeline, sel: Selection, reference: Any, replace: bool = False,
    track_name: str = "Recast", metadata: Mapping[str, Any] | None = None,
) -> otio.schema.Timeline:
    """A copy of `timeline` with the edited clip added; the input object is left untouched."""
    otio = _otio()
    ot = otio.opentime
    new = timeline.deepcopy()
    track = new.tracks[sel.track_index]
    original = track[sel.child_index]
    rate = sel.source.duration.rate
    edited = original.deepcopy()
    edited.media_reference = reference
    edited.source_range = ot.TimeRange(ot.RationalTime(0, rate), sel.source.duration)
    old_start = sel.source.start_time
    for marker in edited.markers:  # markers live in media time: move them with the relink
        marker.marked_range = ot.TimeRange(marker.marked_range.start_time - old_start, marker.marked_range.duration)
    _fresh_identity(edited)
    edited.metadata["recast"] = dict(metadata or {})

    if replace:
        pieces = []
        src = original.trimmed_range()
        if sel.source.start_time > src.start_time:
            before = original.deepcopy()
            before.source_range = ot.range_from_start_end_time(src.start_time, sel.source.start_time)
            pieces.append(before)
        pieces.append(edited)
        if sel.source.end_time_exclusive() < src.end_time_exclusive():
            after = original.deepcopy()
            after.source_range = ot.range_from_start_end_time(sel.source.end_time_exclusive(),
                                                              src.end_time_exclusive())
            pieces.append(after)
        track[sel.child_index:sel.child_index + 1] = pieces
        return new

    edited.name = f"{original.name} (recast)" if original.name else "recast"
    local = original.range_in_parent()  # in the track's own time, like the gap we put before it
    start = local.start_time + (sel.source.start_time - original.trimmed_range().start_time).rescaled_to(
        local.start_time.rate)
    layer = otio.schema.Track(name=track_name, kind=track.kind)
    if track.source_range is not None:  # keep the track's time offset (EDLs store record TCs there)
        layer.source_range = track.source_range
    if start.value > 0:
        layer.append(otio.schema.Gap(source_range=ot.TimeRange(ot.RationalTime(0, start.rate), start)))
    layer.append(edited)
    new.tracks.insert(sel.track_index + 1, layer)
    return new


def adapter_name(path: Path) -> str:
    otio = _otio()
    try:
        return otio.adapters.from_filepath(str(path)).name
    except Exception:
        raise InvalidArgument(f"out_timeline: no OpenTimelineIO adapter writes {path.suffix!r} files "
                              f"(installed: {', '.join(otio.adapters.available_adapter_names())})") from None


def serialize(timeline: otio.schema.Timeline, path: Path) -> str | None:
    """The file's text (None for bundle formats that only write to files); adapter errors → clear ones."""
    otio = _otio()
    name = adapter_name(path)
    if name not in TEXT_ADAPTERS:
        return None
    try:
        return otio.adapters.write_to_string(timeline, name)
    except Exception as exc:
        hint = ""
        if name == "cmx_3600" and "single video track" in str(exc):
            hint = "; an EDL holds one video track: add --replace, or write .otio or FCP .xml"
        raise InvalidArgument(f"out_timeline: {name} cannot hold the result ({exc}){hint}") from None


def check_out_path(out: Path, inputs: list[Path]) -> None:
    if os.path.lexists(out):
        raise InvalidArgument(f"out_timeline: {out} exists; the bridge writes a new timeline file, never over one")
    if not out.parent.is_dir():
        raise InvalidArgument(f"out_timeline: folder {out.parent} does not exist")
    for p in inputs:
        if out.absolute() == p.absolute():
            raise InvalidArgument(f"out_timeline: {out} is an input; write the conformed timeline to a new file")


def write_exclusive(timeline: otio.schema.Timeline, out: Path) -> None:
    """Create `out` (it must not exist), written whole or not at all; works for bundle folders
    (.otiod) and on volumes without hard links (exFAT, FAT, SMB)."""
    text = serialize(timeline, out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        if text is None:
            os.unlink(tmp)
            _otio().adapters.write_to_file(timeline, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        publish(Path(tmp), out)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)


# Exclusive publish without hard links. engine.daemon.export has the same for exports: the bridge
# never imports the engine (DESIGN.md §1), so the few lines live in both.
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2():  # noqa: ANN202 - the libc function, or None where there is none
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2 if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    return fn


_RENAMEAT2 = _renameat2()


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Atomic rename that never replaces `dst` (FileExistsError); False where the kernel or the file
    system (NFS, some FUSE) cannot do it."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def publish(tmp: Path, target: Path) -> None:
    """Move the finished file or folder `tmp` to the new name `target` beside it; never replaces
    anything (FileExistsError) and never leaves a half-written `target`."""
    if not rename_noreplace(tmp, target):
        copy_exclusive(tmp, target)


def copy_exclusive(tmp: Path, target: Path) -> None:
    """The fallback of `publish`: create `target` exclusively (O_EXCL / mkdir), fill it from `tmp`,
    and remove the partial `target`, which this call created, on any failure."""
    if tmp.is_dir():
        os.mkdir(target)
        try:
            for entry in sorted(os.listdir(tmp)):
                os.rename(tmp / entry, target / entry)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        os.rmdir(tmp)
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(os.stat(tmp).st_mode))
    try:
        with open(tmp, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        os.unlink(target)
        raise
    os.unlink(tmp)


# --- the whole conform --------------------------------------------------------------------------------


@dataclass
class ConformResult:
    timeline: str
    media: str
    folder: str
    clip: str
    track_index: int
    record_frames: tuple[int, int]  # [start, end) in the stack's time at the timeline's rate
    media_frames: tuple[int, int]  # [start, end) of the source media
    job_id: str
    replace: bool

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ConformOptions:
    """What to edit in a timeline and where the result goes (the `recast-bridge otio` flags)."""

    timeline: str | os.PathLike  # the input timeline; never modified
    out_timeline: str | os.PathLike  # the new timeline to write (must not exist)
    target_image: str | os.PathLike
    source_prompt: str
    target_prompt: str
    settings: Mapping[str, Any] | None = None  # pipeline settings by name; unset ones are the engine's
    clip: str | None = None  # a clip name, or its 0-based index among the video clips
    mark_in: str | None = None  # record timecodes (or frames); the out mark is exclusive
    mark_out: str | None = None
    replace: bool = False  # relink the clip in place instead of adding a track above it
    media_format: str = "mp4"  # "mp4", or "png" (a PNG sequence, .otio timelines only)
    media_dir: str | os.PathLike | None = None  # new folder for the edited media (default: beside the source)
    rate: float | None = None  # an EDL's frame rate (EDLs do not store it)
    media_start: str | None = None  # timecode of the source media's first frame, when the timeline lacks it
    track_name: str = "Recast"
    source_media: str | os.PathLike | None = None  # the clip's media, when the timeline names only a reel

    @classmethod
    def from_args(cls, args: argparse.Namespace, settings: Mapping[str, Any]) -> ConformOptions:
        return cls(
            timeline=args.timeline, out_timeline=args.out_timeline, target_image=args.target_image,
            source_prompt=args.source_prompt, target_prompt=args.target_prompt, settings=settings, clip=args.clip,
            mark_in=args.mark_in, mark_out=args.mark_out, replace=args.replace, media_format=args.media,
            media_dir=args.media_dir, rate=args.rate, media_start=args.media_start, track_name=args.track_name,
            source_media=args.source_media,
        )


def conform(client: RecastClient, options: ConformOptions, on_event: Callable | None = None) -> ConformResult:
    """Edit the selected clip's media frames and write the conformed timeline (see the module doc)."""
    from plugin_bridge.edit import EditSpec, probe_writable, run_edit

    o = options
    tl_path = Path(o.timeline)
    out = Path(o.out_timeline)
    timeline = read_timeline(tl_path, o.rate)
    sel = select_clip(timeline, o.clip, o.mark_in, o.mark_out)
    _check_effects(sel.clip)
    media = source_media(sel, tl_path, o.source_media)
    anchor = media[0] if isinstance(media, list) else media
    check_out_path(out, [tl_path, anchor])
    probe_writable(out.parent, "out_timeline")  # read-only folders fail now, not after the render
    if o.media_format == "png" and adapter_name(out) not in ("otio_json", "otioz", "otiod"):
        raise InvalidArgument("media: PNG sequences only travel in .otio timelines; use --media mp4 for "
                              f"{out.suffix} files")
    ref = sel.clip.media_reference
    like = getattr(ref, "target_url", "") or getattr(ref, "target_url_base", "") or ""
    # Fail fast: the output timeline must be writable before we spend minutes rendering.
    placeholder = edited_reference(str(anchor.parent / "placeholder.mp4"), o.media_format, like, sel.source.duration)
    serialize(build_timeline(timeline, sel, placeholder, o.replace, o.track_name), out)

    if isinstance(media, list):  # an image sequence: its own rate, one image per frame
        fps, count, asset_id = float(ref.rate), len(media), ""
    else:
        asset = client.add_media(media)
        fps, count, asset_id = asset.fps or sel.source.start_time.rate, asset.frame_count, asset.asset_id
    start, end = media_frame_range(sel, fps, count, o.media_start)
    if isinstance(media, list):  # only the images the edit uses must exist
        missing = [f for f in media[start:end] if not f.is_file()]
        if missing:
            raise InvalidArgument(f"clip: {len(missing)} images of {sel.clip.name!r} are missing, e.g. {missing[0]}")
    spec = EditSpec(
        source=media, target_image=Path(o.target_image), source_prompt=o.source_prompt, target_prompt=o.target_prompt,
        start_frame=start, end_frame=end, settings=dict(o.settings or {}), output_format=o.media_format,
        output_dir=Path(o.media_dir) if o.media_dir else None, name=sel.clip.name or anchor.stem,
        source_asset_id=asset_id, fps=fps,
    )
    result: EditResult = run_edit(client, spec, on_event=on_event)
    if result.frame_count != end - start:
        raise InvalidArgument(f"clip: the render returned {result.frame_count} frames for {end - start}")
    reference = edited_reference(result.media, o.media_format, like, sel.source.duration)
    rec_rate = sel.record.start_time.rate
    meta = {
        "job_id": result.job_id,
        "source_clip": sel.clip.name,
        "source_media": str(anchor),
        "media_frames": [start, end],
        "source_prompt": o.source_prompt,
        "target_prompt": o.target_prompt,
        "target_image": str(Path(o.target_image).absolute()),
        "settings": dict(o.settings or {}),
    }
    new = build_timeline(timeline, sel, reference, o.replace, o.track_name, meta)
    check_out_path(out, [tl_path, anchor])
    write_exclusive(new, out)
    return ConformResult(
        timeline=str(out.absolute()), media=result.media, folder=result.folder, clip=sel.clip.name,
        track_index=sel.track_index if o.replace else sel.track_index + 1,
        record_frames=(_frames(sel.record.start_time, rec_rate), _frames(sel.record.end_time_exclusive(), rec_rate)),
        media_frames=(start, end), job_id=result.job_id, replace=o.replace,
    )


# --- CLI -------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("timeline", help="input timeline (.otio, .edl, FCP .xml, .kdenlive …); never modified")
    parser.add_argument("--clip", help="clip name, or its 0-based index among the video clips")
    parser.add_argument("--in", dest="mark_in", metavar="TC", help="in mark (HH:MM:SS:FF, ';' drop-frame, or frame)")
    parser.add_argument("--out", dest="mark_out", metavar="TC", help="out mark, exclusive")
    parser.add_argument("--out-timeline", required=True, help="new timeline file to write (must not exist)")
    parser.add_argument("--replace", action="store_true",
                        help="relink the clip in place instead of adding a track above it")
    parser.add_argument("--media", choices=("mp4", "png"), default="mp4",
                        help="edited media: an MP4 file (default), or a lossless PNG sequence (.otio only)")
    parser.add_argument("--media-dir", help="new folder for the edited media (default: beside the source media)")
    parser.add_argument("--rate", type=float, help="frame rate of an EDL (EDLs do not store it; default 24)")
    parser.add_argument("--media-start", metavar="TC",
                        help="timecode of the source media's first frame, when the timeline does not carry it")
    parser.add_argument("--source-media", help="media file of the selected clip, when the timeline names only a "
                        "reel (EDLs without FROM CLIP comments)")
    parser.add_argument("--track-name", default="Recast", help="name of the new track (default: Recast)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run_conform(args: argparse.Namespace, connect: Callable, settings: Mapping[str, Any]) -> int:
    def progress(ev: Any) -> None:
        if args.quiet or ev.WhichOneof("event") != "progress":
            return
        p = ev.progress
        print(f"recast-bridge otio: {p.stage} {p.step}/{p.total}", file=sys.stderr, flush=True)

    if args.clip is None and not (args.mark_in and args.mark_out):
        raise InvalidArgument("clip: select a clip with --clip NAME_OR_INDEX, or mark it with --in and --out")
    client = connect()
    try:
        result = conform(client, ConformOptions.from_args(args, settings), on_event=progress)
    finally:
        client.close()
    print(json.dumps(result.to_dict(), indent=2))
    return 0
