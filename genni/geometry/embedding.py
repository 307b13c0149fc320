"""Metric MDS of a distance matrix: the 2-D maps of layer paths.

One call site for scikit-learn's :class:`~sklearn.manifold.MDS`, with every argument whose default or name
differs between scikit-learn releases passed explicitly (scikit-learn ≥ 1.8 names them ``metric_mds``,
``metric = "precomputed"`` and ``init``; earlier releases ``metric = True`` and ``dissimilarity``), so
the map is the same under every supported release and no deprecation is triggered.
"""

from __future__ import annotations

import inspect

import numpy as np

MDS_INITS = 4
"""SMACOF runs from random starts; the best (lowest stress) is kept."""


def mds(D: np.ndarray, *, seed: int = 0, n_components: int = 2, n_init: int = MDS_INITS) -> tuple[np.ndarray, float]:
    """Metric MDS (SMACOF from ``n_init`` random starts, seeded) of a precomputed distance matrix.

    D : array, shape [K, K] (symmetric, zero diagonal)
    returns : (embedding [K, n_components], raw stress Σ_{i<j} (‖y_i − y_j‖ − D_ij)²)
    """
    from sklearn.manifold import MDS

    params = inspect.signature(MDS).parameters
    if "metric_mds" in params:  # scikit-learn ≥ 1.8
        names = {"metric_mds": True, "metric": "precomputed", "init": "random"}
    else:
        names = {"metric": True, "dissimilarity": "precomputed"}
    model = MDS(n_components=n_components, n_init=n_init, random_state=int(seed), normalized_stress=False, **names)
    embedding = model.fit_transform(np.asarray(D, dtype=np.float64))
    return embedding, float(model.stress_)


__all__ = ["MDS_INITS", "mds"]
