"""Draws the shapes world (DESIGN.md §4) at any resolution, with exact ground truth.

Poses are resolution-free: the centre is a fraction of the frame's width and height, the radius a
fraction of its shorter side. So one scene renders at 64×64 for training and at 256×256 (or 320×180)
for the benchmark, and ground truth is drawn from the same polygons as the pixels.
Images are numpy uint8 (H, W, 3) RGB; masks are bool (H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from engine.shapes_world.vocabulary import (
    BACKGROUND_COLOURS,
    CAPTION_TEMPLATE,
    OBJECT_COLOURS,
    PATTERNS,
    SHAPES,
    caption,
)

SUPERSAMPLE = 4  # antialiasing: draw at 4× and area-average down
_SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices in cv2.fillPoly


@dataclass(frozen=True)
class Pose:
    """Object pose: centre (fractions of W and H), radius (fraction of min(H, W)), angle (degrees)."""

    cx: float
    cy: float
    radius: float
    angle: float = 0.0


@dataclass(frozen=True)
class Background:
    """A background: colour word, pattern word, and the pattern's geometry (resolution-free)."""

    colour: str
    pattern: str
    angle: float = 0.0  # stripes / gradient direction, degrees
    period: float = 0.2  # stripe or checker period, fraction of min(H, W)
    phase: float = 0.0  # fraction of a period


@dataclass(frozen=True)
class Scene:
    """One frame's content: an object (colour, shape, pose) on a background."""

    colour: str
    shape: str
    pose: Pose
    background: Background

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.background.pattern, self.background.colour)


# ---------------------------------------------------------------- geometry


def shape_outline(shape: str) -> np.ndarray:
    """Unit outline (K, 2) of a shape centred at 0 with extent ≤ 1, y pointing down."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        return 0.9 * np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "square":
        s = 0.78
        return np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    if shape == "diamond":
        return np.array([[0, -1.0], [0.8, 0], [0, 1.0], [-0.8, 0]])
    if shape == "triangle":
        t = np.deg2rad([-90, 30, 150])
        return np.stack([np.cos(t), np.sin(t) + 0.12], 1)
    if shape == "star":
        t = np.deg2rad(-90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if shape == "cross":
        a, b = 0.95, 0.32
        return np.array(
            [
                [-b, -a],
                [b, -a],
                [b, -b],
                [a, -b],
                [a, b],
                [b, b],
                [b, a],
                [-b, a],
                [-b, b],
                [-a, b],
                [-a, -b],
                [-b, -b],
            ]
        )
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def shape_polygon(shape: str, pose: Pose, height: int, width: int) -> np.ndarray:
    """Outline in pixel coordinates (x, y) for a frame of the given size."""
    pts = shape_outline(shape)
    a = math.radians(pose.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    r = pose.radius * min(height, width)
    return pts @ rot.T * r + np.array([pose.cx * width, pose.cy * height])


def coverage(shape: str, pose: Pose, height: int, width: int, ss: int = SUPERSAMPLE) -> np.ndarray:
    """Fraction of each pixel covered by the shape, float32 (H, W) in [0, 1]."""
    canvas = np.zeros((height * ss, width * ss), np.uint8)
    pts = shape_polygon(shape, pose, height, width) * ss - 0.5  # pixel centres at integer coords
    cv2.fillPoly(canvas, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
    if ss == 1:
        return canvas.astype(np.float32) / 255.0
    return cv2.resize(canvas.astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_AREA)


def object_mask(shape: str, pose: Pose, height: int, width: int) -> np.ndarray:
    """Ground-truth mask: pixels at least half covered by the shape."""
    return coverage(shape, pose, height, width) >= 0.5


def fits(shape: str, pose: Pose, height: int, width: int) -> bool:
    """Whether the whole outline lies inside the frame."""
    p = shape_polygon(shape, pose, height, width)
    return bool(
        p[:, 0].min() >= 0 and p[:, 1].min() >= 0 and p[:, 0].max() <= width and p[:, 1].max() <= height
    )


# ---------------------------------------------------------------- backgrounds


def second_tone(colour: str) -> np.ndarray:
    """The pattern's second tone: the background colour lightened if dark, darkened if light."""
    c = np.array(BACKGROUND_COLOURS[colour], np.float32)
    luma = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    return c + 0.35 * (255 - c) if luma < 128 else c * 0.7


def render_background(bg: Background, height: int, width: int, ss: int = SUPERSAMPLE) -> np.ndarray:
    """Background as float32 (H, W, 3) in 0..255 (antialiased patterns)."""
    c1 = np.array(BACKGROUND_COLOURS[bg.colour], np.float32)
    if bg.pattern == "plain":
        return np.broadcast_to(c1, (height, width, 3)).copy()
    c2 = second_tone(bg.colour)
    m = min(height, width)
    a = math.radians(bg.angle)
    if bg.pattern == "gradient":
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        u = ((xs + 0.5) / width - 0.5) * math.cos(a) + ((ys + 0.5) / height - 0.5) * math.sin(a)
        t = np.clip(u / (abs(math.cos(a)) + abs(math.sin(a))) + 0.5, 0, 1)[..., None]
        return c1 * (1 - t) + c2 * t
    ys, xs = np.mgrid[0 : height * ss, 0 : width * ss].astype(np.float32)
    xs, ys = (xs + 0.5) / (ss * m), (ys + 0.5) / (ss * m)
    if bg.pattern == "striped":
        u = (xs * math.cos(a) + ys * math.sin(a)) / bg.period + bg.phase
        t = (np.floor(u * 2) % 2).astype(np.float32)
    elif bg.pattern == "checkered":
        u = (xs * math.cos(a) + ys * math.sin(a)) / bg.period + bg.phase
        v = (-xs * math.sin(a) + ys * math.cos(a)) / bg.period + bg.phase
        t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    else:
        raise ValueError(f"unknown pattern {bg.pattern!r}; expected one of {PATTERNS}")
    if ss > 1:
        t = cv2.resize(t, (width, height), interpolation=cv2.INTER_AREA)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def composite(background: np.ndarray, colour: str, cov: np.ndarray) -> np.ndarray:
    """Object of `colour` with coverage `cov` over a float background → uint8 image."""
    c = np.array(OBJECT_COLOURS[colour], np.float32)
    out = background * (1 - cov[..., None]) + c * cov[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def render_scene(scene: Scene, height: int, width: int) -> np.ndarray:
    bg = render_background(scene.background, height, width)
    return composite(bg, scene.colour, coverage(scene.shape, scene.pose, height, width))


# ---------------------------------------------------------------- captions


def parse_caption(text: str) -> tuple[str, str, str, str]:
    """Inverse of the caption grammar → (colour, shape, pattern, background colour)."""
    w = text.strip().split()
    expected = CAPTION_TEMPLATE.split()
    if len(w) != len(expected) or [w[i] for i in (0, 3, 4, 7)] != ["a", "on", "a", "background"]:
        raise ValueError(f"not a shapes-world caption: {text!r}")
    colour, shape, pattern, bg = w[1], w[2], w[5], w[6]
    for word, allowed in (
        (colour, OBJECT_COLOURS),
        (shape, SHAPES),
        (pattern, PATTERNS),
        (bg, BACKGROUND_COLOURS),
    ):
        if word not in allowed:
            raise ValueError(f"unknown word {word!r} in caption {text!r}")
    return colour, shape, pattern, bg


# ---------------------------------------------------------------- random scenes


def random_background(rng: np.random.Generator) -> Background:
    return Background(
        colour=str(rng.choice(list(BACKGROUND_COLOURS))),
        pattern=str(rng.choice(PATTERNS)),
        angle=float(rng.choice([0.0, 90.0, 45.0, -45.0, float(rng.uniform(0, 180))])),
        period=float(rng.uniform(0.12, 0.3)),
        phase=float(rng.uniform(0, 1)),
    )


def random_pose(
    rng: np.random.Generator,
    shape: str,
    height: int,
    width: int,
    radius: tuple[float, float] = (0.12, 0.3),
    rotate: bool = True,
) -> Pose:
    """A pose whose outline lies inside the frame."""
    r = float(rng.uniform(*radius))
    angle = float(rng.uniform(-45, 45)) if rotate else 0.0
    m = min(height, width)
    mx, my = 1.02 * r * m / width, 1.02 * r * m / height
    return Pose(float(rng.uniform(mx, 1 - mx)), float(rng.uniform(my, 1 - my)), r, angle)


def random_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    colour: str | None = None,
    shape: str | None = None,
    radius: tuple[float, float] = (0.12, 0.3),
    rotate_prob: float = 0.3,
) -> Scene:
    colour = colour or str(rng.choice(list(OBJECT_COLOURS)))
    shape = shape or str(rng.choice(SHAPES))
    pose = random_pose(rng, shape, height, width, radius, rotate=bool(rng.random() < rotate_prob))
    return Scene(colour, shape, pose, random_background(rng))


def render_target_image(
    colour: str,
    shape: str,
    height: int,
    width: int,
    rng: np.random.Generator | None = None,
    background: Background | None = None,
    pose: Pose | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A target image (the object on any background, any size/position) and its object mask."""
    rng = rng if rng is not None else np.random.default_rng(0)
    pose = pose or random_pose(rng, shape, height, width, (0.18, 0.4), rotate=False)
    scene = Scene(colour, shape, pose, background or random_background(rng))
    return render_scene(scene, height, width), object_mask(shape, pose, height, width)


def with_pose(scene: Scene, pose: Pose) -> Scene:
    return replace(scene, pose=pose)
