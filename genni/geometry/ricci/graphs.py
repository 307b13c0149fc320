"""kNN graphs of points, their connectivity fixes, and the graph quantities every curvature reads.

A graph is a scipy.sparse CSR adjacency [n, n] with 0/1 int8 entries, sorted indices and an empty
diagonal (:func:`clean`); symmetric for an undirected graph, or the arcs i → j of a directed one.

:func:`knn_graph`: kNN by Euclidean distance (scikit-learn), self excluded, ties broken by
(distance, index) so that duplicates and ties are deterministic; ``mode`` (:data:`MODES`) "or"
(A ∨ Aᵀ, default), "and" (A ∧ Aᵀ) or "directed" (the arcs i → j, j among the k nearest of i).
:func:`mst_graph`: the exact Euclidean minimum spanning tree, united with the kNN graph by the
connectivity fix "mst" (:data:`CONNECTIVITY`).

Degrees d_i (:func:`degrees`) are row sums of a symmetric A and in-degree + out-degree of a directed
one; triangles t_ij on an edge (:func:`edge_triangles`) are the common neighbours of i and j in the
undirected skeleton A ∨ Aᵀ (:func:`skeleton`), i.e. (S²)_ij.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import minimum_spanning_tree

from ..metrics.points import as_rep

__all__ = ["MODES", "CONNECTIVITY", "resolve_k", "as_points", "knn_graph", "clean", "mst_graph", "is_symmetric",
           "skeleton", "degrees", "edge_list", "edge_triangles", "csr_keys"]

MODES = ("or", "and", "directed")

CONNECTIVITY: dict[str, str] = {
    "none": "plain kNN graphs; g = inf and rho undefined ('disconnected') when a graph falls apart",
    "mst": "kNN graph united with the Euclidean minimum spanning tree of the points (always connected)",
    "harmonic": "harmonic Wiener sum H = sum_{i<j} 1/gamma with 1/inf = 0 instead of g (rho's flow-like sign flips)",
}


def resolve_k(k: int | float, n: int) -> int:
    """The neighbour count: an int k as is, a float 0 < k < 1 as max(1, round(k · n)); must be 1 ≤ k ≤ n − 1."""
    if isinstance(k, bool) or not isinstance(k, int | float | np.integer | np.floating):
        raise ValueError(f"k must be an int count or a float fraction of n, got {k!r}")
    if isinstance(k, float | np.floating) and not float(k).is_integer():
        if not 0 < k < 1:
            raise ValueError(f"a fractional k must lie in (0, 1), got {k}")
        kk = max(1, int(round(float(k) * n)))
    else:
        kk = int(k)
    if not 1 <= kk <= n - 1:
        raise ValueError(f"k = {kk} neighbours impossible with n = {n} points (need 1 <= k <= n - 1)")
    return kk


def as_points(X) -> np.ndarray:
    """Points [n, d] as a finite float64 array (:func:`~genni.geometry.metrics.points.as_rep`)."""
    X = as_rep(X, "points")
    if not np.all(np.isfinite(X)):
        raise ValueError("points must be finite")
    return X


def _knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """[n, k] indices of the k nearest other points of every point, ordered by (distance, index)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(X)
    kq = min(n, k + 2)
    nn = NearestNeighbors(n_neighbors=kq).fit(X)
    dist, ind = nn.kneighbors(X)
    rows = np.arange(n)
    # drop self; where duplicates pushed self out of the answer, drop the farthest instead
    drop = ind == rows[:, None]
    drop[~drop.any(1), -1] = True
    d = dist[~drop].reshape(n, kq - 1)
    j = ind[~drop].reshape(n, kq - 1)
    o = np.lexsort((j, d), axis=-1)
    d, j = np.take_along_axis(d, o, 1), np.take_along_axis(j, o, 1)
    out = j[:, :k].copy()
    # a row is settled when every point at distance <= its k-th was returned: the query returns the kq
    # closest, so that holds when a strictly larger candidate follows (or all points were returned)
    redo = np.flatnonzero(~(d[:, k] > d[:, k - 1])) if kq < n else np.zeros(0, dtype=np.int64)
    if len(redo):
        kth = d[redo, k - 1]
        rad = kth * (1 + 1e-9) + 1e-300
        dr, ir = nn.radius_neighbors(X[redo], radius=float(rad.max()), sort_results=False)
        for r, i in enumerate(redo):
            keep = (ir[r] != i) & (dr[r] <= rad[r])
            dd, jj = dr[r][keep], ir[r][keep]
            out[i] = jj[np.lexsort((jj, dd))][:k]
    return out


def knn_graph(X, k: int | float, *, mode: str = "or") -> sp.csr_matrix:
    """Unweighted kNN graph of the points by Euclidean distance.

    Parameters
    ----------
    X : ndarray, shape [n, d]
        The points (one row per point).
    k : int or float
        Neighbours per point: a count, or a fraction 0 < k < 1 of n (``max(1, round(k·n))``).
    mode : {"or", "and", "directed"}
        "directed": A[i, j] = 1 iff j is among the k nearest of i (self excluded; ties broken by the
        smaller index; duplicate points are fine).  "or": max(A, Aᵀ).  "and": min(A, Aᵀ).

    Returns
    -------
    A : scipy.sparse.csr_matrix, shape [n, n], int8 entries 0/1, sorted indices, empty diagonal.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}' (choose from: {', '.join(MODES)})")
    X = as_points(X)
    n = len(X)
    kk = resolve_k(k, n)
    ind = _knn_indices(X, kk)
    A = sp.csr_matrix((np.ones(n * kk, dtype=np.int8), (np.repeat(np.arange(n), kk), ind.ravel())), shape=(n, n))
    if mode == "or":
        A = A.maximum(A.T)
    elif mode == "and":
        A = A.minimum(A.T)
    return clean(A)


def clean(A) -> sp.csr_matrix:
    """0/1 int8 CSR with sorted indices, no explicit zeros, no diagonal (A itself when it already is)."""
    if not sp.issparse(A):
        A = sp.csr_matrix(np.asarray(A))
    if (A.format == "csr" and A.dtype == np.int8 and A.has_sorted_indices and A.shape[0] == A.shape[1]
            and np.all(A.data == 1) and not A.diagonal().any()):
        return A
    A = sp.csr_matrix(A, copy=True)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"an adjacency must be square, got {A.shape}")
    A.setdiag(0)
    A.eliminate_zeros()
    A = sp.csr_matrix((np.ones(A.nnz, dtype=np.int8), A.indices, A.indptr), shape=A.shape)
    A.sort_indices()
    return A


def mst_graph(X, *, dense_max: int = 4096) -> sp.csr_matrix:
    """Edges of the exact Euclidean minimum spanning tree of the points, as a symmetric 0/1 adjacency.

    Parameters
    ----------
    X : ndarray, shape [n, d]
    dense_max : int
        Up to this n, scipy's ``minimum_spanning_tree`` on the dense distance matrix; above it Prim's
        algorithm with one distance row at a time (memory O(n), time O(n² d)).  Distances enter as
        ‖x_i − x_j‖ + 1: a constant shift leaves the MST unchanged and keeps duplicate points (distance 0,
        which scipy would read as "no edge") connected.

    Returns
    -------
    T : scipy.sparse.csr_matrix, shape [n, n], n − 1 undirected edges (symmetric, int8).
    """
    X = as_points(X)
    n = len(X)
    if n <= 1:
        return sp.csr_matrix((n, n), dtype=np.int8)
    if n <= dense_max:
        sq = np.einsum("ij,ij->i", X, X)
        D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)) + 1.0
        np.fill_diagonal(D, 0.0)
        T = minimum_spanning_tree(D).tocoo()
        r, c = T.row, T.col
    else:
        r, c = _prim(X)
    T = sp.csr_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    return clean(T.maximum(T.T))


def _prim(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(X)
    intree = np.zeros(n, dtype=bool)
    best = np.full(n, np.inf)
    parent = np.zeros(n, dtype=np.int64)
    cur = 0
    intree[0] = True
    rows, cols = [], []
    for _ in range(n - 1):
        d = np.sqrt(((X - X[cur]) ** 2).sum(axis=1))
        better = (d < best) & ~intree
        best[better] = d[better]
        parent[better] = cur
        cand = np.where(intree, np.inf, best)
        cur = int(np.argmin(cand))
        intree[cur] = True
        rows.append(parent[cur])
        cols.append(cur)
    return np.asarray(rows), np.asarray(cols)


def is_symmetric(A: sp.csr_matrix) -> bool:
    """Whether a clean (sorted 0/1) CSR pattern equals its transpose."""
    T = A.T.tocsr()
    T.sort_indices()
    return bool(np.array_equal(A.indptr, T.indptr) and np.array_equal(A.indices, T.indices))


def skeleton(A) -> sp.csr_matrix:
    """The undirected graph A ∨ Aᵀ (symmetric 0/1 CSR, no diagonal); A itself if it is symmetric."""
    A = clean(A)
    return A if is_symmetric(A) else clean(A.maximum(A.T))


def degrees(A) -> np.ndarray:
    """Degrees [n] (int64): row sums of a symmetric A; in-degree + out-degree of a directed A."""
    A = clean(A)
    out = np.diff(A.indptr).astype(np.int64)
    if is_symmetric(A):
        return out
    return out + np.bincount(A.indices, minlength=A.shape[0]).astype(np.int64)


def edge_list(A) -> np.ndarray:
    """Edges [m, 2] (int64): pairs i < j of a symmetric A; all arcs (i, j) of a directed A."""
    A = clean(A)
    rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))
    cols = A.indices.astype(np.int64)
    if is_symmetric(A):
        up = cols > rows
        rows, cols = rows[up], cols[up]
    return np.stack([rows, cols], axis=1)


def edge_triangles(A, edges: np.ndarray | None = None, *, bitset_max: int = 16384) -> np.ndarray:
    """Triangles t_ij [m] on each edge: common neighbours in the undirected skeleton, (A @ A)_ij on A's edges.

    Up to n = ``bitset_max`` the neighbourhoods are bit rows (n²/8 bytes) and t_ij = popcount(N_i & N_j);
    above it the sparse product A @ A is looked up at the edges.
    """
    S = skeleton(A)
    n = S.shape[0]
    e = edge_list(A) if edges is None else np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(e) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(S.indptr))
    cols = S.indices.astype(np.int64)
    if n <= bitset_max:
        nb = -(-n // 64) * 8
        B = np.zeros((n, nb), dtype=np.uint8)
        np.bitwise_or.at(B, (rows, cols >> 3), (1 << (cols & 7)).astype(np.uint8))
        W = B.view(np.uint64)
        return np.bitwise_count(W[e[:, 0]] & W[e[:, 1]]).sum(axis=1, dtype=np.int64)
    S2 = (S.astype(np.int32) @ S.astype(np.int32)).tocsr()
    S2.sort_indices()
    k2 = csr_keys(S2)
    keys = e[:, 0] * n + e[:, 1]
    pos = np.minimum(np.searchsorted(k2, keys), len(k2) - 1)
    return np.where(k2[pos] == keys, S2.data[pos], 0).astype(np.int64)




def csr_keys(M: sp.csr_matrix) -> np.ndarray:
    """Sorted keys i · n + j [nnz] (int64) of the entries of a CSR matrix with sorted indices."""
    n = M.shape[1]
    rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr))
    return rows * n + M.indices.astype(np.int64)  # sorted: CSR with sorted indices is row-major
