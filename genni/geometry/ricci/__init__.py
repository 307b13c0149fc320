"""Discrete Ricci curvature of kNN graphs along a network's layers, and the Ricci flow coefficient.

Baptista et al., *Deep learning as Ricci flow* (Sci. Rep. 2024, arXiv 2404.14265): for each layer
l = 0 (input), 1, …, L−1 the probe points X_l [n, d_l] give a kNN graph G_l; its total curvature
Ric_l and its Wiener index g_l change along the layers, and ρ = Pearson({Ric_l}, {g_{l+1} − g_l}) is
the global Ricci coefficient (ρ < 0 reads as Ricci-flow-like).

Modules, one idea each:

:mod:`.graphs`      kNN graphs (:data:`MODES`), the Euclidean MST and the connectivity fixes
                    (:data:`CONNECTIVITY`); degrees, edges, triangles of a graph.
:mod:`.forman`      F(i, j) = 4 − d_i − d_j and the augmented F#(i, j) = F(i, j) + 3 t_ij.
:mod:`.ollivier`    κ(x, y) = 1 − W₁(m_x, m_y) / d(x, y) with exact W₁ (integer max-flow or HiGHS LP).
:mod:`.curvatures`  the registry :data:`CURVATURES` (name → edge curvature, layer total, definition)
                    and node curvature.
:mod:`.geodesics`   hop distances, the Wiener index g = Σ_{i<j} γ(i, j) and the harmonic H = Σ 1/γ.
:mod:`.flow`        the pairings (:data:`PAIRINGS`), ρ per network, pooled and per point, with reason
                    codes (:data:`REASONS`) and bootstrap intervals (:mod:`genni.geometry.statistics`).

Everything is float64 (integer counts where they are counts) and pure: no state, no torch.
"""

from .curvatures import CURVATURES, Curvature, edge_curvature, node_curvature, resolve_curvature
from .flow import (
    PAIRINGS,
    REASONS,
    PooledRicci,
    RicciResult,
    pooled_coefficient,
    ricci_coefficient,
    ricci_graphs,
    ricci_layers,
    ricci_pooled,
)
from .forman import forman_curvature, forman_total
from .geodesics import hop_distances, n_components, wiener_index
from .graphs import CONNECTIVITY, MODES, degrees, edge_list, edge_triangles, knn_graph, mst_graph, resolve_k, skeleton
from .ollivier import ollivier_curvature

__all__ = [
    "CURVATURES", "CONNECTIVITY", "PAIRINGS", "REASONS", "MODES", "Curvature", "RicciResult", "PooledRicci",
    "resolve_k", "knn_graph", "mst_graph", "skeleton", "degrees", "edge_list", "edge_triangles", "forman_curvature",
    "forman_total", "ollivier_curvature", "resolve_curvature", "edge_curvature", "node_curvature", "hop_distances",
    "wiener_index", "n_components", "ricci_coefficient", "pooled_coefficient", "ricci_graphs", "ricci_layers",
    "ricci_pooled",
]
