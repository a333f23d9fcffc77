"""Pixels at source resolution: compositing, object framing, windows and layers."""
