"""Batched forward and Jacobian against torch.nn, torch.func and finite differences."""

import numpy as np
import pytest
import torch

from genni.errors import ConfigError, GenniError
from genni.models import MLP
from genni.models.activations import ACTIVATIONS
from genni.models.base import module_to_theta
from genni.models.mlp import layout
from genni.seeds import element_generator

WIDTHS = (3, 5, 4, 2)


def _theta(spec, n=4, seed=0, scale=2.0):
    g, _ = element_generator(seed, 1)
    return spec.init_theta(n, g, scale)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_batched_forward_equals_torch_module(act):
    spec = MLP(WIDTHS, act)
    theta = _theta(spec)
    X = torch.randn(11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = spec.forward(theta, X)
    assert out.shape == (4, 11, 2)
    for t, o in zip(theta, out):
        module = spec.module(t)
        torch.testing.assert_close(o, module(X), atol=1e-12, rtol=0)
        # parameters_to_vector of the module is exactly our layout
        assert torch.equal(module_to_theta(module), t)
    # one θ [P] and a batch [N, P] take different kernels (which vectorised sigmoid/tanh path and
    # BLAS kernel runs depends on the CPU, the shape and the thread count), so they agree to a few
    # ulps, not bitwise: 1e-14 relative is ~50 ulps of float64
    torch.testing.assert_close(spec.forward(theta[0], X), out[0], atol=1e-14, rtol=1e-14)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_layers_are_the_module_intermediates(act):
    spec = MLP((2, 3, 3, 1), act)
    theta = _theta(spec, n=1)[0]
    X = torch.randn(5, 2, dtype=torch.float64)
    _, reps = spec.layers(theta, X)
    module = spec.module(theta)
    h, expected = X, [X]
    for layer in module:
        h = layer(h)
        if not isinstance(layer, torch.nn.Linear) or layer is module[-1]:
            expected.append(h)
    assert len(reps) == len(expected) == 4
    for a, b in zip(reps, expected):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_jacobian_matches_torch_func_and_finite_differences(act):
    spec = MLP(WIDTHS, act)
    theta = _theta(spec, n=3)
    X = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f, J = spec.jacobian(theta, X)
    torch.testing.assert_close(f, spec.forward(theta, X), atol=1e-14, rtol=0)
    for t, Jt in zip(theta, J):
        oracle = torch.func.jacrev(lambda th: spec.forward(th, X))(t)
        assert torch.linalg.norm(Jt - oracle) <= 1e-12 * torch.linalg.norm(oracle)
        # central differences: error O(h²) ~ 1e-10 for smooth activations; relu/leaky
        # are piecewise linear, exact unless a kink is crossed (h is far below the margin here)
        h = 1e-5
        e = torch.eye(spec.n_params, dtype=torch.float64)
        fd = torch.stack([(spec.forward(t + h * e[i], X) - spec.forward(t - h * e[i], X)) / (2 * h)
                          for i in range(spec.n_params)], dim=-1)
        assert torch.linalg.norm(Jt - fd) <= 1e-8 * torch.linalg.norm(oracle)


def test_flatten_unflatten_round_trip():
    spec = MLP((4, 3, 2), "tanh")
    theta = _theta(spec, n=5)
    layers = layout.unflatten(theta, spec.widths)
    assert [tuple(W.shape) for W, _ in layers] == [(5, 3, 4), (5, 2, 3)]
    assert [tuple(b.shape) for _, b in layers] == [(5, 3), (5, 2)]
    assert torch.equal(layout.flatten(layers), theta)
    # row-major weight: entry (o, i) of layer 1 sits at o * in + i
    assert layers[0][0][2, 1, 3] == theta[2, 1 * 4 + 3]
    assert layout.n_params(spec.widths) == spec.n_params == 4 * 3 + 3 + 3 * 2 + 2
    with pytest.raises(GenniError):
        layout.unflatten(theta[:, :-1], spec.widths)


def test_state_dict_round_trip_by_key_and_by_position():
    spec = MLP((2, 7, 3), "gelu")
    module = spec.module()
    theta = spec.load_state_dict(module.state_dict())
    np.testing.assert_array_equal(theta, module_to_theta(module).numpy())
    renamed = {f"layer{i}": v for i, v in enumerate(module.state_dict().values())}  # same layers, other names
    np.testing.assert_array_equal(spec.load_state_dict(renamed), theta)
    with pytest.raises(GenniError, match=r"wrong shape\(s\) 0\.weight \[7, 2\] where the module has \[6, 2\]"):
        MLP((2, 6, 3), "gelu").load_state_dict(module.state_dict())


def test_spec_json_round_trip_and_validation():
    spec = MLP((2, 16, 16, 1), "leaky_relu", negative_slope=0.2)
    again = MLP.from_json(spec.to_json())
    assert again == spec
    assert {"kind", "widths", "activation"} <= set(spec.to_dict())
    with pytest.raises(ConfigError, match="activation"):
        MLP((2, 1), "swish")
    with pytest.raises(ConfigError, match="widths"):
        MLP((2,), "relu")


def test_init_is_seeded_and_bounded():
    spec = MLP((3, 8, 1), "relu")
    a = spec.init_theta(2, element_generator(5, 0)[0])
    b = spec.init_theta(2, element_generator(5, 0)[0])
    c = spec.init_theta(2, element_generator(5, 1)[0])
    assert torch.equal(a, b) and not torch.equal(a, c)
    W1 = layout.unflatten(a, spec.widths)[0][0]
    assert W1.abs().max() <= 1 / np.sqrt(3)


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_forward_combination_equals_forward_at_the_combined_theta(act):
    """f at θ_i = Σ_j c_ij stack_j without forming θ_i: equal to the plain forward pass up to
    rounding (1e-12 relative to the output scale: sums in another order, O(depth·width) ulps)."""
    spec = MLP((3, 7, 5, 2), act)
    g = torch.Generator().manual_seed(3)
    stack = spec.init_theta(4, g).double()
    coeffs = torch.randn(9, 4, generator=g, dtype=torch.float64)
    X = torch.randn(11, 3, generator=g, dtype=torch.float64)
    got = spec.forward_combination(stack, coeffs, X)
    want = spec.forward(coeffs @ stack, X)
    assert got.shape == (9, 11, 2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))
    one = MLP((3, 2), act)  # no hidden layer: the affine map alone
    s1 = one.init_theta(2, g).double()
    torch.testing.assert_close(one.forward_combination(s1, coeffs[:, :2], X), one.forward(coeffs[:, :2] @ s1, X))
    with pytest.raises(ValueError):
        spec.forward_combination(stack, coeffs[:, :3], X)


@pytest.mark.parametrize("act,bias", [("relu", True), ("leaky_relu", False), ("relu", False)])
def test_kinks_products_equal_the_dense_preactivation_jacobian(act, bias):
    """Kinks (z, G·v by forward mode, rows G[idx] and the unit rows' Gram matrix in blocks) against the dense
    pre-activation Jacobian, which is itself checked against finite differences of the module's pre-activations."""
    spec = MLP((3, 5, 4, 6, 2), act, bias=bias)
    theta = _theta(spec, n=1)[0]
    X = torch.randn(13, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, G = spec.preactivation_jacobian(theta.numpy(), X)
    _, reps = spec.layers(theta, X, preactivations=True)
    np.testing.assert_array_equal(z, np.concatenate([r.numpy().ravel() for r in reps[1:-1:2]]))
    v = torch.randn(spec.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    eps = 1e-6
    zp = spec.preactivation_jacobian((theta + eps * v).numpy(), X)[0]
    zm = spec.preactivation_jacobian((theta - eps * v).numpy(), X)[0]
    np.testing.assert_allclose(G @ v.numpy(), (zp - zm) / (2 * eps), rtol=1e-6, atol=1e-8)

    k = spec.kinks(theta, X)
    np.testing.assert_array_equal(k.z.numpy(), z)
    np.testing.assert_allclose(k.jvp(v).numpy(), G @ v.numpy(), rtol=1e-12, atol=1e-13)
    idx = torch.randperm(len(z), generator=torch.Generator().manual_seed(3))[:40]
    np.testing.assert_array_equal(k.rows(idx).numpy(), G[idx.numpy()])
    idx = idx.sort().values
    rows = G[idx.numpy()]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    C = k.unit_rows(idx).numpy()
    np.testing.assert_allclose(C.T @ C, unit.T @ unit, atol=1e-13)
    assert MLP(WIDTHS, "tanh").kinks(_theta(MLP(WIDTHS, "tanh"), n=1)[0], X[:, :3]) is None


@pytest.mark.parametrize("act,bias,K", [("relu", True, 1), ("leaky_relu", True, 2), ("relu", False, 3), ("tanh", True, 1)])
def test_reduced_jacobian_has_the_gram_matrix_and_least_squares_of_the_jacobian(act, bias, K):
    """C, b against the dense J and r: CᵀC = JᵀJ, Cᵀb = Jᵀr, ‖b‖ ≤ ‖r‖, equal singular values and least-squares
    solutions; inputs on a coarse grid put many inputs in each linear region (and some regions hold one)."""
    spec = MLP((2, 6, 5, K), act, bias=bias)
    theta = _theta(spec, n=1)[0]
    g = torch.Generator().manual_seed(4)
    grid = torch.cartesian_prod(*[torch.linspace(-2, 2, 21, dtype=torch.float64)] * 2)
    X = torch.cat([grid, torch.randn(20, 2, dtype=torch.float64, generator=g)])
    r = torch.randn(len(X), K, dtype=torch.float64, generator=g)
    J = spec.jacobian(theta[None], X)[1][0].reshape(-1, spec.n_params)
    C, b = spec.reduced_jacobian(theta, X, r)
    if act != "tanh":
        assert C.shape[0] < J.shape[0] / 2
    scale = float((J.T @ J).abs().max())
    torch.testing.assert_close(C.T @ C, J.T @ J, rtol=0, atol=1e-13 * scale)
    torch.testing.assert_close(C.T @ b, J.T @ r.reshape(-1), rtol=0, atol=1e-12 * scale ** 0.5 * float(r.norm()))
    assert float(b @ b) <= float(r.reshape(-1) @ r.reshape(-1)) * (1 + 1e-12)
    sj, sc = torch.linalg.svdvals(J), torch.linalg.svdvals(C)
    k = min(len(sj), len(sc))
    torch.testing.assert_close(sc[:k], sj[:k], rtol=0, atol=1e-12 * float(sj[0]))
    want = torch.linalg.lstsq(J, r.reshape(-1, 1), rcond=1e-9, driver="gelsd").solution
    got = torch.linalg.lstsq(C, b.reshape(-1, 1), rcond=1e-9, driver="gelsd").solution
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9 * float(want.norm()))
    assert spec.reduced_jacobian(theta, X)[1] is None


@pytest.mark.parametrize("act,bias", [("relu", True), ("leaky_relu", False)])
def test_kinks_unit_rows_have_the_gram_matrix_of_the_unit_rows(act, bias):
    """unit_rows(idx) = C with CᵀC = Σ ĝĝᵀ over the unit-length rows of the dense pre-activation Jacobian; on many
    inputs (a grid: many per linear region) C has far fewer rows than idx."""
    spec = MLP((2, 6, 5, 4, 1), act, bias=bias)
    theta = _theta(spec, n=1)[0]
    X = torch.cartesian_prod(*[torch.linspace(-2, 2, 15, dtype=torch.float64)] * 2)
    _, G = spec.preactivation_jacobian(theta.numpy(), X)
    k = spec.kinks(theta, X)
    idx = torch.randperm(len(G), generator=torch.Generator().manual_seed(5))[:1200].sort().values
    rows = G[idx.numpy()]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    C = k.unit_rows(idx).numpy()
    assert C.shape[0] < len(idx) / 2
    np.testing.assert_allclose(C.T @ C, unit.T @ unit, atol=1e-12)

