"""Real media built with PyAV for the format tests: video with B-frames or intra codecs at NTSC rates,
an audio track and a start timecode."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

NTSC_23 = Fraction(24000, 1001)
NTSC_29 = Fraction(30000, 1001)
AUDIO_RATE = 48000


def source_frames(n: int, h: int, w: int) -> np.ndarray:
    """Moving gradients with texture, so every frame and codec differs (RGB uint8)."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 3 + i * 7) % 256
        out[i, ..., 1] = (y * 5 + i * 3) % 256
        out[i, ..., 2] = ((x + y) * 2 + i * 11) % 256
    return out


def make_source(path: Path, codec: str, pix_fmt: str, rate: Fraction, n: int = 24, h: int = 48, w: int = 64,
                timecode: str = "01:00:00:00", audio: str | None = "pcm_s16le", options: dict | None = None) -> Path:
    import av

    c = av.open(str(path), "w")
    c.metadata["timecode"] = timecode
    s = c.add_stream(codec, rate=rate, options=options or {})
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    cc = s.codec_context
    cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1  # BT.709, limited
    a = c.add_stream(audio, rate=AUDIO_RATE, layout="stereo") if audio else None
    for i, rgb in enumerate(source_frames(n, h, w)):
        f = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format=pix_fmt, dst_colorspace=1)
        f.color_primaries, f.color_trc, f.colorspace, f.color_range = 1, 1, 1, 1
        f.pts = i
        for pkt in s.encode(f):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    if a is not None:
        seconds = n / rate
        total = int(seconds * AUDIO_RATE) + 1024
        rng = np.random.default_rng(0)
        samples = rng.integers(-20000, 20000, (total, 2), dtype=np.int16)
        if audio == "pcm_s16le":
            for pos in range(0, total, 1024):
                fr = av.AudioFrame.from_ndarray(samples[pos:pos + 1024].reshape(1, -1), format="s16", layout="stereo")
                fr.sample_rate, fr.pts = AUDIO_RATE, pos
                for pkt in a.encode(fr):
                    c.mux(pkt)
        else:
            flt = (samples.astype(np.float32) / 32768).T.copy()
            for pos in range(0, total, 1024):
                fr = av.AudioFrame.from_ndarray(flt[:, pos:pos + 1024], format="fltp", layout="stereo")
                fr.sample_rate, fr.pts = AUDIO_RATE, pos
                for pkt in a.encode(fr):
                    c.mux(pkt)
        for pkt in a.encode():
            c.mux(pkt)
    c.close()
    return path


def decode_all(path: Path) -> list:
    """Every video frame of `path` (PyAV frames), in presentation order."""
    import av

    with av.open(str(path)) as c:
        return [f for f in c.decode(video=0)]


def planes(frame) -> list[np.ndarray]:
    from engine.runtime.media_out import _bytes_per_pixel, plane_bytes

    bpps = _bytes_per_pixel(frame.format.name)
    return [plane_bytes(p, bpps[i]).copy() for i, p in enumerate(frame.planes)]
