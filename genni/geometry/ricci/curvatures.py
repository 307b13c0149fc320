"""The curvature registry: name → edge curvature, layer total and definition.

``forman``     F(i, j) = 4 − d_i − d_j                          (:mod:`.forman`)
``augmented``  F#(i, j) = 4 − d_i − d_j + 3 t_ij                 (:mod:`.forman`)
``ollivier``   κ(x, y) = 1 − W₁(m_x, m_y) / d(x, y), exact W₁     (:mod:`.ollivier`; needs α)

A layer's total curvature is Ric = Σ_edges of the edge values (for Forman by the closed form
4m − Σ_i d_i² [+ 3 Σ t_ij]); a node's curvature is the sum or the mean of its edges' values
(:func:`node_curvature`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .forman import forman_curvature, forman_total
from .ollivier import ollivier_curvature

__all__ = ["Curvature", "CURVATURES", "resolve_curvature", "edge_curvature", "node_curvature"]


@dataclass(frozen=True)
class Curvature:
    """A registered edge curvature.

    Attributes
    ----------
    name : str — the registry key.
    definition : str — the formula in plain text (stored with every Ricci result).
    edges : callable (A [n, n], alpha) -> (edges [m, 2] int64, values [m] float64).
    total : callable (A [n, n], values [m]) -> float — the layer total Σ_edges of the values.
    needs_alpha : bool — whether ``alpha`` (the Ollivier idleness) is required.
    """

    name: str
    definition: str
    edges: Callable[..., tuple[np.ndarray, np.ndarray]]
    total: Callable[..., float]
    needs_alpha: bool = False


def _forman(A, alpha=None):
    return forman_curvature(A)


def _augmented(A, alpha=None):
    return forman_curvature(A, augmented=True)


def _ollivier(A, alpha=None):
    return ollivier_curvature(A, alpha)


def _forman_sum(A, values) -> float:
    return forman_total(A)


def _augmented_sum(A, values) -> float:
    return forman_total(A, augmented=True)


def _edge_sum(A, values) -> float:
    return float(np.asarray(values).sum())


CURVATURES: dict[str, Curvature] = {
    c.name: c
    for c in (
        Curvature("forman", "F(i,j) = 4 - d_i - d_j (unit weights; Forman 2003, Sreejith et al. 2016)", _forman,
                  _forman_sum),
        Curvature("augmented", "F#(i,j) = 4 - d_i - d_j + 3 t_ij, t_ij triangles on the edge (Samal et al. 2018)",
                  _augmented, _augmented_sum),
        Curvature("ollivier", "kappa(x,y) = 1 - W1(m_x, m_y)/d(x,y), m_x = alpha delta_x + (1-alpha)/d_x on the "
                  "neighbours, exact W1", _ollivier, _edge_sum, needs_alpha=True),
    )
}


def resolve_curvature(name: str, alpha: float | None = None) -> Curvature:
    """The registered curvature ``name``; ValueError for an unknown name, or for a missing alpha where the
    curvature needs one."""
    try:
        c = CURVATURES[name]
    except KeyError:
        raise ValueError(f"unknown curvature '{name}' (choose from: {', '.join(CURVATURES)})") from None
    if c.needs_alpha and alpha is None:
        raise ValueError("Ollivier curvature needs an explicit alpha (0 = uniform on neighbours, 0.5 = lazy)")
    return c


def edge_curvature(A, curvature: str = "forman", alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edge curvature of the named kind (:data:`CURVATURES`) of A [n, n]: (edges [m, 2], values [m])."""
    return resolve_curvature(curvature, alpha).edges(A, alpha)


def node_curvature(n: int, edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node curvature from edge values: (sum [n], mean [n]) over the edges incident to each node
    (NaN mean for an isolated node).  edges [m, 2], values [m]."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    v = np.asarray(values, dtype=np.float64)
    s = np.bincount(e[:, 0], v, minlength=n) + np.bincount(e[:, 1], v, minlength=n)
    c = np.bincount(e[:, 0], minlength=n) + np.bincount(e[:, 1], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return s, mean
