"""The matrix-free LM step: J·v, Jᵀ·u and diag(JᵀJ) against torch.func and the full Jacobian, and the
conjugate-gradient search against the direct (Cholesky) one from the same starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genni.search as S
from genni import data
from genni.models import MLP
from genni.models.base import Model
from genni.models.mlp import layout


@pytest.mark.parametrize("act,bias", [("tanh", True), ("relu", True), ("gelu", False), ("leaky_relu", True)])
def test_products_match_torch_func_and_the_full_jacobian(act, bias):
    """J·v and Jᵀ·u to 1e-10 (relative) of torch.func.jvp / vjp through the torch module; diag(JᵀJ) to
    1e-12 of the full closed-form Jacobian's column norms."""
    spec = MLP((3, 5, 4, 2), act, bias=bias)
    g = torch.Generator().manual_seed(1)
    th = spec.init_theta(3, g, 2.0)
    X = torch.randn(9, 3, generator=g, dtype=torch.float64)
    v = torch.randn(3, spec.n_params, generator=g, dtype=torch.float64)
    u = torch.randn(3, 9, 2, generator=g, dtype=torch.float64)
    Jv, JTu = spec.jvp(th, X, v), spec.vjp(th, X, u)
    # the oracle: torch.func.jvp / vjp of functional_call on the torch.nn.Sequential (Model's generic path)
    ref_jv, ref_vjp = Model.jvp(spec, th, X, v), Model.vjp(spec, th, X, u)
    assert torch.allclose(Jv, ref_jv, rtol=1e-10, atol=1e-10 * float(ref_jv.abs().max()))
    assert torch.allclose(JTu, ref_vjp, rtol=1e-10, atol=1e-10 * float(ref_vjp.abs().max()))
    _, J = spec.jacobian(th, X)
    d = spec.jtj_diagonal(th, X)
    assert torch.allclose(d, (J * J).sum((1, 2)), rtol=1e-12, atol=1e-12 * float(d.max()))


def test_layouts_agree_with_params():
    spec = MLP((2, 3, 1), "tanh")
    assert spec.n_params == layout.n_params(spec.widths)


@pytest.fixture(scope="module")
def tanh_problem():
    ds = data.load_dataset("moons", n_probe=128, n_heldout=64, n_train=200, seed=0)
    spec = MLP((2, 8, 1), "tanh")
    theta = spec.init_theta(1, torch.Generator().manual_seed(3), 2.0)[0].numpy()
    return S.Problem.from_arrays(spec, theta, ds.X_probe, ds.X_heldout)


def test_matrix_free_and_direct_lm_reach_the_same_element(tanh_problem):
    """Same starts (θ* + 1 % noise), same acceptance rule, no geodesic step, float64 direct steps: with the
    inner solver run to a relative residual of 1e-12 the conjugate-gradient search ends at the direct
    search's element to 1e-8 (measured 1e-12), in the same number of steps."""
    base = dict(n=4, batch_size=4, geodesic=0.0, init="perturb", init_scale=0.01, precision="float64")
    a = S.run_search(tanh_problem, S.SearchSettings(**base, solver="direct"), seed=0)
    b = S.run_search(tanh_problem, S.SearchSettings(**base, solver="cg", cg_tol=1e-12, cg_max=1000), seed=0)
    assert a.converged.all() and b.converged.all()
    assert np.array_equal(a.steps, b.steps)
    rel = np.abs(a.theta - b.theta).max(1) / np.linalg.norm(a.theta, axis=1)
    assert rel.max() < 1e-8


def test_matrix_free_is_chosen_above_the_threshold_and_converges_with_its_defaults(tanh_problem):
    assert S.resolve_solver(S.SearchSettings(), S.CG_AUTO_P + 1).solver == "cg"
    assert S.resolve_solver(S.SearchSettings(), S.CG_AUTO_P).solver == "direct"
    assert S.resolve_solver(S.SearchSettings(solver="cg"), 10).matrix_free
    f = S.run_search(tanh_problem, S.SearchSettings(n=3, batch_size=3, solver="cg", init="perturb",
                                                    init_scale=0.01), seed=1)
    assert f.converged.all() and np.all(f.discrepancy <= 1e-10)
    assert S.batch_capacity(tanh_problem.model, 128, S.SearchSettings(solver="cg", batch_size=64)) == 64
