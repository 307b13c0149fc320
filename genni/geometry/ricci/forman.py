"""Forman curvature of graph edges (unit weights), plain and augmented.

For an undirected graph with degrees d_i and t_ij triangles on the edge (i, j):

    F(i, j)  = 4 − d_i − d_j                  Forman's curvature of the 1-complex (Forman 2003,
                                              Sreejith et al. 2016);
    F#(i, j) = 4 − d_i − d_j + 3 t_ij          augmented: the 2-complex with the triangles as faces
                                              (Samal et al. 2018).

Layer totals: Σ_edges F = 4m − Σ_i d_i² (each node i lies on d_i edges, each adding −d_i);
Σ_edges F# = 4m − Σ_i d_i² + 3 Σ_edges t_ij = 4m − Σ_i d_i² + 9 T (T triangles).

For a directed graph (kNN ``mode="directed"``) the curvature follows the R script of Baptista et al.
(cccd ``nng`` + igraph defaults): the edges are the arcs, d_i = in-degree + out-degree (a mutual pair
counts twice), F(i → j) = 4 − d_i − d_j, so that Σ_arcs F = 4a − Σ_i d_i² (a arcs); triangles use the
undirected skeleton A ∨ Aᵀ.
"""

from __future__ import annotations

import numpy as np

from .graphs import clean, degrees, edge_list, edge_triangles, is_symmetric

__all__ = ["forman_curvature", "forman_total"]


def forman_curvature(A, *, augmented: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Forman curvature of every edge.

    F(i, j) = 4 − d_i − d_j; augmented F#(i, j) = 4 − d_i − d_j + 3 t_ij.

    Parameters
    ----------
    A : sparse matrix, shape [n, n]
        Adjacency (0/1), symmetric or directed.

    Returns
    -------
    edges : ndarray, shape [m, 2] (int64), as :func:`~genni.geometry.ricci.graphs.edge_list`.
    F : ndarray, shape [m] (float64).
    """
    A = clean(A)
    if is_symmetric(A):
        d = np.diff(A.indptr).astype(np.int64)
        rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), d)
        up = A.indices > rows
        e = np.stack([rows[up], A.indices[up].astype(np.int64)], axis=1)
    else:
        e, d = edge_list(A), degrees(A)
    F = (4 - d[e[:, 0]] - d[e[:, 1]]).astype(np.float64)
    if augmented:
        F += 3.0 * edge_triangles(A, e)
    return e, F


def forman_total(A, *, augmented: bool = False) -> float:
    """Layer total Σ_edges F = 4m − Σ_i d_i² (m edges, or arcs of a directed A, with its degrees);
    augmented: + 3 Σ_edges t_ij.  A : sparse [n, n]."""
    A = clean(A)
    d = degrees(A)
    m = len(edge_list(A))
    tot = 4.0 * m - float(np.sum(d.astype(np.float64) ** 2))
    if augmented:
        tot += 3.0 * float(edge_triangles(A).sum())
    return tot
