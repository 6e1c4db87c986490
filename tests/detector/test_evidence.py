"""How far the rows behind a ratio support it (mitiga_detector.evidence): ratios of errors measured on few rows are
discounted by their uncertainty, and the discount vanishes as the rows grow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mitiga_detector.evidence import Mean, supported_ratio, z_score


def test_the_supported_ratio_is_the_plain_ratio_at_confidence_one_half() -> None:
    recent, reference = Mean.of(np.r_[np.ones(30), np.zeros(70)]), Mean.of(np.r_[np.ones(15), np.zeros(85)])
    assert z_score(0.5) == 0.0
    assert supported_ratio(recent, reference, z_score(0.5)) == pytest.approx(0.30 / 0.15)
    assert supported_ratio(recent, reference, z_score(0.9)) < 2.0


def test_the_discount_shrinks_as_the_rows_grow() -> None:
    z = z_score(0.9)
    ratios = [supported_ratio(Mean(0.3, math.sqrt(0.21 / n)), Mean(0.15, math.sqrt(0.1275 / n)), z)
              for n in (50, 500, 50_000)]
    assert ratios[0] < ratios[1] < ratios[2] < 2.0 and ratios[2] > 1.95


def test_an_ordinary_error_over_a_lucky_reference_is_rarely_read_as_one_and_a_half_times_worse() -> None:
    """Same true error rate (0.15) on both sides, the reference from 100 held-out rows, the recent window 336 rows:
    the plain ratio reaches 1.5 in about one draw in ten; the supported one in under one in 200. A true doubling still reaches it
    with a large reference (the initial model's validation)."""
    rng = np.random.default_rng(0)
    z = z_score(0.9)
    plain = supported = 0
    for _ in range(2000):
        reference = Mean.of(rng.random(100) < 0.15)
        recent = Mean.of(rng.random(336) < 0.15)
        plain += supported_ratio(recent, reference, 0.0) >= 1.5
        supported += supported_ratio(recent, reference, z) >= 1.5
    assert plain > 100 and supported <= 10  # about 10% of the draws against under 0.5%
    doubled = [supported_ratio(Mean.of(rng.random(336) < 0.30), Mean.of(rng.random(600) < 0.15), z) for _ in range(200)]
    assert np.mean(np.asarray(doubled) >= 1.5) > 0.5


def test_chances_give_the_spread_of_a_sum_of_bernoulli_draws() -> None:
    chances = np.full(400, 0.2)
    mean = Mean.of_chances(chances)
    assert mean.value == pytest.approx(0.2) and mean.se == pytest.approx(math.sqrt(0.2 * 0.8 / 400))
    certain = Mean.of_chances(np.zeros(50))
    assert certain.se == 0.0


def test_a_root_metric_takes_the_root_and_a_missing_spread_counts_as_exact() -> None:
    assert supported_ratio(Mean(4.0, 0.0), Mean(1.0, 0.0), 1.0, root=True) == pytest.approx(2.0)
    assert supported_ratio(Mean(2.0, 0.0), Mean(1.0, math.nan), 1.0) == pytest.approx(2.0)
    assert math.isnan(supported_ratio(Mean(2.0, 0.1), Mean(0.0, 0.0), 1.0))
