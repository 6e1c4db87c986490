"""Entrypoints are quiet: TensorFlow's C++ start-up noise stays out of a user's terminal unless asked for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
if sys.argv[1] == "quiet":
    from mitiga_core.quiet import quiet_frameworks
    quiet_frameworks()
import keras, numpy as np
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.predict(np.zeros((2, 3), np.float32), verbose=0)
print("predicted")
"""
NOISE = ("cuda", "absl::InitializeLog", "E0000", "XLA", "cpu_feature_guard")


def _run(mode: str, **env: str) -> tuple[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MITIGA_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                          env={**clean, **env}, check=True)
    return done.stdout, done.stderr


def test_framework_noise_is_off_by_default_and_back_with_debug() -> None:
    _, loud = _run("plain")
    assert any(n in loud for n in NOISE), loud  # what TensorFlow prints here on its own
    out, quiet = _run("quiet")
    assert out.strip() == "predicted" and not any(n in quiet for n in NOISE), quiet
    _, debug = _run("quiet", MITIGA_LOG_LEVEL="DEBUG")
    assert any(n in debug for n in NOISE)
