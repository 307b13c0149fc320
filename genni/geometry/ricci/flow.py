"""The Ricci flow coefficient of a network: curvature against the change of geodesic sums along the layers.

Baptista et al., *Deep learning as Ricci flow* (Sci. Rep. 2024, arXiv 2404.14265), read a network's
layers as a discrete Ricci flow of the data.  For each layer l = 0 (input), 1, …, L−1 the probe
points X_l [n, d_l] give a kNN graph G_l (:mod:`.graphs`); its total curvature Ric_l (:mod:`.curvatures`)
and its Wiener index g_l (:mod:`.geodesics`) change along the layers, and

    η_l = g_{l+1} − g_l,      ρ = Pearson({Ric_l}, {η_l}),  l = 0 … L−2        ("forward" pairing)

is the global Ricci coefficient: ρ < 0 (negatively curved graphs expand, positively curved ones
contract) reads as Ricci-flow-like.  Under the connectivity fix "harmonic" (:data:`CONNECTIVITY`) H
replaces g; H *falls* when points spread, so the flow-like sign of ρ flips: :attr:`RicciResult.flow_sign`.

Pairings (:data:`PAIRINGS`) of curvature and Wiener change, with layers 0 … L−1 (0 the input):
    ``forward``  Ric_l with g_{l+1} − g_l, l = 0 … L−2 (the paper).
    ``shifted``  the R script's "layer skip" correlation: the same pairs but only for hidden layers,
                 l = 1 … L−2.  The script never computes the input graph's curvature (its curvature
                 list covers the hidden layers only) and drops the change input → first hidden layer,
                 so its "change from l−1 to l against the curvature of l−1" is the forward pairing
                 without the l = 0 pair.
    ``same``     the R script's unshifted correlation: Ric_l with g_l − g_{l−1}, l = 1 … L−1 (the change
                 *into* a layer against that layer's curvature).
    (The script also sums curvature over both orientations of an edge and distances over ordered pairs,
    a factor 2 each that Pearson ignores, and drops networks with an infinite geodesic sum.)

Local and per-layer coefficients (:func:`ricci_graphs`): for a pair (curvature layer a, change b → b+1)
the point x has c(x) = mean curvature of x's edges at layer a and δ(x) = mean over x's layer-a
neighbours y of γ_{b+1}(x, y) − γ_b(x, y) (of 1/γ under "harmonic").  ρ(x) = Pearson over the pairs for
one point; the per-layer ρ = Pearson over points for one pair.  Every coefficient reports how many
pairs stand behind it and a percentile bootstrap interval over those pairs (points, or layers, or
(layer, network) pairs when pooled; seeded; :mod:`genni.geometry.statistics`).  When ρ is undefined it
is NaN with a reason code (:data:`REASONS`), never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.csgraph import connected_components

from ..statistics import MIN_PAIRS, Coefficient, bootstrap_mean, bootstrap_pearson, is_constant, pearson_rows
from .curvatures import CURVATURES, node_curvature, resolve_curvature
from .geodesics import geodesic_sums
from .graphs import CONNECTIVITY, as_points, clean, knn_graph, mst_graph, resolve_k, skeleton

__all__ = ["PAIRINGS", "REASONS", "RicciResult", "PooledRicci", "ricci_coefficient", "pooled_coefficient",
           "ricci_graphs", "ricci_layers", "ricci_pooled"]

PAIRINGS: dict[str, str] = {
    "forward": "Ric_l with g_{l+1} - g_l, l = 0..L-2 (the paper)",
    "shifted": "the R script's 'layer skip': Ric_l with g_{l+1} - g_l for hidden layers only, l = 1..L-2",
    "same": "the R script's unshifted correlation: Ric_l with g_l - g_{l-1}, l = 1..L-1",
}

REASONS: dict[str, str] = {
    "ok": "defined",
    "disconnected": "a geodesic sum is infinite (a graph is disconnected and the connectivity fix is 'none')",
    "too_few_layers": "fewer than 3 (curvature, change) pairs across layers",
    "too_few_points": "fewer than 3 points with finite values",
    "constant_curvature": "the curvature values have no variance",
    "constant_wiener": "the geodesic changes have no variance",
}

# the statistics' generic reason codes in the Ricci flow's words (x = curvature, y = geodesic change)
_CODES = {"nonfinite": "disconnected", "too_few": "too_few_layers", "constant_x": "constant_curvature",
          "constant_y": "constant_wiener"}
_POINTS = {**_CODES, "too_few": "too_few_points"}


def _pairs(L: int, pairing: str) -> list[tuple[int, int]]:
    """(curvature layer a, change start b) pairs: curvature of a against the change b → b + 1."""
    if pairing == "forward":
        return [(l, l) for l in range(L - 1)]
    if pairing == "shifted":
        return [(l, l) for l in range(1, L - 1)]
    if pairing == "same":
        return [(l, l - 1) for l in range(1, L)]
    raise ValueError(f"unknown pairing '{pairing}' (choose from: {', '.join(PAIRINGS)})")


def _paired(curvature, wiener, pairing: str) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(curvature, dtype=np.float64).ravel()
    g = np.asarray(wiener, dtype=np.float64).ravel()
    if c.shape != g.shape:
        raise ValueError(f"curvature {c.shape} and wiener {g.shape} must have one value per layer each")
    pr = _pairs(len(c), pairing)
    if not pr:
        return np.zeros(0), np.zeros(0)
    a = np.array([p[0] for p in pr])
    b = np.array([p[1] for p in pr])
    with np.errstate(invalid="ignore"):
        return c[a], g[b + 1] - g[b]


def ricci_coefficient(curvature, wiener, *, pairing: str = "forward", n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> Coefficient:
    """Global Ricci coefficient of one network from its per-layer totals.

    Parameters
    ----------
    curvature : ndarray, shape [L]
        Ric_l, l = 0 … L−1 (0 the input layer).
    wiener : ndarray, shape [L]
        g_l (inf when disconnected) or the harmonic sums.
    pairing : {"forward", "shifted", "same"}
        See :data:`PAIRINGS`; "forward" is ρ = Pearson(Ric_l, g_{l+1} − g_l), l = 0 … L−2.

    Returns
    -------
    Coefficient — rho NaN with reason "disconnected", "too_few_layers", "constant_curvature" or
    "constant_wiener" when undefined; the interval resamples the layer pairs.
    """
    x, y = _paired(curvature, wiener, pairing)
    return bootstrap_pearson(x, y, n_boot=n_boot, level=level, seed=seed, codes=_CODES)


def pooled_coefficient(curvatures: Sequence, wieners: Sequence, *, pairing: str = "forward", n_boot: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[Coefficient, np.ndarray]:
    """ρ over the (layer, network) pairs of many networks (layer counts may differ).

    Parameters
    ----------
    curvatures, wieners : sequences of M arrays, shape [L_i] each.

    Returns
    -------
    coefficient : Coefficient over all pairs of the networks used.
    used : ndarray, shape [M] (bool) — networks whose paired geodesic changes are all finite (a network
        with a disconnected layer is left out, as the authors' R script does; if none is left the
        reason is "disconnected").
    """
    if len(curvatures) != len(wieners):
        raise ValueError("one curvature and one wiener array per network")
    xs, ys, used = [], [], np.zeros(len(curvatures), dtype=bool)
    for i, (c, g) in enumerate(zip(curvatures, wieners)):
        x, y = _paired(c, g, pairing)
        if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
            used[i] = True
            xs.append(x)
            ys.append(y)
    if not used.any():
        return Coefficient(float("nan"), 0, "disconnected" if len(curvatures) else "too_few_layers", level=level), used
    return bootstrap_pearson(np.concatenate(xs), np.concatenate(ys), n_boot=n_boot, level=level, seed=seed,
                             codes=_CODES), used


class _Coefficient:
    """``rho`` and ``reason`` of a result's flow coefficient (its ``coefficient`` field)."""

    coefficient: Coefficient

    @property
    def rho(self) -> float:
        return self.coefficient.rho

    @property
    def reason(self) -> str:
        return self.coefficient.reason


@dataclass(frozen=True)
class RicciResult(_Coefficient):
    """Ricci flow summary of one network (L layers, n points, P = number of (curvature, change) pairs).

    Attributes
    ----------
    curvature : ndarray, shape [L] — Ric_l, total edge curvature per layer.
    wiener : ndarray, shape [L] — g_l (or H_l under "harmonic"; inf when disconnected).
    components : ndarray, shape [L] (int64) — connected components of each graph used.
    n_edges : ndarray, shape [L] (int64) — edges (arcs for "directed") per graph.
    eta : ndarray, shape [L − 1] — wiener[l + 1] − wiener[l].
    coefficient : Coefficient — global ρ (pairs over layers).
    node_curvature : ndarray, shape [L, n] — mean curvature of each point's edges per layer.
    edges : tuple of L pairs (edges [m_l, 2], curvature [m_l]) — every graph's edge curvature.
    pairs : ndarray, shape [P, 2] (int64) — (curvature layer a, change start b) of each pair.
    local_rho : ndarray, shape [n] — ρ(x) over the P pairs (NaN where undefined).
    local_reason : ndarray, shape [n] (str) — reason code per point.
    local_summary : Coefficient — mean of the finite ρ(x) (in ``rho``), n points, bootstrap interval of the mean.
    layer_rho : tuple[Coefficient, ...], length P — ρ across points for each pair.
    flow_sign : int — the sign of ρ that reads as Ricci-flow-like (−1; +1 under "harmonic").
    settings : dict — every choice (k, mode, curvature, alpha, connectivity, pairing, …).
    """

    curvature: np.ndarray
    wiener: np.ndarray
    components: np.ndarray
    n_edges: np.ndarray
    eta: np.ndarray
    coefficient: Coefficient
    node_curvature: np.ndarray
    pairs: np.ndarray
    local_rho: np.ndarray
    local_reason: np.ndarray
    local_summary: Coefficient
    layer_rho: tuple[Coefficient, ...]
    edges: tuple[tuple[np.ndarray, np.ndarray], ...]
    flow_sign: int
    settings: dict = field(default_factory=dict)


def _on_arcs(arcs_d: dict, nnz: int, layer: int, a: int, harmonic: bool) -> np.ndarray:
    """Hop distances (or 1/γ) at ``layer`` on the arcs of layer a's skeleton ([nnz], CSR order)."""
    d = np.ones(nnz) if layer == a else arcs_d[(layer, a)]
    if harmonic:
        with np.errstate(divide="ignore"):
            d = np.where(np.isfinite(d), 1.0 / d, 0.0)
    return d


def ricci_graphs(graphs: Sequence, *, curvature: str = "forman", alpha: float | None = None, connectivity: str = "none",
                 pairing: str = "forward", block_size: int = 1024, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0, settings: dict | None = None) -> RicciResult:
    """Ricci flow summary of a sequence of graphs on the same n points (one per layer).

    Parameters
    ----------
    graphs : sequence of L sparse matrices, shape [n, n]
        Adjacencies (0/1; symmetric, or directed as in :func:`knn_graph`'s "directed" mode).
    curvature : {"forman", "augmented", "ollivier"}
    alpha : float or None
        Ollivier idleness (required for "ollivier", ignored otherwise).
    connectivity : {"none", "harmonic"}
        "harmonic" uses H = Σ 1/γ.  ("mst" needs the points: :func:`ricci_layers`.)
    pairing : {"forward", "shifted", "same"}
    block_size : int
        Sources per block of hop distances (memory block_size × n).
    n_boot, level, seed : bootstrap resamples, interval level, seed.

    Returns
    -------
    RicciResult (never raises for an undefined ρ: NaN with a reason code).
    """
    if curvature not in CURVATURES:
        raise ValueError(f"unknown curvature '{curvature}' (choose from: {', '.join(CURVATURES)})")
    if connectivity not in ("none", "harmonic"):
        raise ValueError("ricci_graphs takes connectivity 'none' or 'harmonic' ('mst' needs the points: ricci_layers)")
    kind = resolve_curvature(curvature, alpha)
    graphs = [clean(G) for G in graphs]
    L = len(graphs)
    if L == 0:
        raise ValueError("no graphs")
    n = graphs[0].shape[0]
    if any(G.shape != (n, n) for G in graphs):
        raise ValueError("every graph must be [n, n] on the same n points")
    harmonic = connectivity == "harmonic"
    pr = _pairs(L, pairing)
    skel = [skeleton(G) for G in graphs]
    curv = np.empty(L)
    ncurv = np.full((L, n), np.nan)
    comps = np.empty(L, dtype=np.int64)
    nedges = np.empty(L, dtype=np.int64)
    edge_values = []
    for l, G in enumerate(graphs):
        e, v = kind.edges(G, alpha)
        edge_values.append((e, v))
        nedges[l] = len(e)
        curv[l] = kind.total(G, v)
        ncurv[l] = node_curvature(n, e, v)[1]
        comps[l] = int(connected_components(skel[l], directed=False)[0])
    # hop distances per layer, streamed; on the way pick the distances on the arcs of the neighbouring layers
    wien = np.empty(L)
    arcs_d: dict[tuple[int, int], np.ndarray] = {}  # (layer of the distances, layer of the arcs) -> [nnz]
    for l in range(L):
        nb = [a for a in (l - 1, l + 1) if 0 <= a < L]
        wien[l], got = geodesic_sums(skel[l], int(block_size), harmonic, [skel[a] for a in nb])
        for a, dd in zip(nb, got):
            arcs_d[(l, a)] = dd
    with np.errstate(invalid="ignore"):
        eta = np.diff(wien)
    coef = ricci_coefficient(curv, wien, pairing=pairing, n_boot=n_boot, level=level, seed=seed)

    # local quantities per pair: c [P, n], delta [P, n]
    P = len(pr)
    C = np.full((P, n), np.nan)
    Dl = np.full((P, n), np.nan)
    for p, (a, b) in enumerate(pr):
        S = skel[a]
        src = np.repeat(np.arange(n), np.diff(S.indptr))
        deg = np.diff(S.indptr)

        with np.errstate(invalid="ignore"):
            change = _on_arcs(arcs_d, S.nnz, b + 1, a, harmonic) - _on_arcs(arcs_d, S.nnz, b, a, harmonic)
            s = np.bincount(src, change, minlength=n)
            bad = np.bincount(src, ~np.isfinite(change), minlength=n) > 0
            delta = np.where(deg > 0, s / np.maximum(deg, 1), np.nan)
        delta[bad] = np.inf
        C[p] = ncurv[a]
        Dl[p] = delta
    local = np.full(n, np.nan)
    why = np.full(n, "too_few_layers" if P < MIN_PAIRS else "ok", dtype="<U20")
    if P >= MIN_PAIRS:
        fin = np.all(np.isfinite(C), 0) & np.all(np.isfinite(Dl), 0)
        why[~fin] = "disconnected"
        cc = np.array([is_constant(C[:, i]) if fin[i] else False for i in range(n)])
        dc = np.array([is_constant(Dl[:, i]) if fin[i] and not cc[i] else False for i in range(n)])
        why[cc] = "constant_curvature"
        why[dc] = "constant_wiener"
        ok = why == "ok"
        if ok.any():
            local[ok] = pearson_rows(C[:, ok].T, Dl[:, ok].T)
    layer = []
    for p in range(P):
        keep = np.isfinite(C[p]) & np.isfinite(Dl[p])
        if (~np.isfinite(Dl[p])).any() and keep.sum() < MIN_PAIRS:
            layer.append(Coefficient(float("nan"), int(keep.sum()), "disconnected", level=level))
            continue
        layer.append(bootstrap_pearson(C[p][keep], Dl[p][keep], n_boot=n_boot, level=level, seed=seed + 1 + p,
                                       codes=_POINTS))
    st = {"curvature": curvature, "alpha": alpha, "connectivity": connectivity, "pairing": pairing,
          "block_size": int(block_size), "n_boot": int(n_boot), "level": float(level), "seed": int(seed)}
    st.update(settings or {})
    summary = bootstrap_mean(local, n_boot=n_boot, level=level, seed=seed, codes=_POINTS)
    return RicciResult(curvature=curv, wiener=wien, components=comps, n_edges=nedges, eta=eta, coefficient=coef,
                       node_curvature=ncurv, pairs=np.asarray(pr, dtype=np.int64).reshape(-1, 2), local_rho=local,
                       local_reason=why, local_summary=summary,
                       layer_rho=tuple(layer), flow_sign=1 if harmonic else -1, edges=tuple(edge_values), settings=st)


def ricci_layers(reps: Sequence, k: int | float, *, mode: str = "or", curvature: str = "forman",
                 alpha: float | None = None, connectivity: str = "none", pairing: str = "forward",
                 block_size: int = 1024, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> RicciResult:
    """Ricci flow summary of one network from its layer representations.

    Parameters
    ----------
    reps : sequence of L arrays, shape [n, d_l]
        The same n points at each layer (layer 0 = the input).
    k : int or float
        kNN neighbours (count, or fraction of n).
    mode : {"or", "and", "directed"}
        kNN symmetrisation (:func:`knn_graph`).
    curvature : {"forman", "augmented", "ollivier"}
    alpha : float or None
        Required for "ollivier".
    connectivity : {"none", "mst", "harmonic"}
        See :data:`CONNECTIVITY`.
    pairing, block_size, n_boot, level, seed : as :func:`ricci_graphs`.

    Returns
    -------
    RicciResult; ``settings`` names k (resolved), mode, curvature, alpha, connectivity, pairing.
    """
    if connectivity not in CONNECTIVITY:
        raise ValueError(f"unknown connectivity '{connectivity}' (choose from: {', '.join(CONNECTIVITY)})")
    pts = [as_points(X) for X in reps]
    if not pts:
        raise ValueError("no layers")
    n = len(pts[0])
    if any(len(X) != n for X in pts):
        raise ValueError("every layer must hold the same n points")
    kk = resolve_k(k, n)
    graphs = []
    for X in pts:
        G = knn_graph(X, kk, mode=mode)
        if connectivity == "mst":
            T = mst_graph(X)
            G = clean(G.maximum(T))  # directed arcs plus both directions of the tree edges
        graphs.append(G)
    return ricci_graphs(graphs, curvature=curvature, alpha=alpha,
                        connectivity="harmonic" if connectivity == "harmonic" else "none", pairing=pairing,
                        block_size=block_size, n_boot=n_boot, level=level, seed=seed,
                        settings={"k": kk, "k_requested": k, "mode": mode, "connectivity": connectivity, "n": n,
                                  "n_layers": len(pts)})


@dataclass(frozen=True)
class PooledRicci(_Coefficient):
    """Ricci flow over M networks: per-network results, their totals padded to [M, L_max] with NaN,
    the pooled coefficient over all (layer, network) pairs and which networks entered it."""

    results: tuple[RicciResult, ...]
    curvature: np.ndarray
    wiener: np.ndarray
    components: np.ndarray
    coefficient: Coefficient
    used: np.ndarray


def ricci_pooled(networks: Sequence[Sequence], k: int | float, **kwargs) -> PooledRicci:
    """:func:`ricci_layers` for each network (``networks``: M sequences of [n, d_l] arrays), and the
    pooled ρ over all their (layer, network) pairs (:func:`pooled_coefficient`)."""
    res = tuple(ricci_layers(reps, k, **kwargs) for reps in networks)
    M = len(res)
    Lmax = max((len(r.curvature) for r in res), default=0)
    curv = np.full((M, Lmax), np.nan)
    wien = np.full((M, Lmax), np.nan)
    comps = np.full((M, Lmax), -1, dtype=np.int64)
    for i, r in enumerate(res):
        L = len(r.curvature)
        curv[i, :L], wien[i, :L], comps[i, :L] = r.curvature, r.wiener, r.components
    coef, used = pooled_coefficient([r.curvature for r in res], [r.wiener for r in res],
                                    pairing=kwargs.get("pairing", "forward"), n_boot=kwargs.get("n_boot", 1000),
                                    level=kwargs.get("level", 0.95), seed=kwargs.get("seed", 0))
    return PooledRicci(res, curv, wien, comps, coef, used)
