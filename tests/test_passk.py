"""pass@k against the closed form 1 - C(n-c,k)/C(n,k), including the edge cases."""
from math import comb

import pytest

from tasks.passk import mean_pass_at_k, pass_at_k


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
def test_matches_closed_form_for_every_c_and_k(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)


def test_edges():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0      # k = n: any pass means pass
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 1, 5) is None       # k > n is undefined


def test_large_n_is_stable():
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)
    assert pass_at_k(1000, 500, 10) == pytest.approx(closed_form(1000, 500, 10))


def test_bad_arguments():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 0)


def test_mean_skips_undefined_k():
    got = mean_pass_at_k([(2, 1), (2, 2)], ks=(1, 2, 5))
    assert got == {"pass@1": pytest.approx(0.75), "pass@2": pytest.approx(1.0)}
    assert mean_pass_at_k([(1, 1), (5, 0)], ks=(1, 5)) == {"pass@1": 0.5}
