"""Generate the Python code for the protos (``make protos``): the event schemas into the core library, the Open
Inference Protocol's gRPC service into the inference service (no other service speaks it).

Usage: ``python protos/generate.py [OUT_ROOT]``. The default root is the repository, so the checked-in packages are
rewritten; the test that the code is current generates under a temporary root and compares.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
TARGETS = {
    "mitiga/v1/events.proto": ("services/core/mitiga_core/pb", "mitiga_core.pb", ("", "mitiga", "mitiga/v1")),
    "inference/grpc_predict_v2.proto": ("services/inference/mitiga_inference/pb", "mitiga_inference.pb",
                                        ("", "inference")),
}
"""Each proto: the package directory its code goes to, that package's import name, and its package folders."""


def _fix_imports(out: Path, package: str) -> None:
    """Make generated cross-module imports package-relative (protoc emits absolute ones)."""
    for path in out.rglob("*_pb2*.py"):
        text = path.read_text()
        fixed = re.sub(r"^from (mitiga\.v1|inference) import", rf"from {package}.\1 import", text, flags=re.M)
        path.write_text(fixed)


def generate(root: Path) -> list[Path]:
    """Generate every proto's code under ``root``; the package directories written."""
    include = Path(protoc.__file__).resolve().parent / "_proto"
    written = []
    for source, (directory, package, folders) in TARGETS.items():
        out = root / directory
        out.mkdir(parents=True, exist_ok=True)
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
        if "grpc" in source:
            args.append(f"--grpc_python_out={out}")
        if protoc.main([*args, str(ROOT / source)]) != 0:
            raise SystemExit(f"protoc failed on {source}")
        for folder in folders:
            (out / folder / "__init__.py").touch()
        _fix_imports(out, package)
        written.append(out)
    return written


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)
