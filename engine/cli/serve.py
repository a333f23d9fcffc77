"""`recast-engine serve`: run the local gRPC daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.daemon.limits import Limits

    d = Limits()
    parser.add_argument("--model", default=None, help="model folder or cache id (default: the shipped 'shapes')")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: the pipeline's choice)")
    parser.add_argument(
        "--socket", type=Path, default=None, help="unix socket path (default $XDG_RUNTIME_DIR/recast/engine.sock)"
    )
    parser.add_argument(
        "--runtime-dir",
        type=Path,
        default=None,
        help="folder for socket, lock, token and discovery file (default $XDG_RUNTIME_DIR/recast)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="jobs, clips, masks and blobs (default $XDG_DATA_HOME/recast/engine)",
    )
    parser.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="also listen on TCP (loopback needs a token; other addresses TLS and a token)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="bearer token file, mode 0600 (created if missing; default RUNTIME_DIR/engine.token)",
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate for --listen")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key for --listen")
    parser.add_argument("--max-asset-bytes", type=int, default=d.max_asset_bytes)
    parser.add_argument("--max-clip-frames", type=int, default=d.max_clip_frames)
    parser.add_argument("--max-clip-pixels", type=int, default=d.max_clip_pixels)
    parser.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars)
    parser.add_argument("--max-queued-jobs", type=int, default=d.max_queued_jobs)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the pipeline (default: torch's)")
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="unload the model after this many idle seconds; the next job loads it again (0: never; default 300)",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="shut down after this many seconds without jobs, calls or streams (0: never, the default; "
        "clients that start the daemon on demand pass 900)",
    )
    parser.add_argument("--min-free-gb", type=float, default=1.0,
                        help="refuse new uploads, imports and jobs while the data folder's disk has less free (GiB)")
    parser.add_argument("--cache-max-gb", type=float, default=None,
                        help="tensor cache cap in GiB, least recently used out first "
                             "(default: 10 GiB or 10%% of free disk, the smaller)")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from engine.daemon.app import Daemon, DaemonConfig
    from engine.daemon.limits import Limits

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limits = Limits(
        max_asset_bytes=args.max_asset_bytes,
        max_clip_frames=args.max_clip_frames,
        max_clip_pixels=args.max_clip_pixels,
        max_prompt_chars=args.max_prompt_chars,
        max_queued_jobs=args.max_queued_jobs,
    )
    config = DaemonConfig.from_defaults(
        runtime_dir=args.runtime_dir,
        data_dir=args.data_dir,
        socket_path=args.socket,
        listen=args.listen,
        token_file=args.token_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        model=args.model,
        device=args.device,
        limits=limits,
        torch_threads=args.threads,
        min_free_bytes=int(args.min_free_gb * 1024**3),
        cache_max_bytes=int(args.cache_max_gb * 1024**3) if args.cache_max_gb is not None else None,
        keep_alive=args.keep_alive,
        idle_exit=args.idle_exit,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon = Daemon(config)
    daemon.start()
    print(
        f"recast-engine serve: listening on unix:{daemon.socket_path}"
        + (f" and {daemon.tcp_address}" if daemon.tcp_address else ""),
        flush=True,
    )
    try:
        while not stop.wait(0.5) and not daemon.exit_requested.is_set():
            pass
    finally:
        daemon.stop()
    print("recast-engine serve: stopped", flush=True)
    return 0
