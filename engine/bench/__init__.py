"""`recast-engine bench`: `bench perf` (engine.bench.perf) and `bench quality` (engine.bench.quality).

Why a dispatcher: each benchmark is its own module with its own options; this
module only routes, and imports nothing heavy, so `recast-engine --help` stays fast.
"""

from __future__ import annotations

import argparse

BENCHMARKS = {
    "perf": ("engine.bench.perf", "latency, time outside model passes and memory (DESIGN.md §8)"),
    "quality": ("engine.bench.quality", "shapes-world quality metrics and ablations (DESIGN.md §4)"),
    "scale": ("engine.bench.scale", "SD-2.1-unCLIP architecture, random weights: every stage's time and memory"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.cli import add_commands

    add_commands(parser, BENCHMARKS, "benchmark", "_bench_run")


def run(args: argparse.Namespace) -> int:
    return int(args._bench_run(args) or 0)
