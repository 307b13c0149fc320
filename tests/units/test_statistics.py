"""Summary statistics (genni.geometry.statistics): Pearson against numpy, reason codes, bootstrap
intervals by their defining facts, quantile summaries against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genni.geometry import statistics as S


def test_pearson_matches_numpy_and_is_clipped():
    rng = np.random.default_rng(0)
    for p in (3, 10, 200):
        x, y = rng.normal(size=p), rng.normal(size=p)
        r, why = S.pearson(x, y)
        assert why == "ok" and r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-14)
    x = rng.normal(size=50)
    assert S.pearson(x, 3 * x + 1)[0] == pytest.approx(1.0, abs=1e-14)
    assert S.pearson(x, -x)[0] == pytest.approx(-1.0, abs=1e-14)
    assert abs(S.pearson(x, x * (1 + 1e-9 * np.arange(50)))[0]) <= 1.0  # clipped to [-1, 1]
    X, Y = rng.normal(size=(7, 20)), rng.normal(size=(7, 20))
    np.testing.assert_allclose(S.pearson_rows(X, Y), [np.corrcoef(a, b)[0, 1] for a, b in zip(X, Y)], atol=1e-14)
    assert math.isnan(S.pearson_rows(np.ones((1, 5)), Y[:1, :5])[0])


def test_reason_codes_and_their_renaming():
    assert S.pearson([1, 2], [3, 4])[1] == "too_few"
    assert S.pearson([1, 1, 1], [0, 1, 2])[1] == "constant_x"
    assert S.pearson([0, 1, 2], [5, 5, 5])[1] == "constant_y"
    assert S.pearson([0, np.inf, 2], [0, 1, 2])[1] == "nonfinite"
    assert set(S.REASONS) == {"ok", "nonfinite", "too_few", "constant_x", "constant_y"}
    codes = {"too_few": "too_few_networks", "constant_y": "flat"}
    assert S.pearson([1, 2], [3, 4], codes=codes)[1] == "too_few_networks"
    assert S.pearson([0, 1, 2], [5, 5, 5], codes=codes)[1] == "flat"
    assert S.pearson([1, 1, 1], [0, 1, 2], codes=codes)[1] == "constant_x"  # no entry: the generic code
    c = S.bootstrap_pearson([1, 1, 1], [0, 1, 2], codes=codes)
    assert math.isnan(c.rho) and c.n == 3 and c.reason == "constant_x" and all(map(math.isnan, c.ci))
    m = S.bootstrap_mean([1.0, np.nan, np.inf], codes={"too_few": "too_few_points"})
    assert math.isnan(m.rho) and m.n == 1 and m.reason == "too_few_points"


def test_bootstrap_intervals():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    y = x + 0.5 * rng.normal(size=60)
    c = S.bootstrap_pearson(x, y, n_boot=500, level=0.9, seed=3)
    assert c.reason == "ok" and c.n == 60 and c.level == 0.9
    assert c.rho == S.pearson(x, y)[0] and c.ci[0] < c.rho < c.ci[1] <= 1.0
    assert S.bootstrap_pearson(x, y, n_boot=500, level=0.9, seed=3) == c  # seeded: reproducible
    wide = S.bootstrap_pearson(x, y, n_boot=500, level=0.99, seed=3).ci
    assert wide[0] <= c.ci[0] and c.ci[1] <= wide[1]  # a higher level, a wider interval (same resamples)
    np.testing.assert_allclose(S.bootstrap_pearson(x, 2 * x - 1, n_boot=200).ci, 1.0, atol=1e-14)  # all linear
    assert all(map(math.isnan, S.bootstrap_pearson(x, y, n_boot=0).ci))
    v = np.concatenate([rng.normal(size=40), [np.nan, np.inf]])
    m = S.bootstrap_mean(v, n_boot=300, seed=0)
    assert m.n == 40 and m.rho == pytest.approx(v[:40].mean(), abs=1e-15) and m.ci[0] < m.rho < m.ci[1]
    assert S.bootstrap_mean(np.full(10, 2.5), n_boot=50).ci == (2.5, 2.5)


def test_quantile_summaries():
    x = np.random.default_rng(2).normal(size=101)
    qs = (0.0, 0.1, 0.5, 0.9, 1.0)
    got = S.quantiles(x, qs)
    assert list(got) == ["q00", "q10", "q50", "q90", "q100"]
    np.testing.assert_array_equal(list(got.values()), np.quantile(x, qs))
    assert S.min_median_max(x[:10]) == {"min": x[:10].min(), "median": np.median(x[:10]), "max": x[:10].max()}
    assert S.quantiles(np.zeros(0), qs) == {} and S.min_median_max(np.zeros(0)) == {}
