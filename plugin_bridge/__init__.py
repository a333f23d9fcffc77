"""Recast inside host editors: SDK, JSON-lines bridge, OTIO conform, Blender add-on (DESIGN.md §7).

Talks to the engine daemon over gRPC only; never imports torch, Qt or the engine itself.
"""

from __future__ import annotations


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("recast-video")
    except Exception:
        return "0.0.0+unknown"


__version__ = _version()

__all__ = ["RecastClient", "__version__"]


def __getattr__(name: str):  # noqa: ANN202 - lazy, so `import plugin_bridge` stays light
    if name == "RecastClient":
        from plugin_bridge.client import RecastClient

        return RecastClient
    raise AttributeError(name)
