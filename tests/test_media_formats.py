"""Editor formats (issue 22): real sources built with PyAV (H.264 with B-frames, ProRes 422 10-bit, FFV1
10-bit; 23.976 and 29.97 drop-frame; audio; a start timecode), edited on a mid-media range, every output
read back with PyAV."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media_support import AUDIO_RATE, NTSC_23, NTSC_29, decode_all, make_source, planes

from engine.cli import main
from engine.errors import InputError
from engine.runtime import media_out, video_io

START, N = 5, 8

SOURCES = {
    "h264_bframes_2997df": ("libx264", "yuv420p", NTSC_29, "01:00:00;00", "pcm_s16le", {"bf": "2", "g": "12"}),
    "prores_10bit_23976": ("prores_ks", "yuv422p10le", NTSC_23, "10:00:00:00", "aac", {"profile": "hq"}),
    "ffv1_10bit_23976": ("ffv1", "yuv420p10le", NTSC_23, "00:59:59:20", "pcm_s16le", {}),
}
EXPECTED_TC = {"h264_bframes_2997df": "01:00:00;05", "prores_10bit_23976": "10:00:00:05",
               "ffv1_10bit_23976": "01:00:00:01"}  # 20 + 5 frames at 24 fps roll over the hour


@pytest.fixture(scope="module", params=list(SOURCES))
def source(request, tmp_path_factory):
    codec, pix, rate, tc, audio, opts = SOURCES[request.param]
    ext = {"libx264": ".mp4", "prores_ks": ".mov", "ffv1": ".mkv"}[codec]
    path = make_source(tmp_path_factory.mktemp("src") / f"{request.param}{ext}", codec, pix, rate, timecode=tc,
                       audio=audio, options=opts)
    return request.param, path


def _edit(path):
    """A fake edit of frames [START, START+N): a green square and a soft edge, as the pipeline's masks."""
    frames, _ = video_io.read_frames(path, START, START + N)
    masks = np.zeros((N, 48, 64), np.uint8)
    masks[:, 10:20, 20:31] = 255
    masks[:, 20, 31:34] = (40, 128, 200)
    edited = frames.copy()
    edited[masks > 0] = (0, 255, 0)
    return edited, masks


def _write(tmp_path, path, name, masks=None):
    info = video_io.probe_media(path)
    edited, m = _edit(path)
    folder = tmp_path / name
    (folder / "frames").mkdir(parents=True)
    media_out.write_outputs(folder, media_out.FORMATS[name], path, info, START, edited,
                            m if masks is None else masks, matte=True)
    return folder, info, m


def _audio(path) -> np.ndarray:
    """All decoded samples of the first audio stream, (n, channels), from its first decoded sample."""
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().T if f.format.is_planar else f.to_ndarray().reshape(-1, 2)
                  for f in c.decode(audio=0)]
    return np.concatenate(chunks)


def test_probe_reads_rate_timecode_colour_depth(source):
    name, path = source
    info = video_io.probe_media(path)
    assert info.count == 24 and info.rate == SOURCES[name][2] and isinstance(info.rate, Fraction)
    assert info.timecode == SOURCES[name][3]
    assert info.color == {"primaries": 1, "trc": 1, "space": 1, "range": 1}
    assert info.bits == (8 if "h264" in name else 10)


@pytest.mark.parametrize("fmt", ["prores", "prores4444", "h264", "h265", "ffv1"])
def test_movie_outputs_keep_rate_timecode_audio_colour(source, fmt, tmp_path):
    name, path = source
    folder, info, masks = _write(tmp_path, path, fmt)
    movie = folder / media_out.FORMATS[fmt].movie_name
    out = video_io.probe_media(movie)
    assert out.count == N and out.rate == info.rate
    assert out.timecode == EXPECTED_TC[name]
    assert out.color == info.color
    # audio: the source's decoded samples for exactly the range's time
    k0 = round(Fraction(START) / info.rate * AUDIO_RATE)
    k1 = round(Fraction(START + N) / info.rate * AUDIO_RATE)
    src_audio = _audio(path)
    assert np.array_equal(_audio(movie), src_audio[k0:k1])
    assert (folder / f"matte{media_out.FORMATS[fmt].ext}").is_file()
    src_frames = decode_all(path)[START:START + N]
    out_frames = decode_all(movie)
    if fmt == "ffv1":  # lossless: the source's own pixel format and samples outside the mask
        assert out_frames[0].format.name == info.pix_fmt
        for s, o, m in zip(src_frames, out_frames, masks):
            for i, (sp, op) in enumerate(zip(planes(s), planes(o))):
                bpp = sp.shape[1] // o.planes[i].width
                keep = ~np.repeat(media_out._plane_mask(m, *sp.shape[:1], o.planes[i].width), bpp, axis=1)
                assert np.array_equal(sp[keep], op[keep])
    if fmt == "prores4444":  # alpha is the compositing mask, 0-255 onto the alpha's full range
        for o, m in zip(out_frames, masks):
            top = (1 << o.format.components[3].bits) - 1  # the decoder gives 12-bit alpha
            alpha = planes(o)[3].view(np.uint16).astype(np.int64)
            assert np.array_equal(np.round(alpha * 255 / top).astype(np.uint8), m)


def _psnr_outside(path, movie, masks) -> float:
    src = np.stack([f.to_ndarray(format="rgb48le") for f in decode_all(path)[START:START + N]]).astype(float)
    out = np.stack([f.to_ndarray(format="rgb48le") for f in decode_all(movie)]).astype(float)
    keep = np.ones(masks.shape, bool)
    keep[:, :32] = False  # ProRes quantises per slice (a row of macroblocks): compare the untouched ones
    mse = ((src - out)[keep] ** 2).mean()
    return 10 * np.log10(65535.0 ** 2 / max(mse, 1e-9))


@pytest.mark.parametrize("fmt", ["prores"])
def test_intermediate_outside_mask_is_no_worse_than_a_plain_reencode(source, fmt, tmp_path):
    name, path = source
    folder, _, masks = _write(tmp_path, path, fmt)
    plain, _, _ = _write(tmp_path / "plain", path, fmt, masks=np.zeros_like(masks))
    movie = media_out.FORMATS[fmt].movie_name
    assert _psnr_outside(path, folder / movie, masks) >= _psnr_outside(path, plain / movie, masks) - 0.5


@pytest.mark.parametrize("fmt", ["png", "tiff", "exr"])
def test_sequences_keep_rgb_at_depth(source, fmt, tmp_path):
    name, path = source
    folder, _, masks = _write(tmp_path, path, fmt)
    files = sorted((folder / "frames").iterdir())
    assert [p.name for p in files] == [f"{i:05d}.{fmt}" for i in range(N)]
    for f, s, m in zip(files, decode_all(path)[START:START + N], masks):
        with av.open(str(f)) as c:
            img = next(c.decode(video=0))
        want = s.to_ndarray(format="rgb48le")  # the one YUV→RGB conversion of the source
        if fmt == "exr":
            rgb = img.to_ndarray()  # float RGB, 0-1
            assert np.allclose(rgb[m == 0] * 65535, want[m == 0], atol=0.02)
        else:
            assert np.array_equal(img.to_ndarray(format="rgb48le")[m == 0], want[m == 0])


def test_dnxhr_at_its_smallest_size(tmp_path):
    path = make_source(tmp_path / "big.mov", "prores_ks", "yuv422p10le", NTSC_23, n=8, h=120, w=256)
    info = video_io.probe_media(path)
    frames, _ = video_io.read_frames(path, 2, 6)
    folder = tmp_path / "out"
    folder.mkdir()
    w = media_out.write_outputs(folder, media_out.FORMATS["dnxhr"], path, info, 2, frames,
                                np.zeros((4, 120, 256), np.uint8))
    out = video_io.probe_media(folder / "edited.mov")
    assert out.count == 4 and out.rate == NTSC_23 and out.timecode == "01:00:00:02" and w["audio_streams"] == 1
    with pytest.raises(InputError, match="256x120"):
        media_out.check_format(media_out.FORMATS["dnxhr"], video_io.probe_media(make_source(
            tmp_path / "small.mov", "prores_ks", "yuv422p10le", NTSC_23, n=2)), False)


def test_drop_frame_timecode_arithmetic():
    r = NTSC_29
    assert media_out.timecode_add("00:00:59;29", 1, r) == "00:01:00;02"
    assert media_out.timecode_add("00:09:59;29", 1, r) == "00:10:00;00"
    assert media_out.timecode_add("01:00:00;00", 17982, r) == "01:10:00;00"
    assert media_out.timecode_add("00:00:00:23", 1, NTSC_23) == "00:00:01:00"
    assert media_out.timecode_add(None, 40, NTSC_23) == "00:00:01:16"


def test_rotation_is_applied_on_read(tmp_path):
    c = av.open(str(tmp_path / "rot.mp4"), "w")
    s = c.add_stream("libx264", rate=24)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
    s.set_display_rotation(90)
    img = np.zeros((48, 64, 3), np.uint8)
    img[:10, :20] = 255
    f = av.VideoFrame.from_ndarray(img, "rgb24")
    f.pts = 0
    for pkt in [*s.encode(f), *s.encode()]:
        c.mux(pkt)
    c.close()
    info = video_io.probe_media(tmp_path / "rot.mp4")
    assert (info.height, info.width) == (64, 48)
    frames, _ = video_io.read_frames(tmp_path / "rot.mp4")
    ys, xs = np.nonzero(frames[0, ..., 0] > 128)  # the top-left marker turned counterclockwise, as ffmpeg shows it
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (44, 63, 0, 9)


FAST = ["--steps", "2", "--tune-steps", "1", "--inversion-refine", "0", "--quiet"]


def _cli(src, target, out, model, *extra):
    return main(["edit", str(src), "--target-image", str(target), "--source-prompt", "a", "--target-prompt", "b",
                 "--model", str(model), "--out", str(out), "--range", f"{START}:{START + 4}", *FAST, *extra])


def test_cli_prores_end_to_end(tiny_model_dir, target_png, tmp_path):
    src = make_source(tmp_path / "src.mp4", "libx264", "yuv420p", NTSC_29, timecode="01:00:00;00",
                      options={"bf": "2"})
    assert _cli(src, target_png, tmp_path / "out", tiny_model_dir, "--format", "prores4444", "--matte") == 0
    out = video_io.probe_media(tmp_path / "out" / "edited.mov")
    assert out.count == 4 and out.rate == NTSC_29 and out.timecode == "01:00:00;05"
    assert (tmp_path / "out" / "matte.mov").is_file() and len(list((tmp_path / "out" / "masks").iterdir())) == 4


def test_bad_inputs_name_the_field_and_write_nothing(tiny_model_dir, target_png, tmp_path, capsys):
    deep = make_source(tmp_path / "deep.mkv", "ffv1", "yuv420p10le", NTSC_23, n=10)
    cases = [
        (deep, ["--format", "mpeg2"], "format"),
        (deep, ["--format", "h264", "--strict-depth"], "format"),
    ]
    noise = tmp_path / "corrupt.mov"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases.append((noise, [], "source"))
    wav = tmp_path / "audio.wav"
    c = av.open(str(wav), "w")
    a = c.add_stream("pcm_s16le", rate=48000, layout="mono")
    fr = av.AudioFrame.from_ndarray(np.zeros((1, 480), np.int16), format="s16", layout="mono")
    fr.sample_rate, fr.pts = 48000, 0
    for pkt in [*a.encode(fr), *a.encode()]:
        c.mux(pkt)
    c.close()
    cases.append((wav, [], "source"))
    for i, (src, extra, field) in enumerate(cases):
        out = tmp_path / f"o{i}"
        assert _cli(src, target_png, out, tiny_model_dir, *extra) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert err and f"error: {field}:" in err[-1], err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(f".o{i}")]
