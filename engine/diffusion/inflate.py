"""Turn a 2D SD UNet into a video UNet without forking diffusers' code.

- ST-Attn: every self-attention (`attn1`) gets a processor whose keys/values come from the current
  frame and the previous one, optionally the first frame as an anchor.
- T-Attn: a temporal attention module attached to every transformer block, applied by a forward hook
  to the block's output, attending over frames at each spatial location. Its output projection starts
  at zero, so a freshly inflated UNet equals the 2D UNet on a single frame.

Frames travel in the batch axis as (groups * frames, ...); `VideoContext.frames` says how many.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VideoContext:
    frames: int = 1
    anchor_first: bool = True
    per_frame: bool = False  # the per-frame ablation: every frame attends only to itself

    @property
    def effective_frames(self) -> int:
        return 1 if self.per_frame else self.frames


def _heads(attn, x: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    return x.view(b, n, attn.heads, -1).transpose(1, 2)  # (b, heads, n, d)


class SparseCausalAttnProcessor:
    """Self-attention whose keys/values are [this frame, previous frame, (first frame)]."""

    def __init__(self, context: VideoContext):
        self.context = context

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        bf, n, _ = hidden_states.shape  # (groups * frames, tokens, channels)
        f = self.context.effective_frames
        if bf % f:
            raise ValueError(f"batch {bf} is not a multiple of the frame count {f}")
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        prev = [max(i - 1, 0) for i in range(f)]

        def gather(t: torch.Tensor) -> torch.Tensor:
            t = t.view(bf // f, f, n, -1)
            parts = [t, t[:, prev]]
            if self.context.anchor_first:
                parts.append(t[:, [0] * f])
            return torch.cat(parts, dim=2).view(bf, n * len(parts), -1)

        q, k, v = _heads(attn, q), _heads(attn, gather(k)), _heads(attn, gather(v))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(bf, n, -1).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class TemporalAttention(nn.Module):
    """Attention over frames at each spatial location; zero-initialised output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        from diffusers.models.attention_processor import Attention, AttnProcessor2_0

        heads = max(1, min(heads, dim // 8))
        self.norm = nn.LayerNorm(dim)
        # SDPA (diffusers' default where torch has it, pinned here): at full size a T-Attn batch is
        # (latent cells, frames) and an explicit (cells, heads, frames, frames) matrix is never built
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, processor=AttnProcessor2_0())
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bf, n, c = x.shape  # (groups * frames, tokens, channels)
        b = bf // frames
        h = x.view(b, frames, n, c).permute(0, 2, 1, 3).reshape(b * n, frames, c)
        h = self.attn(self.norm(h))
        h = h.view(b, n, frames, c).permute(0, 2, 1, 3).reshape(bf, n, c)
        return x + h


INIT_SEED = 0  # T-Attn's initial weights


def _transformer_blocks(unet: nn.Module):
    from diffusers.models.attention import BasicTransformerBlock

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, BasicTransformerBlock)]


def inflate_unet(unet: nn.Module, anchor_first: bool = True) -> VideoContext:
    """Inflate in place (idempotent); returns the context whose `frames` the caller sets per call."""
    existing = getattr(unet, "recast_video_context", None)
    if existing is not None:
        existing.anchor_first = anchor_first
        return existing
    context = VideoContext(frames=1, anchor_first=anchor_first)
    # T-Attn's Q, K and V start random and tuning moves them, so their draw is seeded: the same clip
    # tunes to the same weights in every process (the caller's global RNG is left as it was)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        for _, block in _transformer_blocks(unet):
            block.attn1.set_processor(SparseCausalAttnProcessor(context))
            dim = block.attn1.to_q.out_features
            block.add_module("temporal_attn", TemporalAttention(dim, block.attn1.heads).to(
                device=block.attn1.to_q.weight.device, dtype=block.attn1.to_q.weight.dtype))
            block.register_forward_hook(lambda mod, args, out: mod.temporal_attn(out, context.effective_frames))
    unet.recast_video_context = context
    return context


def is_trainable(name: str) -> bool:
    """DESIGN §2: Q of ST-Attn, Q of cross-attention, and all of T-Attn."""
    return ".attn1.to_q." in name or ".attn2.to_q." in name or ".temporal_attn." in name


def trainable_state(unet: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in unet.named_parameters() if is_trainable(n)}


def load_trainable_state(unet: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
