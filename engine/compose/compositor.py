"""The output frames of a render from the model's pixels, chosen once per render.

Whole frame: the generated pixels (any size) go into the source through the feathered compositing
mask. Object framing: the model edits `clip`, each frame's box cut out at the model's native size;
an edited crop is composited into its crop through the crop's own hard mask, then pasted back into
its frame through the whole-frame mask, inside its box only. Either way layers (when there are any)
split the region between the new object and the clean plate, and outside the mask the output is the
source, byte for byte.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from engine.compose import composite as comp
from engine.compose import framing
from engine.compose.layers import Layers


class Compositor:
    def __init__(self, frames: np.ndarray, masks: np.ndarray, feather: float, layers: Layers | None = None,
                 boxes: np.ndarray | None = None, size: int = 0):
        """`frames` (n, H, W, 3) uint8 source; `masks` (n, H, W) uint8 edit regions; `boxes` (n, 3) crops
        (x0, y0, side) for object framing, edited at `size`², or None for the whole frame."""
        self.frames = frames
        self.boxes = boxes
        self.layers = layers
        weights = np.stack([comp.compositing_mask(mk, feather) for mk in masks])  # (n, H, W) uint8
        if boxes is None:
            self.clip, self.clip_masks, self.weights = frames, masks, weights
            self._crop_weights = None
            return
        self.clip = framing.crop(frames, boxes, size)  # (n, size, size, 3): what the model edits
        self.clip_masks = framing.crop_masks(masks, boxes, size)
        self._crop_weights = np.stack([comp.compositing_mask(mk, 0.0) for mk in self.clip_masks])
        inside = np.zeros(masks.shape, bool)
        for i, (x0, y0, s) in enumerate(boxes):
            inside[i, y0 : y0 + s, x0 : x0 + s] = True
        self.weights = np.where(inside, weights, 0).astype(np.uint8)  # nothing is generated outside a crop
        if layers is not None:
            self.layers = dataclasses.replace(layers, objects=np.where(inside, layers.objects, 0).astype(np.uint8))

    def frame(self, i: int, generated: np.ndarray, final: bool = True) -> np.ndarray:
        """Output frame i (H, W, 3) uint8 from the generated pixels of clip frame i (float [0, 1], any size).
        A preview (`final=False`) never fixes the clip's colour shift."""
        if self.boxes is not None:
            crop = comp.composite(self.clip[i], generated, self._crop_weights[i])
            H, W = self.frames.shape[1:3]
            generated, _ = framing.paste(crop.astype(np.float32) / 255, self.boxes[i], H, W)
        if self.layers is None:
            return comp.composite(self.frames[i], generated, self.weights[i])
        return self.layers.paste(i, self.frames[i], generated, self.weights[i], final)
