"""The walk's dense linear algebra against its definitions by SVD, QR and numpy's least squares."""

import numpy as np
import pytest
import torch

from genni import linalg


def _matrix(m: int, P: int, sv: np.ndarray, seed: int = 0) -> np.ndarray:
    """U diag(sv) Vᵀ with random orthonormal U [m, k], V [P, k]."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(m, len(sv))))[0]
    V = np.linalg.qr(rng.normal(size=(P, len(sv))))[0]
    return (U * sv) @ V.T


# singular values: a dominant block, a gap, then a sloppy tail (as the probe Jacobian of a relu network)
SPECTRUM = np.concatenate([np.logspace(0, -4, 30), np.logspace(-8, -14, 40)])


def test_row_space_holds_the_directions_a_matrix_constrains():
    """On both sides (more rows than columns: JᵀJ; fewer: JJᵀ) the orthonormal row space is the SVD's."""
    for m, P in ((120, 90), (60, 90)):
        J = _matrix(m, P, SPECTRUM[:55])
        F = linalg.row_space(torch.as_tensor(J), 1e-6, orthonormal=True).numpy()
        np.testing.assert_allclose(F.T @ F, np.eye(F.shape[1]), atol=1e-12)
        assert F.shape[1] == 30  # the SVD's rank at 1e-6·σ_max: the cut sits in the gap
        # every unit w ⊥ F has ‖Jw‖ ≤ 1e-6·σ_max
        rest = J - (J @ F) @ F.T
        assert np.linalg.norm(rest, 2) <= 1e-6 * SPECTRUM[0]
        # and F spans the SVD's dominant right singular vectors, to what the Gram matrix resolves: the smallest
        # kept σ² is 1e-8·σ_max², so rounding (1e-16·σ_max²) tilts the subspace by ~1e-8
        V = np.linalg.svd(J)[2][:30].T
        assert np.linalg.norm(V - F @ (F.T @ V)) < 5e-8


def test_gram_lower_is_the_lower_triangle_of_the_gram_matrix():
    J = torch.as_tensor(_matrix(90, 80, SPECTRUM[:50], seed=1))
    lower = linalg.gram_lower(J)
    np.testing.assert_allclose(np.tril(lower), np.tril((J.T @ J).numpy()), rtol=1e-12, atol=1e-14)


def test_least_squares_in_the_row_space_is_the_truncated_pseudo_inverse():
    """row_space + lstsq give numpy's lstsq with the same rcond when the spectrum has a gap at the cut."""
    J = _matrix(80, 50, SPECTRUM[:45], seed=2)
    r = np.random.default_rng(3).normal(size=80)
    Jt = torch.as_tensor(J)
    S = linalg.row_space(Jt, 1e-6)
    delta = (S @ linalg.lstsq(Jt @ S, torch.as_tensor(r), 1e-6)).numpy()
    expected = np.linalg.lstsq(J, r, rcond=1e-6)[0]
    np.testing.assert_allclose(delta, expected, rtol=1e-7, atol=1e-7 * np.linalg.norm(expected))


def test_complement_and_orth_against_dense_formulas():
    rng = np.random.default_rng(4)
    F = rng.normal(size=(30, 7))
    Q = np.linalg.qr(F)[0]
    v = torch.as_tensor(rng.normal(size=(30, 3)))
    np.testing.assert_allclose(linalg.Complement(np.asfortranarray(F.copy()))(v).numpy(),
                               (v.numpy() - Q @ (Q.T @ v.numpy())), atol=1e-13)
    A = torch.as_tensor(rng.normal(size=(30, 5)) @ np.diag([1, 1e-2, 1e-4, 1e-9, 0.0]))
    U, smax = linalg.orth(A, 1e-6)
    assert U.shape[1] == 3 and smax == pytest.approx(np.linalg.norm(A.numpy(), 2), rel=1e-9)
    np.testing.assert_allclose((U.T @ U).numpy(), np.eye(3), atol=1e-12)
    Us = np.linalg.svd(A.numpy())[0][:, :3]
    np.testing.assert_allclose((U @ U.T).numpy(), Us @ Us.T, atol=1e-8)


def test_one_thread_pins_and_restores_torch_threads():
    before = torch.get_num_threads()
    with linalg.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_row_space_keeps_or_leaves_out_each_direction_as_an_svd_would():
    """Three directions just under the cut (σ = 0.7e-6·σ_max) share more than its budget together: each is
    still left out on its own, so a small null space is not swallowed; just above the cut, each is kept."""
    for s_small, kept in ((0.7e-6, 20), (1.5e-6, 23)):
        J = _matrix(40, 30, np.concatenate([np.logspace(0, -3, 20), np.full(3, s_small)]), seed=5)
        S = linalg.row_space(torch.as_tensor(J), 1e-6)
        assert S.shape[1] == kept


def test_column_range_bounds_every_direction_it_leaves_out():
    """column_range(B): F ⊆ range(B) (B's own columns), and every unit w ⊥ F has ‖Bᵀw‖² ≤ rtol²·λ̂ with λ̂ ≤ λ_max(BBᵀ),
    on both sides (fewer columns than rows, and more)."""
    for P, k in ((60, 25), (30, 45)):
        Bn = _matrix(P, k, np.concatenate([np.logspace(0, -3, 12), np.full(5, 1e-9)]), seed=6)
        F, lam = linalg.column_range(torch.as_tensor(Bn), 1e-6)
        assert F.shape[1] >= 12
        assert lam <= np.linalg.norm(Bn, 2) ** 2 * (1 + 1e-12)
        Fq = np.linalg.qr(F)[0]
        np.testing.assert_allclose(Fq - Bn @ np.linalg.lstsq(Bn, Fq, rcond=1e-12)[0], 0, atol=1e-8)
        rest = Bn.T - (Bn.T @ Fq) @ Fq.T
        assert np.linalg.norm(rest, 2) ** 2 <= 1e-12 * lam * (1 + 1e-6)
