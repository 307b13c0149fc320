"""Ollivier–Ricci curvature of graph edges with exact Wasserstein distances.

    κ(x, y) = 1 − W₁(m_x, m_y) / d(x, y),     m_x = α δ_x + (1 − α)/d_x Σ_{u ~ x} δ_u,

on an edge d(x, y) = 1; α = 0 is uniform on the neighbours, α = 0.5 the lazy walk (Lin–Lu–Yau use
α → 1 in the limit).  W₁ is exact under the hop metric of the whole graph (a directed graph is read
as its undirected skeleton A ∨ Aᵀ).

Exact W₁ by max-flow (:func:`ollivier_curvature`): by Kantorovich–Rubinstein, W₁(μ, ν) depends only
on μ − ν, so the mass common to both measures stays put: transport the positive part P of μ − ν to
the negative part Q.  Every u ∈ P lies in N[x], every v ∈ Q in N[y], x ~ y, so d(u, v) ∈ {1, 2, 3}
(1: adjacent, 2: a common neighbour, 3 otherwise), read from A and A².  With w = 3 − d ∈ {0, 1, 2}:
W₁ = 3M − max Σ w(u, v) π(u, v) over couplings π (M the mass of P), a bipartite b-matching whose dual
has an optimal solution with potentials in {0, 1, 2} (total unimodularity).  Splitting each potential
into two 0/1 levels turns the dual into a weighted bipartite vertex cover, i.e. a max-flow: source →
(u, 1), (u, 2) with capacity μ⁺(u); (v, 1), (v, 2) → sink with capacity μ⁻(v); arcs (u, 1) → (v, 1)
where w ≥ 1, and (u, 1) → (v, 2), (u, 2) → (v, 1) where w = 2.  Masses are integers after scaling by
b · lcm(d_x, d_y) when α = a/b is rational with a small denominator (0 and 1/2 are), so scipy's integer
max-flow gives W₁ exactly, for thousands of edges in one call (disjoint components share source and
sink).  ``method="lp"`` solves the same transport problems with scipy's HiGHS linear programming
instead (also used for irrational α or huge scales).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import maximum_flow

from .graphs import csr_keys, edge_list, skeleton

__all__ = ["ollivier_curvature"]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c)."""
    tot = int(counts.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64)
    off = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + np.arange(tot) - off


def _keys_in(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _transport_problems(S, weights, edges, centre, nbr_x, nbr_y):
    """Net measures μ_x − μ_y of each edge and their cross pairs.

    centre [m], nbr_x [m], nbr_y [m]: masses at the endpoints and on each neighbour of x / of y.
    Returns (pe, pmass, qe, qmass, pair_p, pair_q, w): positive entries (edge index, mass), negative
    entries (edge index, |mass|), and for every (P entry, Q entry) of the same edge the weight
    w = 3 − d ∈ {0, 1, 2} (``weights(u, v)``, see :func:`_hop_weights`).
    """
    n = S.shape[0]
    m = len(edges)
    x, y = edges[:, 0], edges[:, 1]
    deg = np.diff(S.indptr)
    eids, nodes, vals = [], [], []
    for end, nb, sign in ((x, nbr_x, 1.0), (y, nbr_y, -1.0)):
        cnt = deg[end]
        eids += [np.arange(m), np.repeat(np.arange(m), cnt)]
        nodes += [end, S.indices[_ranges(S.indptr[end], cnt)].astype(np.int64)]
        vals += [sign * centre, sign * np.repeat(nb, cnt)]
    eid, node, val = np.concatenate(eids), np.concatenate(nodes), np.concatenate(vals)
    key = eid * n + node
    uk, inv = np.unique(key, return_inverse=True)
    g = np.bincount(inv, val)
    tol = 1e-13 * np.max(np.abs(g), initial=1.0)
    pos, neg = g > tol, g < -tol
    pe, pn, pmass = uk[pos] // n, uk[pos] % n, g[pos]
    qe, qn, qmass = uk[neg] // n, uk[neg] % n, -g[neg]
    qcount = np.bincount(qe, minlength=m)
    qstart = np.cumsum(qcount) - qcount
    reps = qcount[pe]
    pair_p = np.repeat(np.arange(len(pe)), reps)
    pair_q = _ranges(qstart[pe], reps)
    u, v = pn[pair_p], qn[pair_q]
    w = weights(u, v)
    return pe, pmass, qe, qmass, pair_p, pair_q, w


def _hop_weights(S: sp.csr_matrix, dense_max: int = 4096):
    """w(u, v) = 3 − min(d(u, v), 3) for u ≠ v: 2 if adjacent, 1 if they share a neighbour, else 0.
    A dense int8 table up to n = dense_max, else sorted-key look-ups in A and A² (both exact)."""
    n = S.shape[0]
    S2 = (S.astype(np.int32) @ S.astype(np.int32)).tocsr()
    S2.sort_indices()
    if n <= dense_max:
        Wt = np.zeros((n, n), dtype=np.int8)
        r2 = np.repeat(np.arange(n), np.diff(S2.indptr))
        Wt[r2, S2.indices] = 1
        r1 = np.repeat(np.arange(n), np.diff(S.indptr))
        Wt[r1, S.indices] = 2
        return lambda u, v: Wt[u, v].astype(np.int64)
    k1, k2 = csr_keys(S), csr_keys(S2)

    def weights(u, v):
        keys = u * n + v
        adj = _keys_in(keys, k1)
        return np.where(adj, 2, np.where(_keys_in(keys, k2), 1, 0)).astype(np.int64)

    return weights


def _w1_maxflow(m, pe, pmass, qe, qmass, pair_p, pair_q, w) -> np.ndarray:
    """Integer masses: W₁ · scale per edge = 3 M − max-flow of the two-level vertex-cover network."""
    pm = np.rint(pmass).astype(np.int64)
    qm = np.rint(qmass).astype(np.int64)
    nP, nQ = len(pe), len(qe)
    src, snk = 0, 1
    p1, p2 = 2 + 2 * np.arange(nP), 3 + 2 * np.arange(nP)
    q1, q2 = 2 + 2 * nP + 2 * np.arange(nQ), 3 + 2 * nP + 2 * np.arange(nQ)
    sel1 = w >= 1
    sel2 = w == 2
    rows = np.concatenate([np.zeros(2 * nP, np.int64), q1, q2, p1[pair_p[sel1]], p1[pair_p[sel2]], p2[pair_p[sel2]]])
    cols = np.concatenate([p1, p2, np.full(2 * nQ, snk, np.int64), q1[pair_q[sel1]], q2[pair_q[sel2]],
                           q1[pair_q[sel2]]])
    caps = np.concatenate([pm, pm, qm, qm, pm[pair_p[sel1]], pm[pair_p[sel2]], pm[pair_p[sel2]]])
    N = 2 + 2 * nP + 2 * nQ
    G = sp.csr_matrix((caps.astype(np.int32), (rows, cols)), shape=(N, N))
    G.sort_indices()
    res = maximum_flow(G, src, snk, method="dinic")
    F = res.flow.tocsr()
    out_src = np.asarray(F[0].todense()).ravel()
    per_p = out_src[p1] + out_src[p2]
    flow = np.bincount(pe, per_p.astype(np.float64), minlength=m)
    M = np.bincount(pe, pm.astype(np.float64), minlength=m)
    return 3.0 * M - flow


def _w1_lp(m, pe, pmass, qe, qmass, pair_p, pair_q, w) -> np.ndarray:
    """Float masses: the transport LP min Σ (3 − w) π s.t. row sums μ⁺, column sums μ⁻, π ≥ 0,
    all edges of the chunk in one block-diagonal HiGHS (dual simplex) problem."""
    nP, nQ = len(pe), len(qe)
    nv = len(pair_p)
    rows = np.concatenate([pair_p, nP + pair_q])
    cols = np.concatenate([np.arange(nv), np.arange(nv)])
    Aeq = sp.csr_matrix((np.ones(2 * nv), (rows, cols)), shape=(nP + nQ, nv))
    c = (3 - w).astype(np.float64)
    res = linprog(c, A_eq=Aeq, b_eq=np.concatenate([pmass, qmass]), bounds=(0, None), method="highs-ds")
    if res.status != 0:  # pragma: no cover - a feasible bounded transport problem
        raise RuntimeError(f"HiGHS failed on a transport problem: {res.message}")
    return np.bincount(pe[pair_p], c * res.x, minlength=m)


def ollivier_curvature(A, alpha: float, *, method: str = "auto", chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ollivier–Ricci curvature of every edge of the undirected skeleton, with exact W₁.

    κ(x, y) = 1 − W₁(m_x, m_y) (d(x, y) = 1 on an edge), m_x = α δ_x + (1 − α)/d_x Σ_{u ~ x} δ_u,
    W₁ under the hop metric of the whole graph (see the module notes for the exact max-flow form).

    Parameters
    ----------
    A : sparse matrix, shape [n, n]
        Adjacency (0/1); a directed A is read as its skeleton A ∨ Aᵀ.
    alpha : float
        Idleness in [0, 1]: 0 = uniform on the neighbours, 0.5 = lazy walk.  Required (no default).
    method : {"auto", "maxflow", "lp"}
        "maxflow": exact integer max-flow (α = a/b rational with b ≤ 10⁴); "lp": scipy HiGHS linear
        programs; "auto": max-flow where the scaled masses fit in int32, LP otherwise.
    chunk : int or None
        Edges per max-flow / LP call (default 2048 for max-flow, 256 for the LP, measured fastest).

    Returns
    -------
    edges : ndarray, shape [m, 2] (int64), pairs i < j.
    kappa : ndarray, shape [m] (float64).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if method not in ("auto", "maxflow", "lp"):
        raise ValueError(f"unknown method '{method}' (choose from: auto, maxflow, lp)")
    S = skeleton(A)
    e = edge_list(S)
    m = len(e)
    kappa = np.empty(m)
    if m == 0:
        return e, kappa
    deg = np.diff(S.indptr).astype(np.int64)
    alpha = float(alpha)
    fr = Fraction(alpha).limit_denominator(10_000)
    rational = abs(fr.numerator / fr.denominator - alpha) <= 1e-15
    if method == "maxflow" and not rational:
        raise ValueError(f"method='maxflow' needs a rational alpha with a small denominator, got {alpha!r}")
    a, b = fr.numerator, fr.denominator
    weights = _hop_weights(S)
    dx, dy = deg[e[:, 0]], deg[e[:, 1]]
    scale = b * np.lcm(dx, dy)  # integer masses: alpha -> a·lcm, (1 - alpha)/d -> (b - a)·lcm/d
    use_flow = np.zeros(m, dtype=bool)
    if method != "lp" and rational:
        use_flow = 4 * scale < 2**28
        if method == "maxflow" and not use_flow.all():
            raise ValueError("scaled masses too large for the int32 max-flow; use method='lp' or 'auto'")
    for flow, idx_all in ((True, np.flatnonzero(use_flow)), (False, np.flatnonzero(~use_flow))):
        if flow:
            # chunk so that the total source capacity (≤ 2 Σ scale) stays far below 2^31
            csum = np.cumsum(4 * scale[idx_all])
            bounds = [0]
            while bounds[-1] < len(idx_all):
                lo = bounds[-1]
                base = csum[lo - 1] if lo else 0
                hi = int(np.searchsorted(csum, base + 2**29, side="right"))
                bounds.append(min(max(hi, lo + 1), lo + (chunk or 2048), len(idx_all)))
        else:
            bounds = list(range(0, len(idx_all), chunk or 256)) + [len(idx_all)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            idx = idx_all[lo:hi]
            if len(idx) == 0:
                continue
            ex = e[idx]
            if flow:
                L = scale[idx]
                lcm = L // b
                centre = (a * lcm).astype(np.float64)
                nbx, nby = ((b - a) * lcm // dx[idx]).astype(np.float64), ((b - a) * lcm // dy[idx]).astype(np.float64)
                W = _w1_maxflow(len(idx), *_transport_problems(S, weights, ex, centre, nbx, nby)) / L
            else:
                centre = np.full(len(idx), alpha)
                W = _w1_lp(len(idx), *_transport_problems(S, weights, ex, centre, (1 - alpha) / dx[idx], (1 - alpha) / dy[idx]))
            kappa[idx] = 1.0 - W
    return e, kappa


