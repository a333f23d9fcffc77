"""The Blender sequencer add-on, headless in `bpy` (Blender as a module, from PyPI), against a real daemon.

The add-on runs in a child Python (bpy is one-per-process and heavy) and talks to the daemon only
through `recast-bridge json`, as it does inside Blender. Skipped, with the reason, where bpy cannot
be imported. The version-dependent helpers (`sequences` in 3.x vs `strips` in 4.4+) are also checked
without bpy on plain objects shaped like each API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from daemon_support import InProcess
from test_bridge_support import (
    REPO,
    SOURCE_PROMPT,
    TARGET_PROMPT,
    decode,
    frame_numbers,
    sha,
    write_source,
    write_target,
)

from plugin_bridge.client import RecastClient

pytestmark = pytest.mark.timeout(240)

SCRIPT = textwrap.dedent(
    """
    import json, os, shlex, sys
    repo, sock, video, target, mode = sys.argv[1:6]
    try:
        import bpy
    except Exception as exc:  # not installed, or its shared libraries are missing
        print(json.dumps({"skip": f"{type(exc).__name__}: {exc}"}))
        sys.exit(0)
    if mode == "installed":  # the copy `recast-bridge blender-install` made, enabled like Blender does
        import addon_utils, os
        sys.path.insert(0, os.path.join(os.path.dirname(video), "addons"))
        addon = addon_utils.enable("recast_bridge", default_set=True, handle_error=None)
        assert addon is not None and addon.__file__.startswith(os.path.dirname(video)), addon
    else:
        sys.path.insert(0, repo)
        import plugin_bridge.blender as addon
        addon.register()
    scene = bpy.context.scene
    if mode == "crafted-blend":  # a shared .blend whose scene data carries a command, as old add-ons saved it
        marker = os.path.join(os.path.dirname(video), "ran-from-blend")
        scene.recast["bridge_command"] = shlex.join([sys.executable, "-c", f"open({marker!r}, 'w')"])
        path = os.path.join(os.path.dirname(video), "shared.blend")
        bpy.ops.wm.save_as_mainfile(filepath=path)
        bpy.ops.wm.open_mainfile(filepath=path)
        scene = bpy.context.scene
        assert scene.recast["bridge_command"], "the crafted value did not survive the round trip"
    scene.render.fps, scene.render.fps_base = 24, 1.0
    ed = scene.sequence_editor_create()
    coll = addon.strips.top_level(ed)
    if mode == "images":  # an image-sequence strip: plate.1001.png ... in the folder of `video`
        import glob, os
        plates = sorted(glob.glob(os.path.join(os.path.dirname(video), "plates", "*.png")))
        movie = coll.new_image(name="plates", filepath=plates[0], channel=2, frame_start=10)
        for p in plates[1:]:
            movie.elements.append(os.path.basename(p))
    else:
        movie = coll.new_movie(name="shot", filepath=video, channel=2, frame_start=10)
    total = movie.frame_final_duration
    movie.frame_offset_start = 3          # the strip starts 3 frames into the media ...
    movie.frame_offset_end = total - 8    # ... and shows media frames 3..7 at timeline frames 13..17
    if mode == "blocked":                 # something already sits on the channel above
        try:
            coll.new_effect(name="blocker", type="COLOR", channel=3, frame_start=15, length=2)
        except TypeError:
            coll.new_effect(name="blocker", type="COLOR", channel=3, frame_start=15, frame_end=17)
    ed.active_strip = movie
    s = scene.recast
    defaults = {name: getattr(s, name) for name in addon.PIPELINE_SETTINGS}
    s.source_prompt, s.target_prompt, s.target_image = %r, %r, target
    s.steps, s.tune_steps, s.guidance_scale = 3, 1, 2.0
    s.extra_settings = json.dumps({"window": 4, "overlap": 1, "preview_every": 0})
    if mode != "installed":  # the installed copy uses the command its installer recorded
        os.environ["RECAST_BRIDGE"] = f"{sys.executable} -m plugin_bridge.cli json --socket {sock} --no-start"
    outcome = bpy.ops.sequencer.recast_edit()
    placed = [x for x in coll if x.type == "IMAGE" and x.name != movie.name]
    info = {
        "blender": bpy.app.version_string, "api": "strips" if hasattr(ed, "strips") else "sequences",
        "outcome": sorted(outcome), "status": s.status, "job": s.last_job,
        "source": [movie.channel, movie.frame_final_start, movie.frame_final_end], "defaults": defaults,
        "ran_from_blend": mode == "crafted-blend" and os.path.exists(marker),
    }
    if placed:
        p = placed[0]
        info["placed"] = [p.channel, p.frame_final_start, p.frame_final_end]
        info["files"] = [bpy.path.abspath(p.directory) + "/" + e.filename for e in p.elements]
    print(json.dumps(info))
    """
) % (SOURCE_PROMPT, TARGET_PROMPT)


@pytest.fixture(scope="module")
def daemon(tiny_model_dir):
    import importlib.util

    if importlib.util.find_spec("bpy") is None:  # checked before a daemon is started for nothing
        pytest.skip("bpy (Blender as a Python module) is not installed: `pip install bpy` to run this test")
    with InProcess(tiny_model_dir) as d:
        yield d


@pytest.mark.parametrize("mode", ["installed", "blocked", "images", "crafted-blend"],
                         ids=["installed-addon-movie", "movie-channel-above-busy", "image-sequence",
                              "blend-file-cannot-set-the-command"])
def test_addon_places_the_result_on_the_right_frames(daemon, tmp_path, mode):
    video, source = write_source(tmp_path / "shot.avi", n=12, fps=24.0)
    (tmp_path / "plates").mkdir()
    for i, frame in enumerate(source):
        cv2.imwrite(str(tmp_path / "plates" / f"plate.{1001 + i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    before = sha(video), [sha(p) for p in sorted((tmp_path / "plates").glob("*.png"))]
    target = write_target(tmp_path / "target.png")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    if mode == "installed":
        from plugin_bridge.cli import main

        command = f"{sys.executable} -m plugin_bridge.cli json --socket {daemon.config.socket_path} --no-start"
        assert main(["blender-install", "--addons-dir", str(tmp_path / "addons"), "--bridge-command", command]) == 0
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO), str(daemon.config.socket_path), str(video), str(target),
         mode],
        capture_output=True, text=True, timeout=200, cwd=tmp_path, env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:] + proc.stdout[-2000:]
    info = json.loads(lines[-1])
    if "skip" in info:
        pytest.skip(f"bpy (Blender as a Python module) cannot be imported here: {info['skip']}")
    assert info["outcome"] == ["FINISHED"], info
    assert not info["ran_from_blend"], "a command saved in the .blend file ran"
    from engine.settings import EditSettings

    engine_defaults = EditSettings()
    for name, value in info["defaults"].items():  # the panel shows the engine's defaults
        assert value == pytest.approx(getattr(engine_defaults, name), rel=1e-6), name
    assert info["source"] == [2, 13, 18]
    channel = 4 if mode == "blocked" else 3
    assert info["placed"] == [channel, 13, 18], info  # same timeline frames, on the free channel above

    files = [Path(f) for f in info["files"]]
    assert len(files) == 5 and all(f.is_file() for f in files)
    beside = tmp_path / "plates" if mode == "images" else tmp_path  # a new folder beside the source
    assert files[0].parent.parent.parent == beside / "recast_edits"
    assert files[0].parent.parent.name == ("plate_3-8" if mode == "images" else "shot_3-8")
    with RecastClient.connect(socket=daemon.config.socket_path) as client:
        results = client.result_frames(info["job"])
    assert [f.read_bytes() for f in files] == [r.image.data for r in results]
    masks = np.stack([decode(r.mask.data, grey=True) for r in results])
    pictures = np.stack([decode(f) for f in files])
    assert frame_numbers(pictures, masks) == [3, 4, 5, 6, 7]  # the strip's media frames, not the file's first
    assert pictures.shape[1:] == source.shape[1:]
    assert (sha(video), [sha(p) for p in sorted((tmp_path / "plates").glob("*.png"))]) == before


# --- the version switch, without bpy ----------------------------------------------------------------


def _strip(kind: str, channel: int, start: int, end: int, **kw) -> SimpleNamespace:
    return SimpleNamespace(type=kind, channel=channel, frame_final_start=start, frame_final_end=end,
                           frame_final_duration=end - start, **kw)


def load_strips():  # noqa: ANN201 - the add-on package imports bpy; this one file does not
    import importlib.util

    spec = importlib.util.spec_from_file_location("recast_strips", REPO / "plugin_bridge" / "blender" / "strips.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("api", ["sequences", "strips"])
def test_strip_helpers_work_with_both_apis(api):
    s = load_strips()

    movie = _strip("MOVIE", 1, 13, 18, frame_start=10, filepath="/m.mov", fps=24.0, animation_offset_start=0)
    other = _strip("COLOR", 2, 15, 17)
    editor = SimpleNamespace(**{api: [movie, other], f"{api}_all": [movie, other]})
    assert s.top_level(editor) == [movie, other] and s.all_strips(editor) == [movie, other]
    rng = s.strip_range(movie, abspath=lambda p: p)
    assert (rng.media_start, rng.media_end, rng.frame_start, rng.count) == (3, 8, 13, 5)
    assert s.free_channel(editor, 1, 13, 18) == 3
    assert s.free_channel(editor, 1, 20, 25) == 2
    held = _strip("MOVIE", 1, 13, 18, frame_start=10, filepath="/m.mov", fps=24.0, animation_offset_start=2)
    assert s.strip_range(held, abspath=lambda p: p).media_start == 5  # 3.x hold offset shifts the content
    with pytest.raises(ValueError, match="movie or image"):
        s.strip_range(other)
    elements = [SimpleNamespace(filename=f"plate.{1001 + i}.png") for i in range(12)]
    images = _strip("IMAGE", 1, 13, 18, frame_start=10, directory="/plates", elements=elements)
    rng = s.strip_range(images, abspath=lambda p: p)
    assert rng.source == [f"/plates/plate.{1001 + i}.png" for i in range(12)] and (rng.media_start, rng.count) == (3, 5)
    still = _strip("IMAGE", 1, 13, 40, frame_start=13, directory="/", elements=elements[:1])
    rng = s.strip_range(still, abspath=lambda p: p)
    assert (rng.source, rng.count, rng.duration) == ("/plate.1001.png", 1, 27)
