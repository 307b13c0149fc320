"""Dense linear algebra on the walk's small matrices (P × P and smaller), on one thread.

Rank-revealing factorisations that use BLAS-3 kernels where an SVD would spend its time in BLAS-2
bidiagonalisation: Gram matrices by ``syrk`` (half a matrix product), dominant ranges by pivoted Cholesky
(LAPACK ``pstrf``) of a Gram matrix, projections through Householder reflectors that are never formed
into Q, small orthonormal bases from k × k Gram matrices, least squares by a rank-revealing QR (``gelsy``).
Every factorisation runs on one BLAS thread (:func:`one_thread`): on matrices this small, threads only
add barriers, and the results are bitwise reproducible.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np
import torch

_BLAS = None
_PINNED = 0  # depth of the enclosing one_thread() blocks


def _one_blas_thread():
    """One BLAS thread for numpy / scipy (LAPACK's pivoted Cholesky on P × P, least squares): the walk's
    matrices are small, and BLAS threads on a busy machine only contend.  A no-op inside :func:`one_thread`."""
    global _BLAS
    if _PINNED:
        return nullcontext()
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@contextmanager
def one_thread():
    """The walk's arithmetic on one thread (torch's intra-op pool and BLAS), restored afterwards.  A step is
    hundreds of operations on matrices of size P × P or smaller; their intra-op parallelism gains little and
    every operation pays a barrier, which on a machine busy with other work costs 10–20× (measured on 2
    cores at load 6: 1.6 s per step on two threads against 0.1 s on one).  One thread also makes a chain's
    states bitwise reproducible whatever the caller's thread count."""
    global _PINNED
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _one_blas_thread():
            _PINNED += 1
            try:
                yield
            finally:
                _PINNED -= 1
    finally:
        torch.set_num_threads(threads)


def gram_lower(A: torch.Tensor) -> np.ndarray:
    """AᵀA [k, k] of A [m, k], its lower triangle only (Fortran order; the upper one is left unset): BLAS syrk,
    half the flops of a general matrix product."""
    from scipy.linalg import blas

    a = np.ascontiguousarray(A.detach().cpu().numpy(), dtype=np.float64)
    with _one_blas_thread():
        return blas.dsyrk(1.0, a.T, trans=0, lower=1)


def pivoted_factor(A: np.ndarray, rtol: float, ritz: bool = False) -> tuple[np.ndarray, float]:
    """(F [P, r], λ̂): range(F) is the dominant range of the PSD matrix M whose lower triangle A [P, P] (Fortran
    order, overwritten) holds; every unit w ⊥ range(F) has wᵀMw ≤ rtol²·λ̂ (≤ 1.01·rtol²·λ̂ with ``ritz``).

    Pivoted Cholesky (LAPACK ``pstrf``), ΠᵀMΠ ≈ LLᵀ.  Without ``ritz``, F = ΠL_r for the fewest columns r whose
    remainder S = M − ΠL_rL_rᵀΠᵀ (PSD) has trace S = trace M − Σ_{j≤r} ‖L_j‖² ≤ rtol²·λ̂, so wᵀMw = wᵀSw ≤
    rtol²·λ̂ (the directions left out share that budget: a small null space can end up inside F).  With
    ``ritz``, the factorisation runs until trace S ≤ (rtol/10)²·max_i M_ii, the eigenpairs (λ_i, w_i) of the
    r × r matrix LᵀL give those of ΠLLᵀΠᵀ, and F = ΠL [w_i : λ_i > rtol²·λ_max]: each direction is kept or
    left out on its own, as an SVD would (wᵀMw ≤ rtol²·λ_max + trace S for w ⊥ F), at the cost of LᵀL and an
    r × r eigendecomposition.  λ̂ = λ_max with ``ritz``, else ‖M e_p‖²/M_pp for the first pivot p (a Rayleigh
    quotient of M², between max_i M_ii and λ_max)."""
    P = A.shape[0]
    top = float(A.diagonal().max()) if P else 0.0
    if not top > 0:
        return np.zeros((P, 0), order="F"), 0.0
    floor = (0.1 * rtol) ** 2 * top if ritz else 0.0
    with _one_blas_thread():
        L, piv, left = _pivoted_cholesky(A, min(rtol * rtol, floor or np.inf) * top / P)
        if ritz:
            done = left <= floor
            L = L[:, : int(np.argmax(done)) + 1 if done.any() else L.shape[1]]
            lam, W = np.linalg.eigh(L.T @ L)
            keep = lam > rtol * rtol * lam[-1]
            F = np.zeros((P, int(keep.sum())), order="F")
            F[piv - 1] = L @ W[:, keep]
            return F, float(lam[-1])
        r, lam = _trace_cut(L, left, rtol)
        F = np.zeros((P, r), order="F")
        F[piv - 1] = L[:, :r]
    return F, lam


def _pivoted_cholesky(A: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LAPACK ``pstrf`` of the PSD matrix whose lower triangle A [P, P] (Fortran order, overwritten) holds, stopped
    at pivot ``tol``: (L [P, rank] lower, piv [P] (1-based), the trace of the remainder after each pivot [rank])."""
    from scipy.linalg import lapack

    trace = float(A.diagonal().sum())
    c, piv, rank, _ = lapack.dpstrf(A, tol=tol, lower=1, overwrite_a=1)
    L = np.tril(c[:, :rank])
    return L, piv, trace - np.cumsum((L * L).sum(0))


def _trace_cut(L: np.ndarray, left: np.ndarray, rtol: float) -> tuple[int, float]:
    """(r, λ̂): the fewest pivots whose remainder has trace ≤ rtol²·λ̂, λ̂ = ‖L e_1‖² (= ‖M e_p‖²/M_pp for the first
    pivot p)."""
    lam = float(L[:, 0] @ L[:, 0])
    done = left <= rtol * rtol * lam
    return (int(np.argmax(done)) + 1 if done.any() else L.shape[1]), lam


def column_range(B: torch.Tensor, rtol: float) -> tuple[np.ndarray, float]:
    """(F [P, r] (Fortran order), λ̂): range(F) holds the dominant range of M = BBᵀ for B [P, k]: every unit
    w ⊥ range(F) has wᵀMw = ‖Bᵀw‖² ≤ rtol²·λ̂, λ̂ between max_i ‖b_i‖² and λ_max(M).

    k < P: pivoted Cholesky (LAPACK ``pstrf``) of BᵀB [k, k], a column-pivoted QR of B in Gram form, and F the
    first r pivot columns of B for the fewest r whose remainder B − F F⁺B has squared Frobenius norm
    trace BᵀB − Σ_{j≤r} ‖L_j‖² ≤ rtol²·λ̂ (which bounds ‖Bᵀw‖² for w ⊥ F); λ̂ = ‖BᵀB e_p‖²/‖b_p‖² for the first
    pivot p, a Rayleigh quotient of M at b_p.  Half a k²·P product and O(k·r²) where M costs half a P²·k
    product and O(P·r²).  k ≥ P: :func:`pivoted_factor` of M."""
    P, k = B.shape
    if k >= P:
        return pivoted_factor(gram_lower(B.T), rtol)
    b = B.detach().cpu().numpy()
    A = gram_lower(B)
    top = float(A.diagonal().max()) if k else 0.0
    if not top > 0:
        return np.zeros((P, 0), order="F"), 0.0
    with _one_blas_thread():
        L, piv, left = _pivoted_cholesky(A, rtol * rtol * top / k)
    r, lam = _trace_cut(L, left, rtol)
    return np.asfortranarray(b[:, piv[:r] - 1]), lam


class Complement:
    """v ↦ v − F̂F̂ᵀv, the projection onto range(F)^⊥ for F [P, r], F̂ an orthonormal basis of range(F), through
    F's Householder QR (LAPACK geqrf; the reflectors are applied to v, Q is never formed: half the flops).  The
    reflectors are applied one by one (``ormqr`` with the least workspace: its unblocked form), since v has a
    few columns: the blocked form builds triangular block factors worth more than the product itself."""

    def __init__(self, F: np.ndarray):
        from scipy.linalg import lapack

        self.r = F.shape[1]
        if self.r:
            with _one_blas_thread():
                self.qr, self.tau, _, _ = lapack.dgeqrf(F, overwrite_a=1)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """v : [P] or [P, m] → the same shape."""
        from scipy.linalg import lapack

        if self.r == 0:
            return v
        c = np.array(v.detach().cpu().numpy().reshape(len(v), -1), order="F")
        with _one_blas_thread():
            y = lapack.dormqr("L", "T", self.qr, self.tau, c, lwork=c.shape[1], overwrite_c=1)[0]
            y[: self.r] = 0.0
            y = lapack.dormqr("L", "N", self.qr, self.tau, y, lwork=c.shape[1], overwrite_c=1)[0]
        return torch.as_tensor(y.reshape(v.shape), device=v.device)


def orth(A: torch.Tensor, rtol: float, floor: float = 0.0) -> tuple[torch.Tensor, float]:
    """(U [P, j], σ_max): an orthonormal basis of the span of A's columns [P, k] along its singular values
    σ > max(rtol·σ_max, floor), from the k × k Gram matrix's eigendecomposition (k ≪ P; singular values below
    ~1e-8·σ_max are rounding there, so rtol ≥ 1e-7), U = A V Σ⁻¹ orthonormalised once more by QR."""
    if A.shape[1] == 0:
        return A, 0.0
    lam, V = torch.linalg.eigh(A.T @ A)
    smax = float(lam[-1].clamp_min(0.0)) ** 0.5
    keep = lam > max(rtol * smax, floor) ** 2
    if not bool(keep.any()):
        return A[:, :0], smax
    return torch.linalg.qr(A @ (V[:, keep] / lam[keep].sqrt()))[0], smax


_GELSY_WORK: dict = {}


def lstsq(A: torch.Tensor, b: torch.Tensor, rcond: float) -> torch.Tensor:
    """The least-norm x minimising ‖A x − b‖ with singular values of A below rcond·σ_max left out (LAPACK
    gelsy: a rank-revealing QR, on one BLAS thread, whose result is bitwise reproducible).
    A : [m, k];  b : [m];  returns : [k] (on A's device)"""
    from scipy.linalg import lapack

    m, k = A.shape
    if (m, k) not in _GELSY_WORK:
        _GELSY_WORK[(m, k)] = max(1, int(lapack.dgelsy_lwork(m, k, 1, rcond)[0]))
    rhs = np.zeros((max(m, k), 1))
    rhs[:m, 0] = b.detach().cpu().numpy()
    with _one_blas_thread():
        x = lapack.dgelsy(np.array(A.detach().cpu().numpy(), order="F"), rhs, np.zeros(k, dtype=np.int32), rcond,
                          lwork=_GELSY_WORK[(m, k)], overwrite_a=1, overwrite_b=1)[1]
    return torch.as_tensor(x[:k, 0], device=A.device)


def row_space(J: torch.Tensor, rcond: float, orthonormal: bool = False) -> torch.Tensor:
    """A basis S [P, r] of J's row space along its singular values σ > rcond·σ_max (J : [m, P]), columns scaled
    to unit length (``orthonormal``: an orthonormal basis, by Householder QR).

    The kept range of :func:`pivoted_factor` with its Ritz step on the smaller Gram matrix: JᵀJ [P, P] when
    m ≥ P; otherwise JJᵀ [m, m] (half an m²·P product instead of m·P²), whose kept Ritz vectors u_i (λ_i > rcond²·λ_max,
    the eigenvalues JᵀJ shares) map to Jᵀu_i = σ_i v_i, J's right singular vectors.  J S has full column rank
    (every column is a direction J sees), so a least-squares problem in span(S) has a unique solution and needs
    no orthonormal basis."""
    m, P = J.shape
    if m < P:
        F = J.T @ torch.as_tensor(pivoted_factor(gram_lower(J.T), rcond, ritz=True)[0], device=J.device)
    else:
        F = torch.as_tensor(pivoted_factor(gram_lower(J), rcond, ritz=True)[0], device=J.device)
    if orthonormal:
        return torch.linalg.qr(F)[0] if F.shape[1] else F
    return F / torch.linalg.vector_norm(F, dim=0).clamp_min(1e-300)

__all__ = ["one_thread", "gram_lower", "pivoted_factor", "column_range", "row_space", "Complement", "orth",
           "lstsq"]
