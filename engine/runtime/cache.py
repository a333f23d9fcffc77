"""Disk cache for tuned weights and inversions, keyed by content and settings.

Writes are atomic (temp file, fsync, rename), so a killed run never leaves a half-written entry.
The cache holds at most `max_bytes`: after each write the least recently used entries (by mtime,
which every hit refreshes) are removed until it fits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def default_cache_dir() -> Path:
    base = os.environ.get("RECAST_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "recast")
    return Path(base)


def content_key(*parts: object) -> str:
    """sha256 over bytes, arrays and JSON-able values, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        elif hasattr(part, "tobytes"):
            h.update(part.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()


GIB = 1024**3


def default_cache_cap(root: Path) -> int:
    """10 GiB or 10 % of the free space on the cache's disk, whichever is smaller."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return min(10 * GIB, shutil.disk_usage(probe).free // 10)


class TensorCache:
    def __init__(self, root: Path | None = None, enabled: bool = True, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.max_bytes = max_bytes if max_bytes is not None else default_cache_cap(self.root)

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.safetensors"

    def get(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(kind, key)
        if not self.enabled or not path.is_file():
            return None
        try:
            tensors = load_file(path)
        except Exception:  # noqa: BLE001 - a corrupt entry is just a miss
            return None
        try:
            os.utime(path)  # a hit makes the entry the most recently used
        except OSError:
            pass
        return tensors

    def put(self, kind: str, key: str, tensors: dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.evict()

    def entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, bytes, path) of every entry, oldest first."""
        found = []
        for path in self.root.glob("*/*.safetensors") if self.root.is_dir() else []:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append((st.st_mtime, st.st_size, path))
        return sorted(found)

    def evict(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Removes least recently used entries until the cache holds at most `max_bytes`; returns (entries, bytes)."""
        cap = self.max_bytes if max_bytes is None else max_bytes
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = freed = 0
        for _, size, path in entries:
            if total <= cap:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
            freed += size
        return removed, freed
