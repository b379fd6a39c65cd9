"""Statistics of `make experiment`: intervals for pass@1 and for paired differences of two arms.

The unit of data is a problem's unbiased pass@1 (`tasks.passk`, from its n samples and c passes), one
value per seed and problem. Two arms are paired: the same seeds and the same problems, so their
difference is taken cell by cell before any resampling.

* `bootstrap_mean`: percentile bootstrap of the mean over seeds and problems, resampling both. When
  every seed has the same problems (one fixed ``data_seed``) seeds and problems are crossed and are
  resampled independently (a seed-by-problem matrix); otherwise problems are resampled within each
  resampled seed (nested). The resamples come from a numpy Generator with a fixed seed, so an analysis
  is reproducible digit for digit. (scipy.stats.bootstrap resamples one axis only; numpy draws the
  two-way resamples here.)
* `t_interval`: the paired t-interval over seeds (each seed's mean over problems is one observation),
  the t quantile from scipy.stats.
* `seeds_for_halfwidth`: how many seeds a t-interval needs for a given half-width at the observed
  seed-to-seed standard deviation.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tasks.passk import pass_at_k


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float | None
    high: float | None
    method: str

    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self)


def problem_pass_at_1(n: int, c: int) -> float:
    """Unbiased pass@1 of one problem from ``n`` samples of which ``c`` pass."""
    value = pass_at_k(n, c, 1)
    if value is None:
        raise ValueError(f"pass@1 needs at least one sample, got n={n}")
    return value


def is_crossed(task_ids: Sequence[Sequence[str]]) -> bool:
    """True when every seed has the same problems in the same order (seeds and problems crossed)."""
    return all(list(ids) == list(task_ids[0]) for ids in task_ids)


def _rows(values: Sequence[Sequence[float]]) -> list[np.ndarray]:
    rows = [np.asarray(v, dtype=float) for v in values]
    if not rows or any(r.ndim != 1 or r.size == 0 for r in rows):
        raise ValueError("need at least one seed, each with at least one problem")
    return rows


def bootstrap_mean(values: Sequence[Sequence[float]], *, crossed: bool, resamples: int = 10_000,
                   confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean of ``values[seed][problem]``.

    ``crossed``: resample seeds and problems independently (every row has the same problems); else
    resample seeds, then problems within each seed (rows may differ in length). The estimate is the
    mean of the per-seed means (equal to the grand mean when crossed).
    """
    rows = _rows(values)
    rng = np.random.default_rng(seed)
    n_seeds = len(rows)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples)
    if crossed:
        matrix = np.vstack(rows)  # raises when rows differ in length
        n_problems = matrix.shape[1]
        problem_counts = rng.multinomial(n_problems, np.full(n_problems, 1 / n_problems), size=resamples)
        stats = ((seed_counts @ matrix) * problem_counts).sum(axis=1) / (n_seeds * n_problems)
    else:
        means = np.empty((resamples, n_seeds))
        for s, row in enumerate(rows):
            counts = rng.multinomial(row.size, np.full(row.size, 1 / row.size), size=resamples)
            means[:, s] = counts @ row / row.size
        stats = (seed_counts * means).sum(axis=1) / n_seeds
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    estimate = float(np.mean([r.mean() for r in rows]))
    design = "seeds x problems, crossed" if crossed else "problems nested in seeds"
    return Interval(estimate, float(low), float(high),
                    f"percentile bootstrap, {resamples} resamples of {design}, rng seed {seed}")


def t_interval(per_seed: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student t-interval of the mean of the per-seed values; low/high None with a single seed."""
    from scipy import stats

    values = np.asarray(per_seed, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return Interval(mean, None, None, "t-interval over seeds (undefined with one seed)")
    half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return Interval(mean, mean - half, mean + half, f"t-interval over {values.size} seeds, {values.size - 1} df")


def seeds_for_halfwidth(sd: float, halfwidth: float, confidence: float = 0.95,
                        most: int = 10_000) -> int | None:
    """Fewest seeds (>= 2) whose t-interval has at most ``halfwidth`` at standard deviation ``sd``.

    None when even ``most`` seeds would not do.
    """
    from scipy import stats

    if sd <= 0:
        return 2
    for n in range(2, most + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) <= halfwidth:
            return n
    return None
