"""One line of help per pipeline setting (`EditSettings`), shared by every front end.

The engine CLI and the plugin bridge spell their flags the same and must explain them the same;
the bridge may not import the engine, so the words live beside the contract.
"""

SETTING_HELP: dict[str, str] = {
    "steps": "DDIM steps for inversion, masks and generation",
    "seed": "random seed (tuning, image-embedding noise)",
    "guidance_scale": "classifier-free guidance scale (1 disables guidance)",
    "source_negative": "guide away from the source prompt and frames instead of the empty prompt and zero image",
    "noise_level": "unCLIP noise level added to the image embeddings",
    "tune_steps": "one-shot tuning steps on the clip (0 skips tuning)",
    "tune_lr": "one-shot tuning learning rate",
    "inversion_refine": "fixed-point refinements per DDIM inversion step",
    "mask_threshold": "mask threshold as a fraction of the clip's peak noise difference, or 'otsu'",
    "mask_dilate": "mask dilation, as a fraction of the frame's shorter side",
    "mask_refine": "refine mask edges with GrabCut on the source frame",
    "mask_text_only": "ablation: compute masks without the target image",
    "feather": "compositing feather, as a fraction of the frame's shorter side",
    "framing": "'object': edit a crop that follows the mask at the model's native size; 'frame': the whole frame",
    "renoise": "share of fresh noise mixed into the inverted start latents inside the mask (room for a new shape)",
    "layered": "new object only inside the target image's silhouette at the source pose; the clean plate elsewhere",
    "color_match": "with layers: share of the way the new object's colour moves to the target image's (0: none)",
    "latent_correction": "blend latents along nearest-neighbour fields between consecutive frames",
    "correction_weights": "weights of previous, current and next frame (sum 1), e.g. 0.25,0.5,0.25",
    "correction_block": "UNet up-block whose features give the nearest-neighbour fields",
    "temporal": "inflate the UNet across frames (off: per-frame ablation)",
    "anchor_first_frame": "ST-Attn also attends to the first frame",
    "window": "frames per window (memory is bounded by the window)",
    "overlap": "frames shared by consecutive windows",
    "preview_every": "decode a preview every N steps (0: never)",
    "cache": "cache tuned weights and inversions on disk",
}
