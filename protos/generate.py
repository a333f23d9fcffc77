"""Regenerates the committed Python code of the recast.v1 contract.

Why a script: grpcio-tools writes `from recast.v1 import engine_pb2`, which only works with
`protos/` on sys.path. Our packages import the contract as `protos.recast.v1`, so the generated
import lines are rewritten here, and the same function lets a test check that the committed code is
not stale (tests/test_daemon_protos.py).

Run: `python -m protos.generate` (from the repository root).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_ROOT / "recast" / "v1"
_IMPORT = re.compile(r"^from recast\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every .proto of the contract, sorted so the output does not depend on directory order."""
    return sorted(PACKAGE_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto into out_dir/recast/v1."""
    import grpc_tools  # dev dependency: only needed to regenerate
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as raw:
        raw_dir = Path(raw)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw_dir}",
            f"--pyi_out={raw_dir}",
            f"--grpc_python_out={raw_dir}",
            *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + " ".join(args[1:]))
        written = []
        target = out_dir / "recast" / "v1"
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted((raw_dir / "recast" / "v1").iterdir()):
            text = _IMPORT.sub("from protos.recast.v1 import ", src.read_text())
            if src.suffix == ".pyi":  # stubs follow protoc's style, not ours
                text = "# ruff: noqa\n" + text
            dst = target / src.name
            dst.write_text(text)
            written.append(dst)
        return written


def main() -> int:
    for path in generate(PROTO_ROOT):
        print(path.relative_to(PROTO_ROOT.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
