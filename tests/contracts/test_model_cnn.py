"""kind = "cnn": the model contract on tiny LeNet-style networks, plus the CNN's own facts — planted symmetry
copies align back, which sign flips hold under which pooling, the rescaling tangents and the functional
dimension, the layer representations, and the configuration errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genni import models
from genni.errors import ConfigError
from genni.models import GroupElement
from genni.models.cnn import CNN
from tests.contracts.test_model_contract import ModelContract


def _x(n, d, seed=2):
    return np.random.default_rng(seed).normal(size=(n, d))


class CNNChecks:
    """The CNN-specific checks, mixed into every case below next to :class:`ModelContract` (``spec`` builds the
    model).  A mixin, not a ModelContract subclass, so the registry check only sees complete cases."""

    spec: dict = {}
    n_inputs = 7

    def make(self):
        model = models.from_dict({"kind": "cnn", **self.spec})
        return model, _x(self.n_inputs, model.in_dim)

    def test_planted_copies_align_back_exactly(self, case):
        """align(g·θ, θ) returns θ itself (relu: also in θ's rescaling gauge) and a g' with g'·(g·θ) = it."""
        model, X, theta, _ = case
        rng = np.random.default_rng(3)
        ref = theta[0].numpy()
        scale = np.linalg.norm(ref)
        for g in model.symmetry.sample(4, rng):
            moved = model.symmetry.act(ref, g)
            aligned, h = model.symmetry.align(moved, ref)
            np.testing.assert_allclose(model.symmetry.act(moved, h), aligned, rtol=0, atol=1e-12 * scale)
            np.testing.assert_allclose(model.symmetry.balance(aligned), model.symmetry.balance(ref), rtol=0, atol=1e-10)
            np.testing.assert_allclose(aligned, ref, rtol=0, atol=1e-10 * scale)
            out, want = model.forward(torch.as_tensor(aligned), X), model.forward(theta[0], X)
            torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))

    def test_balance_is_canonical_and_keeps_the_function(self, case):
        model, X, theta, _ = case
        ref = theta[0].numpy()
        b = model.symmetry.balance(ref)
        want = model.forward(theta[0], X)
        torch.testing.assert_close(model.forward(torch.as_tensor(b), X), want, rtol=1e-12,
                                   atol=1e-12 * float(want.abs().max()))
        np.testing.assert_allclose(model.symmetry.balance(b), b, rtol=0, atol=1e-12)
        if model.symmetry.kinds["rescaling"]:  # constant on the rescaling orbit, unit-norm incoming vectors
            g = model.symmetry.sample(1, np.random.default_rng(4))[0]
            g = GroupElement(tuple(np.arange(w) for w in model.hidden_widths), g.factors)  # no permutation
            np.testing.assert_allclose(model.symmetry.balance(model.symmetry.act(ref, g)), b, rtol=0, atol=1e-10)
            p = model.unflatten(b)
            for layer in range(len(model.hidden_widths)):
                np.testing.assert_allclose(np.linalg.norm(model._incoming(p, layer), axis=1), 1.0, rtol=1e-12)

    def test_tangent_rank_is_the_number_of_hidden_units(self, case):
        model, _, theta, _ = case
        T = model.symmetry.tangents(theta[0].numpy())
        want = sum(model.hidden_widths) if model.activation in ("relu", "leaky_relu") else 0
        assert T.shape == (model.n_params, want)
        if want:
            assert np.linalg.matrix_rank(T) == want
        assert model.expected_rank() == model.n_params - want

    def test_layers_are_the_stage_and_dense_outputs(self, case):
        model, X, theta, _ = case
        out, reps = model.layers(theta[0], X)
        names = model.layer_names()
        assert names == ["input", *[f"conv{s + 1}" for s in range(len(model.channels))],
                         *[f"dense{d + 1}" for d in range(len(model.dense))], "output"]
        sizes = [model.in_dim, *[c * h * w for c, (h, w) in zip(model.channels, model.spatial_sizes())],
                 *model.dense, model.out_dim]
        assert [tuple(r.shape) for r in reps] == [(X.shape[0], s) for s in sizes]
        torch.testing.assert_close(reps[-1], model.forward(theta[0], X), rtol=0, atol=0)
        torch.testing.assert_close(out, reps[-1], rtol=0, atol=0)
        # the last stage's representation is exactly what the first dense layer (or the output) reads
        p = {k: torch.as_tensor(v) for k, v in model.unflatten(theta[0].numpy()).items()}
        nxt = "dense.0.fc" if model.dense else "out"
        h = reps[len(model.channels)] @ p[nxt + ".weight"].T + p[nxt + ".bias"]
        if model.dense:
            torch.testing.assert_close(model.module().dense[0].act(h), reps[len(model.channels) + 1])
        else:
            torch.testing.assert_close(h, reps[-1])
        outN, repsN = model.layers(theta, X)
        assert [tuple(r.shape) for r in repsN] == [(self.N, X.shape[0], s) for s in sizes]
        torch.testing.assert_close(outN, model.forward(theta, X), rtol=0, atol=0)

    def test_filter_groups_are_the_filters(self, case):
        model, *_ = case
        groups = model.filter_groups()
        assert [n for _, n, _ in groups] == [*model.channels, *model.dense, model.d_out]
        assert all(b is not None for *_, b in groups)

    def test_dead_units_counts_a_silenced_channel(self, case):
        model, X, theta, _ = case
        p = model.unflatten(theta[0].numpy())
        assert len(model.dead_units(model.flatten(p), X.numpy())) == len(model.hidden_widths)
        p["stages.0.conv.weight"][1] = 0.0
        p["stages.0.conv.bias"][1] = -1.0  # constant post-activation: 0 for relu, σ(−1) otherwise
        assert model.dead_units(model.flatten(p), X.numpy())[0] >= 1

    def test_activation_pattern_is_invariant_under_the_symmetries(self, case):
        """relu / leaky_relu: the pattern is a bool array that positive rescalings keep and (only) permutations
        move; other activations have none."""
        model, X, theta, _ = case
        th = theta[0].numpy()
        pat = model.activation_pattern(th, X)
        if model.activation not in ("relu", "leaky_relu"):
            assert pat is None
            return
        assert pat.dtype == bool and pat.size > 0 and 0 < pat.mean() < 1
        g = model.symmetry.sample(1, np.random.default_rng(5))[0]
        g = GroupElement(tuple(np.arange(w) for w in model.hidden_widths), g.factors)
        np.testing.assert_array_equal(model.activation_pattern(model.symmetry.act(th, g), X), pat)

    def test_json_text_round_trip_and_describe(self, case):
        model, *_ = case
        back = models.from_dict(json.loads(json.dumps(model.to_dict())))
        assert back == model and hash(back) == hash(model)
        assert isinstance(back.channels, tuple) and isinstance(back.input_shape, tuple)
        text = model.describe()
        assert text.startswith(f"{model.activation} CNN ") and text.endswith(f"→ {model.d_out}")


class TestCNNReluMax(CNNChecks, ModelContract):
    spec = {"input_shape": [1, 6, 6], "channels": [3, 2], "kernel_size": 3, "padding": 1, "pool": "max",
            "dense": [4], "d_out": 2, "activation": "relu"}


class TestCNNTanhAvg(CNNChecks, ModelContract):
    spec = {"input_shape": [2, 5, 5], "channels": [3, 2], "kernel_size": 3, "padding": 1, "pool": "avg",
            "dense": [4], "d_out": 2, "activation": "tanh"}


class TestCNNLeakyNoPool(CNNChecks, ModelContract):
    spec = {"input_shape": [1, 5, 5], "channels": [3, 2], "kernel_size": 3, "padding": 1, "pool": "none",
            "dense": [4], "d_out": 2, "activation": "leaky_relu", "negative_slope": 0.1}


class TestCNNTanhMax(CNNChecks, ModelContract):
    spec = {"input_shape": [1, 6, 6], "channels": [2], "kernel_size": 3, "pool": "max", "dense": [3], "d_out": 2,
            "activation": "tanh"}


class TestCNNGeluNoDense(CNNChecks, ModelContract):
    spec = {"input_shape": [1, 5, 5], "channels": [2], "kernel_size": 2, "pool": "avg", "d_out": 1,
            "activation": "gelu"}


# --- which symmetries hold ------------------------------------------------------------------------------------
def _tiny(**kw):
    base = {"input_shape": (1, 6, 6), "channels": (2,), "kernel_size": 3, "dense": (3,), "d_out": 2}
    return CNN(**{**base, **kw})


def test_symmetry_kinds_say_exactly_what_holds():
    assert _tiny(activation="relu").symmetry.kinds == {
        "permutation": True, "rescaling": True, "sign_flip": False, "sign_flip_channels": False,
        "sign_flip_dense": False}
    k = _tiny(activation="tanh", pool="max").symmetry.kinds
    assert not k["rescaling"] and k["sign_flip"] and not k["sign_flip_channels"] and k["sign_flip_dense"]
    for pool in ("avg", "none"):
        assert _tiny(activation="tanh", pool=pool).symmetry.kinds["sign_flip_channels"]
    assert not _tiny(activation="tanh", pool="max", dense=()).symmetry.kinds["sign_flip"]
    assert not any(v for k, v in _tiny(activation="gelu").symmetry.kinds.items() if k != "permutation")


def _flip_first_channel(model):
    ones = [np.ones(w) for w in model.hidden_widths]
    ones[0][0] = -1.0
    return GroupElement(tuple(np.arange(w) for w in model.hidden_widths), tuple(ones))


@pytest.mark.parametrize("pool,exact", [("max", False), ("avg", True), ("none", True)])
def test_tanh_channel_sign_flip_is_exact_only_without_max_pooling(pool, exact):
    model = _tiny(activation="tanh", pool=pool)
    theta = model.init_theta(1, torch.Generator().manual_seed(0), 2.0)[0]
    X = torch.as_tensor(_x(20, model.in_dim))
    ref = model.forward(theta, X)
    moved = model.forward(torch.as_tensor(model.symmetry.act(theta.numpy(), _flip_first_channel(model))), X)
    err = float((moved - ref).abs().max() / ref.abs().max())
    assert (err < 1e-12) if exact else (err > 1e-3)
    if pool == "max":  # the sampled group never flips a conv channel there
        for g in model.symmetry.sample(5, np.random.default_rng(0)):
            assert np.all(g.factors[0] == 1.0)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_relu_channel_rescaling_is_exact_for_both_poolings(pool):
    model = _tiny(activation="relu", pool=pool)
    theta = model.init_theta(1, torch.Generator().manual_seed(0), 2.0)[0]
    X = torch.as_tensor(_x(20, model.in_dim))
    g = GroupElement(tuple(np.arange(w) for w in model.hidden_widths),
                        (np.array([3.0, 0.25]), np.ones(3)))
    ref = model.forward(theta, X)
    torch.testing.assert_close(model.forward(torch.as_tensor(model.symmetry.act(theta.numpy(), g)), X), ref, rtol=1e-12,
                               atol=1e-12 * float(ref.abs().max()))


# --- functional dimension -------------------------------------------------------------------------------------
def _jacobian(model, theta, X):
    """J [n·K, P] column by column through the forward-mode product (P ≪ n·K here, so far cheaper than
    ``model.jacobian``'s reverse mode; the contract checks that the two agree)."""
    P = model.n_params
    cols = model.jvp(theta.expand(P, P), X, torch.eye(P, dtype=torch.float64))
    return cols.reshape(P, -1).T.numpy()


def _rank(J):
    s = np.linalg.svd(J, compute_uv=False)
    return int((s > 1e-9 * s[0]).sum())


@pytest.mark.parametrize("spec,n,seed", [
    ({"channels": (2,), "pool": "max"}, 200, 1),      # P = 55: rank 50
    ({"channels": (2, 2), "pool": "none"}, 300, 3),   # P = 93: rank 86 (with 150 inputs only 85: see below)
])
def test_relu_functional_dimension_meets_the_rescaling_bound(spec, n, seed):
    """The rescalings are the only continuous symmetries of these tiny relu CNNs at a generic θ without dead
    units: rank J over many inputs = P − (hidden channels + dense hidden units), and the tangents span ker J."""
    model = _tiny(**spec)
    theta = model.init_theta(1, torch.Generator().manual_seed(seed), 2.0)
    X = torch.randn(n, model.in_dim, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
    assert not any(model.dead_units(theta[0].numpy(), X.numpy()))
    J = _jacobian(model, theta, X)
    T = model.symmetry.tangents(theta[0].numpy())
    m = sum(model.hidden_widths)
    assert np.linalg.matrix_rank(T) == T.shape[1] == m
    assert _rank(J) == model.n_params - m
    assert np.linalg.norm(J @ T) <= 1e-10 * np.linalg.norm(J) * np.linalg.norm(T)


def test_relu_functional_dimension_is_at_most_the_bound_with_max_pooling_and_small_images():
    """Only ≤ in general: each max-pooling window passes one position's gradient, the last stage here
    pools a 3×3 map to 1×1 (a 2-feature bottleneck before the dense layer), activation patterns that random
    inputs rarely reach are needed to see some directions, and dead units lose more.  This network measured
    rank 80–95 < 99 = P − 9 over seeds with 200–1200 Gaussian inputs (growing slowly with the inputs)."""
    model = CNN(input_shape=(1, 6, 6), channels=(3, 2), kernel_size=3, padding=1, pool="max", dense=(4,), d_out=2)
    theta = model.init_theta(1, torch.Generator().manual_seed(2), 2.0)
    X = torch.randn(60, model.in_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert _rank(_jacobian(model, theta, X)) <= model.n_params - sum(model.hidden_widths)


# --- configuration --------------------------------------------------------------------------------------------
def test_from_config_defaults_and_input_shape():
    keys = dict.fromkeys(CNN.CONFIG_KEYS)
    keys["channels"] = [4]
    m = CNN.from_config(keys, d_in=2 * 9 * 9, d_out=3, input_shape=(2, 9, 9))
    assert m == CNN(input_shape=(2, 9, 9), channels=(4,), d_out=3)
    assert (m.kernel_size, m.padding, m.pool, m.pool_size, m.dense, m.activation) == (5, 0, "max", 2, (), "relu")
    assert m.in_dim == 162 and m.out_dim == 3
    m2 = CNN.from_config({"channels": [4, 6], "kernel_size": 3, "dense": [8], "input_shape": [1, 12, 12]},
                         d_in=144, d_out=10, input_shape=(9, 9, 9))  # the table wins over the argument
    assert m2.input_shape == (1, 12, 12) and m2.spatial_sizes() == [(5, 5), (1, 1)]
    assert m2.describe() == "relu CNN 1×12×12 → conv[4, 6] k3 max2 → dense[8] → 10"


@pytest.mark.parametrize("m,d_in,shape,match", [
    ({"channels": [2], "input_shape": [1, 5, 5]}, 30, None,
     r"input_shape \[1, 5, 5\] has C·H·W = 1·5·5 = 25.*d_in = 30"),
    ({"channels": [2]}, 36, None, r"\[model\] input_shape"),
    ({"channels": [2, 2, 2], "kernel_size": 3, "padding": 1}, 36, (1, 6, 6),
     r"stage 3 max pooling \(size 2\) of its 1×1 conv output gives 0×0"),
    ({"channels": [2, 2], "kernel_size": 5}, 36, (1, 6, 6),
     r"stage 2 conv \(kernel 5, padding 0\) on a 1×1 image gives -3×-3"),
    ({"channels": [2], "pool": "median"}, 36, (1, 6, 6), r"unknown pool 'median'"),
    ({"channels": [2], "activation": "softplus"}, 36, (1, 6, 6), r"unknown activation 'softplus'"),
    ({"channels": [0]}, 36, (1, 6, 6), r"channels\[0\] must be a positive integer"),
    ({"channels": [2], "input_shape": [6, 6]}, 36, None, r"input_shape must be \[channels, height, width\]"),
    ({"kernel_size": 3}, 36, (1, 6, 6), r"set \[model\] channels"),
])
def test_from_config_errors_name_the_problem(m, d_in, shape, match):
    with pytest.raises(ConfigError, match=match):
        CNN.from_config(m, d_in=d_in, d_out=2, input_shape=shape)


CNN_CONTRACTS = [TestCNNReluMax, TestCNNTanhAvg, TestCNNLeakyNoPool, TestCNNTanhMax, TestCNNGeluNoDense]
