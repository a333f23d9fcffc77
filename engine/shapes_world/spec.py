"""The `shapes` model's sizes (a `ModelSpec`), kept beside the code that trains it.

64×64 pixels → 16×16×4 latents. The UNet stays small so a 16-frame edit runs in seconds on a CPU;
cross-attention lives at 8×8 and 4×4 only (self-attention at 16×16 doubled the step time in the
trial). The vision encoder sees the full 64×64 frame in 8-pixel patches and is trained with
shape/colour classification heads and a per-token coverage head besides the contrastive loss, so
the image embedding must carry the target's shape (4-pixel patches without the coverage head did
not learn shape and cost 4× the attention). The UNet's ResNets take the time + image embedding as
scale and shift of their normalised features rather than as an added bias: that raised how often
samples had the asked-for shape in both trials (0.17 → 0.33 in run 2's probe; 0.21 → 0.29 in run 3,
with a focus stage; TRAINING.md).
The shipped weights (engine/models/shapes) predate this: they were trained with 4-px patches, no
coverage head and additive time conditioning (their own spec is the folder's `recast_spec.json`;
TRAINING.md says why the runs with newer recipes were not shipped).
"""

from __future__ import annotations

from engine.shapes_world.model_factory import ModelSpec

SHAPES = ModelSpec(
    image_size=64,
    vae_channels=(16, 32, 64),
    latent_channels=4,
    unet_channels=(32, 64, 128),
    unet_down=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    unet_up=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    unet_heads=2,
    layers_per_block=1,
    norm_groups=8,
    text_hidden=64,
    text_layers=2,
    text_max_length=16,
    vision_hidden=64,
    vision_layers=4,
    vision_patch=8,
    vision_image_size=64,
    projection_dim=32,
    prediction_type="v_prediction",
    unet_time_scale_shift="scale_shift",
)
