"""`recast-bridge blender-install`: copy the sequencer add-on into Blender's user add-ons folder.

Why an installer rather than "zip it and click Install": the add-on must know how to start *this*
environment's bridge (Blender's Python has no grpcio and its PATH may not hold our script), so the
installer records the exact command in the add-on's config.json next to its files. It also writes
the settings table (protos/settings_table.py) as settings_table.json, which the add-on's properties
are built from: the installed copy cannot import `protos`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from plugin_bridge.errors import InvalidArgument
from protos.settings_table import table_json

ADDON_NAME = "recast_bridge"
SOURCE = Path(__file__).with_name("blender")
TABLE_FILE = "settings_table.json"  # as plugin_bridge/blender/settings_props.py reads it


def blender_config_roots() -> list[Path]:
    """Where Blender keeps per-version user folders on this platform."""
    home = Path.home()
    if sys.platform == "darwin":
        return [home / "Library" / "Application Support" / "Blender"]
    if sys.platform.startswith("win"):
        return [Path(os.environ.get("APPDATA", home)) / "Blender Foundation" / "Blender"]
    return [Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "blender"]


def find_addons_dir(version: str | None = None) -> Path:
    """`<config>/<version>/scripts/addons` for the given or the newest installed Blender version."""
    for root in blender_config_roots():
        if version:
            return root / version / "scripts" / "addons"
        versions = sorted(
            (p for p in root.glob("*") if p.is_dir() and re.fullmatch(r"\d+\.\d+", p.name)),
            key=lambda p: tuple(int(x) for x in p.name.split(".")),
        )
        if versions:
            return versions[-1] / "scripts" / "addons"
    raise InvalidArgument("blender-version: no Blender user folder found; run Blender once, or pass "
                          "--blender-version X.Y or --addons-dir DIR")


def bridge_command() -> list[str]:
    """The command the add-on runs: this environment's `recast-bridge json`."""
    exe = shutil.which("recast-bridge")
    return [exe, "json"] if exe else [sys.executable, "-m", "plugin_bridge.cli", "json"]


def install(addons_dir: Path, command: list[str] | None = None) -> Path:
    """Copy the add-on to `addons_dir/recast_bridge` (replacing an older copy of itself) with its config."""
    addons_dir.mkdir(parents=True, exist_ok=True)
    final = addons_dir / ADDON_NAME
    tmp = Path(tempfile.mkdtemp(prefix=f".{ADDON_NAME}-", dir=addons_dir))
    try:
        for src in sorted(SOURCE.glob("*.py")):
            shutil.copy2(src, tmp / src.name)
        (tmp / "config.json").write_text(json.dumps({"bridge_command": command or bridge_command()}, indent=2))
        (tmp / TABLE_FILE).write_text(json.dumps(table_json(), indent=1, ensure_ascii=False), encoding="utf-8")
        if final.exists():
            if not (final / "__init__.py").is_file() or "bl_info" not in (final / "__init__.py").read_text():
                raise InvalidArgument(f"addons_dir: {final} exists and is not the Recast add-on; not replacing it")
            old = final.with_name(f".{ADDON_NAME}-old-{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blender-version", help="install for this Blender version, e.g. 4.2 (default: newest)")
    parser.add_argument("--addons-dir", type=Path, help="install into this add-ons folder instead")
    parser.add_argument("--bridge-command", help="command line the add-on runs (default: this recast-bridge json)")


def run(args: argparse.Namespace) -> int:
    import shlex

    target = args.addons_dir or find_addons_dir(args.blender_version)
    command = shlex.split(args.bridge_command) if args.bridge_command else None
    path = install(Path(target), command)
    print(f"installed the Recast add-on in {path}; enable it in Blender: Edit > Preferences > Add-ons > Recast")
    return 0
