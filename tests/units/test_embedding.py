"""genni.geometry.mds: metric MDS of a distance matrix, the same under every supported scikit-learn."""

import warnings

import numpy as np
from scipy.spatial.distance import pdist, squareform

from genni.geometry import mds


def test_mds_stress_is_the_raw_stress_of_its_embedding_and_raises_no_warning():
    D = squareform(pdist(np.random.default_rng(0).normal(size=(12, 4))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation (or any other warning) from the arguments passed
        Y, stress = mds(D, seed=3)
    E = squareform(pdist(Y))
    iu = np.triu_indices(len(D), 1)
    assert Y.shape == (12, 2)
    np.testing.assert_allclose(stress, ((E[iu] - D[iu]) ** 2).sum(), rtol=1e-6)  # Σ_{i<j} (‖y_i − y_j‖ − D_ij)²
    Y2, _ = mds(D, seed=3)
    assert np.array_equal(Y, Y2)  # seeded


def test_mds_of_planar_points_keeps_their_distances():
    X = np.random.default_rng(1).normal(size=(8, 2))
    D = squareform(pdist(X))
    Y, stress = mds(D, seed=0)
    assert np.sqrt(stress / ((D ** 2).sum() / 2)) < 1e-2  # Kruskal's stress-1: SMACOF stops at its own tolerance
    np.testing.assert_allclose(squareform(pdist(Y)), D, atol=1e-2 * D.max())
