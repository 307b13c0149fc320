"""The equivalence search: convergence on small problems, determinism, streaming and subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genni.search as S
from genni import data, train
from genni.models import MLP


@pytest.fixture(scope="module")
def moons():
    return data.load_dataset("moons", n_probe=128, n_heldout=128, seed=0)


def _problem(moons, widths, activation, *, scale=2.0, trained=False):
    spec = MLP(widths, activation)
    if trained:
        theta = train.train_reference(spec, moons.X_train, moons.y_train, epochs=300, lr=1e-2,
                                      weight_decay=1e-3, seed=0)
    else:
        theta = train.random_reference(spec, seed=0, init_scale=scale)
    return S.Problem.from_arrays(spec, theta, moons.X_probe, moons.X_heldout)


@pytest.fixture(scope="module")
def tanh_problem(moons):
    return _problem(moons, (2, 8, 1), "tanh")


@pytest.fixture(scope="module")
def tanh_found(tanh_problem):
    return S.run_search(tanh_problem, S.SearchSettings(n=16, batch_size=16), seed=0)


def test_tanh_random_init_converges(tanh_problem, tanh_found):
    f = tanh_found
    assert f.converged.mean() >= 0.9
    assert np.all(f.discrepancy[f.converged] <= 1e-10)
    assert np.all(f.status[f.converged] == S.STATUS.index("converged"))
    assert np.all(f.discrepancy_heldout[f.converged] / tanh_problem.output_power_heldout < 1e-6)
    # genuinely different parameter sets, not copies of θ*
    th = f.theta[f.converged]
    assert np.min(np.linalg.norm(th - tanh_problem.theta_ref.numpy(), axis=1)) > 1e-2
    assert len({tuple(np.round(t, 6)) for t in th}) == len(th)


def test_relu_perturb_converges(moons):
    problem = _problem(moons, (2, 8, 8, 1), "relu", trained=True)
    settings = S.SearchSettings(n=16, batch_size=16, init="perturb", init_scale=0.01, restarts=1)
    f = S.run_search(problem, settings, seed=0)
    assert f.converged.mean() >= 0.9
    assert np.all(f.discrepancy[f.converged] <= 1e-10)


def test_deterministic_bitwise(tanh_problem, tanh_found):
    again = S.run_search(tanh_problem, S.SearchSettings(n=16, batch_size=16), seed=0)
    assert np.array_equal(again.theta, tanh_found.theta)
    assert np.array_equal(again.steps, tanh_found.steps)
    other = S.run_search(tanh_problem, S.SearchSettings(n=2, batch_size=2), seed=1)
    assert not np.array_equal(other.theta, tanh_found.theta[:2])


def test_chunks_cover_indices_once(tanh_problem):
    seen = []
    chunks = list(S.stream(tanh_problem, S.SearchSettings(n=10, batch_size=4, max_steps=30), seed=0,
                           flush_every=3, callback=seen.append))
    assert len(chunks) >= 2 and len(seen) == len(chunks)
    idx = np.concatenate([c.index for c in chunks])
    assert sorted(idx.tolist()) == list(range(10))
    for c in chunks:
        assert c.theta.shape == (len(c), tanh_problem.model.n_params)
        assert np.all((c.status >= 0) & (c.status < len(S.STATUS)))


def test_indices_subset_matches_full_run(tanh_problem, tanh_found):
    sub = S.run_search(tanh_problem, S.SearchSettings(n=16, batch_size=3), seed=0, indices=[3, 7, 11])
    assert sub.index.tolist() == [3, 7, 11]
    assert np.array_equal(sub.theta, tanh_found.theta[[3, 7, 11]])  # bitwise, whatever the batch


def test_dead_units_are_revived_without_changing_f(moons):
    problem = _problem(moons, (2, 8, 8, 1), "relu")
    spec = problem.model
    g = torch.Generator().manual_seed(0)
    theta = spec.init_theta(2, g)
    theta[0, 0:2] = 0.0
    theta[0, 16] = -1.0  # unit 0 of layer 1 is dead everywhere
    dead = spec.dead_mask(theta, problem.X)
    assert bool(dead[0, 0])
    gens = [torch.Generator().manual_seed(1), None]
    revived = spec.revive(theta, dead, gens)
    assert torch.equal(spec.forward(revived, problem.X), spec.forward(theta, problem.X))
    assert not bool(spec.dead_mask(revived, problem.X)[0, 0])  # alive again
    assert torch.equal(revived[1], theta[1])


def test_found_fields_and_relative(tanh_problem, tanh_found):
    f = tanh_found
    np.testing.assert_allclose(f.relative_discrepancy, f.discrepancy / tanh_problem.output_power)
    assert f.dead_units.shape == f.index.shape and np.all(f.dead_units == 0)


def test_stall_is_announced_once_and_budget_is_bounded():
    """A relu teacher from random starts: every element of the first batch stalls, the caller hears it
    once, and no element spends more than (restarts + 1) × max_steps steps."""
    spec = MLP((3, 7, 5, 2), "relu")
    ds = data.load_dataset("spheres", n_probe=128, n_heldout=64, n_train=0, seed=0)
    theta = train.random_reference(spec, seed=0)
    problem = S.Problem.from_arrays(spec, theta, ds.X_probe, ds.X_heldout)
    settings = S.SearchSettings(n=4, batch_size=4, max_steps=60, patience=10, restarts=1, hops=1)
    heard = []
    f = S.run_search(problem, settings, seed=0, on_stall=heard.append)
    assert not f.converged.any()
    assert len(heard) == 1 and "stalled" in heard[0] and "relu" in heard[0]
    assert np.all(f.steps <= (settings.restarts + 1) * settings.max_steps)
