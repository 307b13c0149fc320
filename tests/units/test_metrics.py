"""Representational metrics and layer-path geometry (genni.geometry.metrics): metric axioms and every
declared invariance of every registered metric, closed forms and oracles for the known ones."""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import ortho_group

from genni.geometry import (
    INVARIANCES,
    METRICS,
    angle,
    distance,
    geodesic,
    gram_angle,
    pairwise,
    path_summary,
    project_onto_geodesic,
    warn_missing_symmetries,
    zscore,
)
from genni.models import MLP

NAMES = tuple(METRICS)  # every registered metric
KNOWN = ("angular_cka", "angular_procrustes", "procrustes", "zscore_procrustes", "zscore_permutation")
ANGULAR = tuple(m for m in NAMES if METRICS[m].angular)


def _rand(rng, n, d):
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d))


def test_registry_names_and_flags():
    assert set(KNOWN) <= set(METRICS)
    assert {m for m in KNOWN if "orthogonal" in METRICS[m].invariances} == {"angular_cka", "angular_procrustes",
                                                                            "procrustes"}
    assert {m for m in KNOWN if METRICS[m].angular} == set(KNOWN) - {"procrustes"}
    for m in KNOWN:
        assert isinstance(METRICS[m].invariances, tuple) and METRICS[m].is_length_metric
    assert "per_unit_scaling" in METRICS["zscore_procrustes"].invariances
    assert "per_unit_scaling" not in METRICS["angular_cka"].invariances
    with pytest.raises(ValueError, match="unknown metric"):
        distance(np.ones((3, 1)), np.ones((3, 1)), "nope")


def _orthogonal(X, rng):
    return X @ ortho_group.rvs(X.shape[1], random_state=rng)


def _sign_flip(X, rng):
    s = rng.choice([-1.0, 1.0], X.shape[1])
    s[0] = -1.0  # at least one flip
    return X * s


def _permutation(X, rng):
    p = rng.permutation(X.shape[1])
    while np.all(p == np.arange(len(p))):
        p = rng.permutation(X.shape[1])
    return X[:, p]


# the transformation T of each invariance name a metric may declare: d(X, T(X)) = 0 when declared
TRANSFORMS = {
    "orthogonal": _orthogonal,
    "sign_flip": _sign_flip,
    "permutation": _permutation,
    "translation": lambda X, rng: X + 5.0 * rng.standard_normal(X.shape[1]),
    "isotropic_scaling": lambda X, rng: 3.7 * X,
    "per_unit_scaling": lambda X, rng: X * rng.uniform(0.2, 5.0, X.shape[1]),
    "invertible_linear": lambda X, rng: X @ (np.eye(X.shape[1]) + 0.5 * rng.standard_normal((X.shape[1],) * 2)),
}


def test_every_metric_declares_checkable_invariances():
    """A registered metric declares its invariances, each one with a transformation checked below."""
    assert set(TRANSFORMS) == set(INVARIANCES)
    for m, s in METRICS.items():
        assert s.name == m and s.invariances, f"metric '{m}' declares no invariances"
        assert set(s.invariances) <= set(TRANSFORMS), f"metric '{m}': no check for {set(s.invariances) - set(TRANSFORMS)}"
    with pytest.raises(ValueError, match="unknown invariances"):
        type(METRICS["procrustes"])("x", ("rotation",), True, False, "")


@pytest.mark.parametrize("invariance", INVARIANCES)
@pytest.mark.parametrize("metric", NAMES)
def test_declared_invariances_hold_and_undeclared_ones_do_not(metric, invariance):
    """d(X, T X) = 0 (to 1e-10) for every declared invariance T, on random representations of several
    widths; an undeclared T moves a random X (distance > 1e-3), so the declaration is exact."""
    rng = np.random.default_rng(17)
    for d in (1, 3, 6):
        if d == 1 and invariance in ("permutation", "orthogonal"):
            continue  # no non-trivial permutation of one unit; the 1-unit orthogonal maps are the sign flips
        X = _rand(rng, 30, d)
        got = distance(X, TRANSFORMS[invariance](X, rng), metric)
        if invariance in METRICS[metric].invariances:
            assert got < 1e-10
        elif d > 1:
            assert got > 1e-3


@pytest.mark.parametrize("metric", NAMES)
def test_metric_axioms(metric):
    """d(A, A) = 0, d ≥ 0, d(A, B) = d(B, A), and the triangle inequality within 1e-10 for length metrics,
    on random representations of mixed widths."""
    rng = np.random.default_rng(18)
    reps = [_rand(rng, 12, int(d)) for d in rng.integers(1, 7, 8)]
    D = np.array([[distance(a, b, metric) for b in reps] for a in reps])
    assert np.all(np.abs(np.diag(D)) < 1e-12)
    assert np.all(D >= 0)
    np.testing.assert_allclose(D, D.T, rtol=0, atol=1e-12)
    off = D[~np.eye(len(reps), dtype=bool)]
    assert np.all(off > 1e-6)  # distinct random points are apart
    if METRICS[metric].is_length_metric:
        assert np.all(D[:, None, :] <= D[:, :, None] + D[None, :, :] + 1e-10)  # d(i, k) ≤ d(i, j) + d(j, k)
    if METRICS[metric].angular:
        assert np.all(D <= np.pi + 1e-12)  # an angle between unit vectors


def test_one_dimensional_values():
    x = np.array([1.0, -1, 0, 0])
    y = np.array([1.0, -1, 1, -1])
    z = np.array([0.0, 0, 1, -1])
    assert distance(x, y, "angular_procrustes") == pytest.approx(np.pi / 4, abs=1e-14)
    assert distance(x, y, "angular_cka") == pytest.approx(np.pi / 3, abs=1e-14)
    for m in ("angular_procrustes", "angular_cka"):
        assert distance(x, z, m) == pytest.approx(np.pi / 2, abs=1e-14)


def test_two_dimensional_values():
    X = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    Y = X @ np.diag([1.0, 2.0])
    assert distance(X, Y, "angular_procrustes") == pytest.approx(np.arctan(1 / 3), abs=1e-14)
    assert distance(X, Y, "angular_procrustes") == pytest.approx(0.3217506, abs=1e-7)
    assert distance(X, Y, "angular_cka") == pytest.approx(np.arccos(10 / np.sqrt(136)), abs=1e-14)
    assert distance(X, Y, "angular_cka") == pytest.approx(0.5404195, abs=1e-7)
    # the z-score metrics quotient out the per-unit scaling
    assert distance(X, Y, "zscore_procrustes") < 1e-12
    assert distance(X, Y, "zscore_permutation") < 1e-12


def test_procrustes_is_not_normalised():
    rng = np.random.default_rng(2)
    X, Y = _rand(rng, 20, 3), _rand(rng, 20, 4)
    assert distance(2 * X, 2 * Y, "procrustes") == pytest.approx(2 * distance(X, Y, "procrustes"), rel=1e-12)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuc = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    expect = np.sqrt(max((Xc**2).sum() + (Yc**2).sum() - 2 * nuc, 0.0))
    assert distance(X, Y, "procrustes") == pytest.approx(expect, rel=1e-10)


def test_zero_padding_and_bures_angle():
    rng = np.random.default_rng(3)
    X, Y = _rand(rng, 25, 3), _rand(rng, 25, 6)
    d = distance(X, Y, "angular_procrustes")
    Xp = np.concatenate([X, np.zeros((25, 4))], axis=1)
    assert distance(Xp, Y, "angular_procrustes") == pytest.approx(d, abs=1e-13)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    Kh = scipy.linalg.sqrtm(K)
    fid = np.trace(scipy.linalg.sqrtm(Kh @ L @ Kh)).real
    bures = np.arccos(np.clip(fid / np.sqrt(np.trace(K) * np.trace(L)), -1, 1))
    assert d == pytest.approx(bures, abs=1e-6)  # sqrtm of rank-deficient Grams limits the oracle's accuracy
    # the CKA oracle from the Gram matrices
    assert distance(X, Y, "angular_cka") == pytest.approx(gram_angle(K, L), abs=1e-12)
    cka = (K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L))
    assert distance(X, Y, "angular_cka") == pytest.approx(np.arccos(cka), abs=1e-12)


def test_wide_representations_use_thin_factors():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((8, 20)), rng.standard_normal((8, 3))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuc = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    assert distance(X, Y, "angular_procrustes") == pytest.approx(
        np.arccos(nuc / (np.linalg.norm(Xc) * np.linalg.norm(Yc))), abs=1e-12)


def _gram_factor(G):
    w, V = np.linalg.eigh(G)
    return V * np.sqrt(np.clip(w, 0, None))


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_geodesics_divide_distance(t):
    rng = np.random.default_rng(5)
    A, B = _rand(rng, 30, 3), _rand(rng, 30, 5)
    d = distance(A, B, "angular_procrustes")
    g = geodesic(A, B, t, "angular_procrustes")
    assert g.shape == (30, 5)
    assert distance(A, g, "angular_procrustes") == pytest.approx(t * d, abs=1e-12)
    assert distance(g, B, "angular_procrustes") == pytest.approx((1 - t) * d, abs=1e-12)
    Ac = A - A.mean(0)
    G = geodesic(A, B, t, "angular_cka")
    dc = distance(A, B, "angular_cka")
    assert G.shape == (30, 30)
    assert gram_angle(Ac @ Ac.T, G) == pytest.approx(t * dc, abs=1e-12)
    assert distance(A, _gram_factor(G), "angular_cka") == pytest.approx(t * dc, abs=1e-10)
    assert distance(A, geodesic(A, B, t, "procrustes"), "procrustes") == pytest.approx(
        t * distance(A, B, "procrustes"), abs=1e-12)
    zA, zB = zscore(A), zscore(B)
    gz = geodesic(zA, zB, t, "angular_procrustes")
    assert distance(zA, gz, "angular_procrustes") == pytest.approx(t * distance(A, B, "zscore_procrustes"), abs=1e-12)
    with pytest.raises(ValueError, match="no geodesic"):
        geodesic(A, B, t, "zscore_permutation")


def test_alignment_first_for_procrustes_midpoint():
    rng = np.random.default_rng(6)
    A = _rand(rng, 20, 3)
    B = A @ ortho_group.rvs(3, random_state=2)
    mid = geodesic(A, B, 0.5, "angular_procrustes")
    assert distance(A, mid, "angular_procrustes") < 1e-10  # B is A up to rotation: the midpoint is A itself


@pytest.mark.parametrize("metric", ("angular_cka", "angular_procrustes", "procrustes"))
def test_angle_at_interior_geodesic_point_is_pi(metric):
    rng = np.random.default_rng(7)
    A, C = _rand(rng, 25, 4), _rand(rng, 25, 3)
    B = _gram_factor(geodesic(A, C, 0.4, metric)) if metric == "angular_cka" else geodesic(A, C, 0.4, metric)
    assert angle(A, B, C, metric) == pytest.approx(np.pi, abs=1e-6)
    assert angle(A, B, A, metric) == pytest.approx(0.0, abs=1e-6)


def test_zscore_angles():
    rng = np.random.default_rng(13)
    A, B, C = (_rand(rng, 20, d) for d in (2, 3, 4))
    zA, zB, zC = zscore(A), zscore(B), zscore(C)
    assert angle(A, B, C, "zscore_procrustes") == pytest.approx(angle(zA, zB, zC, "angular_procrustes"), abs=1e-12)
    g = geodesic(zA, zC, 0.3, "angular_procrustes")
    assert angle(zA, g, zC, "angular_procrustes") == pytest.approx(np.pi, abs=1e-6)
    # a per-unit rescaled, permuted B is the same point under the quotient metric
    Bs = B[:, [2, 0, 1]] * np.array([0.5, 3.0, 7.0])
    for m in ("zscore_procrustes", "zscore_permutation"):
        assert angle(A, Bs, C, m) == pytest.approx(angle(A, B, C, m), abs=1e-10)


def test_cka_angle_matches_spherical_law_of_cosines():
    rng = np.random.default_rng(8)
    A, B, C = (_rand(rng, 20, d) for d in (2, 3, 4))
    a, b, c = (distance(*p, "angular_cka") for p in ((B, C), (A, C), (A, B)))
    law = np.arccos((np.cos(b) - np.cos(a) * np.cos(c)) / (np.sin(a) * np.sin(c)))
    assert angle(A, B, C, "angular_cka") == pytest.approx(law, abs=1e-10)


@pytest.mark.parametrize("metric", NAMES)
def test_path_summary(metric):
    rng = np.random.default_rng(9)
    reps = [_rand(rng, 30, d) for d in (2, 5, 4, 1)]
    s = path_summary(reps, metric)
    assert s["steps"].shape == (3,) and s["angles"].shape == (2,) and s["turning_angles"].shape == (2,)
    assert s["length"] == pytest.approx(s["steps"].sum())
    assert 0 <= s["straightness"] <= 1 + 1e-12
    assert np.all((s["angles"] >= 0) & (s["angles"] <= np.pi + 1e-12))


@pytest.mark.parametrize("metric", NAMES)
def test_triangle_inequality_mixed_widths(metric):
    rng = np.random.default_rng(10)
    for _ in range(15):
        X, Y, Z = (_rand(rng, 12, int(d)) for d in rng.integers(1, 7, 3))
        dxy, dyz, dxz = distance(X, Y, metric), distance(Y, Z, metric), distance(X, Z, metric)
        assert dxz <= dxy + dyz + 1e-10
        assert distance(Y, X, metric) == pytest.approx(dxy, abs=1e-12)


@pytest.mark.parametrize("metric", NAMES)
def test_pairwise_equals_per_pair(metric):
    rng = np.random.default_rng(11)
    reps = [_rand(rng, 15, d) for d in (3, 1, 3, 20, 5, 3, 20)]
    Q = ortho_group.rvs(3, random_state=3)
    reps += [reps[0] @ Q * 2.0 + 1.0, reps[4][:, [1, 0, 4, 3, 2]] * np.arange(1.0, 6.0), np.ones((15, 2))]
    reps += [reps[3].copy(), reps[1].copy(), _rand(rng, 15, 1)]  # exact duplicates (computed once) and width 1
    reps += [np.maximum(reps[3], 0.0) * (np.arange(20) % 3 > 0), np.zeros((15, 4))]  # dead (all-zero) units
    M = len(reps)
    D = pairwise(reps, metric, batch_size=4, max_block_bytes=2000)
    assert D.shape == (M, M)
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0) and np.all(D >= 0)
    for i in range(M):
        for j in range(M):
            if i != j:
                assert D[i, j] == pytest.approx(distance(reps[i], reps[j], metric), abs=1e-12, rel=1e-12)


def test_degenerate_representations():
    x = np.ones((5, 2))
    y = np.arange(10.0).reshape(5, 2) ** 2
    for m in ANGULAR:
        assert distance(x, x, m) == 0.0
        assert distance(x, y, m) == pytest.approx(np.pi / 2)


def test_dead_units_are_dropped_by_zscore_metrics():
    rng = np.random.default_rng(12)
    X = _rand(rng, 20, 3)
    Xd = np.concatenate([X, np.full((20, 2), 0.5)], axis=1)
    assert distance(X, Xd, "zscore_procrustes") < 1e-12
    assert distance(X, Xd, "zscore_permutation") < 1e-12


def test_warnings_for_missing_symmetries():
    def needed(act):
        return MLP((2, 3, 1), act).symmetry.invariances

    for m in ("angular_cka", "angular_procrustes", "procrustes"):
        msg = warn_missing_symmetries(m, needed("relu"))
        assert msg and "rescaling" in msg
        assert warn_missing_symmetries(m, needed("tanh")) is None
    assert warn_missing_symmetries("zscore_procrustes", needed("relu")) is None
    assert warn_missing_symmetries("zscore_permutation", needed("leaky_relu")) is None
    assert "sign" in warn_missing_symmetries("zscore_permutation", needed("tanh"))
    assert warn_missing_symmetries("angular_cka", needed("gelu")) is None
    assert "invertible linear maps" in warn_missing_symmetries("zscore_procrustes", ("invertible_linear",))


def test_rescaled_permuted_relu_copy_is_identical_under_quotient_metrics():
    spec = MLP((3, 8, 6, 2), "relu")
    theta = spec.init_theta(1, torch.Generator().manual_seed(0), scale=2.0)[0]
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = spec.symmetry.sample(1, np.random.default_rng(2), log_scale=1.0)[0]
    theta2 = torch.as_tensor(spec.symmetry.act(theta.numpy(), g))
    _, reps1 = spec.layers(theta, X)
    _, reps2 = spec.layers(theta2, X)
    cka = []
    for a, b in zip(reps1, reps2):
        a, b = a.numpy(), b.numpy()
        assert distance(a, b, "zscore_procrustes") < 1e-7
        assert distance(a, b, "zscore_permutation") < 1e-7
        cka.append(distance(a, b, "angular_cka"))
    assert max(cka[1:-1]) > 1e-3  # negative control: the standard metric moves a hidden layer
    assert cka[0] < 1e-7 and cka[-1] < 1e-6


def test_projection_onto_cka_geodesic():
    rng = np.random.default_rng(14)
    A, B, P = _rand(rng, 20, 3), _rand(rng, 20, 2), _rand(rng, 20, 4)
    t, off = project_onto_geodesic(_gram_factor(geodesic(A, B, 0.3, "angular_cka")), A, B)
    assert t == pytest.approx(0.3, abs=1e-10) and off == pytest.approx(0.0, abs=1e-7)
    t, off = project_onto_geodesic(P, A, B)
    dab, dap = distance(A, B, "angular_cka"), distance(A, P, "angular_cka")
    assert np.cos(dap) == pytest.approx(np.cos(off) * np.cos(t * dab), abs=1e-12)
    foot = _gram_factor(geodesic(A, B, t, "angular_cka"))
    assert distance(P, foot, "angular_cka") == pytest.approx(off, abs=1e-7)
    with pytest.raises(ValueError, match="no geodesic"):
        project_onto_geodesic(P, A, B, "zscore_permutation")


@pytest.mark.parametrize("metric", ["angular_procrustes", "procrustes"])
def test_projection_onto_shape_geodesic(metric):
    """Numerical projection in shape space: a point of the geodesic is found at its own t with
    distance ~0 (1e-6: d ~ sqrt of the objective's rounding near the minimum); off P, the foot
    is no farther than either end, and no scanned t comes closer."""
    rng = np.random.default_rng(15)
    A, B, P = _rand(rng, 20, 3), _rand(rng, 20, 2), _rand(rng, 20, 4)
    t, off = project_onto_geodesic(geodesic(A, B, 0.3, metric), A, B, metric)
    assert t == pytest.approx(0.3, abs=1e-6) and off == pytest.approx(0.0, abs=1e-6)
    t, off = project_onto_geodesic(P, A, B, metric)
    foot = geodesic(A, B, t, metric)
    assert distance(P, foot, metric) == pytest.approx(off, abs=1e-12)
    assert off <= min(distance(P, A, metric), distance(P, B, metric)) + 1e-12
    assert all(distance(P, geodesic(A, B, s, metric), metric) >= off - 1e-12 for s in np.linspace(-0.5, 1.5, 101))


def test_projection_zscore_procrustes_is_procrustes_of_zscored():
    rng = np.random.default_rng(16)
    A, B, P = _rand(rng, 20, 3), _rand(rng, 20, 4), _rand(rng, 20, 3)
    got = project_onto_geodesic(P * [1, 5, 0.2], A, B * [3, 1, 1, 2], "zscore_procrustes")  # unit rescaling: no change
    want = project_onto_geodesic(zscore(P), zscore(A), zscore(B), "angular_procrustes")
    np.testing.assert_allclose(got, want, atol=1e-9)
