"""Layered compositing of an edit: source outside the region, the new object inside its silhouette, the
clean plate in the rest of the region (DESIGN §2 stage 6, extended).

Built from the masks alone (auto or painted), the source frames and the target image, so a render
after a user's mask correction layers exactly what the user left in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.compose import composite as comp
from engine.compose.clean_plate import clean_plates, grow
from engine.compose.shape_prior import new_outlines, source_objects, target_silhouette

MIN_INTERIOR = 16  # object pixels a frame needs before its colour is trusted for the clip's colour match


@dataclass
class Layers:
    plates: np.ndarray  # (frames, H, W, 3) uint8: the background the old object hid
    objects: np.ndarray  # (frames, H, W) uint8: compositing weight of the new object's silhouette
    reference: np.ndarray  # (3,) float in [0, 1]: the target image's object colour (median)
    color_match: float = 1.0  # share of the way the new object's colour moves to the reference
    shift: np.ndarray | None = None  # (3,) the clip's colour shift, fixed by the first final frame

    def paste(self, i: int, source: np.ndarray, generated: np.ndarray, region: np.ndarray,
              final: bool = True) -> np.ndarray:
        """Composite frame i: `generated` float [0, 1] at any size, `region` uint8 weight of the edit.
        A preview (`final=False`) never fixes the clip's colour shift: its colours are still forming."""
        H, W = source.shape[:2]
        gen = cv2.resize(generated.astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
        if self.color_match > 0:
            gen = np.clip(gen + self.color_match * self._shift(i, gen, final), 0, 1)
        return comp.composite_layers(source, self.plates[i], gen, region, self.objects[i])

    def _shift(self, i: int, gen: np.ndarray, final: bool) -> np.ndarray:
        """One shift for the whole clip, so matching adds no flicker: the median colour of the first final
        frame's object interior, moved onto the reference's median."""
        if self.shift is not None:
            return self.shift
        interior = self.objects[i] == 255
        if interior.sum() < MIN_INTERIOR:
            return np.zeros(3, np.float32)
        shift = (self.reference - np.median(gen[interior], axis=0)).astype(np.float32)
        if final:
            self.shift = shift
        return shift


def grow_masks(frames: np.ndarray, masks: np.ndarray, target_image: np.ndarray, feather: float) -> np.ndarray:
    """Auto masks grown to hold all of the old object and the new object's outline where it will stand
    (uint8 0/255); unchanged when the target image shows no object against its border."""
    silhouette = target_silhouette(target_image)
    if silhouette is None:
        return masks
    old = source_objects(frames, clean_plates(frames, masks), masks)
    # past the old object's half-coverage edge by the feather's reach (at least a pixel): the feathered
    # edge of a tighter mask lets the antialiased rim show as a faint ring
    edge = grow(old, feather)
    return np.where(edge | new_outlines(silhouette, old), 255, masks).astype(np.uint8)


def shape_layers(frames: np.ndarray, masks: np.ndarray, target_image: np.ndarray, feather: float,
                 color_match: float) -> Layers | None:
    """The target's silhouette at the source object's pose inside `masks`, and the clip's clean plates;
    None when the target image shows no object against its border (the region is then generated whole)."""
    silhouette = target_silhouette(target_image)
    if silhouette is None:
        return None
    plates = clean_plates(frames, masks)
    placed = new_outlines(silhouette, source_objects(frames, plates, masks)) & (masks > 0)  # (frames, H, W)
    # feathered inwards: a pixel outside the silhouette is the plate's, so the new object never spills
    # onto what the old one must give back (a star's tips around a new circle)
    objects = np.stack([np.where(p, comp.compositing_mask(p, feather), 0).astype(np.uint8) for p in placed])
    inner = cv2.erode(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    reference = np.median(target_image[inner if inner.any() else silhouette], axis=0) / 255.0
    return Layers(plates, objects, reference.astype(np.float32), color_match)
