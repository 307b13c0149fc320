"""Summary statistics with honest uncertainty: Pearson correlation, percentile bootstrap intervals, quantiles.

Pearson's ρ of pairs (x_i, y_i), i < p:

    ρ = Σ (x_i − x̄)(y_i − ȳ) / √(Σ (x_i − x̄)² · Σ (y_i − ȳ)²),     clipped to [−1, 1].

A percentile bootstrap interval at level λ resamples the p pairs (or values) with replacement
``n_boot`` times (numpy Generator seeded with ``seed``), recomputes the statistic on each resample
and reports the (1 − λ)/2 and (1 + λ)/2 quantiles of the finite replicates.

An undefined ρ is NaN with a reason code (:data:`REASONS`), never an exception.  Callers with their
own vocabulary (the Ricci flow calls a constant x "constant_curvature") pass ``codes``, a mapping from
the generic codes to theirs.

Everything is float64, pure numpy, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["REASONS", "MIN_PAIRS", "Coefficient", "is_constant", "pearson", "pearson_rows", "bootstrap_pearson",
           "bootstrap_mean", "quantiles", "min_median_max"]

MIN_PAIRS = 3

REASONS: dict[str, str] = {
    "ok": "defined",
    "nonfinite": "a value is not finite (NaN or inf)",
    "too_few": f"fewer than {MIN_PAIRS} pairs (or values)",
    "constant_x": "the x values have no variance",
    "constant_y": "the y values have no variance",
}


@dataclass(frozen=True)
class Coefficient:
    """A statistic (``rho``: a correlation, or a mean) with the number of pairs behind it, a reason code
    ("ok" when defined, rho NaN otherwise) and a percentile bootstrap interval ``ci`` at ``level``
    (NaN ends when no interval was drawn)."""

    rho: float
    n: int
    reason: str
    ci: tuple[float, float] = (float("nan"), float("nan"))
    level: float = 0.95


def _code(codes: Mapping[str, str] | None, generic: str) -> str:
    return generic if not codes else codes.get(generic, generic)


def is_constant(v: np.ndarray) -> bool:
    """Whether v [p] has no variance: max − min ≤ 1e-12 · max(1, max |v|)."""
    return bool(np.ptp(v) <= 1e-12 * max(1.0, float(np.max(np.abs(v)))))


def pearson(x, y, *, codes: Mapping[str, str] | None = None) -> tuple[float, str]:
    """Pearson correlation of x [p] and y [p] and a reason code.

    NaN with the reason when undefined, checked in this order: a non-finite value ("nonfinite"),
    fewer than :data:`MIN_PAIRS` pairs ("too_few"), a constant x ("constant_x"), a constant y
    ("constant_y"); each code renamed through ``codes`` where it has an entry.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return float("nan"), _code(codes, "nonfinite")
    if len(x) < MIN_PAIRS:
        return float("nan"), _code(codes, "too_few")
    if is_constant(x):
        return float("nan"), _code(codes, "constant_x")
    if is_constant(y):
        return float("nan"), _code(codes, "constant_y")
    xc, yc = x - x.mean(), y - y.mean()
    r = float(xc @ yc / np.sqrt((xc @ xc) * (yc @ yc)))
    return float(np.clip(r, -1.0, 1.0)), "ok"


def pearson_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson ρ [r] of X, Y [r, p] (clipped to [−1, 1]); NaN where a row is constant."""
    Xc = X - X.mean(axis=1, keepdims=True)
    Yc = Y - Y.mean(axis=1, keepdims=True)
    den = np.sqrt((Xc * Xc).sum(1) * (Yc * Yc).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Xc * Yc).sum(1) / den
    r[~(den > 1e-300)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    q = (1 - level) / 2
    return float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))


def bootstrap_pearson(x, y, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      codes: Mapping[str, str] | None = None) -> Coefficient:
    """Pearson ρ of the pairs (x_i, y_i), x and y [p], with a percentile bootstrap interval from ``n_boot``
    resamples of the pairs (numpy Generator seeded with ``seed``; resamples whose ρ is undefined are
    skipped).  Undefined ρ: NaN and the reason of :func:`pearson` (no interval)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    r, why = pearson(x, y, codes=codes)
    if why != "ok" or n_boot <= 0:
        return Coefficient(r, len(x), why, level=level)
    rng = np.random.default_rng(seed)
    ci = (float("nan"), float("nan"))
    done = 0
    reps = []
    batch = max(1, min(n_boot, 4_000_000 // max(1, len(x))))
    while done < n_boot:
        b = min(batch, n_boot - done)
        idx = rng.integers(0, len(x), size=(b, len(x)))
        reps.append(pearson_rows(x[idx], y[idx]))
        done += b
    reps = np.concatenate(reps)
    reps = reps[np.isfinite(reps)]
    if len(reps):
        ci = _interval(reps, level)
    return Coefficient(r, len(x), why, ci, level)


def bootstrap_mean(v, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                   codes: Mapping[str, str] | None = None) -> Coefficient:
    """Mean of the finite values of v [p] (in ``rho``), their count, and a percentile bootstrap interval
    of the mean from ``n_boot`` resamples (numpy Generator seeded with ``seed``, drawn in batches of 256).
    Fewer than :data:`MIN_PAIRS` finite values: NaN with "too_few" (renamed through ``codes``)."""
    v = np.asarray(v, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if len(v) < MIN_PAIRS:
        return Coefficient(float("nan"), len(v), _code(codes, "too_few"), level=level)
    m = float(v.mean())
    ci = (float("nan"), float("nan"))
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        means = np.concatenate([v[rng.integers(0, len(v), size=(min(256, n_boot - s), len(v)))].mean(1)
                                for s in range(0, n_boot, 256)])
        ci = _interval(means, level)
    return Coefficient(m, len(v), "ok", ci, level)


def quantiles(x, qs) -> dict:
    """{"q00": …, "q10": …, …}: np.quantile (linear interpolation) of x [p] at each q in ``qs``, keyed by
    the percentage with two digits; {} when x is empty."""
    x = np.asarray(x)
    if len(x) == 0:
        return {}
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip(qs, np.quantile(x, qs))}


def min_median_max(x) -> dict:
    """{"min", "median", "max"} of x [p] (np.median: the mean of the two middle values for even p);
    {} when x is empty."""
    x = np.asarray(x)
    return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())} if len(x) else {}
