"""The metric registry: each shape metric's name, its declared invariances and what kind of metric it is.

An invariance is a transformation T of a representation X [n, d] with d(X, T X) = 0:
``orthogonal`` (X Q, Q orthogonal [d, d]), ``sign_flip`` (X diag(±1)), ``permutation`` (X P, P a
permutation matrix), ``translation`` (X + 1 bᵀ), ``isotropic_scaling`` (c X, c > 0),
``per_unit_scaling`` (X diag(c), c > 0), ``invertible_linear`` (X A, A invertible).
:func:`warn_missing_symmetries` compares them with what a model's exact symmetries do to its hidden
representations (``model.symmetry.invariances``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_FLOOR", "INVARIANCES", "TRANSFORMS", "MetricSpec", "METRICS", "registered", "warn_missing_symmetries"]

DEFAULT_FLOOR = 1e-8

TRANSFORMS = {"permutation": "unit permutations", "per_unit_scaling": "positive per-unit rescaling",
              "sign_flip": "per-unit sign flips", "translation": "translations",
              "invertible_linear": "invertible linear maps", "orthogonal": "rotations",
              "isotropic_scaling": "isotropic scaling"}
"""What a symmetry can do to a hidden representation [n, d] (the vocabulary of the metrics'
invariances and of ``model.symmetry.invariances``), with a phrase for messages."""

INVARIANCES = tuple(TRANSFORMS)
"""The transformations of a representation a metric may declare itself invariant to (and a symmetry may
apply to hidden representations: ``model.symmetry.invariances``)."""


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its name, the transformations it is invariant to (names in
    :data:`INVARIANCES`), whether it is a length metric (a true metric on its quotient: triangle
    inequality, so that path lengths and geodesics are meaningful), whether it is an angle between
    unit vectors (range [0, π]), a one-line description, and whether it z-scores units, dropping those
    whose variance is below a floor × the layer's largest (``floored``: the floor means something)."""

    name: str
    invariances: tuple[str, ...]
    is_length_metric: bool
    angular: bool
    description: str
    floored: bool = False

    def __post_init__(self):
        unknown = [s for s in self.invariances if s not in INVARIANCES]
        if unknown:
            raise ValueError(f"metric '{self.name}' declares unknown invariances {unknown} (known: {', '.join(INVARIANCES)})")


_ORTH = ("orthogonal", "sign_flip", "permutation", "translation")


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("angular_cka", _ORTH + ("isotropic_scaling",), True, True,
                   "arccos of linear CKA of centred Gram matrices"),
        MetricSpec("angular_procrustes", _ORTH + ("isotropic_scaling",), True, True,
                   "arccos(||X~^T Y~||_* / (||X~|| ||Y~||)); Bures angle of centred Grams"),
        MetricSpec("procrustes", _ORTH, True, False,
                   "Euclidean Procrustes distance of centred data (Bures-Wasserstein); not normalised, scale-dependent"),
        MetricSpec("zscore_procrustes", ("permutation", "sign_flip", "per_unit_scaling", "translation", "isotropic_scaling"),
                   True, True, "z-score each unit (variance floor, dead units dropped), then angular Procrustes",
                   floored=True),
        MetricSpec("zscore_permutation", ("permutation", "per_unit_scaling", "translation", "isotropic_scaling"), True, True,
                   "z-score each unit, then Hungarian unit matching; angle of the matched correlation", floored=True),
    )
}

def registered(metric: str) -> MetricSpec:
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric '{metric}' (choose from: {', '.join(METRICS)})") from None


def warn_missing_symmetries(metric: str, needed: tuple[str, ...], what: str = "these networks") -> str | None:
    """A warning text when ``metric`` is not invariant to all the transformations ``needed`` that exact
    symmetries apply to the hidden representations (``model.symmetry.invariances``, names in
    :data:`INVARIANCES`), so exactly equivalent networks get different paths; None when it is.  ``what``
    names the networks in the message."""
    missing = [s for s in needed if s not in registered(metric).invariances]
    if not missing:
        return None
    better = [m for m, s in METRICS.items() if all(k in s.invariances for k in needed)]
    return (f"metric '{metric}' is not invariant to {', '.join(TRANSFORMS.get(s, s) for s in missing)}, an exact symmetry "
            f"of {what}: exactly equivalent networks can have different hidden-layer points and paths"
            + (f" (invariant metrics: {', '.join(better)})" if better else " (no metric here is invariant to all)"))
