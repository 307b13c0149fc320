"""The certified sup-norm discrepancy: closed forms in 1-D, dense grids in 2-D, exact symmetry copies, the
relative bound, the batch driver and bad input."""

import numpy as np
import pytest

from genni.errors import GenniError
from genni.exact import SUP_STATUS_CODES, Domain, Network, certified_sup, certified_sups, relative_bound
from genni.models import MLP
from genni.models.mlp import layout


def _theta(layers):
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in layers])


def _difference(model, theta, theta_ref, X):
    return Network.of(model, theta).preactivations(X)[1] - Network.of(model, theta_ref).preactivations(X)[1]


def _grid(domain, n):
    axes = [np.linspace(lo, hi, n) for lo, hi in zip(domain.lo, domain.hi)]
    return np.stack(np.meshgrid(*axes), -1).reshape(-1, domain.dim)


def test_closed_form_maximum_at_the_box_edge():
    # f*(x) = relu(x), f(x) = relu(x) + 0.1 relu(x − 0.5) on [−1, 1]: the sup is 0.1 · 0.5 = 0.05 at x = 1
    model = MLP((1, 2, 1), "relu")
    hidden = (np.array([[1.0], [1.0]]), np.array([0.0, -0.5]))
    ref = _theta([hidden, (np.array([[1.0, 0.0]]), np.zeros(1))])
    theta = _theta([hidden, (np.array([[1.0, 0.1]]), np.zeros(1))])
    sup = certified_sup(model, theta, ref, Domain([-1.0], [1.0]))
    assert sup.status == "optimal"
    assert abs(sup.upper - 0.05) <= 1e-7 and abs(sup.lower - 0.05) <= 1e-12
    assert sup.witness[0] == pytest.approx(1.0)
    assert 0 <= sup.gap <= 1e-7


def test_closed_form_maximum_at_an_interior_kink():
    # Δ(x) = 0.2 relu(x + 0.2) − 0.4 relu(x − 0.3) + 0.2 relu(x − 0.8): a tent of height 0.1 at x = 0.3,
    # which no uniform sample hits: the MILP has to find the kink
    model = MLP((1, 3, 1), "relu")
    hidden = (np.ones((3, 1)), np.array([0.2, -0.3, -0.8]))
    v_ref = np.array([0.5, 0.3, -0.1])
    ref = _theta([hidden, (v_ref[None], np.array([0.1]))])
    theta = _theta([hidden, ((v_ref + [0.2, -0.4, 0.2])[None], np.array([0.1]))])
    sup = certified_sup(model, theta, ref, Domain([-1.0], [1.0]))
    assert sup.status == "optimal"
    assert abs(sup.upper - 0.1) <= 1e-7 and abs(sup.lower - 0.1) <= 1e-9
    assert abs(sup.witness[0] - 0.3) <= 1e-7


@pytest.mark.parametrize("widths, activation, bias, how", [
    ((2, 8, 8, 1), "relu", True, "near"),
    ((2, 8, 8, 1), "leaky_relu", False, "near"),
    ((2, 6, 6, 2), "relu", False, "unrelated"),
    ((2, 6, 6, 2), "leaky_relu", True, "near"),
    ((2, 8, 8, 1), "relu", True, "unrelated"),
])
def test_bracket_holds_against_a_dense_grid(widths, activation, bias, how):
    model = MLP(widths, activation, negative_slope=0.1, bias=bias)
    rng = np.random.default_rng(sum(widths) + bias)
    ref = rng.normal(size=model.n_params)
    theta = ref + 0.05 * rng.normal(size=model.n_params) if how == "near" else rng.normal(size=model.n_params)
    domain = Domain([-2.0, -1.0], [1.0, 2.5])
    sup = certified_sup(model, theta, ref, domain, time_limit=20)
    grid_max = np.abs(_difference(model, theta, ref, _grid(domain, 400))).max()
    assert sup.status == "optimal"
    assert sup.upper >= grid_max - 1e-9
    assert sup.lower >= grid_max - 1e-6 * sup.scale
    assert sup.lower <= sup.upper + 1e-15 and sup.gap == sup.upper - sup.lower >= 0
    assert domain.contains(sup.witness[None])[0]
    assert np.abs(_difference(model, theta, ref, sup.witness[None])).max() == sup.lower


def _near_pair(widths, seed: int, noise: float):
    """A relu MLP, a random θ* and θ = θ* + noise·N(0, I), with the generator that drew them."""
    model = MLP(widths, "relu")
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=model.n_params)
    return model, ref, ref + noise * rng.normal(size=model.n_params), rng


def test_a_search_stopped_by_its_limits_still_bounds_the_grid():
    model, ref, theta, _ = _near_pair((2, 8, 8, 1), 13, 0.01)
    domain = Domain([-2.0, -2.0], [2.0, 2.0])
    grid_max = np.abs(_difference(model, theta, ref, _grid(domain, 300))).max()
    stopped = certified_sup(model, theta, ref, domain, time_limit=0.0)
    assert stopped.status == "time_limit" and np.isfinite(stopped.upper)
    one_node = certified_sup(model, theta, ref, domain, max_binaries=None, node_limit=1)
    assert one_node.status in ("node_limit", "optimal")
    for sup in (stopped, one_node):
        assert sup.upper >= grid_max - 1e-9 and sup.lower <= grid_max + 1e-12


def _symmetry_copy(model, theta, rng):
    """Hidden units permuted, incoming weights and bias scaled by c > 0, outgoing weights by 1/c."""
    layers = [(np.array(W), np.array(b)) for W, b in layout.unflatten(theta, model.widths, model.bias)]
    for l in range(len(layers) - 1):
        W, b = layers[l]
        perm, c = rng.permutation(W.shape[0]), rng.uniform(0.3, 3.0, W.shape[0])
        layers[l] = (W[perm] * c[:, None], b[perm] * c)
        W_next, b_next = layers[l + 1]
        layers[l + 1] = (W_next[:, perm] / c[None], b_next)
    return np.concatenate([np.concatenate([W.ravel(), b]) if model.bias else W.ravel() for W, b in layers])


@pytest.mark.parametrize("activation, bias", [("relu", True), ("leaky_relu", False)])
def test_a_permuted_and_rescaled_copy_has_a_tiny_certified_sup(activation, bias):
    model = MLP((2, 8, 8, 1), activation, bias=bias)
    rng = np.random.default_rng(3)
    ref = rng.normal(size=model.n_params)
    theta = _symmetry_copy(model, ref, rng)
    domain = Domain([-3.0, -3.0], [3.0, 3.0])
    scale = np.abs(Network.of(model, ref).preactivations(_grid(domain, 50))[1]).max()
    assert np.abs(_difference(model, theta, ref, _grid(domain, 50))).max() <= 1e-12 * scale
    sup = certified_sup(model, theta, ref, domain)
    assert sup.status == "optimal"
    assert sup.upper <= 1e-6 * scale


def test_relative_bound_covers_the_sampled_relative_discrepancy():
    model, ref, theta, rng = _near_pair((2, 6, 6, 2), 5, 0.02)
    domain = Domain([-1.5, -1.5], [1.5, 1.5])
    sup = certified_sup(model, theta, ref, domain)
    X = domain.sample(4000, rng)
    power = (Network.of(model, ref).preactivations(X)[1] ** 2).sum(1).mean()
    sampled = (_difference(model, theta, ref, X) ** 2).sum(1).mean() / power
    assert relative_bound(sup.upper, power, 2) >= sampled > 0
    assert relative_bound(np.array([sup.upper, 0.0]), power, 2).shape == (2,)
    with pytest.raises(GenniError):
        relative_bound(sup.upper, 0.0, 2)


def test_the_batch_driver_matches_single_solves_and_respects_its_budget():
    model = MLP((2, 5, 5, 1), "relu")
    rng = np.random.default_rng(7)
    ref = rng.normal(size=model.n_params)
    thetas = ref + 0.05 * rng.normal(size=(3, model.n_params))
    domain = Domain([-1.0, -1.0], [1.0, 1.0])
    out = certified_sups(model, thetas, ref, domain, time_limit_each=20)
    assert out["certified_status_codes"] == list(SUP_STATUS_CODES)
    assert out["certified_witness"].shape == (3, 2)
    for i, theta in enumerate(thetas):
        sup = certified_sup(model, theta, ref, domain)
        assert out["certified_status"][i] == SUP_STATUS_CODES.index("optimal")
        assert out["certified_sup"][i] == pytest.approx(sup.upper, rel=1e-6, abs=1e-9)
        assert out["certified_lower"][i] <= out["certified_sup"][i]
        assert out["certified_gap"][i] == pytest.approx(out["certified_sup"][i] - out["certified_lower"][i])
    spent = certified_sups(model, thetas, ref, domain, time_limit_each=20, budget_seconds=0.0)
    assert np.isnan(spent["certified_sup"]).all()
    assert (spent["certified_status"] == SUP_STATUS_CODES.index("budget")).all()


def test_one_milp_on_the_whole_box_agrees_with_the_split_search():
    model = MLP((2, 4, 4, 1), "leaky_relu", negative_slope=0.2)
    rng = np.random.default_rng(11)
    ref, theta = rng.normal(size=(2, model.n_params))
    domain = Domain([-1.0, -2.0], [2.0, 1.0])
    split = certified_sup(model, theta, ref, domain)
    whole = certified_sup(model, theta, ref, domain, max_binaries=None)
    assert whole.n_boxes == 1 and whole.status == "optimal"
    assert whole.lower <= split.upper and split.lower <= whole.upper


@pytest.mark.parametrize("make", [
    lambda: (MLP((2, 4, 1), "relu"), np.zeros(5), np.zeros(17), Domain([0.0, 0.0], [1.0, 1.0])),
    lambda: (MLP((2, 4, 1), "tanh"), np.zeros(17), np.zeros(17), Domain([0.0, 0.0], [1.0, 1.0])),
    lambda: (MLP((2, 4, 1), "relu"), np.zeros(17), np.zeros(17), Domain([0.0], [1.0])),
    lambda: (MLP((2, 4, 1), "leaky_relu", negative_slope=2.0), np.zeros(17), np.zeros(17),
             Domain([0.0, 0.0], [1.0, 1.0])),
])
def test_bad_input_is_a_one_line_genni_error(make):
    model, theta, ref, domain = make()
    with pytest.raises(GenniError) as err:
        certified_sup(model, theta, ref, domain)
    assert "\n" not in str(err.value)


def test_bad_batch_shape_is_a_one_line_genni_error():
    model = MLP((2, 4, 1), "relu")
    with pytest.raises(GenniError) as err:
        certified_sups(model, np.zeros(17), np.zeros(17), Domain([0.0, 0.0], [1.0, 1.0]))
    assert "\n" not in str(err.value)
