"""Training batches of shapes-world frames: pixels, object coverage, labels and captions.

Every batch is a pure function of (seed, stage, step), so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.shapes_world.render import (
    Background,
    Pose,
    Scene,
    composite,
    coverage,
    random_background,
    random_scene,
    render_background,
)
from engine.shapes_world.vocabulary import BACKGROUND_COLOURS, OBJECT_COLOURS, PATTERNS, SHAPES

COLOURS = list(OBJECT_COLOURS)
BGS = list(BACKGROUND_COLOURS)
# Training objects are larger than most benchmark objects: shape must be visible at 64×64.
TRAIN_RADIUS = (0.12, 0.38)
# Object framing (engine/compose/framing.py): the edit runs on a crop whose side is the object's extent / 0.3,
# so the object sits near the centre at radius ≈ 0.3 (0.27–0.38 by shape and rotation), the crop is
# shifted off-centre at frame borders, and a zoomed-in background has coarser patterns.
CROP_RADIUS = (0.22, 0.38)
CROP_JITTER = 0.1  # centre offset, fraction of the crop
CROP_PERIOD = (0.12, 0.6)


@dataclass
class Batch:
    images: np.ndarray  # (B, H, W, 3) uint8
    coverage: np.ndarray  # (B, H, W) float32 in [0, 1]
    colour: np.ndarray  # (B,) index into COLOURS
    shape: np.ndarray  # (B,) index into SHAPES
    pattern: np.ndarray  # (B,) index into PATTERNS
    background: np.ndarray  # (B,) index into BGS
    captions: list[str]

    @property
    def object_class(self) -> np.ndarray:
        """(colour, shape) as one index in [0, 48): what the image embedding must carry."""
        return self.colour * len(SHAPES) + self.shape


def batch_rng(seed: int, stage: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage, step])


def render_batch(
    rng: np.random.Generator,
    size: int,
    n: int,
    classes: np.ndarray | None = None,
    radius: tuple[float, float] = TRAIN_RADIUS,
    backgrounds: list[Background] | None = None,
    framing: str = "frame",
) -> Batch:
    """`n` random frames; `classes` (object-class indices) fixes colour and shape per frame,
    `backgrounds` the background per frame. `framing="object"` draws what an object-framed edit
    sees (`object_crop_scene`)."""
    imgs, covs, labels, caps = [], [], [], []
    for i in range(n):
        colour = shape = None
        if classes is not None:
            colour, shape = COLOURS[classes[i] // len(SHAPES)], SHAPES[classes[i] % len(SHAPES)]
        if framing == "object":
            scene = object_crop_scene(rng, colour=colour, shape=shape)
        else:
            scene = random_scene(rng, size, size, colour=colour, shape=shape, radius=radius)
        if backgrounds is not None:
            scene = Scene(scene.colour, scene.shape, scene.pose, backgrounds[i])
        cov = coverage(scene.shape, scene.pose, size, size)
        imgs.append(composite(render_background(scene.background, size, size), scene.colour, cov))
        covs.append(cov)
        labels.append(
            (
                COLOURS.index(scene.colour),
                SHAPES.index(scene.shape),
                PATTERNS.index(scene.background.pattern),
                BGS.index(scene.background.colour),
            )
        )
        caps.append(scene.caption)
    lab = np.array(labels)
    return Batch(np.stack(imgs), np.stack(covs), lab[:, 0], lab[:, 1], lab[:, 2], lab[:, 3], caps)


def object_crop_scene(rng: np.random.Generator, colour: str | None = None, shape: str | None = None) -> Scene:
    """A frame as object framing crops it: the object near the centre at radius ≈ 0.3, any rotation a
    clip may have, the background zoomed in (coarser stripes and checks)."""
    scene = random_scene(rng, 64, 64, colour=colour, shape=shape, radius=CROP_RADIUS)
    cx, cy = 0.5 + rng.uniform(-CROP_JITTER, CROP_JITTER, 2)
    bg = scene.background
    bg = Background(bg.colour, bg.pattern, bg.angle, float(rng.uniform(*CROP_PERIOD)), bg.phase)
    return Scene(scene.colour, scene.shape, Pose(float(cx), float(cy), scene.pose.radius, scene.pose.angle), bg)


def shape_group_batch(rng: np.random.Generator, size: int, n: int, plain_prob: float = 0.5) -> Batch:
    """Groups of six frames that share colour and background and differ only in shape (hard negatives:
    a caption can only be matched to its frame by shape). Half the groups use plain backgrounds,
    whose only edges are the object's."""
    groups = max(1, n // len(SHAPES))
    classes, bgs = [], []
    for _ in range(groups):
        colour = int(rng.integers(len(COLOURS)))
        bg = random_background(rng)
        if rng.random() < plain_prob:
            bg = Background(bg.colour, "plain")
        classes += [colour * len(SHAPES) + s for s in range(len(SHAPES))]
        bgs += [bg] * len(SHAPES)
    return render_batch(rng, size, len(classes), classes=np.array(classes), backgrounds=bgs)


def concat(a: Batch, b: Batch) -> Batch:
    return Batch(
        *(
            np.concatenate([x, y])
            for x, y in zip(
                (a.images, a.coverage, a.colour, a.shape, a.pattern, a.background),
                (b.images, b.coverage, b.colour, b.shape, b.pattern, b.background),
                strict=True,
            )
        ),
        a.captions + b.captions,
    )
