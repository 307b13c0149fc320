"""Hop-count geodesics on graphs and their sums: the Wiener index and the harmonic sum.

γ(i, j) = hop count between i and j in the undirected skeleton A ∨ Aᵀ (scipy.sparse.csgraph,
unit weights; ∞ when unreachable).

    g = Σ_{i<j} γ(i, j)        Wiener index (∞ when the graph is disconnected);
    H = Σ_{i<j} 1/γ(i, j)      harmonic sum, 1/∞ = 0 (finite on any graph).

Both are streamed in row blocks of ``block_size`` sources (memory block_size × n, never n × n).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, shortest_path

from .graphs import skeleton

__all__ = ["hop_distances", "n_components", "geodesic_sums", "wiener_index"]


def hop_distances(A, indices=None) -> np.ndarray:
    """Hop-count distances [len(indices), n] (float64, inf when unreachable) from the given sources
    (all when None) in the undirected skeleton, by scipy.sparse.csgraph (unit weights)."""
    S = skeleton(A)
    return shortest_path(S, method="D", directed=False, unweighted=True, indices=indices)


def n_components(A) -> int:
    """Number of connected components of the undirected skeleton."""
    return int(connected_components(skeleton(A), directed=False)[0])


def geodesic_sums(S: sp.csr_matrix, block_size: int, harmonic: bool,
                  extract: Sequence[sp.csr_matrix] = ()) -> tuple[float, list[np.ndarray]]:
    """g = Σ_{i<j} γ(i, j) (or, harmonic, H = Σ_{i<j} 1/γ(i, j)) of the symmetric graph S [n, n], streamed
    in row blocks of ``block_size`` sources, and the hop distances γ in S on the arcs of each graph in
    ``extract`` (one array [nnz] per graph, aligned with its CSR data)."""
    n = S.shape[0]
    tot = 0.0
    got = [np.empty(E.nnz) for E in extract]
    for s in range(0, n, block_size):
        t = min(n, s + block_size)
        D = shortest_path(S, method="D", directed=False, unweighted=True, indices=np.arange(s, t))
        if harmonic:
            with np.errstate(divide="ignore"):
                R = 1.0 / D
            R[~np.isfinite(R)] = 0.0  # 1/inf = 0 and the diagonal 1/0
            tot += float(R.sum())
        else:
            tot += float(D.sum())
        for E, out in zip(extract, got):
            a0, a1 = E.indptr[s], E.indptr[t]
            rows = np.repeat(np.arange(t - s), np.diff(E.indptr[s:t + 1]))
            out[a0:a1] = D[rows, E.indices[a0:a1]]
    return tot / 2.0, got


def wiener_index(A, *, harmonic: bool = False, block_size: int = 1024) -> float:
    """g = Σ_{i<j} γ(i, j) (inf when disconnected) or, harmonic, H = Σ_{i<j} 1/γ(i, j) with 1/∞ = 0;
    γ = hop count in the undirected skeleton of A [n, n]; streamed in blocks of ``block_size`` sources."""
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    return geodesic_sums(skeleton(A), int(block_size), harmonic)[0]
