"""Uploaded archives are checked before anything in them is read or allocated.

- Zip members (of a bundle, and of the ``.keras`` zip inside it) are limited in size one by one and together, by
  the sizes their headers declare, and copied with a cap, so a header that lies cannot get past the limit either.
- A ``.npy`` header declares a shape and a dtype that ``np.load`` allocates at once: the data it declares must be
  present in the file (no more than the bytes that follow the header), and no object arrays (pickles) are allowed.
"""

from __future__ import annotations

import zipfile
from typing import IO, TYPE_CHECKING

import numpy as np

from mitiga_core.errors import BundleError

if TYPE_CHECKING:
    from pathlib import Path


def check_zip(archive: zipfile.ZipFile, limit: int, what: str) -> None:
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > limit or total > limit:
            raise BundleError(f"{what}: {info.filename} unpacks to more than the limit of {limit} bytes")


def extract(archive: zipfile.ZipFile, member: str, target: Path, limit: int) -> None:
    """Copy one member to ``target``, stopping at ``limit`` bytes whatever its header says."""
    written = 0
    with archive.open(member) as source, target.open("wb") as sink:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise BundleError(f"{member} unpacks to more than the limit of {limit} bytes")
            sink.write(chunk)


def _check_npy_stream(stream: IO[bytes], size: int, what: str) -> None:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"format version {version} is not accepted")
    except (ValueError, SyntaxError) as exc:
        raise BundleError(f"{what}: not a valid .npy array: {exc}") from exc
    if dtype.hasobject:
        raise BundleError(f"{what}: object arrays are not accepted")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    present = size - stream.tell()
    if declared > present:
        raise BundleError(f"{what}: its header declares {declared} bytes of data, the file holds {present}")


def check_arrays(path: Path) -> None:
    """Check a ``.npy`` file, or every array of a ``.npz``, before ``np.load`` reads it."""
    if not path.exists():
        return
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    _check_npy_stream(member, info.file_size, f"{path.name}/{info.filename}")
        return
    with path.open("rb") as stream:
        _check_npy_stream(stream, path.stat().st_size, path.name)
