"""Size and queue limits, checked before any byte is decoded.

Why up front: a request's cost (decoding a video, allocating latents) is proportional to sizes the
client declares or the container header states, so those are checked first and an oversized
request is refused with RESOURCE_EXHAUSTED before it can exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import LimitError
from engine.settings import Limits as PipelineLimits

MIB = 1024 * 1024
_PIPELINE = PipelineLimits()  # the daemon never accepts what the pipeline would refuse later


@dataclass(frozen=True)
class Limits:
    """Defaults suit a workstation; `recast-engine serve` flags override them."""

    max_asset_bytes: int = 4 * 1024 * MIB
    max_chunk_bytes: int = MIB
    max_clip_frames: int = _PIPELINE.max_frames
    max_clip_pixels: int = _PIPELINE.max_clip_pixels
    max_prompt_chars: int = _PIPELINE.max_prompt_chars
    max_queued_jobs: int = 64
    max_message_bytes: int = 64 * MIB
    max_image_pixels: int = 8192 * 8192

    @property
    def pipeline(self) -> PipelineLimits:
        """The clip and prompt limits, checked by the pipeline's own Limits (one set of checks)."""
        return PipelineLimits(max_frames=self.max_clip_frames, max_clip_pixels=self.max_clip_pixels,
                              max_prompt_chars=self.max_prompt_chars)

    def check_asset_size(self, field: str, size: int) -> None:
        if size > self.max_asset_bytes:
            raise LimitError(field, f"{size} bytes exceeds the limit of {self.max_asset_bytes} bytes")

    def check_chunk(self, field: str, size: int) -> None:
        if size > self.max_chunk_bytes:
            raise LimitError(field, f"chunk of {size} bytes exceeds {self.max_chunk_bytes} bytes (1 MiB)")

    def check_image(self, field: str, width: int, height: int) -> None:
        if width * height > self.max_image_pixels:
            raise LimitError(field, f"{width}x{height} image exceeds {self.max_image_pixels} pixels")

    def check_queue(self, queued: int) -> None:
        if queued >= self.max_queued_jobs:
            raise LimitError("queue", f"{queued} jobs are waiting; the limit is {self.max_queued_jobs}")
