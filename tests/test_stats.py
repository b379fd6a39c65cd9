"""harness.experiment.stats on inputs with known answers: a better arm is found, equal arms are not, t by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.experiment.stats import (bootstrap_mean, is_crossed, problem_pass_at_1, seeds_for_halfwidth,
                           t_interval)


def _arm(rng, p: np.ndarray, seeds: int, n: int = 4) -> np.ndarray:
    """Per-problem unbiased pass@1 from n samples per problem at the problems' pass probabilities p."""
    passes = rng.binomial(n, np.broadcast_to(p, (seeds, p.size)))
    return np.vectorize(lambda c: problem_pass_at_1(n, int(c)))(passes)


def test_an_arm_better_by_construction_is_detected():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 0.7, size=200)          # problems differ in difficulty
    better, worse = _arm(rng, np.minimum(p + 0.1, 1.0), 3), _arm(rng, p, 3)
    diff = bootstrap_mean(better - worse, crossed=True)
    assert diff.excludes_zero() and diff.low > 0
    assert diff.low < 0.1 < diff.high   # the interval holds the true difference
    assert t_interval((better - worse).mean(axis=1)).low > 0


def test_identical_arms_give_an_interval_covering_zero():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.1, 0.7, size=200)
    a, b = _arm(rng, p, 3), _arm(rng, p, 3)     # same arm, independent draws
    for crossed in (True, False):
        diff = bootstrap_mean(a - b, crossed=crossed)
        assert diff.low < 0 < diff.high and not diff.excludes_zero()
    same = bootstrap_mean(a - a, crossed=True)   # the very same results: exactly zero
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


def test_t_interval_matches_a_hand_computation():
    # mean 0.2, sd 0.1, t(0.975, 2 df) = 4.3026527297 (tables: 4.303), half-width 4.3027 * 0.1 / sqrt(3)
    ci = t_interval([0.1, 0.2, 0.3])
    half = 4.3026527297 * 0.1 / math.sqrt(3)
    assert ci.estimate == pytest.approx(0.2)
    assert (ci.low, ci.high) == (pytest.approx(0.2 - half, abs=1e-10), pytest.approx(0.2 + half, abs=1e-10))
    assert t_interval([0.3]).low is None


def test_bootstrap_is_reproducible_digit_for_digit_and_depends_on_its_rng_seed():
    rng = np.random.default_rng(3)
    values = rng.uniform(size=(3, 50))
    assert bootstrap_mean(values, crossed=True, seed=7) == bootstrap_mean(values, crossed=True, seed=7)
    assert bootstrap_mean(values, crossed=True, seed=7) != bootstrap_mean(values, crossed=True, seed=8)


def test_bootstrap_of_a_constant_is_that_constant_and_nested_rows_may_differ_in_length():
    ci = bootstrap_mean([[0.5] * 10, [0.5] * 3], crossed=False)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_mean([[0.5] * 10, [0.5] * 3], crossed=True)
    # estimate = mean of the seeds' means, not of all cells
    assert bootstrap_mean([[1.0], [0.0, 0.0, 0.0]], crossed=False).estimate == 0.5


def test_seed_variation_widens_the_crossed_interval():
    rng = np.random.default_rng(4)
    problems = rng.uniform(size=100)
    calm = np.vstack([problems] * 3)
    shaky = calm + np.array([[-0.1], [0.0], [0.1]])  # seeds move every problem together
    width = lambda v: (lambda ci: ci.high - ci.low)(bootstrap_mean(v, crossed=True))  # noqa: E731
    assert width(shaky) > 1.5 * width(calm)


def test_crossed_design_needs_identical_problem_lists():
    assert is_crossed([["a", "b"], ["a", "b"]]) and not is_crossed([["a", "b"], ["b", "a"]])


def test_seeds_for_halfwidth():
    # sd 0.1, half-width 0.05: n = 18 is the first with t(0.975, n-1) * 0.1 / sqrt(n) <= 0.05
    assert seeds_for_halfwidth(0.1, 0.05) == 18
    assert seeds_for_halfwidth(0.0, 0.05) == 2
    assert seeds_for_halfwidth(1.0, 1e-6, most=50) is None
