"""`recast-engine bench`: `bench perf` (engine.bench_perf) and `bench quality` (engine.shapes.bench_quality).

Why a dispatcher: each benchmark lives beside what it measures and keeps its own options; this
module only routes, and imports nothing heavy, so `recast-engine --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

BENCHMARKS = {
    "perf": ("engine.bench_perf", "latency, time outside model passes and memory (DESIGN.md §8)"),
    "quality": ("engine.shapes.bench_quality", "shapes-world quality metrics and ablations (DESIGN.md §4)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (module_name, help_text) in BENCHMARKS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # not built in this checkout
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._bench_run(args) or 0)
