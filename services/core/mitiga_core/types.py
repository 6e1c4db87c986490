"""Type aliases shared across mitiga (one place, as in ``starlette/types.py``)."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

AnyArray: TypeAlias = npt.NDArray[Any]
FloatArray: TypeAlias = npt.NDArray[np.float32]
Float64Array: TypeAlias = npt.NDArray[np.float64]
Headers: TypeAlias = dict[str, str]
JSONScalar: TypeAlias = str | int | float | bool | None
