"""`recast-bridge`: `json` (JSON-lines bridge), `otio` (timeline conform), `blender-install`.

Why one entry point: hosts only need to find one executable. Connection flags are shared: by
default the bridge finds the user's daemon (discovery file, default socket) or starts one.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable

from plugin_bridge import __version__
from plugin_bridge.errors import BridgeError
from plugin_bridge.settings import add_settings_arguments, settings_from_args


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("daemon connection (default: find the user's daemon, or start one)")
    g.add_argument("--socket", help="unix socket of the daemon (default: discovered)")
    g.add_argument("--address", help="loopback HOST:PORT of a daemon started with --listen")
    g.add_argument("--token-file", help="bearer token file for --address")
    g.add_argument("--tls-ca", help="PEM CA of a daemon listening with --tls-cert (default $RECAST_ENGINE_TLS_CA); "
                   "a token goes to a non-loopback --address only over TLS")
    g.add_argument("--no-start", action="store_true", help="fail instead of starting a daemon when none runs")
    g.add_argument("--model", help="model a started daemon loads (as `recast-engine edit --model`)")


def connector(args: argparse.Namespace) -> Callable:
    from plugin_bridge.client import RecastClient

    def connect() -> RecastClient:
        return RecastClient.connect(socket=args.socket, address=args.address, token_file=args.token_file,
                                    start=not args.no_start, model=args.model, tls_ca=args.tls_ca)

    return connect


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """Prompt and target flags spelled as in `recast-engine edit`."""
    parser.add_argument("--target-image", required=True, help="image of the object to put in the video")
    parser.add_argument("--source-prompt", required=True, help="describes the source clip")
    parser.add_argument("--target-prompt", required=True, help="describes the edited clip")
    add_settings_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recast-bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"recast-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("json", help="JSON-lines bridge on stdin/stdout for hosts without grpcio",
                       description="Reads one JSON request per line on stdin, writes events on stdout. "
                       "See docs/bridge.md or --schema.")
    p.add_argument("--schema", action="store_true", help="print the protocol's JSON Schema and exit")
    add_connection_arguments(p)
    p.set_defaults(_run=_run_json)

    p = sub.add_parser("otio", help="edit one clip of an OpenTimelineIO timeline and write a new timeline",
                       description="Reads any timeline OpenTimelineIO reads (.otio, EDL, FCP XML, Kdenlive …), "
                       "edits exactly the selected clip's frames and writes a new timeline with the edited clip "
                       "on a new track above (or in place with --replace).")
    from plugin_bridge.conform import add_arguments as add_conform_arguments

    add_conform_arguments(p)
    add_edit_arguments(p)
    add_connection_arguments(p)
    p.set_defaults(_run=_run_otio)

    p = sub.add_parser("blender-install", help="install the Blender sequencer add-on")
    from plugin_bridge.blender_install import add_arguments as add_install_arguments

    add_install_arguments(p)
    p.set_defaults(_run=_run_blender_install)
    return parser


def _run_json(args: argparse.Namespace) -> int:
    from plugin_bridge import jsonl
    from plugin_bridge.protocol import SCHEMA

    if args.schema:
        print(json.dumps(SCHEMA, indent=2))
        return 0
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace") if hasattr(
        sys.stdin, "buffer") else sys.stdin
    return jsonl.run(connector(args), stdin, sys.stdout)


def _run_otio(args: argparse.Namespace) -> int:
    from plugin_bridge.conform import run_conform

    return run_conform(args, connector(args), settings_from_args(args))


def _run_blender_install(args: argparse.Namespace) -> int:
    from plugin_bridge.blender_install import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BridgeError as exc:
        print(f"recast-bridge {args.command}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"recast-bridge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
