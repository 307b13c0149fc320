"""The geometry of layer paths: geodesics, angles, projection onto a geodesic, path summaries.

:func:`geodesic` (slerp of normalised centred Grams on the CKA sphere; align-then-slerp in Procrustes
shape space), :func:`angle` (at the middle point, between the log-map directions towards its
neighbours; π for a straight path), :func:`project_onto_geodesic` (CKA sphere: position along the
geodesic and distance off it), :func:`path_summary` (step lengths, length, straightness, angles).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize_scalar

from .distances import distance
from .points import cka_gram, half_angle, normalise, pad, point, zscore
from .registry import DEFAULT_FLOOR, registered

__all__ = ["geodesic", "angle", "project_onto_geodesic", "path_summary"]


def _align(P_ref: np.ndarray, P: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(P_ref, P aligned to P_ref), both zero-padded to a common width."""
    d = max(P_ref.shape[1], P.shape[1])
    A, B = pad(P_ref, d), pad(P, d)
    if metric == "zscore_permutation":
        rows, cols = linear_sum_assignment(A.T @ B, maximize=True)
        out = np.zeros_like(B)
        out[:, rows] = B[:, cols]
        return A, out
    U, _, Vt = np.linalg.svd(B.T @ A)
    return A, B @ (U @ Vt)


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    theta = float(half_angle(np.linalg.norm(a - b), np.linalg.norm(a + b)))
    if theta < 1e-15:
        return (1.0 - t) * a + t * b
    s = np.sin(theta)
    return (np.sin((1.0 - t) * theta) * a + np.sin(t * theta) * b) / s


def geodesic(X, Y, t: float, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """The point γ(t) of the geodesic from X (t = 0) to Y (t = 1); d(X, γ(t)) = t · d(X, Y).

    angular_cka : slerp of the normalised centred Gram matrices; returns a Gram [n, n]
    angular_procrustes : Y is aligned to X first (orthogonal Procrustes, after zero-padding
        to equal widths), then the normalised centred points are slerped; returns a
        representation [n, max(d_x, d_y)]
    procrustes : straight line between X̃ and the aligned Ỹ; returns a representation

    The z-score metrics have no geodesic here: a point between two z-scored representations
    is not itself z-scored, so re-z-scoring it moves it.  For zscore_procrustes use
    ``geodesic(zscore(X), zscore(Y), t, "angular_procrustes")`` (distances measured with
    angular_procrustes in the z-scored coordinates).
    """
    registered(metric)
    if metric.startswith("zscore"):
        raise ValueError(f"no geodesic for '{metric}': use geodesic(zscore(X), zscore(Y), t, 'angular_procrustes')")
    if metric == "angular_cka":
        return _slerp(cka_gram(X, floor), cka_gram(Y, floor), t)
    A, B = _align(point(X, metric, floor), point(Y, metric, floor), metric)
    if metric == "procrustes":
        return (1.0 - t) * A + t * B
    return _slerp(A, B, t)


def _tangent(P: np.ndarray, base: np.ndarray, sphere: bool) -> np.ndarray:
    v = P - base
    if sphere:
        v = P - np.sum(P * base) * base
    return v


def angle(A, B, C, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> float:
    """Angle at B between the directions towards A (incoming) and towards C (outgoing), from
    the log maps at B: π for a straight path (B on the geodesic between A and C), 0 for a
    full reversal; nan when B coincides with A or C.  For the shape-space metrics A and C are
    aligned to B first."""
    registered(metric)
    if metric == "angular_cka":
        Pb = cka_gram(B, floor)
        ua, uc = (_tangent(cka_gram(P, floor), Pb, True) for P in (A, C))
    else:
        pa, pb, pc = (point(P, metric, floor) for P in (A, B, C))
        d = max(p.shape[1] for p in (pa, pb, pc))
        pa, pb, pc = (pad(p, d) for p in (pa, pb, pc))
        sphere = metric != "procrustes"
        ua = _tangent(_align(pb, pa, metric)[1], pb, sphere)
        uc = _tangent(_align(pb, pc, metric)[1], pb, sphere)
    na, nc = np.linalg.norm(ua), np.linalg.norm(uc)
    if na == 0 or nc == 0:
        return float("nan")
    ua, uc = ua / na, uc / nc
    return float(half_angle(np.linalg.norm(ua - uc), np.linalg.norm(ua + uc)))


def project_onto_geodesic(P, A, B, metric: str = "angular_cka", floor: float = DEFAULT_FLOOR, *,
                          t_range: tuple[float, float] = (-0.5, 1.5)) -> tuple[float, float]:
    """Closest point to P on the geodesic through A and B: (t, off) with
    off = min_t d(P, γ(t)) and γ(t) = ``geodesic(A, B, t)`` (t = 0 at A, 1 at B; outside [0, 1]
    beyond the ends).

    angular_cka : closed form on the sphere of unit centred Grams, exact for every t (spherical
        Pythagoras: cos d(A, P) = cos(off) · cos(t · d(A, B))).
    angular_procrustes, procrustes : shape space has no closed form; 1-D minimisation of
        t ↦ d(P, γ(t)) over ``t_range`` (scan of 41 points, then bounded Brent to |Δt| ≤ 1e-10).
        A minimum at the ends of ``t_range`` is returned as found.
    zscore_procrustes : the above for angular_procrustes after z-scoring P, A and B.
    zscore_permutation : raises ValueError (a permutation quotient has no geodesics here).
    P, A, B : representations [n, d_P], [n, d_A], [n, d_B] on the same n inputs
    """
    registered(metric)
    if metric == "zscore_permutation":
        raise ValueError("no geodesic for 'zscore_permutation': project under zscore_procrustes instead")
    if metric == "zscore_procrustes":
        P, A, B = (zscore(X, floor) for X in (P, A, B))
        metric = "angular_procrustes"
    if metric != "angular_cka":
        a, b = _align(point(A, metric, floor), point(B, metric, floor), metric)
        if np.linalg.norm(a - b) < 1e-15:
            raise ValueError("A and B are the same point: the geodesic between them is undefined")

        def off(t: float) -> float:
            g = (1.0 - t) * a + t * b if metric == "procrustes" else _slerp(a, b, t)
            return distance(P, g, metric, floor)

        ts = np.linspace(*t_range, 41)
        vals = [off(t) for t in ts]
        i = int(np.argmin(vals))
        lo, hi = ts[max(i - 1, 0)], ts[min(i + 1, len(ts) - 1)]
        res = minimize_scalar(off, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        t_best, v_best = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (float(ts[i]), float(vals[i]))
        return t_best, v_best
    a, b, p = (cka_gram(X, floor) for X in (A, B, P))
    theta = float(half_angle(np.linalg.norm(a - b), np.linalg.norm(a + b)))
    if theta < 1e-15:
        raise ValueError("A and B are the same point: the geodesic between them is undefined")
    e2 = normalise(b - np.sum(a * b) * a)
    x, y = float(np.sum(p * a)), float(np.sum(p * e2))
    phi = float(np.arctan2(y, x))
    off_ = float(np.arctan2(np.linalg.norm(p - x * a - y * e2), np.hypot(x, y)))
    return phi / theta, off_


def path_summary(reps, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> dict:
    """Summary of a layer path (representations [X_0, ..., X_{L-1}] in layer order).

    returns : dict with ``steps`` [L−1] (consecutive distances), ``length`` (their sum),
        ``endpoint_distance`` d(first, last), ``straightness`` d(first, last)/length (≤ 1 by the
        triangle inequality; nan for a zero-length path), ``angles`` [L−2] (angle at each interior
        layer, π = straight) and ``turning_angles`` [L−2] = π − angles.
    """
    registered(metric)
    reps = list(reps)
    L = len(reps)
    steps = np.array([distance(reps[i], reps[i + 1], metric, floor) for i in range(L - 1)])
    length = float(steps.sum())
    end = distance(reps[0], reps[-1], metric, floor) if L > 1 else 0.0
    angles = np.array([angle(reps[i - 1], reps[i], reps[i + 1], metric, floor) for i in range(1, L - 1)])
    return {
        "metric": metric,
        "steps": steps,
        "length": length,
        "endpoint_distance": float(end),
        "straightness": float(end / length) if length > 0 else float("nan"),
        "angles": angles,
        "turning_angles": np.pi - angles,
    }
