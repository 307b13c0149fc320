"""A representation as a point of a metric's space: centring, z-scoring, normalising, thin factors.

A representation is an array X of shape [n, d]: the activations of d units on the same n probe inputs.
Everything here is float64 and returns new arrays.
"""

from __future__ import annotations

import numpy as np

from .registry import DEFAULT_FLOOR

__all__ = ["as_rep", "centre", "zscore", "normalise", "ensure_width", "thin", "point", "factor", "cka_gram", "pad",
           "half_angle"]


def as_rep(X, what: str = "a representation") -> np.ndarray:
    """X as a float64 array [n, d] (a torch tensor is detached; a vector [n] becomes [n, 1]); ValueError
    naming ``what`` for any other shape."""
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{what} must have shape [n, d], got {X.shape}")
    return X


def centre(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=0, keepdims=True)


def zscore(X, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Column-wise z-scores of X [n, d]; units with variance < floor · max variance are dropped
    (returns [n, d_live]; [n, 0] when every unit is constant)."""
    Xc = centre(as_rep(X))
    var = (Xc * Xc).mean(axis=0)
    vmax = var.max(initial=0.0)
    if vmax <= 0:
        return Xc[:, :0]
    keep = var >= floor * vmax
    return Xc[:, keep] / np.sqrt(var[keep])


def normalise(F: np.ndarray) -> np.ndarray:
    nrm = float(np.sqrt(np.square(F).sum()))  # not np.linalg.norm: a BLAS call per small array wakes its threads
    return F / nrm if nrm > 0 else np.zeros_like(F)


def ensure_width(F: np.ndarray) -> np.ndarray:
    return F if F.shape[1] > 0 else np.zeros((F.shape[0], 1))


def thin(F: np.ndarray) -> np.ndarray:
    """A factor with the same centred Gram (F Fᵀ) and at most n columns (right-orthogonal change of basis)."""
    n, d = F.shape
    if d <= n:
        return F
    U, S, _ = np.linalg.svd(F, full_matrices=False)
    return U * S


def point(X, metric: str, floor: float) -> np.ndarray:
    """The representation as a point of the metric's space, in its own unit coordinates
    (centred / z-scored, normalised where the metric is angular); [n, d'], d' ≥ 1."""
    X = as_rep(X)
    if metric in ("zscore_procrustes", "zscore_permutation"):
        F = zscore(X, floor)
    else:
        F = centre(X)
    if metric == "angular_cka":
        g = np.linalg.norm(F.T @ F) if F.shape[1] <= F.shape[0] else np.linalg.norm(F @ F.T)
        F = F / np.sqrt(g) if g > 0 else np.zeros_like(F)
    elif metric != "procrustes":
        F = normalise(F)
    return ensure_width(F)


def factor(X, metric: str, floor: float) -> np.ndarray:
    """Per-representation precomputation for distances (a thin factor where the metric allows):
    all-zero columns (dead relu units) are dropped, which changes no Gram, cross-product norm or
    matching."""
    F = point(X, metric, floor)
    live = np.any(F != 0, axis=0)
    if not live.all():
        F = ensure_width(np.ascontiguousarray(F[:, live]))
    return F if metric == "zscore_permutation" else thin(F)


def cka_gram(X, floor: float) -> np.ndarray:
    F = point(X, "angular_cka", floor)
    return normalise(F @ F.T)


def pad(F: np.ndarray, d: int) -> np.ndarray:
    return F if F.shape[1] == d else np.concatenate([F, np.zeros((F.shape[0], d - F.shape[1]))], axis=1)


def half_angle(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    # unit vectors u, v: ‖u − v‖ = 2 sin(θ/2), ‖u + v‖ = 2 cos(θ/2)
    return 2.0 * np.arctan2(c, a)
