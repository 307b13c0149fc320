"""Distances between neural representations, and the geometry of layer paths.

A representation is an array X of shape [n, d]: the activations of d units on the
same n probe inputs (rows correspond across representations, widths may differ).
Every metric here works in float64 and compares X [n, d_x] with Y [n, d_y].

Metrics (registry :data:`METRICS`; every one is a metric on its quotient space, so
path lengths, triangle inequality and geodesics make sense: ``is_length_metric``):

``angular_cka``
    arccos CKA(X, Y) with the linear kernel: the angle between the centred Gram
    matrices K̃ = X̃X̃ᵀ, L̃ = ỸỸᵀ, CKA = ⟨K̃, L̃⟩_F / (‖K̃‖_F ‖L̃‖_F).  Lives on the
    unit sphere of centred Gram matrices ("CKA sphere"); range [0, π/2].
``angular_procrustes``
    arccos(‖X̃ᵀỸ‖_* / (‖X̃‖_F ‖Ỹ‖_F)), X̃, Ỹ column-centred; the narrower side is
    padded with zero columns, so widths may differ.  Equals the Bures angle of the
    centred Grams, arccos tr((K̃^{1/2} L̃ K̃^{1/2})^{1/2}) / √(tr K̃ tr L̃).  Range [0, π/2].
``procrustes``
    Euclidean Procrustes distance min_Q ‖X̃ − ỸQ‖_F = √(‖X̃‖² + ‖Ỹ‖² − 2‖X̃ᵀỸ‖_*),
    i.e. the Bures–Wasserstein distance of the centred Grams.  **Not normalised**:
    it is scale-dependent (in the units of the activations).
``zscore_procrustes``
    z-score every unit (column), dropping units whose variance is below
    ``floor · max variance`` (dead or constant units), then angular Procrustes.
``zscore_permutation``
    z-score (same rule), then match units one to one by the Hungarian algorithm,
    maximising the summed correlation (the narrower side padded with zero columns):
    arccos(Σ_matched ⟨x̂_i, ŷ_π(i)⟩ / (‖X̂‖ ‖Ŷ‖)).

Invariances (a transformation T with d(X, T X) = 0):

    =====================  ==========  =========  ===========  ===========  ====================
    metric                 orthogonal  isotropic  translation  permutation  per-unit pos. scaling
    =====================  ==========  =========  ===========  ===========  ====================
    angular_cka            yes         yes        yes          yes          no
    angular_procrustes     yes         yes        yes          yes          no
    procrustes             yes         no         yes          yes          no
    zscore_procrustes      no          yes        yes          yes          yes (also sign flips)
    zscore_permutation     no          yes        yes          yes          yes (not sign flips)
    =====================  ==========  =========  ===========  ===========  ====================

Sign flips of units are orthogonal maps, so every orthogonally invariant metric is
invariant to them.  **The standard metrics (angular CKA, (angular) Procrustes) are
not invariant to per-unit rescaling**: a relu network and its exact copy with
hidden unit j's incoming weights × c_j and outgoing weights × 1/c_j compute the
same function, yet their hidden representations are X·diag(c), which these
metrics see as a different point — a rescaled copy moves a hidden layer, often by
as much as a whole layer step.  The z-score metrics quotient out exactly the
relu symmetry group (permutation × positive per-unit scaling); :func:`warn_missing_symmetries`
says when a chosen metric misses an architecture's exact symmetries.
(The variance floor is relative to the largest unit variance; a unit whose
variance sits right at the floor can be kept in one copy and dropped in another.)

Degenerate points: a representation with no variance (all units constant) is the
origin; its angular distance is π/2 to any non-degenerate representation and 0 to
another degenerate one.

Numerics: angles are computed as 2·atan2(‖a − b‖, ‖a + b‖) from explicitly formed
differences of aligned, normalised points (for CKA from the R factor of a QR of
[X̂, Ŷ]), not as arccos of a cosine, so that a distance of zero comes out at
≈1e-15 rather than ≈1e-8.

Geometry: :func:`geodesic` (slerp of normalised centred Grams on the CKA sphere;
align-then-slerp in Procrustes shape space), :func:`angle` (at the middle point,
between the log-map directions towards its neighbours; π for a straight path),
:func:`project_onto_geodesic` (CKA sphere: position along the geodesic and distance off it),
:func:`path_summary` (step lengths, length, straightness, angles).

Differentiable versions (torch, for objectives of θ): :func:`torch_distance` in :mod:`.differentiable`
(every metric but ``zscore_permutation``, whose unit matching is discrete).

Modules: :mod:`.registry` (:data:`METRICS`, invariances, warnings), :mod:`.points` (a representation
as a point of a metric's space), :mod:`.distances` (one pair, all pairs), :mod:`.paths` (geodesics,
angles, projections, path summaries).
"""

from .differentiable import DIFFERENTIABLE, torch_distance
from .distances import distance, gram_angle, pairwise
from .paths import angle, geodesic, path_summary, project_onto_geodesic
from .points import zscore
from .registry import DEFAULT_FLOOR, INVARIANCES, METRICS, MetricSpec, warn_missing_symmetries

__all__ = ["METRICS", "MetricSpec", "INVARIANCES", "DEFAULT_FLOOR", "distance", "pairwise", "gram_angle", "zscore", "geodesic",
           "DIFFERENTIABLE", "torch_distance", "angle", "project_onto_geodesic", "path_summary", "warn_missing_symmetries"]
