"""Ricci curvature of layer graphs: closed forms of every registered curvature on graph families, exact
values on hand-computed graphs, an independent transport oracle for Ollivier, streamed geodesic sums,
connectivity fixes, reason codes and the Ricci coefficient."""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from genni.geometry import ricci as R

# ---------------------------------------------------------------- graphs by hand


def graph(n, edges):
    e = np.asarray(list(edges), dtype=np.int64).reshape(-1, 2)
    A = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return A.maximum(A.T).tocsr()


def complete(n):
    return graph(n, [(i, j) for i in range(n) for j in range(i + 1, n)])


def cycle(n):
    return graph(n, [(i, (i + 1) % n) for i in range(n)])


def path(n):
    return graph(n, [(i, i + 1) for i in range(n - 1)])


def star(m):
    return graph(m + 1, [(0, i) for i in range(1, m + 1)])


def random_graph(n, p, seed):
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(n, 1)
    keep = rng.random(len(iu[0])) < p
    return graph(n, zip(iu[0][keep], iu[1][keep]))


def union(*gs):
    return sp.block_diag(gs).tocsr()


def values_by_edge(edges, vals):
    return {(int(i), int(j)): float(v) for (i, j), v in zip(edges, vals)}


def random_tree(n, seed):
    rng = np.random.default_rng(seed)
    return graph(n, [(int(rng.integers(0, i)), i) for i in range(1, n)])


# ---------------------------------------------------------------- every registered curvature

# Closed forms of each registered curvature's edge values on graph families, as functions of
# (size, edge degrees d_x, d_y, alpha); alpha is 0 and 1/2 where the curvature needs one.
#   complete K_n: every degree n − 1, every edge on n − 2 triangles; Ollivier (Jost–Liu):
#     κ_0 = (n − 2)/(n − 1), κ_½ = n / (2(n − 1)).
#   cycle C_n (n ≥ 6 so that no two neighbourhoods interact): flat, F = F# = κ = 0.
#   trees (stars, paths, random trees): no triangles, so F# = F = 4 − d_x − d_y; Ollivier
#     κ_0 = −2 (1 − 1/d_x − 1/d_y)_+ (Jost–Liu), κ_½ = 1/d_x + 1/d_y − 1 (lazy walk).
CLOSED_FORMS = {
    "forman": {
        "complete": lambda n, dx, dy, alpha: 4.0 - 2 * (n - 1),
        "cycle": lambda n, dx, dy, alpha: 0.0,
        "tree": lambda n, dx, dy, alpha: 4.0 - dx - dy,
    },
    "augmented": {
        "complete": lambda n, dx, dy, alpha: 4.0 - 2 * (n - 1) + 3 * (n - 2),
        "cycle": lambda n, dx, dy, alpha: 0.0,
        "tree": lambda n, dx, dy, alpha: 4.0 - dx - dy,
    },
    "ollivier": {
        "complete": lambda n, dx, dy, alpha: (n - 2) / (n - 1) if alpha == 0 else n / (2 * (n - 1)),
        "cycle": lambda n, dx, dy, alpha: 0.0,
        "tree": lambda n, dx, dy, alpha: (-2 * np.maximum(0.0, 1 - 1 / dx - 1 / dy) if alpha == 0
                                          else 1 / dx + 1 / dy - 1),
    },
}
FAMILIES = {
    "complete": [complete(n) for n in (2, 3, 4, 6)],
    "cycle": [cycle(n) for n in (6, 7, 10)],
    "tree": [star(1), star(2), star(5), path(3), path(6)] + [random_tree(14, s) for s in range(3)],
}


def _alphas(name):
    return (0.0, 0.5) if R.CURVATURES[name].needs_alpha else (None,)


def test_every_registered_curvature_has_closed_forms():
    assert set(R.CURVATURES) == set(CLOSED_FORMS), "a registered curvature needs closed forms in CLOSED_FORMS"
    for name, c in R.CURVATURES.items():
        assert c.name == name and c.definition and set(CLOSED_FORMS[name]) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", sorted(R.CURVATURES))
def test_registered_curvature_closed_forms(name, family):
    c = R.CURVATURES[name]
    for A in FAMILIES[family]:
        n = A.shape[0]
        d = np.asarray(A.sum(1)).ravel()
        for alpha in _alphas(name):
            e, v = c.edges(A, alpha)
            assert len(e) == A.nnz // 2 and np.all(e[:, 0] < e[:, 1])
            want = CLOSED_FORMS[name][family](n, d[e[:, 0]], d[e[:, 1]], alpha) * np.ones(len(e))
            np.testing.assert_allclose(v, want, rtol=0, atol=1e-12)
            e2, v2 = R.edge_curvature(A, name, alpha)
            np.testing.assert_array_equal(e2, e)
            np.testing.assert_array_equal(v2, v)
            assert c.total(A, v) == pytest.approx(want.sum(), abs=1e-9)


@pytest.mark.parametrize("name", sorted(R.CURVATURES))
def test_registered_curvature_totals_and_flow(name):
    """Each layer's Ric in ricci_graphs is the registry's total, which is the sum of the edge values."""
    graphs = [random_graph(16, 0.3, s).maximum(path(16)).tocsr() for s in range(4)]
    c = R.CURVATURES[name]
    for alpha in _alphas(name):
        tot = []
        for A in graphs:
            e, v = c.edges(A, alpha)
            tot.append(c.total(A, v))
            assert tot[-1] == pytest.approx(v.sum(), abs=1e-9)
        res = R.ricci_graphs(graphs, curvature=name, alpha=alpha, n_boot=0)
        np.testing.assert_array_equal(res.curvature, tot)
        assert res.settings["curvature"] == name
    if c.needs_alpha:
        with pytest.raises(ValueError, match="alpha"):
            R.edge_curvature(graphs[0], name)
    with pytest.raises(ValueError, match="unknown curvature"):
        R.edge_curvature(graphs[0], name + "_nope", 0.5)


# ---------------------------------------------------------------- Forman


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_forman_complete_graph(n):
    _, F = R.forman_curvature(complete(n))
    _, Fa = R.forman_curvature(complete(n), augmented=True)
    assert len(F) == n * (n - 1) // 2
    np.testing.assert_array_equal(F, 4 - 2 * (n - 1))
    np.testing.assert_array_equal(Fa, 4 - 2 * (n - 1) + 3 * (n - 2))


@pytest.mark.parametrize("n", [4, 5, 8])
def test_forman_cycle_is_flat(n):
    for aug in (False, True):
        _, F = R.forman_curvature(cycle(n), augmented=aug)
        np.testing.assert_array_equal(F, 0.0)


@pytest.mark.parametrize("n", [3, 4, 6])
def test_forman_path(n):
    e, F = R.forman_curvature(path(n))
    v = values_by_edge(e, F)
    assert v[(0, 1)] == 1 and v[(n - 2, n - 1)] == 1
    assert all(v[(i, i + 1)] == 0 for i in range(1, n - 2))


@pytest.mark.parametrize("m", [1, 2, 4, 6])
def test_forman_star_and_node_curvature(m):
    e, F = R.forman_curvature(star(m))
    np.testing.assert_array_equal(F, 3 - m)
    s, mean = R.node_curvature(m + 1, e, F)
    assert s[0] == m * (3 - m) and mean[0] == 3 - m
    np.testing.assert_array_equal(s[1:], 3 - m)
    np.testing.assert_array_equal(mean[1:], 3 - m)


@pytest.mark.parametrize("seed", range(4))
def test_total_identity(seed):
    A = random_graph(25, 0.2, seed)
    d = np.asarray(A.sum(1)).ravel()
    m = A.nnz // 2
    for aug in (False, True):
        _, F = R.forman_curvature(A, augmented=aug)
        assert R.forman_total(A, augmented=aug) == pytest.approx(F.sum(), abs=0)
    assert R.forman_total(A) == 4 * m - (d**2).sum()
    # augmented: + 3 per edge per triangle = + 9 per triangle
    Ad = A.toarray()
    tri = np.trace(Ad @ Ad @ Ad) / 6
    assert R.forman_total(A, augmented=True) == 4 * m - (d**2).sum() + 9 * tri
    e = R.edge_list(A)
    np.testing.assert_array_equal(R.edge_triangles(A, e), R.edge_triangles(A, e, bitset_max=0))  # bits = A @ A
    np.testing.assert_array_equal(R.edge_triangles(A, e), (Ad @ Ad)[e[:, 0], e[:, 1]])


def test_directed_forman_follows_in_plus_out_degree():
    X = np.random.default_rng(3).normal(size=(30, 3))
    A = R.knn_graph(X, 4, mode="directed")
    e, F = R.forman_curvature(A)
    assert len(e) == 30 * 4  # every arc once
    D = np.asarray(A.sum(0)).ravel() + np.asarray(A.sum(1)).ravel()
    np.testing.assert_array_equal(F, 4 - D[e[:, 0]] - D[e[:, 1]])
    assert R.forman_total(A) == F.sum() == 4 * len(e) - (D**2).sum()


# ---------------------------------------------------------------- geodesics


@pytest.mark.parametrize("n", [2, 5, 9, 12])
def test_wiener_closed_forms(n):
    assert R.wiener_index(path(n)) == n * (n * n - 1) / 6
    assert R.wiener_index(complete(n)) == n * (n - 1) / 2
    if n >= 3:
        want = n * (n * n - 1) / 8 if n % 2 else n**3 / 8
        assert R.wiener_index(cycle(n)) == want


def test_streamed_wiener_equals_dense():
    A = random_graph(40, 0.08, 1)
    A = A.maximum(path(40)).tocsr()  # connected
    D = R.hop_distances(A)
    g, h = D[np.triu_indices(40, 1)].sum(), (1 / D[np.triu_indices(40, 1)]).sum()
    for b in (1, 3, 7, 16, 40, 1000):
        assert R.wiener_index(A, block_size=b) == g
        assert R.wiener_index(A, harmonic=True, block_size=b) == pytest.approx(h, rel=1e-14)


def test_disconnected_wiener_and_harmonic_sum_over_components():
    parts = [path(4), cycle(5), complete(3)]
    A = union(*parts)
    assert R.n_components(A) == 3
    assert R.wiener_index(A) == math.inf
    want = sum(R.wiener_index(p, harmonic=True) for p in parts)
    for b in (1, 5, 100):
        assert R.wiener_index(A, harmonic=True, block_size=b) == pytest.approx(want, rel=1e-14)


# ---------------------------------------------------------------- Ollivier


@pytest.mark.parametrize("n", [3, 4, 6, 9])
@pytest.mark.parametrize("method", ["maxflow", "lp"])
def test_ollivier_complete_graph(n, method):
    _, k0 = R.ollivier_curvature(complete(n), 0.0, method=method)
    _, k5 = R.ollivier_curvature(complete(n), 0.5, method=method)
    np.testing.assert_allclose(k0, (n - 2) / (n - 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(k5, n / (2 * (n - 1)), rtol=0, atol=1e-12)  # half the Lin–Lu–Yau value n/(n−1)


def bfs(adj_lists, s):
    dist = {s: 0}
    q = deque([s])
    while q:
        u = q.popleft()
        for v in adj_lists[u]:
            if v not in dist:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist


def oracle_kappa(A, x, y, alpha: Fraction) -> float:
    """Exact W₁ by an assignment between atoms of equal mass: scale both measures to integer
    multiplicities (b · lcm(d_x, d_y) atoms each), expand, and solve the linear assignment problem
    (Birkhoff: an optimal coupling of two uniform measures on N atoms is a permutation).  Distances by
    a plain BFS on adjacency lists; nothing shared with the library."""
    Ad = A.toarray()
    nbr = [list(np.flatnonzero(r)) for r in Ad]
    dx, dy = len(nbr[x]), len(nbr[y])
    L = alpha.denominator * math.lcm(dx, dy)

    def atoms(z, d):
        out = [z] * int(alpha * L)
        for u in nbr[z]:
            out += [u] * int((1 - alpha) * L / d)
        return out

    ax, ay = atoms(x, dx), atoms(y, dy)
    assert len(ax) == len(ay) == L
    dist = {u: bfs(nbr, u) for u in set(ax)}
    C = np.array([[dist[u][v] for v in ay] for u in ax], dtype=float)
    r, c = linear_sum_assignment(C)
    return 1.0 - C[r, c].sum() / L  # d(x, y) = 1 on an edge


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("alpha", [Fraction(0), Fraction(1, 2), Fraction(1, 3)])
def test_ollivier_matches_assignment_oracle(seed, alpha):
    A = random_graph(11, 0.35, seed)
    e, k_flow = R.ollivier_curvature(A, float(alpha), method="maxflow")
    _, k_lp = R.ollivier_curvature(A, float(alpha), method="lp")
    want = np.array([oracle_kappa(A, i, j, alpha) for i, j in e])
    np.testing.assert_allclose(k_flow, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(k_lp, want, rtol=0, atol=1e-9)


def test_ollivier_auto_handles_irrational_alpha_and_knn_graphs():
    X = np.random.default_rng(0).normal(size=(60, 4))
    A = R.knn_graph(X, 5)
    _, k_auto = R.ollivier_curvature(A, 1 / math.pi)  # no small denominator: the LP path
    _, k_lp = R.ollivier_curvature(A, 1 / math.pi, method="lp")
    np.testing.assert_allclose(k_auto, k_lp, atol=1e-9)
    _, k_flow = R.ollivier_curvature(A, 0.5, method="maxflow", chunk=7)  # many chunks
    _, k_lp = R.ollivier_curvature(A, 0.5, method="lp", chunk=50)
    np.testing.assert_allclose(k_flow, k_lp, atol=1e-9)
    with pytest.raises(ValueError):
        R.ollivier_curvature(A, 1 / math.pi, method="maxflow")


# ---------------------------------------------------------------- kNN graphs and MST


def test_knn_graph_facts():
    X = np.random.default_rng(1).normal(size=(80, 5))
    D = R.knn_graph(X, 6, mode="directed")
    np.testing.assert_array_equal(np.diff(D.indptr), 6)
    assert D.diagonal().sum() == 0
    # brute force: (distance, index) order on the dense distance matrix
    dd = np.linalg.norm(X[:, None] - X[None], axis=-1)
    for i in range(80):
        o = np.lexsort((np.arange(80), dd[i]))
        o = o[o != i][:6]
        assert set(D[i].indices) == set(o)
    O, An = R.knn_graph(X, 6, mode="or"), R.knn_graph(X, 6, mode="and")
    for M in (O, An):
        assert (M != M.T).nnz == 0
    assert (An.multiply(O) != An).nnz == 0  # AND ⊆ OR
    assert (D.maximum(D.T) != O).nnz == 0
    assert np.diff(An.indptr).max() <= 6 <= np.diff(O.indptr).min()
    assert np.diff(R.knn_graph(X, 0.1, mode="directed").indptr)[0] == 8  # round(0.1 · 80)


def test_knn_ties_and_duplicates_are_deterministic():
    line = np.arange(10.0)[:, None]
    A = R.knn_graph(line, 1, mode="directed")
    assert list(A[5].indices) == [4]  # 4 and 6 tie: the smaller index wins
    A = R.knn_graph(line, 3, mode="directed")
    assert sorted(A[5].indices) == [3, 4, 6]
    dup = np.zeros((7, 2))
    A = R.knn_graph(dup, 2, mode="directed")
    for i in range(7):
        assert list(A[i].indices) == [j for j in range(7) if j != i][:2]
    X = np.repeat(np.random.default_rng(2).normal(size=(15, 3)), 3, axis=0)  # every point three times
    A1, A2 = R.knn_graph(X, 4), R.knn_graph(X[::-1].copy()[::-1], 4)
    assert (A1 != A2).nnz == 0 and np.diff(R.knn_graph(X, 4, mode="directed").indptr).tolist() == [4] * 45


def test_mst_is_exact_and_connects_clusters():
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 50, rng.normal(size=(30, 3)) - 50])
    X[5] = X[6]  # a duplicate point (distance 0)
    T, Tp = R.mst_graph(X), R.mst_graph(X, dense_max=0)  # dense scipy MST and streamed Prim
    dd = np.linalg.norm(X[:, None] - X[None], axis=-1)

    def length(M):
        return sum(dd[i, j] for i, j in R.edge_list(M))

    assert T.nnz == Tp.nnz == 2 * 89 and R.n_components(T) == 1
    # reference: scipy's MST of the dense distances shifted by one (a shift keeps the MST)
    ref = sp.csgraph.minimum_spanning_tree(dd + 1 - np.eye(90)).sum() - 89
    assert length(T) == pytest.approx(ref, rel=1e-12) and length(Tp) == pytest.approx(ref, rel=1e-12)
    assert R.n_components(R.knn_graph(X, 3)) >= 3
    res = R.ricci_layers([X, X * 2, X**2, np.tanh(X)], 3, connectivity="mst", n_boot=50)
    np.testing.assert_array_equal(res.components, 1)
    assert np.all(np.isfinite(res.wiener)) and res.reason != "disconnected"


# ---------------------------------------------------------------- coefficients


def test_toy_flow_gives_the_closed_form_curvatures_and_wiener_indices():
    graphs = [complete(5), cycle(5), path(5), star(4)]
    res = R.ricci_graphs(graphs, n_boot=200)
    np.testing.assert_array_equal(res.curvature, [-40, 0, 2, -4])
    np.testing.assert_array_equal(res.wiener, [10, 15, 20, 16])
    np.testing.assert_array_equal(res.eta, [5, 5, -4])
    assert round(res.rho, 4) == -0.5361 and res.coefficient.n == 3 and res.reason == "ok"
    assert R.ricci_coefficient([-40, 0, 2, -4], [10, 15, 20, 16]).rho == res.rho
    # the R script's variants on the same toy
    assert R.ricci_coefficient([-40, 0, 2, -4], [10, 15, 20, 16], pairing="shifted").reason == "too_few_layers"
    same = R.ricci_coefficient([-40, 0, 2, -4], [10, 15, 20, 16], pairing="same")
    assert same.rho == pytest.approx(np.corrcoef([0, 2, -4], [5, 5, -4])[0, 1], abs=1e-15)
    assert res.flow_sign == -1 and res.settings["pairing"] == "forward"


def test_reason_codes_never_raise():
    assert R.ricci_coefficient([1, 2], [3, 4]).reason == "too_few_layers"
    assert R.ricci_coefficient([1, 1, 1, 1], [0, 1, 3, 2]).reason == "constant_curvature"
    assert R.ricci_coefficient([1, 2, 3, 4], [0, 1, 2, 3]).reason == "constant_wiener"
    c = R.ricci_coefficient([1, 2, 3, 4], [0, 1, np.inf, 3])
    assert math.isnan(c.rho) and c.reason == "disconnected"
    # two far clusters: plain kNN falls apart, ρ is NaN with a reason, nothing raises
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 100])
    res = R.ricci_layers([X, X * 3, X + 1, X**3], 4, n_boot=20)
    assert res.reason == "disconnected" and math.isnan(res.rho) and np.all(res.components >= 2)
    assert np.all(np.isinf(res.wiener)) and res.local_rho.shape == (40,)  # local ρ stays within components
    h = R.ricci_layers([X, X * 3, X + 1, X**3], 4, connectivity="harmonic", n_boot=20)
    assert np.all(np.isfinite(h.wiener)) and h.flow_sign == 1 and h.settings["connectivity"] == "harmonic"
    with pytest.raises(ValueError, match="alpha"):
        R.ricci_layers([X, X], 3, curvature="ollivier")


def mlp_layers(X, widths, seed):
    rng = np.random.default_rng(seed)
    reps, h = [X], X
    for w in widths:
        h = np.tanh(h @ rng.normal(size=(h.shape[1], w)) / np.sqrt(h.shape[1]) * 2)
        reps.append(h)
    return reps


def test_local_and_layer_coefficients():
    X = np.random.default_rng(6).normal(size=(70, 3))
    reps = mlp_layers(X, [8, 8, 8, 8], 0)
    for curv, alpha in (("forman", None), ("augmented", None), ("ollivier", 0.5)):
        res = R.ricci_layers(reps, 6, curvature=curv, alpha=alpha, connectivity="mst", n_boot=300, seed=1)
        assert res.local_rho.shape == (70,) and res.local_reason.shape == (70,)
        assert res.node_curvature.shape == (5, 70) and res.pairs.tolist() == [[l, l] for l in range(4)]
        ok = res.local_reason == "ok"
        assert np.all(np.isfinite(res.local_rho[ok])) and np.all(np.abs(res.local_rho[ok]) <= 1)
        assert res.local_summary.n == ok.sum()
        lo, hi = res.local_summary.ci
        assert lo <= res.local_summary.rho <= hi
        assert len(res.layer_rho) == 4
        for c in res.layer_rho:
            assert c.reason == "ok" and c.n == 70 and c.ci[0] <= c.rho <= c.ci[1]
        assert res.coefficient.n == 4 and res.settings["k"] == 6 and res.settings["curvature"] == curv
    # ρ(x) by hand for one point (forward pairing): mean curvature of x's edges at l against the mean of
    # γ_{l+1}(x, y) − 1 over x's layer-l neighbours y
    graphs = [R.knn_graph(Z, 6) for Z in reps]
    res = R.ricci_graphs(graphs, n_boot=0)
    x = 11
    c, dlt = [], []
    for l in range(4):
        e, F = R.forman_curvature(graphs[l])
        c.append(R.node_curvature(70, e, F)[1][x])
        nb = graphs[l][x].indices
        dlt.append(R.hop_distances(graphs[l + 1], [x])[0][nb].mean() - 1)
    want = np.corrcoef(c, dlt)[0, 1] if np.all(np.isfinite(dlt)) else np.nan
    np.testing.assert_allclose(res.local_rho[x], want, atol=1e-12)


def test_pooled_coefficient():
    c1, g1 = [-3.0, -1.0, 2.0, 0.0], [10.0, 14.0, 15.0, 13.0]
    c2, g2 = [-5.0, 1.0, 0.0], [8.0, 9.0, 12.0]
    c3, g3 = [1.0, 2.0, 3.0], [1.0, np.inf, 2.0]
    coef, used = R.pooled_coefficient([c1, c2, c3], [g1, g2, g3], n_boot=100)
    assert used.tolist() == [True, True, False] and coef.n == 5
    want = np.corrcoef([-3, -1, 2, -5, 1], [4, 1, -2, 1, 3])[0, 1]
    assert coef.rho == pytest.approx(want, abs=1e-14) and coef.ci[0] <= coef.rho <= coef.ci[1]
    assert R.pooled_coefficient([c3], [g3])[0].reason == "disconnected"
    X = np.random.default_rng(7).normal(size=(40, 2))
    pooled = R.ricci_pooled([mlp_layers(X, [6, 6, 6], s) for s in range(3)], 5, connectivity="mst", n_boot=50)
    assert pooled.curvature.shape == pooled.wiener.shape == pooled.components.shape == (3, 4)
    assert pooled.used.all() and pooled.coefficient.n == 9 and len(pooled.results) == 3
