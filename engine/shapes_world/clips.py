"""Shapes-world clips: an object moving on a smooth path over a static background, with ground truth.

A `ClipSpec` is resolution-free; `render_clip` draws it at any size and returns the frames with the
source-object masks, the clean plate, the target footprint at the source pose (same centre, size
and rotation, the target's shape) and the trajectories. Paths stay inside the frame by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.shapes_world.render import (
    Background,
    Pose,
    Scene,
    composite,
    coverage,
    random_background,
    render_background,
    render_target_image,
)
from engine.shapes_world.vocabulary import OBJECT_COLOURS, SHAPES, caption

MOTIONS: tuple[str, ...] = ("translate", "bounce", "curve")


@dataclass(frozen=True)
class ClipSpec:
    """What a clip shows and how the object moves; `target_*` is what the edit should put there."""

    colour: str
    shape: str
    background: Background
    motion: str = "translate"
    start: tuple[float, float] = (0.3, 0.5)  # centre at t=0 (fractions of W, H)
    velocity: tuple[float, float] = (0.4, 0.0)  # displacement over the clip (fractions of W, H)
    curve: float = 0.0  # "curve": sideways amplitude (fraction of min side)
    radius: tuple[float, float] = (0.15, 0.15)  # radius at t=0 and t=1 (ratio ≤ 2)
    rotation: tuple[float, float] = (0.0, 0.0)  # angle at t=0 and t=1, degrees
    target_colour: str = "blue"
    target_shape: str = "star"

    @property
    def source_caption(self) -> str:
        return caption(self.colour, self.shape, self.background.pattern, self.background.colour)

    @property
    def target_caption(self) -> str:
        return caption(self.target_colour, self.target_shape, self.background.pattern, self.background.colour)


@dataclass
class Clip:
    """A rendered clip and its ground truth (N frames of H×W)."""

    spec: ClipSpec
    frames: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool: source object
    clean_plate: np.ndarray  # (H, W, 3) uint8
    target_footprints: np.ndarray  # (N, H, W) bool: target shape at the source pose
    poses: list[Pose]
    centroids: np.ndarray  # (N, 2) source-object mask centroid (x, y) in pixels
    target_centroids: np.ndarray  # (N, 2) target-footprint centroid (x, y) in pixels

    @property
    def edit_regions(self) -> np.ndarray:
        return self.masks | self.target_footprints


def _reflect(x: float, lo: float, hi: float) -> float:
    """Bounce x back and forth between lo and hi."""
    if hi <= lo:
        return (lo + hi) / 2
    span = hi - lo
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def _extent(shape_a: str, shape_b: str) -> float:
    """Farthest outline point of either shape from the centre, in radii (any rotation stays inside)."""
    from engine.shapes_world.render import shape_outline

    return float(max(np.linalg.norm(shape_outline(s), axis=1).max() for s in (shape_a, shape_b)))


def pose_at(spec: ClipSpec, t: float, height: int, width: int) -> Pose:
    """The object's pose at time t ∈ [0, 1]; centre clamped so both footprints stay in the frame."""
    r = spec.radius[0] * (spec.radius[1] / spec.radius[0]) ** t  # geometric: smooth scale change
    m = min(height, width)
    reach = _extent(spec.shape, spec.target_shape) * max(spec.radius) * m
    lo_x, hi_x = reach / width, 1 - reach / width
    lo_y, hi_y = reach / height, 1 - reach / height
    x = spec.start[0] + spec.velocity[0] * t
    y = spec.start[1] + spec.velocity[1] * t
    if spec.motion == "curve":
        vx, vy = spec.velocity
        n = math.hypot(vx, vy) or 1.0
        s = spec.curve * math.sin(math.pi * t)
        x, y = x - vy / n * s * m / width, y + vx / n * s * m / height
    if spec.motion == "bounce":
        x, y = _reflect(x, lo_x, hi_x), _reflect(y, lo_y, hi_y)
    x, y = min(max(x, lo_x), hi_x), min(max(y, lo_y), hi_y)
    angle = spec.rotation[0] + (spec.rotation[1] - spec.rotation[0]) * t
    return Pose(x, y, r, angle)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else (math.nan, math.nan)


def render_clip(spec: ClipSpec, n_frames: int, height: int, width: int) -> Clip:
    plate_f = render_background(spec.background, height, width)
    plate = np.clip(np.round(plate_f), 0, 255).astype(np.uint8)
    frames, masks, fps, poses = [], [], [], []
    for i in range(n_frames):
        pose = pose_at(spec, i / max(1, n_frames - 1), height, width)
        cov = coverage(spec.shape, pose, height, width)
        frames.append(composite(plate_f, spec.colour, cov))
        masks.append(cov >= 0.5)
        fps.append(coverage(spec.target_shape, pose, height, width) >= 0.5)
        poses.append(pose)
    return Clip(
        spec=spec,
        frames=np.stack(frames),
        masks=np.stack(masks),
        clean_plate=plate,
        target_footprints=np.stack(fps),
        poses=poses,
        centroids=np.array([_centroid(m) for m in masks]),
        target_centroids=np.array([_centroid(m) for m in fps]),
    )


def clip_target_image(spec: ClipSpec, height: int, width: int, seed: int = 0) -> np.ndarray:
    """The target image for a clip: its target object on a different, random background."""
    rng = np.random.default_rng(seed)
    bg = random_background(rng)
    while bg.colour == spec.background.colour:
        bg = random_background(rng)
    return render_target_image(spec.target_colour, spec.target_shape, height, width, rng, background=bg)[0]


def random_clip_spec(
    rng: np.random.Generator, shape_change: bool | None = None, motion: str | None = None
) -> ClipSpec:
    """A random clip; `shape_change` forces target shape ≠ (or =) source shape, colour always changes."""
    colour, shape = str(rng.choice(list(OBJECT_COLOURS))), str(rng.choice(SHAPES))
    t_colour = str(rng.choice([c for c in OBJECT_COLOURS if c != colour]))
    if shape_change is None:
        shape_change = bool(rng.random() < 0.5)
    t_shape = str(rng.choice([s for s in SHAPES if s != shape])) if shape_change else shape
    motion = motion or str(rng.choice(MOTIONS))
    r0 = float(rng.uniform(0.13, 0.22))  # at the 64-px working size a smaller star is a blob
    r1 = float(np.clip(r0 * rng.uniform(0.6, 1.7), max(r0 / 2, 0.1), min(r0 * 2, 0.3)))
    ang = float(rng.uniform(-30, 30)) if rng.random() < 0.3 else 0.0
    speed = float(rng.uniform(0.15, 0.45)) * (2.0 if motion == "bounce" else 1.0)
    direction = float(rng.uniform(0, 2 * math.pi))
    return ClipSpec(
        colour=colour,
        shape=shape,
        background=random_background(rng),
        motion=motion,
        start=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))),
        velocity=(speed * math.cos(direction), speed * math.sin(direction)),
        curve=float(rng.uniform(0.05, 0.15)) if motion == "curve" else 0.0,
        radius=(r0, r1),
        rotation=(0.0, ang),
        target_colour=t_colour,
        target_shape=t_shape,
    )


def clip_scene(spec: ClipSpec, pose: Pose) -> Scene:
    return Scene(spec.colour, spec.shape, pose, spec.background)
