"""The input domain D on which exact answers hold: a box, written as the polytope {x : G x ≤ h}.

The default box is the probe data's bounding box enlarged ``scale`` times about its centre (3 by
default); for the ``normal`` data set (inputs i.i.d. N(0, I_d)) it is ±``scale`` standard deviations
in every coordinate.  Every exact answer in :mod:`genni.exact` names the box it holds on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GenniError

DEFAULT_DOMAIN_SCALE = 3.0


@dataclass(frozen=True)
class Domain:
    """A box lo ≤ x ≤ hi in R^d.

    lo, hi : ndarray, shape [d], lo < hi;  how : one sentence saying where the box comes from
    """

    lo: np.ndarray
    hi: np.ndarray
    how: str = ""

    def __post_init__(self):
        lo = np.asarray(self.lo, dtype=np.float64).ravel()
        hi = np.asarray(self.hi, dtype=np.float64).ravel()
        if lo.shape != hi.shape or lo.size == 0:
            raise GenniError(f"a domain box needs lo and hi of one length, got {lo.shape} and {hi.shape}")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise GenniError("a domain box needs finite bounds")
        if not (hi > lo).all():
            raise GenniError("a domain box needs lo < hi in every coordinate")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @property
    def dim(self) -> int:
        return int(self.lo.size)

    @property
    def centre(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    @property
    def width(self) -> np.ndarray:
        """hi − lo, shape [d]."""
        return self.hi - self.lo

    @property
    def halfspaces(self) -> tuple[np.ndarray, np.ndarray]:
        """(G [2d, d], h [2d]) with D = {x : G x ≤ h}: rows x_i ≤ hi_i, then −x_i ≤ −lo_i."""
        eye = np.eye(self.dim)
        return np.vstack([eye, -eye]), np.concatenate([self.hi, -self.lo])

    def contains(self, X: np.ndarray, slack: float = 0.0) -> np.ndarray:
        """Which rows of X [m, d] lie in the box (enlarged by ``slack`` on every side); bool [m]."""
        X = np.asarray(X, dtype=np.float64)
        return ((X >= self.lo - slack) & (X <= self.hi + slack)).all(axis=1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points uniform in the box, shape [n, d]."""
        return self.lo + rng.random((int(n), self.dim)) * self.width

    def to_attrs(self) -> dict:
        return {"domain_lo": self.lo, "domain_hi": self.hi, "domain_how": self.how}

    @classmethod
    def from_attrs(cls, attrs) -> Domain:
        return cls(np.asarray(attrs["domain_lo"]), np.asarray(attrs["domain_hi"]), str(attrs.get("domain_how", "")))


def probe_box(X: np.ndarray, scale: float = DEFAULT_DOMAIN_SCALE) -> Domain:
    """The bounding box of the rows of X enlarged ``scale`` times about its centre.

    X : ndarray, shape [n, d]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise GenniError(f"a domain from data needs a non-empty [n, d] array, got shape {X.shape}")
    _check_scale(scale)
    lo, hi = X.min(0), X.max(0)
    c, half = (lo + hi) / 2, (hi - lo) / 2
    half = np.where(half > 0, half, 1.0)  # a coordinate constant on the data gets a unit half-width
    return Domain(c - scale * half, c + scale * half,
                  f"the probe inputs' bounding box enlarged {scale:g}× about its centre")


def normal_box(dim: int, scale: float = DEFAULT_DOMAIN_SCALE) -> Domain:
    """±scale standard deviations of N(0, I_dim) in every coordinate."""
    _check_scale(scale)
    return Domain(np.full(int(dim), -float(scale)), np.full(int(dim), float(scale)),
                  f"±{scale:g} standard deviations of the N(0, I) inputs in every coordinate")


def default_domain(dataset: str, X: np.ndarray, scale: float = DEFAULT_DOMAIN_SCALE) -> Domain:
    """The default domain of a run: :func:`normal_box` for ``normal`` data, else :func:`probe_box`."""
    if dataset == "normal":
        return normal_box(np.asarray(X).shape[1], scale)
    return probe_box(X, scale)


def _check_scale(scale) -> None:
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and np.isfinite(scale) and scale > 0):
        raise GenniError(f"the domain scale must be a positive number, got {scale!r}")


__all__ = ["DEFAULT_DOMAIN_SCALE", "Domain", "probe_box", "normal_box", "default_domain"]
