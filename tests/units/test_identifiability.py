"""Functional dimension: rank of the output Jacobian against closed-form counts."""

import numpy as np
import pytest
import torch

from genni import identifiability as I
from genni.models import MLP
from genni.models.mlp import layout
from genni.seeds import element_generator

X = np.random.default_rng(0).normal(size=(400, 3))


def _theta(spec, seed=1, scale=2.0):
    # seed 1: every relu unit is active on some but not all of X (a generic network; a unit
    # active on every input is linear there and lowers the rank further, see Grigsby et al.)
    return spec.init_theta(1, element_generator(seed, 0)[0], scale)[0].numpy()


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_generic_relu_rank_is_P_minus_hidden_and_null_space_holds_rescalings(act):
    spec = MLP((3, 6, 5, 2), act)
    theta = _theta(spec)
    sp = I.spectrum(I.output_jacobian(spec, theta, X))
    H = sum(spec.hidden_widths)
    assert sp.rank == spec.n_params - H == I.expected_rank(spec)
    assert sp.gap > 1e6  # the rank is clear-cut
    R = spec.symmetry.tangents(theta)
    assert R.shape == (spec.n_params, H)
    # every analytic rescaling direction lies in the numerical null space
    residual = R - sp.null_basis @ (sp.null_basis.T @ R)
    assert np.linalg.norm(residual) <= 1e-10 * np.linalg.norm(R)
    np.testing.assert_allclose(sp.null_basis.T @ sp.null_basis, np.eye(H), atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu"])
def test_smooth_activation_rank_is_full(act):
    spec = MLP((3, 4, 2), act)
    sp = I.spectrum(I.output_jacobian(spec, _theta(spec), X))
    assert sp.rank == spec.n_params == I.expected_rank(spec)
    assert sp.null_basis.shape == (spec.n_params, 0)


def test_dead_unit_lowers_rank_by_derived_amount():
    """A first-layer relu unit with all-negative pre-activations: its d_in + 1 incoming
    parameters and w_2 outgoing weights all get zero gradient; that span replaces the one
    rescaling direction the unit had, so rank = P − H − d_in − w_2."""
    spec = MLP((3, 6, 5, 2), "relu")
    theta = _theta(spec)
    s = layout.layer_slices(spec.widths)[0]
    u = 3
    theta[s.weight.start + 3 * u: s.weight.start + 3 * u + 3] = 0.0  # unit u's incoming weights
    theta[s.bias.start + u] = -1.0  # and a negative bias: dead on every input
    # premise: every other unit stays generic (active on some, not all inputs); a unit that
    # became always-active would lower the rank further (it is then linear on the data)
    import torch
    _, reps = spec.layers(torch.as_tensor(theta), torch.as_tensor(X))
    active = [(h > 0).double().mean(0).numpy() for h in reps[1:-1]]
    assert active[0][u] == 0 and np.all((np.delete(active[0], u) > 0) & (np.delete(active[0], u) < 1))
    assert np.all((active[1] > 0) & (active[1] < 1))
    sp = I.spectrum(I.output_jacobian(spec, theta, X))
    assert sp.rank == spec.n_params - 11 - 3 - 5


def test_rank_vs_probe_grows_to_the_bound():
    spec = MLP((3, 6, 5, 2), "relu")
    table = I.rank_vs_probe(spec, _theta(spec), X)
    assert table[0, 0] == 1 and table[-1, 0] == len(X)
    assert np.all(np.diff(table[:, 1]) >= 0)
    assert np.all(table[:, 1] <= np.minimum(table[:, 0] * 2, I.expected_rank(spec)))
    assert table[-1, 1] == I.expected_rank(spec)
    assert I.expected_rank(spec, n_rows=10) == 10


def test_jacobian_rows_are_input_major():
    spec = MLP((3, 4, 2), "tanh")
    theta = _theta(spec)
    J = I.output_jacobian(spec, theta, X[:5])
    J2 = I.output_jacobian(spec, theta, X[2:3])
    np.testing.assert_array_equal(J[4:6], J2)


def _recording_stream(seed=3, d=3):
    rng, seen = np.random.default_rng(seed), []

    def draw(n):
        seen.append(rng.normal(size=(n, d)))
        return seen[-1]
    return draw, seen


def test_rank_growth_equals_the_rank_of_the_whole_stacked_jacobian():
    """The compressed SVD (only Σ Vᵀ kept) gives, after each doubling, the rank of J over every input
    drawn so far (oracle: one SVD of the whole stack); a relu net's rank rises and then stops."""
    spec = MLP((3, 6, 5, 2), "relu")
    theta = _theta(spec)
    draw, seen = _recording_stream()
    table = I.rank_growth(spec, theta, draw, m0=4, m_max=4096, patience=2, chunk=7)
    ms = table[:, 0]
    assert ms[0] == 4 and np.all(ms[1:] == 2 * ms[:-1])  # doubling
    X_all = np.concatenate(seen)
    assert len(X_all) == ms[-1]
    for m, r in table:
        assert r == I.spectrum(I.output_jacobian(spec, theta, X_all[:m])).rank
    assert table[-1, 1] == table[-3, 1] == I.expected_rank(spec)  # stopped after 2 unchanged doublings
    assert table[0, 1] < table[-1, 1] and ms[-1] < 4096


def test_rank_growth_stops_at_m_max_when_still_changing():
    spec = MLP((3, 4, 2), "tanh")
    draw, _ = _recording_stream()
    table = I.rank_growth(spec, _theta(spec), draw, m0=1, m_max=6, patience=3)
    assert table[:, 0].tolist() == [1, 2, 4, 6]  # capped at m_max; rank ≤ 2m rows so it kept changing
    assert table[:, 1].tolist() == [2, 4, 8, 12]


@pytest.mark.parametrize("widths,act,n", [((3, 6, 5, 2), "relu", 400), ((3, 8, 8, 2), "relu", 400),
                                          ((3, 4, 2), "tanh", 400), ((3, 6, 5, 2), "relu", 5)])
def test_randomized_rank_equals_the_svd_rank_without_forming_J(widths, act, n):
    """The matrix-free functional dimension (J·v and Jᵀ·u only) against the SVD of the full J: equal
    where J has a clear gap (generic networks), including the row-limited case (5 inputs, rank nK)."""
    spec = MLP(widths, act)
    theta = _theta(spec)
    exact = I.spectrum(I.output_jacobian(spec, theta, X[:n])).rank
    r = I.randomized_rank(spec, theta, X[:n])
    assert r["rank"] == exact
    assert r["bound"] > r["epsilon"] > 0 and r["products"] < 4 * spec.n_params


def test_randomized_rank_works_through_the_model_interface():
    from genni import models

    m = models.from_dict({"kind": "resmlp", "d_in": 3, "width": 3, "hidden": 5, "blocks": 2, "d_out": 3,
                          "activation": "tanh"})
    theta = 0.7 * torch.randn(m.n_params, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    _, J = m.jacobian(theta[None], torch.as_tensor(X))
    exact = I.spectrum(J[0].reshape(-1, m.n_params).numpy()).rank
    assert I.randomized_rank(m, theta.numpy(), X)["rank"] == exact
