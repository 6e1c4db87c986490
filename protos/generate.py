"""Generate the Python code for the protos into the core library (``make protos``).

Usage: ``python protos/generate.py [OUT_DIR]``. The default output is the checked-in package
``services/core/mitiga_core/pb``; the test that the code is current generates into a temporary
directory and compares.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT.parent / "services" / "core" / "mitiga_core" / "pb"
SOURCES = ["mitiga/v1/events.proto", "inference/grpc_predict_v2.proto"]


def _fix_imports(out: Path) -> None:
    """Make generated cross-module imports package-relative (protoc emits absolute ones)."""
    for path in out.rglob("*_pb2*.py"):
        text = path.read_text()
        fixed = re.sub(r"^from (mitiga\.v1|inference) import", r"from mitiga_core.pb.\1 import", text, flags=re.M)
        path.write_text(fixed)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    for source in SOURCES:
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
        if "grpc" in source:
            args.append(f"--grpc_python_out={out}")
        if protoc.main([*args, str(ROOT / source)]) != 0:
            raise SystemExit(f"protoc failed on {source}")
    for package in ("", "mitiga", "mitiga/v1", "inference"):
        (out / package / "__init__.py").touch()
    _fix_imports(out)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
