"""Framework noise off by default in every entrypoint: TensorFlow's C++ start-up messages (CUDA plugins registered
twice, cuInit failing on a machine without a GPU, XLA's "compiled cluster") say nothing to a mitiga user.
``MITIGA_LOG_LEVEL=DEBUG`` (or ``verbose=True``) brings them back."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 to /dev/null: C++ code writes there directly, before any log level applies. A Python
    exception raised inside still propagates, and is printed once the descriptor is back."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_frameworks(*, import_tensorflow: bool = True, verbose: bool | None = None) -> None:
    """Silence TensorFlow and absl unless verbose; with ``import_tensorflow``, import it now, quietly (for an
    entrypoint that will use it anyway)."""
    if verbose is None:
        verbose = os.environ.get("MITIGA_LOG_LEVEL", "").upper() == "DEBUG"
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if import_tensorflow and "tensorflow" not in sys.modules:
        with _stderr_to_devnull():
            import tensorflow as tf

            # XLA announces itself once per process (service start, device, "compiled cluster") through absl, which
            # no log level stops: let it do so now, while fd 2 is closed
            tf.function(jit_compile=True)(lambda x: x + 1.0)(tf.constant(1.0))
        tf.get_logger().setLevel(logging.ERROR)  # "triggered tf.function retracing" and the like
        with contextlib.suppress(ImportError):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
