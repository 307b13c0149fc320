"""Representational geometry: shape metrics between layer representations, layer paths, and the Ricci
curvature of the data graph along the layers (:mod:`.ricci`); summary statistics in :mod:`.statistics`."""

from . import ricci, statistics
from .embedding import mds
from .metrics import (
    DEFAULT_FLOOR,
    INVARIANCES,
    METRICS,
    MetricSpec,
    angle,
    distance,
    geodesic,
    gram_angle,
    pairwise,
    path_summary,
    project_onto_geodesic,
    warn_missing_symmetries,
    zscore,
)
from .ricci import ricci_layers

__all__ = ["METRICS", "MetricSpec", "INVARIANCES", "DEFAULT_FLOOR", "distance", "pairwise", "gram_angle", "zscore", "geodesic",
           "angle", "project_onto_geodesic", "path_summary", "warn_missing_symmetries", "ricci", "statistics",
           "ricci_layers", "mds"]
