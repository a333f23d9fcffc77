"""`recast-engine`: one entry point, one module per subcommand.

Each command module exposes `add_arguments(parser)` and `run(args) -> int`, and imports torch only
inside `run`, so `recast-engine --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine.errors import RecastError

COMMANDS: dict[str, tuple[str, str]] = {
    "edit": ("engine.cli.edit", "edit a clip: replace the object with the one in a target image"),
    "demo": ("engine.shapes_world.demo", "render a shapes-world clip and edit it with the shipped model"),
    "train": ("engine.shapes_world.train", "train the shapes model from scratch (seeded, resumable)"),
    "bench": ("engine.bench", "benchmarks: `bench quality`, `bench perf`"),
    "serve": ("engine.cli.serve", "run the local gRPC daemon"),
    "gc": ("engine.cli.gc", "free disk: old jobs, unreferenced blobs, the tensor cache over its cap"),
    "tiny-model": ("engine.shapes_world.model_factory", "write a tiny random SD-unCLIP model (tests, development)"),
}


def add_commands(parser: argparse.ArgumentParser, table: dict[str, tuple[str, str]], dest: str,
                 run_attr: str) -> None:
    """One subcommand per table entry (name → (module, help)); the module's `run` lands in `args.<run_attr>`."""
    sub = parser.add_subparsers(dest=dest, required=True, metavar=dest.upper())
    for name, (module_name, help_text) in table.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(**{run_attr: module.run})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recast-engine", description=__doc__.splitlines()[0])
    add_commands(parser, COMMANDS, "command", "_run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except RecastError as exc:
        print(f"recast-engine {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"recast-engine {args.command}: interrupted", file=sys.stderr)
        return 130
