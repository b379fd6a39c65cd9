"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

With ``n`` samples of which ``c`` pass, the probability that at least one of ``k`` samples drawn
without replacement passes is ``1 - C(n-c, k) / C(n, k)``. The ratio of binomials is computed as the
product ``prod_{i=n-c+1}^{n} (1 - k / i)`` (human-eval's form), which never forms a huge binomial and
stays accurate for large ``n``.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k for one problem; ``None`` when ``k > n`` (the estimate is undefined there)."""
    if n < 0 or c < 0 or k < 1 or c > n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        return None
    if n - c < k:  # every draw of k holds at least one passing sample
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k over problems given ``(n, c)`` per problem.

    A ``k`` is reported only when every problem has at least ``k`` samples, so a figure never mixes
    problems where it is defined with ones where it is not.
    """
    counts = list(counts)
    if not counts:
        return {}
    out: dict[str, float] = {}
    for k in sorted(set(ks)):
        values = [pass_at_k(n, c, k) for n, c in counts]
        if any(v is None for v in values):
            continue
        out[f"pass@{k}"] = sum(values) / len(values)
    return out
