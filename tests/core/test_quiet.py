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
from mitiga_research.datasets import load_prices
from mitiga_research.modelzoo.training import train_forecaster
train_forecaster(load_prices("amzn")["open"].loc["2000-01-01":"2000-06-30"], name="lstm", arch="lstm", epochs=1)
print("trained")
"""
NOISE = ("cuda", "absl::InitializeLog", "E0000", "I0000", "XLA", "cpu_feature_guard")


def _run(mode: str, **env: str) -> tuple[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MITIGA_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                          env={**clean, **env}, check=True)
    return done.stdout, done.stderr


def test_framework_noise_is_off_by_default_and_back_with_debug() -> None:
    _, loud = _run("plain")
    assert any(n in loud for n in NOISE), loud  # what TensorFlow prints here on its own
    out, quiet = _run("quiet")
    assert out.strip() == "trained" and not any(n in quiet for n in NOISE), quiet
    _, debug = _run("quiet", MITIGA_LOG_LEVEL="DEBUG")
    assert any(n in debug for n in NOISE)
