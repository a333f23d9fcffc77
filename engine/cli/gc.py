"""`recast-engine gc`: free the disk a stopped daemon's store and tensor cache hold.

It deletes jobs that ended more than `--older-than` days ago (never a queued or running one), every
blob no row refers to, stale temp files, and trims the tensor cache to its cap. It takes the
daemon's data-folder lock, so it refuses to run beside a daemon (a running daemon frees what
DeleteJob, DeleteClip and DeleteAsset release, and collects everything at start).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the daemon's data folder (default $XDG_DATA_HOME/recast/engine)")
    parser.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                        help="also delete jobs that ended more than DAYS days ago, with their results")
    parser.add_argument("--cache-max-gb", type=float, default=None,
                        help="trim the tensor cache to this size (default: 10 GiB or 10%% of free disk, the smaller)")


def run(args: argparse.Namespace) -> int:
    from engine.daemon.retention import Freed, Retention
    from engine.daemon.security import InstanceLock, data_dir
    from engine.daemon.storage import Storage
    from engine.errors import InputError
    from engine.runtime.cache import TensorCache

    root = args.data_dir or data_dir()
    if not (root / "engine.db").is_file():
        raise InputError("data_dir", f"{root} holds no Recast store (no engine.db); pass --data-dir")
    if args.older_than is not None and args.older_than < 0:
        raise InputError("older_than", "must be 0 or more days")
    lock = InstanceLock(root / "daemon.lock")
    lock.acquire()  # refuses, naming the daemon's pid, while one runs on this store
    try:
        storage = Storage(root)
        try:
            retention = Retention(storage)
            jobs, freed = 0, Freed()
            if args.older_than is not None:
                cutoff = int((time.time() - args.older_than * 86400) * 1000)
                jobs, freed = retention.delete_finished_before(cutoff)
            freed = freed.add(retention.collect_all(grace_s=0.0))
        finally:
            storage.close()
        cap = int(args.cache_max_gb * GIB) if args.cache_max_gb is not None else None
        cache = TensorCache(root / "cache", max_bytes=cap)
        entries, cache_bytes = cache.evict()
    finally:
        lock.release()
    print(f"recast-engine gc: {jobs} jobs deleted; {freed.blobs} blobs ({freed.bytes / MIB:.1f} MiB) and "
          f"{entries} cache entries ({cache_bytes / MIB:.1f} MiB) freed in {root}", flush=True)
    return 0
