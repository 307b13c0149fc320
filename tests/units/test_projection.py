"""Subspaces, discrepancy grids, paths and barriers: orthonormality, exact placements,
direct-evaluation oracles, bitwise resume, and closed forms along rescaling paths."""

import numpy as np
import pytest
import torch

from genni import identifiability
from genni import projection as Pj
from genni.discrepancy import discrepancy, output_power
from genni.models import MLP, GroupElement
from genni.models.mlp import layout
from genni.seeds import element_generator

X = np.random.default_rng(0).normal(size=(64, 2))


def _theta(spec, seed=0, scale=3.0):
    return spec.init_theta(1, element_generator(seed, 0)[0], scale)[0].numpy()


def _out(spec, theta):
    return spec.forward(torch.as_tensor(theta), torch.as_tensor(X)).numpy()


def _direct(spec, thetas, Y):
    return discrepancy(spec, torch.as_tensor(np.atleast_2d(thetas)), torch.as_tensor(X), torch.as_tensor(Y)).numpy()


@pytest.fixture(scope="module")
def relu():
    spec = MLP((2, 6, 1), "relu")
    theta = _theta(spec)
    copies = np.stack([spec.symmetry.act(theta, g) for g in spec.symmetry.sample(8, np.random.default_rng(1), log_scale=0.5)])
    return spec, theta, _out(spec, theta), copies


def _subspaces(spec, theta, thetas):
    null = identifiability.spectrum(identifiability.output_jacobian(spec, theta, X)).null_basis
    return {
        "pca": Pj.pca_subspace(thetas, origin=theta, k=2),
        "pca3": Pj.pca_subspace(thetas, k=3),
        "plane": Pj.plane_subspace(theta, thetas[0], thetas[1], thetas),
        "plane3": Pj.plane_subspace(theta, thetas[0], thetas[1], thetas, c=thetas[2]),
        "null": Pj.null_subspace(null, theta, thetas, k=2),
        "null_random": Pj.null_subspace(null, theta, thetas, k=3, seed=4),
        "random": Pj.random_subspace(spec, theta, thetas, k=2, seed=0),
        "random_bias": Pj.random_subspace(spec, theta, thetas, k=3, seed=1, exclude_bias=False),
    }


def test_bases_are_orthonormal_and_elements_land_at_their_coordinates(relu):
    spec, theta, _, copies = relu
    subs = _subspaces(spec, theta, copies)
    assert {s.kind for s in subs.values()} == set(Pj.KINDS)
    rng = np.random.default_rng(2)
    for name, sub in subs.items():
        k = sub.k
        assert sub.basis.shape == (k, spec.n_params) and sub.coords.shape == (len(copies), k), name
        assert np.abs(sub.basis @ sub.basis.T - np.eye(k)).max() < 1e-12, name
        # a point of the subspace: residual ~0, coordinates recovered
        u = rng.normal(size=k)
        coords, res = Pj.project(sub.point(u)[None], sub.origin, sub.basis)
        assert res[0] < 1e-12 * np.linalg.norm(sub.point(u))
        np.testing.assert_allclose(coords[0], u, atol=1e-12)
        # residuals are the distance to the subspace: Pythagoras with the in-plane part
        d = copies - sub.origin
        np.testing.assert_allclose(sub.residuals**2 + (sub.coords**2).sum(1), (d * d).sum(1), rtol=1e-10)
        if name != "pca3":  # origin = reference
            assert np.array_equal(sub.origin, theta)
            c0, r0 = Pj.project(theta[None], sub.origin, sub.basis)
            assert np.all(c0 == 0) and r0[0] == 0


def test_plane_passes_through_its_elements(relu):
    spec, theta, _, copies = relu
    sub = Pj.plane_subspace(theta, copies[3], copies[5], copies, c=copies[6])
    assert np.all(sub.residuals[[3, 5, 6]] < 1e-12 * np.linalg.norm(copies[3]))
    assert sub.residuals[[0, 1, 2, 4, 7]].min() > 1e-3
    # Gram-Schmidt order: the first direction points from the reference to a
    np.testing.assert_allclose(sub.coords[3], [np.linalg.norm(copies[3] - theta), 0, 0], atol=1e-12)
    with pytest.raises(ValueError, match="dependent"):
        Pj.plane_subspace(theta, copies[0], 2 * copies[0] - theta, copies)


def test_pca_of_elements_in_a_plane():
    rng = np.random.default_rng(3)
    P, N = 25, 30
    origin, D = rng.normal(size=P), np.linalg.qr(rng.normal(size=(P, 2)))[0].T
    thetas = origin + rng.normal(size=(N, 2)) * [3.0, 0.5] @ D
    sub = Pj.pca_subspace(thetas, k=2)
    assert np.all(sub.residuals < 1e-12)
    np.testing.assert_allclose(sub.explained.sum(), 1.0, rtol=1e-12)
    assert sub.explained[0] > sub.explained[1] > 0
    M = sub.basis @ D.T  # the same plane: an orthogonal change of basis
    np.testing.assert_allclose(M @ M.T, np.eye(2), atol=1e-12)
    with pytest.raises(ValueError):
        Pj.pca_subspace(thetas[:1])


def test_null_subspace_needs_enough_directions(relu):
    spec, theta, _, copies = relu
    null = identifiability.spectrum(identifiability.output_jacobian(spec, theta, X)).null_basis
    sub = Pj.null_subspace(null, theta, copies, k=2)
    np.testing.assert_allclose(sub.basis, null[:, :2].T, atol=1e-14)  # first k columns, up to QR signs
    with pytest.raises(ValueError, match="dimension"):
        Pj.null_subspace(null[:, :1], theta, copies, k=2)


def test_filter_normalised_direction_matches_row_norms(relu):
    spec, theta, _, _ = relu
    for exclude in (True, False):
        d = Pj.filter_normalized_direction(spec, theta, np.random.default_rng(5), exclude_bias=exclude)
        for (Wd, bd), (W, b) in zip(layout.unflatten(d, spec.widths), layout.unflatten(theta, spec.widths)):
            if exclude:
                assert np.all(bd == 0)
                np.testing.assert_allclose(np.linalg.norm(Wd, axis=1), np.linalg.norm(W, axis=1), rtol=1e-12)
            else:
                np.testing.assert_allclose(np.hypot(np.linalg.norm(Wd, axis=1), bd),
                                           np.hypot(np.linalg.norm(W, axis=1), b), rtol=1e-12)
    sub = Pj.random_subspace(spec, theta, theta[None], k=3, seed=0)
    for s in layout.layer_slices(spec.widths):
        assert np.all(sub.basis[:, s.bias] == 0)


def test_grid_axes_span_elements_with_margin():
    coords = np.array([[1.0, -2.0], [3.0, 2.0]])
    ax = Pj.grid_axes(coords, resolution=11, margin=0.25)
    assert ax.shape == (2, 11)
    np.testing.assert_allclose(ax[:, 0], [-0.75, -3.0])  # span includes the origin 0: [0, 3] and [-2, 2]
    np.testing.assert_allclose(ax[:, -1], [3.75, 3.0])
    flat = Pj.grid_axes(np.zeros((3, 2)), resolution=5)  # zero span: ±1
    np.testing.assert_allclose(flat[:, [0, -1]], [[-1, 1], [-1, 1]])
    sym = Pj.grid_axes(coords, resolution=11, symmetric=True)
    assert np.all(sym[:, 5] == 0) and np.allclose(sym[:, -1], [3.75, 2.5])


def test_grid_points_flat_index_is_c_order(relu):
    spec, theta, _, copies = relu
    sub = Pj.plane_subspace(theta, copies[0], copies[1], copies, c=copies[2])
    axes = np.stack([np.linspace(-1, 1, 4), np.linspace(0, 2, 4), np.linspace(-3, 0, 4)])
    idx = np.array([0, 5, 17, 63])
    pts = Pj.grid_points(axes, sub.origin, sub.basis, idx)
    for p, i in zip(pts, idx):
        j = (i // 16, (i // 4) % 4, i % 4)
        np.testing.assert_allclose(p, sub.point([axes[0][j[0]], axes[1][j[1]], axes[2][j[2]]]), atol=1e-12)


def test_grid_matches_direct_discrepancy_and_vanishes_at_the_reference(relu):
    spec, theta, Y, copies = relu
    sub = Pj.pca_subspace(copies, origin=theta)
    axes = Pj.grid_axes(sub.coords, resolution=21, symmetric=True)
    V = Pj.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=50)
    assert V.shape == (21, 21) and np.all(np.isfinite(V))
    power = output_power(Y)
    assert V[10, 10] <= 1e-28 * power  # the reference: zero up to float64 rounding of the forward pass
    assert V.max() > 1e-3 * power
    idx = np.random.default_rng(6).choice(V.size, 25, replace=False)
    direct = _direct(spec, Pj.grid_points(axes, sub.origin, sub.basis, idx), Y)
    np.testing.assert_allclose(V.reshape(-1)[idx], direct, rtol=1e-12, atol=1e-30)


def test_interrupted_grid_resumes_bitwise(relu):
    spec, theta, Y, copies = relu
    sub = Pj.random_subspace(spec, theta, copies, k=3, seed=2)
    axes = Pj.grid_axes(sub.coords, resolution=9)
    full = Pj.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=37)

    partial = np.full((9, 9, 9), np.nan)
    it = Pj.iter_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=37)
    for _, (idx, vals) in zip(range(7), it):  # "killed" after 7 chunks
        partial.reshape(-1)[idx] = vals
    it.close()
    partial.reshape(-1)[7 * 37 + 5] = full.reshape(-1)[7 * 37 + 5]  # a partly stored chunk is redone whole
    assert np.isnan(partial).sum() == 729 - 7 * 37 - 1

    calls = []
    resumed = Pj.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=37, out=partial,
                               on_chunk=lambda start, v: calls.append((start, len(v))))
    assert resumed is partial
    assert np.array_equal(resumed, full)
    assert calls[0] == (7 * 37, 37) and calls[-1] == (19 * 37, 729 - 19 * 37) and len(calls) == 13
    # start: chunks ending at or before it are skipped
    tail = Pj.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=37, start=100)
    assert np.isnan(tail.reshape(-1)[:74]).all() and np.array_equal(tail.reshape(-1)[74:], full.reshape(-1)[74:])


def test_paths_have_exact_endpoints(relu):
    _, theta, _, copies = relu
    lin = Pj.linear_path(theta, copies[0], 9)
    bez = Pj.bezier_path(theta, copies[0], copies[1], 9)
    for p in (lin, bez):
        assert p.shape == (9, len(theta)) and np.array_equal(p[0], theta) and np.array_equal(p[-1], copies[0])
    np.testing.assert_allclose(bez[4], 0.25 * theta + 0.5 * copies[1] + 0.25 * copies[0], atol=1e-14)
    np.testing.assert_allclose(Pj.bezier_path(theta, copies[0], (theta + copies[0]) / 2, 9), lin, atol=1e-14)


def test_barrier_of_a_constant_path_is_zero(relu):
    """Zero up to the rounding of the batched forward pass (rows of a batch may round differently)."""
    spec, theta, Y, copies = relu
    v = Pj.path_discrepancy(spec, X, Y, Pj.linear_path(copies[2], copies[2], 17))
    assert 0 <= Pj.barrier(v) <= 1e-28 * output_power(Y)
    far = _theta(spec, seed=9)
    v = Pj.path_discrepancy(spec, X, Y, Pj.linear_path(far, far, 17))
    assert v[0] > 1e-2 and 0 <= Pj.barrier(v) <= 1e-13 * v[0]
    assert Pj.barrier(np.array([3.0, 2.0, 1.0])) == 0.0 and Pj.barrier(np.array([0.0, 2.0, 1.0])) == 1.0


def test_relu_rescaling_barrier_closed_form(relu):
    """One hidden unit j scaled by c: along (1−t)θ + tθ' its incoming weights are × α = 1−t+tc and
    its outgoing × β = 1−t+t/c, so f_t = f + (αβ − 1) v_j relu(z_j) with αβ − 1 = t(1−t)(√c − 1/√c)²,
    and L(t) = (αβ − 1)² · mean_x (v_j relu(z_j(x)))² — zero only at t ∈ {0, 1}."""
    spec, theta, Y, _ = relu
    j, c = 2, 3.0
    scales = np.ones(6)
    scales[j] = c
    copy = spec.symmetry.act(theta, GroupElement((np.arange(6),), (scales,)))
    assert np.abs(_out(spec, copy) - Y).max() < 1e-12
    T = 33
    v = Pj.path_discrepancy(spec, X, Y, Pj.linear_path(theta, copy, T))
    (W1, b1), (W2, _) = layout.unflatten(theta, spec.widths)
    unit = W2[0, j] * np.maximum(X @ W1[j] + b1[j], 0)
    t = np.linspace(0, 1, T)
    expected = (t * (1 - t) * (np.sqrt(c) - 1 / np.sqrt(c)) ** 2) ** 2 * np.mean(unit**2)
    assert np.mean(unit**2) > 1e-2
    np.testing.assert_allclose(v, expected, rtol=1e-9, atol=1e-28)
    assert Pj.barrier(v) == pytest.approx(expected[16], rel=1e-9) and Pj.barrier(v) > 1e-3

    # a generic rescaling of every unit: positive barrier on the straight line, none on the orbit
    s = np.exp(np.random.default_rng(7).uniform(-1, 1, 6))
    g = lambda p: GroupElement((np.arange(6),), (s**p,))  # noqa: E731
    far = spec.symmetry.act(theta, g(1.0))
    assert Pj.barrier(Pj.path_discrepancy(spec, X, Y, Pj.linear_path(theta, far, T))) > 1e-4
    orbit = np.stack([spec.symmetry.act(theta, g(p)) for p in t])
    assert Pj.barrier(Pj.path_discrepancy(spec, X, Y, orbit)) < 1e-20


def test_fit_bezier_lowers_the_path_discrepancy():
    spec = MLP((2, 6, 1), "tanh")
    theta = _theta(spec, seed=1, scale=2.0)
    Y = _out(spec, theta)
    perm = np.array([1, 0, 2, 3, 4, 5])  # swap two units: same function, far in parameter space
    other = spec.symmetry.act(theta, GroupElement((perm,), (np.ones(6),)))
    assert np.abs(_out(spec, other) - Y).max() < 1e-12
    line = Pj.path_discrepancy(spec, X, Y, Pj.linear_path(theta, other, 65))
    assert Pj.barrier(line) > 1e-2 * output_power(Y)
    ctrl = Pj.fit_bezier(spec, X, Y, theta, other, steps=200, lr=2e-2, n_train_t=16, seed=0)
    curve = Pj.path_discrepancy(spec, X, Y, Pj.bezier_path(theta, other, ctrl, 65))
    assert curve[0] == line[0] and curve[-1] == line[-1]
    assert curve.mean() < 0.2 * line.mean() and Pj.barrier(curve) < 0.2 * Pj.barrier(line)
    assert np.array_equal(ctrl, Pj.fit_bezier(spec, X, Y, theta, other, steps=200, lr=2e-2, n_train_t=16, seed=0))


def test_barrier_graph_components(relu):
    """Two chains of close copies along rescaling orbits (of θ* and of a unit-permuted θ*) and one
    far non-equivalent network: three components (the far one is isolated although the straight
    path to it may rise monotonically, i.e. have barrier 0)."""
    spec, theta, Y, _ = relu
    s = np.random.default_rng(8).uniform(-0.3, 0.3, 6)
    perm = np.array([3, 1, 2, 0, 5, 4])
    start_b = spec.symmetry.act(theta, GroupElement((perm,), (np.ones(6),)))
    chain = lambda th: [spec.symmetry.act(th, GroupElement((np.arange(6),), (np.exp(s * p),))) for p in np.linspace(0, 1, 7)]  # noqa: E731
    far = _theta(spec, seed=11)
    thetas = np.stack(chain(theta) + chain(start_b) + [far])
    eps = Pj.default_epsilon(output_power(Y), 1e-6)
    B, n, labels, peaks = Pj.barrier_graph(spec, X, Y, thetas, eps, n_points=17, return_peaks=True)
    assert B.shape == (15, 15) and np.array_equal(B, B.T) and np.all(np.diag(B) == 0) and np.all(B >= 0)
    assert n == 3
    assert len(set(labels[:7])) == 1 and len(set(labels[7:14])) == 1 and len(set(labels)) == 3
    assert B[0, 6] > eps  # the ends of a chain are joined only through the chain
    assert B[0, 1] <= eps and B[0, 7] > eps
    np.testing.assert_allclose(peaks, B + np.maximum.outer(np.diag(peaks), np.diag(peaks)), rtol=1e-12)
    B2, n2, _ = Pj.barrier_graph(spec, X, Y, thetas, eps, n_points=17, batch=40)
    assert n2 == 3 and np.allclose(B2, B, rtol=1e-10, atol=1e-30)


def test_default_epsilon_is_relative():
    assert Pj.default_epsilon(4.0) == pytest.approx(4e-6)
    assert Pj.default_epsilon(4.0, relative=1e-3) == pytest.approx(4e-3)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            Pj.default_epsilon(bad)
