"""The batched code path that runs off the CPU (on CUDA), exercised here on the CPU by
forcing it: it must find the same elements as the per-row CPU path (up to rounding)."""

import numpy as np

import genni.search as S
from genni.models import MLP
from genni.search import batching
from genni.seeds import element_generator


def test_batched_path_matches_rowwise(monkeypatch):
    spec = MLP((2, 4, 1), "tanh")
    rng = np.random.default_rng(0)
    X, Xh = rng.normal(size=(64, 2)), rng.normal(size=(64, 2))
    theta = spec.init_theta(1, element_generator(2, 0)[0], 3.0)[0].numpy()
    prob = S.Problem.from_arrays(spec, theta, X, Xh)
    settings = S.SearchSettings(n=6, batch_size=6)
    rowwise = S.run_search(prob, settings, seed=0)
    monkeypatch.setattr(batching, "batched", lambda t: True)
    batched = S.run_search(prob, settings, seed=0)
    assert rowwise.converged.sum() >= 3
    np.testing.assert_array_equal(batched.converged, rowwise.converged)
    assert np.all(batched.discrepancy[batched.converged] <= settings.tol)
    # same basins: converged elements land on the same points up to the tolerance's scale
    np.testing.assert_allclose(batched.theta[rowwise.converged], rowwise.theta[rowwise.converged], atol=1e-3)
