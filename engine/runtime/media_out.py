"""Edited media in the formats editors conform: ProRes, DNxHR, H.264/H.265, FFV1, 16-bit PNG/TIFF, EXR.

The pipeline works on 8-bit RGB. What leaves here keeps the source where the edit did not touch it:
the source range is decoded again at its own depth and pixel format, and each output plane takes the
source's samples wherever the compositing mask is 0 (for subsampled chroma, wherever the whole chroma
block is 0: the mask dilated by one chroma sample); only masked samples come from the edited frames.
Movies carry the source's exact rate, its timecode plus the range start, its colour tags and every
audio stream for the range as PCM.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.runtime.video_io import MediaInfo, iter_native, open_media, turns_of, upright


@dataclass(frozen=True)
class Format:
    name: str
    ext: str  # ".mov", ".mkv", ".mp4" for movies; the image suffix for sequences
    codec: str
    bits: int  # the deepest source it keeps without loss of depth
    pix_fmt: str = ""  # empty: chosen from the source (ffv1, h265)
    options: dict[str, str] = field(default_factory=dict)
    alpha: bool = False  # the compositing mask as alpha
    sequence: bool = False
    keeps: str = ""

    @property
    def movie_name(self) -> str:
        return f"edited{self.ext}"


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("prores", ".mov", "prores_ks", 10, "yuv422p10le", {"profile": "hq", "vendor": "apl0"},
           keeps="ProRes 422 HQ, 10-bit 4:2:2; source samples outside the mask"),
    Format("prores4444", ".mov", "prores_ks", 10, "yuva444p10le", {"profile": "4444", "vendor": "apl0"},
           alpha=True, keeps="ProRes 4444, 10-bit 4:4:4 with the compositing mask as alpha"),
    Format("dnxhr", ".mov", "dnxhd", 10, "yuv422p10le", {"profile": "dnxhr_hqx"},
           keeps="DNxHR HQX, 10-bit 4:2:2 (at least 256x120); source samples outside the mask"),
    Format("h264", ".mp4", "libx264", 8, "yuv420p", {"crf": "16", "preset": "medium"},
           keeps="H.264 8-bit 4:2:0 review copy (lossy)"),
    Format("h265", ".mp4", "libx265", 10, "", {"crf": "16", "x265-params": "log-level=error"},
           keeps="H.265 4:2:0, 10-bit for deep sources, review copy (lossy)"),
    Format("ffv1", ".mkv", "ffv1", 16, "", {"level": "3", "g": "1"},
           keeps="FFV1 lossless: the source's pixel format; equal to the source outside the mask"),
    Format("png", ".png", "png", 16, "rgb48", sequence=True, keeps="16-bit RGB PNG sequence"),
    Format("tiff", ".tiff", "tiff", 16, "rgb48", sequence=True, keeps="16-bit RGB TIFF sequence"),
    Format("exr", ".exr", "exr", 32, "gbrpf32le", sequence=True,
           keeps="32-bit float RGB EXR sequence (the source's transfer, 0-1; not linearised)"),
)}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise InputError("format", f"'{name}' is not one of {', '.join(FORMATS)}")
    return FORMATS[name]


@functools.cache
def _ffv1_formats() -> frozenset[str]:
    import av

    return frozenset(f.name for f in av.codec.Codec("ffv1", "w").video_formats or ())


def pix_fmt_for(fmt: Format, info: MediaInfo) -> str:
    if fmt.name == "ffv1":
        if info.pix_fmt in _ffv1_formats():
            return info.pix_fmt
        return "yuv444p16le" if info.bits > 8 else "yuv444p"
    if fmt.name == "h265":
        return "yuv420p10le" if info.bits > 8 else "yuv420p"
    return fmt.pix_fmt


def check_format(fmt: Format, info: MediaInfo, strict: bool) -> str | None:
    """Before anything renders: a size the codec cannot take is refused; a format shallower than the
    source is refused with `strict`, else the warning line to print is returned."""
    if fmt.name == "dnxhr" and (info.width < 256 or info.height < 120):
        raise InputError("format", f"dnxhr needs at least 256x120; the source is {info.width}x{info.height}")
    if info.bits <= fmt.bits:
        return None
    line = (f"format: {fmt.name} keeps {fmt.bits} bits per sample but the source has {info.bits}; "
            f"choose ffv1, png, tiff or exr to keep them")
    if strict:
        raise InputError("format", line.removeprefix("format: ") + " (--strict-depth)")
    return line


# --- timecode ----------------------------------------------------------------------------------------

def timecode_add(tc: str | None, frames: int, rate: Fraction) -> str:
    """`tc` plus `frames`, SMPTE 12M: drop-frame (";" before the frames) counts as the source's did."""
    nominal = max(1, round(rate))
    drop = tc is not None and (";" in tc or "." in tc)
    try:
        hh, mm, ss, ff = (int(x) for x in (tc or "00:00:00:00").replace(";", ":").replace(".", ":").split(":"))
    except ValueError:
        raise InputError("source", f"timecode '{tc}' is not HH:MM:SS:FF") from None
    dpm = 2 * nominal // 30 if drop else 0  # frame numbers dropped per minute (2 at 29.97, 4 at 59.94)
    minutes = hh * 60 + mm
    total = (minutes * 60 + ss) * nominal + ff - dpm * (minutes - minutes // 10) + frames
    if dpm:
        per10, per1 = nominal * 600 - 9 * dpm, nominal * 60 - dpm
        d, m = divmod(total, per10)
        total += 9 * dpm * d + (dpm * ((m - dpm) // per1) if m > dpm else 0)
    ff, s = total % nominal, total // nominal
    sep = ";" if drop else ":"
    return f"{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}{ff:02d}"


# --- planes ------------------------------------------------------------------------------------------

@functools.cache
def _bytes_per_pixel(pix_fmt: str) -> tuple[int, ...]:
    """Bytes per pixel of each plane (a 4096-wide frame has no row padding)."""
    import av

    return tuple(p.line_size // p.width for p in av.VideoFrame(4096, 2, pix_fmt).planes)


def plane_bytes(plane, bpp: int) -> np.ndarray:
    """(height, width * bpp) bytes of one plane, row padding cut off."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width * bpp]


def _set_plane(plane, data: np.ndarray) -> None:
    full = np.zeros((plane.height, plane.line_size), np.uint8)
    full[:, : data.shape[1]] = data
    plane.update(full.tobytes())


def _plane_mask(mask: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """True where any pixel of a plane sample's block is masked: subsampled chroma takes edited samples
    only where the edit reached, and the source's wherever its whole block is unmasked."""
    h, w = mask.shape
    sy, sx = -(-h // ph), -(-w // pw)
    m = np.zeros((ph * sy, pw * sx), bool)
    m[:h, :w] = mask > 0
    return m.reshape(ph, sy, pw, sx).any(axis=(1, 3))


_SWS_SPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}  # AVColorSpace → swscale's matrix (BT.601 otherwise)


def _rgb_to(rgb: np.ndarray, pix_fmt: str, info: MediaInfo):  # noqa: ANN202 - av.VideoFrame
    """RGB (8 or 16 bits) into `pix_fmt` with the source's matrix and range."""
    import av

    frame = av.VideoFrame.from_ndarray(rgb, "rgb24" if rgb.dtype == np.uint8 else "rgb48le")
    return frame.reformat(format=pix_fmt, dst_colorspace=_SWS_SPACE.get(info.color.get("space", 2), 5),
                          dst_color_range=2 if info.color.get("range") == 2 else 1)


def composite_frame(src, edited: np.ndarray, mask: np.ndarray, pix_fmt: str, info: MediaInfo, alpha: bool):
    """One output frame in `pix_fmt`: the source's samples where the mask is 0, the edit's elsewhere; the
    alpha plane (when there is one) is the mask, 0-255 mapped linearly onto the full alpha range."""
    import av

    turns = turns_of(src)
    if turns:  # rotated: samples move, so the upright source goes through RGB at 16 bits
        base = _rgb_to(upright(src.to_ndarray(format="rgb48le"), turns), pix_fmt, info)
    else:
        base = src if src.format.name == pix_fmt else src.reformat(format=pix_fmt)
    ed = _rgb_to(edited, pix_fmt, info)
    out = av.VideoFrame(base.width, base.height, pix_fmt)
    bpps = _bytes_per_pixel(pix_fmt)
    for i, plane in enumerate(out.planes):
        bpp = bpps[i]
        if alpha and i == 3:
            top = (1 << av.VideoFormat(pix_fmt).components[3].bits) - 1
            a = (mask.astype(np.uint32) * top + 127) // 255
            _set_plane(plane, a.astype(np.uint16 if bpp == 2 else np.uint8).view(np.uint8).reshape(plane.height, -1))
            continue
        m = np.repeat(_plane_mask(mask, plane.height, plane.width), bpp, axis=1)
        _set_plane(plane, np.where(m, plane_bytes(ed.planes[i], bpp), plane_bytes(base.planes[i], bpp)))
    return tag(out, info)


def tag(frame, info: MediaInfo):  # noqa: ANN201 - av.VideoFrame
    """The source's colour tags on a frame (encoders take them from the frames they are given)."""
    frame.color_primaries, frame.color_trc = info.color.get("primaries", 2), info.color.get("trc", 2)
    frame.colorspace, frame.color_range = info.color.get("space", 2), info.color.get("range", 0)
    return frame


def composite_rgb16(src, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """16-bit RGB: one YUV→RGB conversion of the source, the edit (×257) where the mask is not 0."""
    base = upright(src.to_ndarray(format="rgb48le"), turns_of(src))
    return np.where(mask[..., None] > 0, edited.astype(np.uint16) * 257, base)


# --- audio -------------------------------------------------------------------------------------------

_PACKED = {np.dtype(np.int16): ("s16",), np.dtype(np.int32): ("s32",), np.dtype(np.float32): ("flt",),
           np.dtype(np.float64): ("dbl",)}


_PCM = {"s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le", "dbl": "pcm_f64le"}


@dataclass
class AudioTrack:
    index: int
    rate: int
    layout: str
    codec: str  # the PCM codec written: the source's own PCM (a copy), else its decoded sample type


def audio_tracks(path: str | os.PathLike, info: MediaInfo) -> list[AudioTrack]:
    """The output's audio streams, known before any is written (a muxer takes streams only up front)."""
    tracks = []
    with open_media(path) as c:
        for index in info.audio:
            cc = c.streams[index].codec_context
            kind = cc.format.name.rstrip("p") if cc.format is not None else "flt"
            codec = cc.name if cc.name.startswith("pcm_") else _PCM.get(kind, "pcm_f32le")
            layout = cc.layout.name
            if "channels" in layout:  # an unordered layout (Matroska PCM): the default order for the count
                layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(cc.layout.nb_channels, layout)
            tracks.append(AudioTrack(index, cc.sample_rate, layout, codec))
    return tracks


def audio_samples(path: str | os.PathLike, track: AudioTrack, t0: Fraction, t1: Fraction) -> np.ndarray:
    """(n, channels) decoded samples of [t0, t1) (seconds on the container's clock), counted from the
    stream's first decoded sample: exactly the decoder's samples for the range."""
    with open_media(path) as c:
        chunks, first = [], None
        for fr in c.decode(c.streams[track.index]):
            if first is None:
                first = Fraction(fr.pts) * fr.time_base if fr.pts is not None else Fraction(0)
            arr = fr.to_ndarray()
            chunks.append(arr.T if fr.format.is_planar else arr.reshape(-1, len(fr.layout.channels)))
    if not chunks:
        return np.zeros((0, 1), np.float32)
    samples = np.concatenate(chunks)
    k0 = max(0, round((t0 - first) * track.rate))
    k1 = max(k0, min(len(samples), round((t1 - first) * track.rate)))
    return np.ascontiguousarray(samples[k0:k1])


def _write_audio(container, stream, track: AudioTrack, samples: np.ndarray) -> None:
    import av

    fmt = _PACKED.get(samples.dtype, ("flt",))[0]
    for pos in range(0, len(samples), 1024):
        chunk = samples[pos:pos + 1024]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format=fmt, layout=track.layout)
        frame.sample_rate, frame.pts = track.rate, pos
        for pkt in stream.encode(frame):
            container.mux(pkt)
    for pkt in stream.encode():
        container.mux(pkt)


# --- writers -----------------------------------------------------------------------------------------

def _open_movie(path: Path, fmt: Format, pix_fmt: str, info: MediaInfo, width: int, height: int, tc: str):
    import av

    c = av.open(str(path), "w", options={"write_tmcd": "1"} if fmt.ext == ".mp4" else {})
    c.metadata["timecode"] = tc
    s = c.add_stream(fmt.codec, rate=info.rate, options=dict(fmt.options))
    s.width, s.height, s.pix_fmt = width, height, pix_fmt
    s.codec_context.time_base = 1 / info.rate
    cc = s.codec_context
    cc.color_primaries, cc.color_trc = info.color.get("primaries", 2), info.color.get("trc", 2)
    cc.colorspace, cc.color_range = info.color.get("space", 2), info.color.get("range", 0)
    if fmt.codec == "libx265":
        s.codec_tag = "hvc1"  # the tag QuickTime and Premiere read
    return c, s


def write_outputs(folder: Path, fmt: Format, source: str | os.PathLike, info: MediaInfo, start: int,
                  edited: np.ndarray, masks: np.ndarray, matte: bool = False) -> dict:
    """Writes the edit of source frames [start, start + len(edited)) into `folder` as `fmt`: a movie
    `edited.EXT` (+ `matte.EXT`, the mask as grey, with `matte`), or images under `frames/`. Returns
    what was written, for the report."""
    n = len(edited)
    h, w = edited.shape[1:3]
    pix_fmt = pix_fmt_for(fmt, info)
    tc = timecode_add(info.timecode, start, info.rate)
    natives: Iterator = iter_native(source, start, start + n, (info.height, info.width))
    written: dict = {"format": fmt.name, "pix_fmt": pix_fmt, "keeps": fmt.keeps}
    if fmt.sequence:
        frames_dir = folder / "frames"
        for p in frames_dir.glob("*"):  # the 8-bit previews the render streamed are replaced at depth
            p.unlink()
        for i, src in enumerate(natives):
            rgb16 = composite_rgb16(src, edited[i], masks[i])
            _write_image(frames_dir / f"{i:05d}{fmt.ext}", rgb16, fmt)
        written["frames"] = f"frames/00000{fmt.ext}"
        return written
    path = folder / fmt.movie_name
    c, s = _open_movie(path, fmt, pix_fmt, info, w, h, tc)
    # Audio is cut at the range's times on the nominal rate's grid from the video's first timestamp:
    # containers round frame times (Matroska to 1 ms), which would shift the cut by samples.
    t0 = info.start_time + Fraction(start) / info.rate
    t1 = t0 + Fraction(n) / info.rate
    try:
        audio = [(c.add_stream(t.codec, rate=t.rate, layout=t.layout), t) for t in audio_tracks(source, info)]
        for i, src in enumerate(natives):
            frame = composite_frame(src, edited[i], masks[i], pix_fmt, info, fmt.alpha)
            frame.pts = i
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
        for a, track in audio:
            _write_audio(c, a, track, audio_samples(source, track, t0, t1))
    finally:
        c.close()
    written.update({"movie": path.name, "timecode": tc, "rate": str(info.rate), "audio_streams": len(audio)})
    if matte:
        mpath = folder / f"matte{fmt.ext}"
        mfmt = FORMATS["prores"] if fmt.alpha else fmt
        mc, ms = _open_movie(mpath, mfmt, pix_fmt_for(mfmt, info), info, w, h, tc)
        try:
            for i in range(n):
                grey = np.repeat(masks[i][..., None], 3, axis=2)
                frame = tag(_rgb_to(grey, pix_fmt_for(mfmt, info), info), info)
                frame.pts = i
                for pkt in ms.encode(frame):
                    mc.mux(pkt)
            for pkt in ms.encode():
                mc.mux(pkt)
        finally:
            mc.close()
        written["matte"] = mpath.name
    return written


def _write_image(path: Path, rgb16: np.ndarray, fmt: Format) -> None:
    import av
    import cv2

    if fmt.name in ("png", "tiff"):
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        return
    f = rgb16.astype(np.float32) / 65535.0
    frame = av.VideoFrame(f.shape[1], f.shape[0], "gbrpf32le")
    for plane, ch in zip(frame.planes, (1, 2, 0)):  # G, B, R planes
        _set_plane(plane, np.ascontiguousarray(f[..., ch]).view(np.uint8))
    cc = av.CodecContext.create("exr", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = f.shape[1], f.shape[0], "gbrpf32le", Fraction(1, 24)
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    path.write_bytes(data)


def warn(line: str | None) -> None:
    if line:
        print(f"warning: {line}", file=sys.stderr)
