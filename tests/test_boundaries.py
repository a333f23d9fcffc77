"""DESIGN §1 package boundaries: desktop and plugin_bridge never import torch; engine never imports Qt.

Inside the packages: the pipeline (its stages and runtime) never imports the shapes world, the
benchmarks, the CLI or the daemon; the studio's model never imports Qt widgets; no modules import
each other in a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "desktop": {"torch", "diffusers", "transformers", "accelerate", "engine"},
    "plugin_bridge": {"torch", "diffusers", "transformers", "accelerate", "PySide6", "engine", "desktop"},
    "engine": {"PySide6", "PyQt5", "PyQt6", "shiboken6", "desktop", "plugin_bridge"},
    "protos": {"torch", "PySide6", "engine", "desktop", "plugin_bridge"},
}


# Inner rules: modules (prefixes) and what they must never import (prefixes).
PIPELINE = ("engine.pipeline", "engine.diffusion", "engine.compose", "engine.runtime", "engine.settings",
            "engine.errors")
INNER_FORBIDDEN = {
    PIPELINE: ("engine.shapes_world", "engine.bench", "engine.cli", "engine.daemon"),
    ("desktop.model",): ("PySide6.QtWidgets", "desktop.widgets", "desktop.main_window"),
}
PACKAGES = ("engine", "desktop", "plugin_bridge", "protos")


def full_imports(path: Path) -> set[str]:
    """Every module a file imports, dotted in full (`from a.b import c` gives a.b and a.b.c), lazy ones too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def imported_modules(path: Path) -> set[str]:
    return {name.split(".")[0] for name in full_imports(path)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Our modules → the modules of ours each imports."""
    files = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}
    graph = {}
    for name, path in files.items():
        ours = {m for m in full_imports(path) if m in files and m != name}
        # `from pkg import mod` reaches mod through pkg's __init__, which may hand mod on lazily: count mod
        graph[name] = {m for m in ours if not any(o.startswith(m + ".") for o in ours)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_inner_rules_hold():
    offenders = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = module_name(path)
            for owners, banned in INNER_FORBIDDEN.items():
                if _under(name, owners):
                    bad = sorted(m for m in full_imports(path) if _under(m, banned))
                    if bad:
                        offenders.append(f"{name} imports {bad}")
    assert not offenders, "\n".join(offenders)


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_circle_and_inner_checkers_catch_what_they_look_for(tmp_path):
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from engine.shapes_world.metrics import iou\n")
    assert _under("engine.shapes_world.metrics.iou", INNER_FORBIDDEN[PIPELINE])
    assert "engine.shapes_world.metrics" in full_imports(bad)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_imports_in_source(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch.nn\n    from PySide6 import QtCore\n")
    assert imported_modules(bad) >= {"torch", "PySide6"}


@pytest.mark.parametrize("package,banned", [("desktop", "torch"), ("plugin_bridge", "torch"),
                                            ("plugin_bridge", "PySide6"), ("engine", "PySide6")])
def test_importing_every_module_keeps_the_boundary(package, banned):
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    if m.name.endswith('__main__') or '.blender' in m.name: continue\n"
        "    importlib.import_module(m.name)\n"
        f"print('{banned}' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False", f"{package} pulled in {banned}"
