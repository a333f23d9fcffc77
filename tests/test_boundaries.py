"""DESIGN §1 package boundaries: desktop and plugin_bridge never import torch; engine never imports Qt."""

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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


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
