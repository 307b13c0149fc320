"""Functional dimension: the output Jacobian on the probe set, its rank and null space.

J = ∂ vec f_θ(X) / ∂θ, shape [n·K, P] (rows ordered input-major, output-minor), from
the closed form of :meth:`genni.models.base.Model.jacobian`, in float64.  Its numerical rank is the
local dimension of the function space reached near θ (the *functional dimension*);
its null space is the *vertical* space, tangent to the equivalence class at θ.

Rank tolerance: singular values σ_i ≤ rtol · σ_max count as zero, with
``rtol = DEFAULT_RTOL = 1e-9``.  Exact symmetry directions give σ at the level of
rounding (≈ 1e-16 · σ_max · √(nK)), while the smallest genuine singular values of the
small MLPs we study sit well above 1e-9 · σ_max; the gap is reported (``gap``) so a
reader can see how clear-cut the rank is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .discrepancy import mean_squared, output_power, relative_discrepancy
from .models import Model

DEFAULT_RTOL = 1e-9


def output_jacobian(model: Model, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """J = ∂ vec f_θ(X) / ∂θ.

    theta : ndarray, shape [P];  X : ndarray, shape [n, w_0]
    returns : ndarray, shape [n · w_L, P]
    """
    t = torch.as_tensor(np.asarray(theta), dtype=torch.float64)
    x = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    _, J = model.jacobian(t[None], x)
    return J[0].reshape(-1, model.n_params).numpy()


@dataclass(frozen=True)
class Spectrum:
    """Singular values of J and what follows from them.

    singular_values : [min(nK, P)], descending;  rank : numerical rank;  rank_tolerance : the
    absolute threshold rtol·σ_max;  null_basis : [P, P − rank], orthonormal columns spanning
    the null space;  gap : σ_rank / σ_{rank+1} (∞ if nothing is below the threshold);
    right_vectors : [P, P] all right singular vectors as rows (Vᵀ), descending σ
    """

    singular_values: np.ndarray
    rank: int
    rank_tolerance: float
    rtol: float
    null_basis: np.ndarray
    gap: float
    right_vectors: np.ndarray | None = None

    def resolved_rank(self, n_probe: int, tol: float, theta_norm: float) -> int:
        """How many directions the search *resolves* at tolerance tol: σ_k above the rank threshold and
        above σ_tol = √(n·tol) / ‖θ*‖.  Along a direction with σ_k ≤ σ_tol, moving θ* by as much as
        ‖θ*‖ itself changes the probe residual by no more than the tolerance allows (‖r‖² = n·L ≤ n·tol),
        so the search does not determine it and what an element does there is not search error."""
        s = self.singular_values
        floor = np.sqrt(max(n_probe * tol, 0.0)) / theta_norm if theta_norm > 0 else 0.0
        return int(min(self.rank, (s > floor).sum()))


def spectrum(J: np.ndarray, rtol: float = DEFAULT_RTOL) -> Spectrum:
    """SVD of J (shape [M, P]) with numerical rank at relative tolerance ``rtol``."""
    # Vᵀ must be [P, P] (null basis, right vectors); U is not needed, so a tall J skips its full square U
    _, s, Vt = np.linalg.svd(J, full_matrices=J.shape[0] < J.shape[1])
    tol = rtol * (s[0] if len(s) else 0.0)
    rank = int((s > tol).sum())
    null = Vt[rank:].T.copy()
    gap = float(s[rank - 1] / s[rank]) if 0 < rank < len(s) and s[rank] > 0 else float("inf")
    return Spectrum(s, rank, float(tol), rtol, null, gap, Vt)


def expected_rank(model, n_rows: int | None = None) -> int:
    """The theoretical upper bound on rank(J) for the architecture (the model's own
    ``expected_rank``: for the MLP, P − #hidden units for relu / leaky_relu and P otherwise; never
    more than the number of rows n·K of J when ``n_rows`` is given)."""
    return model.expected_rank(n_rows)


def rank_vs_probe(model: Model, theta: np.ndarray, X: np.ndarray, sizes: Sequence[int] | None = None,
                  rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """Numerical rank of J on the first k probe inputs, for each k in ``sizes``.

    returns : ndarray, shape [len(sizes), 2]: (k, rank)
    """
    n = len(X)
    if sizes is None:
        sizes = sorted({int(k) for k in np.unique(np.geomspace(1, n, 12).round()).astype(int)} | {n})
    J = output_jacobian(model, theta, X)
    K = model.out_dim

    def rank(A: np.ndarray) -> int:  # as spectrum(A, rtol).rank, without the singular vectors
        s = np.linalg.svd(A, compute_uv=False)
        return int((s > rtol * (s[0] if len(s) else 0.0)).sum())

    return np.array([(k, rank(J[: k * K])) for k in sizes], dtype=np.int64)


def _thin_svd(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(σ [k], Vᵀ [k, P]) of A [M, P], k = min(M, P): LAPACK's divide-and-conquer gesdd, and the slower QR
    iteration gesvd for the rare matrices on which gesdd does not converge."""
    try:
        _, s, Vt = np.linalg.svd(A, full_matrices=False)
    except np.linalg.LinAlgError:
        import scipy.linalg

        _, s, Vt = scipy.linalg.svd(A, full_matrices=False, lapack_driver="gesvd")
    return s, Vt


def rank_growth(model: Model, theta: np.ndarray, draw, m0: int, m_max: int, *, rtol: float = DEFAULT_RTOL,
                patience: int = 3, chunk: int | None = None) -> np.ndarray:
    """Rank of J over ever more inputs: is the functional dimension limited by the probe?

    Starting from m₀ fresh inputs, m doubles (m_k = 2^k·m₀) until the rank has not changed over
    ``patience`` doublings (2^patience times more inputs) or m reaches ``m_max``.  The rank is that of
    the stacked Jacobian [J(X₁); …; J(X_k)] at relative tolerance rtol; only its compressed form
    Σ Vᵀ ([P, P]) is kept, since [A; B] and [Σ_A V_Aᵀ; B] have the same singular values (A = U Σ_A V_Aᵀ,
    U with orthonormal columns), so memory stays O(P² + chunk·P) whatever m.

    theta : ndarray, shape [P];  draw : callable n -> ndarray [n, w_0] of fresh inputs
    returns : ndarray, shape [k, 2] int64: (m, rank) after each doubling
    """
    theta = np.asarray(theta, dtype=np.float64)
    P = model.n_params
    chunk = chunk or max(256, 4 * P // max(model.out_dim, 1))
    C = np.zeros((0, P))
    s = np.zeros(0)
    m, target, rows, unchanged = 0, int(m0), [], 0
    while True:
        while m < target:
            b = min(chunk, target - m)
            A = np.vstack([C, output_jacobian(model, theta, draw(b))])
            s, Vt = _thin_svd(A)
            C = s[:, None] * Vt
            m += b
        rank = int((s > rtol * (s[0] if len(s) else 0.0)).sum())
        unchanged = unchanged + 1 if rows and rank == rows[-1][1] else 0
        rows.append((m, rank))
        if unchanged >= patience or m >= m_max:
            return np.array(rows, dtype=np.int64)
        target = min(2 * m, int(m_max))


def randomized_rank(model, theta: np.ndarray, X: np.ndarray, *, rtol: float = DEFAULT_RTOL, block: int = 32,
                    confirm: int = 10, seed: int = 0, power_steps: int = 30, progress: bool = False) -> dict:
    """Numerical rank of J (the functional dimension) without forming J or its SVD: an adaptive
    randomized range finder (Halko, Martinsson & Tropp 2011, §4.4) built on J·v products only.

    σ₁ is estimated by ``power_steps`` power iterations on JᵀJ (a lower bound, so ε = rtol·σ₁ errs
    small).  Then, blocks of ``block`` Gaussian vectors ω: y = (I − QQᵀ) J ω (re-orthogonalised twice),
    and the block's singular directions with singular value > ε·√block join Q.  It stops after
    ``confirm`` consecutive Gaussian draws whose projected norms all stay ≤ ε; then, with probability at
    least 1 − min(m, P)·10^(−confirm),

        ‖(I − QQᵀ) J‖₂ ≤ 10·√(2/π)·ε        (Halko et al., eq. 4.3),

    i.e. every direction of J missing from Q has singular value below 8ε: rank = dim Q counts the
    directions above about ε (the exact SVD rank when J has a gap there, as the functional dimension
    of a generic network has).  Memory O(m·rank + block·P); products: about rank + block·confirm.

    model : genni.models.base.Model;  theta : [P];  X : [n, ...] inputs;  progress : a bar of the
    directions found (its total is min(m, P), the most there can be)
    returns : {"rank", "sigma_max", "epsilon", "bound" (10√(2/π)ε), "products" (J·v evaluated)}
    """
    from .progress import bar

    t = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    P = t.shape[0]
    g = torch.Generator().manual_seed(seed)

    def J(V):  # V : [P, b] -> J V : [m, b]
        b = V.shape[1]
        return model.jvp_at(t, x, V.T.contiguous()).reshape(b, -1).T

    def JT(U):  # U : [m, b] -> Jᵀ U : [P, b]
        b = U.shape[1]
        return model.vjp_at(t, x, U.T.reshape(b, x.shape[0], -1).contiguous()).T

    v = torch.randn(P, 1, generator=g, dtype=torch.float64)
    sigma = 0.0
    for _ in range(power_steps):
        w = JT(J(v / torch.linalg.vector_norm(v)))
        sigma = float(torch.linalg.vector_norm(w)) ** 0.5
        v = w
    products = 2 * power_steps
    m = J(torch.zeros(P, 1, dtype=torch.float64)).shape[0]
    eps = rtol * sigma
    Q = torch.zeros(m, 0, dtype=torch.float64)
    quiet = 0
    pbar = bar(total=min(m, P), progress=progress, desc="rank (J·v products)", unit="dir", leave=False)
    while quiet < confirm and Q.shape[1] < min(m, P):
        Y = J(torch.randn(P, block, generator=g, dtype=torch.float64))
        products += block
        for _ in range(2):
            Y = Y - Q @ (Q.T @ Y)
        norms = torch.linalg.vector_norm(Y, dim=0)
        small = norms <= eps
        # count a run of consecutive quiet draws, column by column
        for s_ in small.tolist():
            quiet = quiet + 1 if s_ else 0
        U, S, _ = torch.linalg.svd(Y, full_matrices=False)
        keep = S > eps * np.sqrt(block)
        if keep.any():
            Qn = U[:, keep]
            Qn = Qn - Q @ (Q.T @ Qn)
            Qn, _ = torch.linalg.qr(Qn)
            Q = torch.cat([Q, Qn], dim=1)
            pbar.update(Qn.shape[1])
            quiet = 0 if not small[-1] else quiet
    pbar.close()
    return {"rank": int(Q.shape[1]), "sigma_max": sigma, "epsilon": eps,
            "bound": float(10 * np.sqrt(2 / np.pi) * eps), "products": products}


VERDICTS = ("symmetry_copy", "hidden_equivalent", "data_equivalent", "probe_only", "not_converged",
            "certified_equivalent")
"""Per-element verdicts; ``/equivalents/verdict`` stores the index into this tuple (and the file
names them in the attribute ``verdict_codes``, so readers go by name, never by number)."""

VERDICT_MEANING = {
    "symmetry_copy": "agrees on probe and held-out inputs; after alignment its displacement from θ* is what its "
                     "probe residual and J's conditioning explain, and on far inputs it agrees or differs only as "
                     "that small displacement predicts to first order",
    "hidden_equivalent": "agrees on probe, held-out and far inputs, but is no symmetry copy",
    "data_equivalent": "agrees on probe and held-out inputs (the data distribution), not on far inputs",
    "probe_only": "agrees on the probe inputs only",
    "not_converged": "probe discrepancy above tol",
    "certified_equivalent": "agrees on probe and held-out inputs and, proved rather than sampled, on every input of the "
                            "box (identify --exact): K·U²/output power ≤ the agreement tolerance, U the certified sup "
                            "of max_k |f_θ − f_θ*|_k there; no symmetry copy",
}
"""What each verdict rests on, in words (stored with the verdicts, printed by `identify`)."""

DEFAULT_COPY_FACTOR = 10.0
"""c in the symmetry-copy threshold τ = c·‖r‖ / (σ_r ‖θ*‖) (see :func:`copy_threshold`)."""

DEFAULT_AGREE_TOL = 1e-12
"""Floor of the plain agreement tolerance on held-out and far inputs: relative discrepancy (mean squared
error over that set's output power) 1e-12, an RMS error of 1e-6 of the output, far above rounding
(≈ 1e-30 for exact copies) and below any discrepancy a researcher would call a different function."""

GENERALISATION_FACTOR = 100.0
"""G in the agreement tolerance max(agree_tol, G · tol / output power) (see :func:`agreement_tolerance`)."""

ROUNDING_FLOOR = 1e-10
"""Smallest symmetry-copy threshold (relative distance): exact copies align to ≈ 1e-15, so
rounding never makes an exact copy look like a different network."""

COPY_THRESHOLD_FORMULA = "tau_i = max(c * sqrt(n * L_i) / (sigma_r * ||bal(theta*)||), 1e-10)"
COPY_SCORE_FORMULA = "score_i = max(d_R / tau_i, d_N / max(c * d_R^2, 1e-10)), d = ||delta|| / ||bal(theta*)||"


def copy_threshold(discrepancy: np.ndarray, n_probe: int, sigma_r: float, theta_norm: float,
                   factor: float = DEFAULT_COPY_FACTOR) -> np.ndarray:
    """Largest relative distance from θ* (modulo the exact symmetries) that an element's own
    residual explains: above it, the element is not a symmetry copy.

    Let θ = g·θ* + δ be a copy of θ* plus an error δ orthogonal to the symmetry orbit
    (alignment and balancing remove g and the orbit component).  Its probe residual is
    r = J δ + O(‖δ‖²), with J the output Jacobian on the n probe inputs at the balanced θ*, so
    for the part of δ that J sees

        ‖δ‖ ≤ ‖r‖ / σ_r,       ‖r‖² = n · L   (L: mean squared discrepancy on the probe set),

    where σ_r is the smallest singular value of the directions the search resolves (above the rank
    threshold and above √(n·tol)/‖θ*‖: :meth:`Spectrum.resolved_rank`).  The threshold is

        τ = max(c · √(n L) / (σ_r · ‖bal(θ*)‖), 10⁻¹⁰)        (relative, like the distance)

    with safety factor c (default 10) for the O(‖δ‖²) term and the alignment; measured on
    tanh teachers searched to tol 1e-8 … 1e-16, copies sit at 0.1·τ (δ lies along the
    sloppiest direction, as the linear bound says).  A displacement along unresolved directions
    (the null space of J beyond the symmetry orbit: a hidden symmetry, or directions the probe set
    does not see at this tolerance) is not explained by the residual at all: :func:`copy_score`
    holds that part to second order.
    In sloppy networks σ_r is tiny and τ exceeds 1 (the residual "explains" any displacement to
    first order); there the far inputs decide (:func:`linearity`, :func:`classify`).

    discrepancy : ndarray [N] (L_i);  n_probe : n;  sigma_r : σ_r;  theta_norm : ‖bal(θ*)‖
    returns : ndarray [N], relative thresholds
    """
    L = np.maximum(np.asarray(discrepancy, dtype=np.float64), 0.0)
    if not (sigma_r > 0 and theta_norm > 0):
        return np.full(L.shape, ROUNDING_FLOOR)
    return np.maximum(factor * np.sqrt(n_probe * L) / (sigma_r * theta_norm), ROUNDING_FLOOR)


def agreement_tolerance(tol: float, output_power: float, agree_tol: float = DEFAULT_AGREE_TOL,
                        factor: float = GENERALISATION_FACTOR) -> float:
    """Relative discrepancy on held-out or far inputs at or below which an element plainly *agrees* there:

        τ_agree = max(agree_tol, G · tol / P*),

    tol the search tolerance (absolute, probe), P* the reference's probe output power, G = 100: an
    element may differ on the probe set by tol / P* (relative), and off the probe set by up to G
    times that without further questions.  Larger discrepancies can still be the search's own error,
    propagated (a copy found to tol 1e-8 differs from θ* far from the data by up to 1e4 × its probe
    discrepancy): :func:`linearity` decides those.
    """
    p = float(output_power)
    return max(float(agree_tol), factor * float(tol) / p) if p > 0 and np.isfinite(p) else float(agree_tol)


LINEARITY_LIMIT = 0.5
"""A discrepancy r on some inputs is *explained* by a displacement δ_R when the first-order model misses
at most half of it: ‖r − J δ_R‖ ≤ ½‖r‖ (so also ‖J δ_R‖ ≥ ½‖r‖: the prediction is of the right size and
direction).  Measured: explained discrepancies give ρ ≈ 1e-8 … 0.2, unexplained ones ρ ≈ 1 (J δ_R ≈ 0:
the discrepancy comes from directions the probe set does not see) or ρ ≫ 1 (see :func:`linearity`)."""


def row_part(delta: np.ndarray, null_basis: np.ndarray) -> np.ndarray:
    """δ_R = δ − N Nᵀ δ for each row of delta [N, P]: the part of the displacement along the directions
    the search resolves (the part a probe residual can explain), N = null_basis [P, P − k] the rest."""
    delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
    return delta - (delta @ null_basis) @ null_basis.T if null_basis.shape[1] else delta.copy()


def split_displacement(delta: np.ndarray, null_basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the parts of each displacement that J sees and does not see.

    delta : ndarray [N, P] (aligned, balanced element − balanced θ*);  null_basis : [P, P − k]
        orthonormal basis of the unresolved directions (the last P − k right singular vectors of J,
        k = :meth:`Spectrum.resolved_rank`; with k = rank, the numerical null space)
    returns : (‖δ_R‖ [N], ‖δ_N‖ [N]): δ_N the projection onto the unresolved directions (which the
        probe set cannot see at this tolerance), δ_R = δ − δ_N the resolved part
    """
    delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
    null = np.linalg.norm(delta @ null_basis, axis=1) if null_basis.shape[1] else np.zeros(len(delta))
    total = np.linalg.norm(delta, axis=1)
    return np.sqrt(np.maximum(total ** 2 - null ** 2, 0.0)), null


def copy_score(row: np.ndarray, null: np.ndarray, threshold: np.ndarray, theta_norm: float,
               factor: float = DEFAULT_COPY_FACTOR) -> np.ndarray:
    """How much of an element's displacement its residual does *not* explain (≤ 1: all of it is explained).

        score = max( (‖δ_R‖/‖θ*‖) / τ ,  (‖δ_N‖/‖θ*‖) / max(c (‖δ_R‖/‖θ*‖)², 10⁻¹⁰) )

    The part J sees must lie within τ (:func:`copy_threshold`).  The part it cannot see is not
    explained by any residual: a copy has none beyond the second-order drift c·(‖δ_R‖/‖θ*‖)² of
    the linearisation (and rounding); an element that moved along such directions (a hidden
    symmetry, or directions the probe set does not resolve, as the 1 % perturbation of
    ``init = "perturb"`` does) is a different parameter set however close it lies.

    row, null : ndarray [N] (absolute norms from :func:`split_displacement`);  threshold : [N] (τ, relative)
    returns : ndarray [N]
    """
    r = np.asarray(row, np.float64) / theta_norm
    n = np.asarray(null, np.float64) / theta_norm
    return np.maximum(r / np.asarray(threshold, np.float64), n / np.maximum(factor * r * r, ROUNDING_FLOOR))


def linearity(model: Model, theta_ref: np.ndarray, delta: np.ndarray, X: np.ndarray,
              residual: np.ndarray, chunk: int = 32) -> np.ndarray:
    """ρ = ‖r − J_X(θ* + δ/2) δ‖ / ‖r‖ per element: how well the linear model along δ reproduces the
    element's discrepancy r = f_θ(X) − f_θ*(X) on the inputs X (held-out or far).  The Jacobian is
    taken at the midpoint θ* + δ/2, where f(θ* + δ) − f(θ*) = J(θ* + δ/2) δ + O(‖δ‖³) (the
    quadratic term cancels), so a copy found to a loose tolerance is still described to second order.

    With δ = δ_R, the part of the element's displacement along the directions the search resolves (the
    part its probe residual explains, :func:`row_part`): a symmetry copy found to a loose tolerance, or
    a hidden equivalent (moved along an exact hidden symmetry, invisible everywhere, plus a small
    search error), differs from θ* off the probe set by that linear term, so ρ ≪ 1 (measured: 1e-6 for
    a 2-3-1 tanh teacher searched to tol 1e-8).  An element that moved along directions
    the probe set does not see but X does, or that lies elsewhere on the class (a different network
    that matches on the data), is not described by it: ρ = O(1) or larger.  ρ < 1 means the first-order
    prediction beats predicting no change.  J_X δ is a forward-mode Jacobian-vector product
    (``torch.func.jvp``), never the full Jacobian on X.

    theta_ref : [P] (balanced θ*);  delta : [N, P];  X : [m, w_0];  residual : [N, m, w_L]
    returns : ndarray [N] (NaN where r = 0 exactly)
    """
    delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
    x = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    ref = torch.as_tensor(np.asarray(theta_ref), dtype=torch.float64)
    out = np.empty(len(delta))
    for i in range(0, len(delta), chunk):
        d = torch.as_tensor(delta[i:i + chunk])
        with torch.no_grad():
            lin = model.jvp(ref + 0.5 * d, x, d)
        r = np.asarray(residual[i:i + chunk], dtype=np.float64).reshape(len(d), -1)
        miss = np.linalg.norm(r - lin.reshape(len(d), -1).numpy(), axis=1)
        size = np.linalg.norm(r, axis=1)
        out[i:i + chunk] = np.where(size > 0, miss / np.where(size > 0, size, 1.0), np.nan)
    return out


def agrees(relative: np.ndarray, agree: float, rho: np.ndarray) -> np.ndarray:
    """An element agrees on a set of inputs when its relative discrepancy there is ≤ agree
    (:func:`agreement_tolerance`) or is explained by the search's own error (:func:`linearity` ρ ≤ 0.5).
    NaN discrepancies never agree.  All arrays [N]."""
    rel = np.asarray(relative, np.float64)
    rho = np.nan_to_num(np.asarray(rho, np.float64), nan=np.inf)
    return (rel <= agree) | ((rho <= LINEARITY_LIMIT) & np.isfinite(rel))


def classify(converged: np.ndarray, heldout_ok: np.ndarray, far_ok: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Verdict codes (indices into :data:`VERDICTS`), every array of shape [N]:

    * probe discrepancy above tol → ``not_converged``;
    * not agreeing on held-out inputs (:func:`agrees`) → ``probe_only``;
    * agreeing on far inputs and :func:`copy_score` ≤ 1 (the displacement from θ* is what the probe
      residual explains) → ``symmetry_copy``;
    * agreeing on far inputs → ``hidden_equivalent``;
    * otherwise → ``data_equivalent``.
    """
    far_ok = np.asarray(far_ok, bool)
    copy = (np.asarray(score, np.float64) <= 1.0) & far_ok
    code = np.where(copy, 0, np.where(far_ok, 1, 2))
    code = np.where(np.asarray(heldout_ok, bool), code, 3)
    return np.where(np.asarray(converged, bool), code, 4).astype(np.int8)


def certify(verdict: np.ndarray, relative_bound: np.ndarray, agree: float) -> np.ndarray:
    """Verdicts with ``certified_equivalent`` for every hidden or data equivalent whose certified bound on the
    relative discrepancy over the whole box (:func:`genni.exact.relative_bound`) is ≤ ``agree``; NaN bounds
    (no certificate) change nothing.  Both arrays [N]."""
    v = np.asarray(verdict).copy()
    rel = np.nan_to_num(np.asarray(relative_bound, np.float64), nan=np.inf)
    upgrade = np.isin(v, (VERDICTS.index("hidden_equivalent"), VERDICTS.index("data_equivalent"))) & (rel <= agree)
    v[upgrade] = VERDICTS.index("certified_equivalent")
    return v


@dataclass(frozen=True)
class Assessment:
    """Everything behind the verdicts of N elements (arrays of length N; distances relative to ‖bal θ*‖).

    verdict : int8 indices into :data:`VERDICTS`;  aligned : [N, P] each element in θ*'s gauge;
    distance : ‖bal(aligned) − bal(θ*)‖;  distance_row, distance_null : its parts J sees / cannot see;
    threshold : τ (:func:`copy_threshold`);  score : :func:`copy_score`;
    relative_heldout, relative_far : mean squared discrepancy over the reference's output power there;
    discrepancy_far : the same, absolute;  linearity_heldout, linearity_far : :func:`linearity` ρ there;
    spectrum : of J at the balanced θ*;  agree : :func:`agreement_tolerance`;  resolved : how many
    directions the search resolves (:meth:`Spectrum.resolved_rank`), σ_r the smallest of them
    """

    verdict: np.ndarray
    aligned: np.ndarray
    distance: np.ndarray
    distance_row: np.ndarray
    distance_null: np.ndarray
    threshold: np.ndarray
    score: np.ndarray
    relative_heldout: np.ndarray
    linearity_heldout: np.ndarray
    discrepancy_far: np.ndarray
    relative_far: np.ndarray
    linearity_far: np.ndarray
    spectrum: Spectrum
    agree: float
    sigma_r: float
    reference_balanced: np.ndarray
    resolved: int = 0

    def counts(self) -> dict[str, int]:
        return {name: int((self.verdict == i).sum()) for i, name in enumerate(VERDICTS)}


def _residuals(model: Model, thetas: np.ndarray, X: torch.Tensor, Y: np.ndarray, chunk: int = 64) -> np.ndarray:
    """f_θ(X) − Y for each row of thetas [N, P] → [N, n, w_L]."""
    with torch.no_grad():
        parts = [model.forward(torch.as_tensor(thetas[i:i + chunk]), X).numpy() - Y
                 for i in range(0, len(thetas), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0,) + Y.shape)


def _set_discrepancies(model: Model, thetas: np.ndarray, X: np.ndarray, Y: np.ndarray):
    """(residuals [N, n, K], L [N], L / power(Y) [N]) of every element on one set of inputs X [n, ...] whose
    reference outputs are Y [n, K]: L is the mean squared discrepancy (relative: ∞ when Y has no power)."""
    res = _residuals(model, thetas, torch.as_tensor(np.asarray(X, dtype=np.float64)), Y)
    L = mean_squared(res)
    return res, L, relative_discrepancy(L, output_power(Y))


def far_discrepancies(model: Model, thetas: np.ndarray, X_far: np.ndarray, Y_far: np.ndarray) -> dict:
    """{"discrepancy_far", "relative_discrepancy_far"}: each element's mean squared discrepancy on the far
    inputs, absolute and over the reference's output power there.  thetas : [N, P] → arrays [N]."""
    thetas = np.asarray(thetas, dtype=np.float64).reshape(-1, model.n_params)
    _, L, rel = _set_discrepancies(model, thetas, X_far, np.asarray(Y_far, dtype=np.float64))
    return {"discrepancy_far": L, "relative_discrepancy_far": rel}


def assess(model: Model, theta_ref: np.ndarray, X: np.ndarray, X_heldout: np.ndarray, X_far: np.ndarray,
           thetas: np.ndarray, tol: float, *, rtol: float = DEFAULT_RTOL, copy_factor: float = DEFAULT_COPY_FACTOR,
           agree_tol: float = DEFAULT_AGREE_TOL, progress: bool = False) -> Assessment:
    """The verdict on each element, with every quantity it rests on (all in memory; float64).

    One gauge throughout: the balanced θ* (``model.symmetry.balance``; for relu the minimum-norm
    point of its rescaling orbit, the same function), where J, its spectrum and the aligned, balanced
    elements' displacements δ are taken, δ without its vertical part (``model.symmetry.horizontal``: a kind's
    canonical form need not meet the orbit at a right angle).  Converged means L ≤ tol on the probe inputs.

    theta_ref : [P];  X, X_heldout, X_far : [n, w_0], [m, w_0], [m_far, w_0] probe, held-out, far inputs;
    thetas : [N, P];  tol : the search tolerance (absolute mean squared discrepancy on the probe set)
    """
    from .progress import bar

    theta_ref = np.asarray(theta_ref, dtype=np.float64)
    thetas = np.asarray(thetas, dtype=np.float64).reshape(-1, model.n_params)
    sym = model.symmetry
    ref_bal = sym.balance(theta_ref)
    sp = spectrum(output_jacobian(model, ref_bal, X), rtol)
    ref_norm = float(np.linalg.norm(ref_bal))
    k = sp.resolved_rank(len(X), tol, ref_norm)
    sigma_r = float(sp.singular_values[k - 1]) if k > 0 else 0.0
    unresolved = sp.right_vectors[k:].T  # [P, P − k]: the numerical null space and the directions tol leaves open
    x, xh, xf, ref = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (X, X_heldout, X_far, theta_ref))
    with torch.no_grad():
        Y, Yh, Yf = (model.forward(ref, z).numpy() for z in (x, xh, xf))
    agree = agreement_tolerance(tol, output_power(Y), agree_tol)
    N = len(thetas)
    aligned = np.empty_like(thetas)
    for i in bar(range(N), progress=progress, desc="align", unit="el", leave=False):
        aligned[i] = sym.align(thetas[i], theta_ref)[0]
    delta = sym.horizontal(ref_bal, (np.stack([sym.balance(a) for a in aligned]) if N else aligned) - ref_bal)
    row, null = split_displacement(delta, unresolved)
    delta_row = row_part(delta, unresolved)
    L = mean_squared(_residuals(model, thetas, x, Y))
    threshold = copy_threshold(L, len(X), sigma_r, ref_norm, copy_factor)
    score = copy_score(row, null, threshold, ref_norm, copy_factor)
    out = {}
    for name, z, Yz in (("heldout", X_heldout, Yh), ("far", X_far, Yf)):
        res, Lz, rel = _set_discrepancies(model, thetas, z, Yz)
        rho = linearity(model, ref_bal, delta_row, z, res) if N else np.zeros(0)
        out[name] = (Lz, rel, rho)
    ok = {name: agrees(rel, agree, rho) for name, (_, rel, rho) in out.items()}
    verdict = classify(L <= tol, ok["heldout"], ok["far"], score)
    return Assessment(verdict=verdict, aligned=aligned, distance=np.sqrt(row ** 2 + null ** 2) / ref_norm,
                      distance_row=row / ref_norm, distance_null=null / ref_norm, threshold=threshold, score=score,
                      relative_heldout=out["heldout"][1], linearity_heldout=out["heldout"][2],
                      discrepancy_far=out["far"][0], relative_far=out["far"][1], linearity_far=out["far"][2],
                      spectrum=sp, agree=agree, sigma_r=sigma_r, reference_balanced=ref_bal, resolved=k)
