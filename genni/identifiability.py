"""Functional dimension: the output Jacobian on the probe set, its rank and null space.

J = ∂ vec f_θ(X) / ∂θ, shape [n·K, P] (rows ordered input-major, output-minor), from
the closed form of :func:`genni.nets.jacobian`, in float64.  Its numerical rank is the
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

from . import nets, params
from .nets import MLPSpec

DEFAULT_RTOL = 1e-9


def output_jacobian(spec: MLPSpec, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """J = ∂ vec f_θ(X) / ∂θ.

    theta : ndarray, shape [P];  X : ndarray, shape [n, w_0]
    returns : ndarray, shape [n · w_L, P]
    """
    t = torch.as_tensor(np.asarray(theta), dtype=torch.float64)
    x = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    _, J = nets.jacobian(spec, t, x)
    return J.reshape(-1, spec.n_params).numpy()


@dataclass(frozen=True)
class Spectrum:
    """Singular values of J and what follows from them.

    singular_values : [min(nK, P)], descending;  rank : numerical rank;  rank_tolerance : the
    absolute threshold rtol·σ_max;  null_basis : [P, P − rank], orthonormal columns spanning
    the null space;  gap : σ_rank / σ_{rank+1} (∞ if nothing is below the threshold)
    """

    singular_values: np.ndarray
    rank: int
    rank_tolerance: float
    rtol: float
    null_basis: np.ndarray
    gap: float


def spectrum(J: np.ndarray, rtol: float = DEFAULT_RTOL) -> Spectrum:
    """SVD of J (shape [M, P]) with numerical rank at relative tolerance ``rtol``."""
    _, s, Vt = np.linalg.svd(J, full_matrices=True)
    tol = rtol * (s[0] if len(s) else 0.0)
    rank = int((s > tol).sum())
    null = Vt[rank:].T.copy()
    gap = float(s[rank - 1] / s[rank]) if 0 < rank < len(s) and s[rank] > 0 else float("inf")
    return Spectrum(s, rank, float(tol), rtol, null, gap)


def expected_rank(spec: MLPSpec, n_rows: int | None = None) -> int:
    """The theoretical upper bound on rank(J) for the architecture.

    relu / leaky_relu: P − (number of hidden units) (each unit's positive rescaling is
    a null direction); tanh, sigmoid, gelu: P (generic full rank).  Never more than the
    number of rows n·K of J when ``n_rows`` is given.
    """
    bound = spec.n_params - (sum(spec.hidden_widths) if spec.activation in ("relu", "leaky_relu") else 0)
    return bound if n_rows is None else min(bound, n_rows)


def rank_vs_probe(spec: MLPSpec, theta: np.ndarray, X: np.ndarray, sizes: Sequence[int] | None = None,
                  rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """Numerical rank of J on the first k probe inputs, for each k in ``sizes``.

    returns : ndarray, shape [len(sizes), 2]: (k, rank)
    """
    n = len(X)
    if sizes is None:
        sizes = sorted({int(k) for k in np.unique(np.geomspace(1, n, 12).round()).astype(int)} | {n})
    J = output_jacobian(spec, theta, X)
    K = spec.widths[-1]

    def rank(A: np.ndarray) -> int:  # as spectrum(A, rtol).rank, without the singular vectors
        s = np.linalg.svd(A, compute_uv=False)
        return int((s > rtol * (s[0] if len(s) else 0.0)).sum())

    return np.array([(k, rank(J[: k * K])) for k in sizes], dtype=np.int64)


def rescaling_directions(spec: MLPSpec, theta: np.ndarray) -> np.ndarray:
    """The tangent of each hidden unit's positive rescaling at θ, as columns [P, H]:
    d/dc of (incoming row and bias × c, outgoing column × 1/c) at c = 1."""
    theta = np.asarray(theta, dtype=np.float64)
    cols = []
    layers = params.layer_slices(spec.widths)
    for l, w in enumerate(spec.hidden_widths):
        s_in, s_out = layers[l], layers[l + 1]
        W_out = theta[s_out.weight].reshape(s_out.shape)
        for j in range(w):
            v = np.zeros_like(theta)
            d_in = s_in.shape[1]
            v[s_in.weight.start + j * d_in: s_in.weight.start + (j + 1) * d_in] = \
                theta[s_in.weight.start + j * d_in: s_in.weight.start + (j + 1) * d_in]
            v[s_in.bias.start + j] = theta[s_in.bias.start + j]
            rows = s_out.weight.start + np.arange(s_out.shape[0]) * s_out.shape[1] + j
            v[rows] = -W_out[:, j]
            cols.append(v)
    return np.stack(cols, axis=1) if cols else np.zeros((len(theta), 0))


VERDICTS = ("symmetry_copy", "hidden_equivalent", "data_equivalent", "probe_only", "not_converged")
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
}
"""What each verdict rests on, in words (stored with the verdicts, printed by `identify`)."""

DEFAULT_COPY_FACTOR = 10.0
"""c in the symmetry-copy threshold τ = c·‖r‖ / (σ_r ‖θ*‖) (see :func:`copy_threshold`)."""

DEFAULT_AGREE_TOL = 1e-6
"""Floor of the agreement tolerance on held-out and far inputs: relative discrepancy (mean
squared error over that set's output power) 1e-6, i.e. an RMS error of 0.1 % of the output."""

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

    where σ_r is the smallest singular value of J counted in its numerical rank (the worst-
    conditioned direction J resolves).  The threshold is

        τ = max(c · √(n L) / (σ_r · ‖bal(θ*)‖), 10⁻¹⁰)        (relative, like the distance)

    with safety factor c (default 10) for the O(‖δ‖²) term and the alignment; measured on
    tanh teachers searched to tol 1e-8 … 1e-16, copies sit at 0.1·τ (δ lies along the
    sloppiest direction, as the linear bound says).  A displacement in the null space of J
    beyond the symmetry orbit (a hidden symmetry, or a direction the probe set does not see)
    is not explained by the residual at all: :func:`copy_score` holds that part to second order.
    In sloppy networks σ_r is tiny and τ exceeds 1 (the residual "explains" any displacement to
    first order); there the far inputs decide (:func:`far_linearity`, :func:`classify`).

    discrepancy : ndarray [N] (L_i);  n_probe : n;  sigma_r : σ_r;  theta_norm : ‖bal(θ*)‖
    returns : ndarray [N], relative thresholds
    """
    L = np.maximum(np.asarray(discrepancy, dtype=np.float64), 0.0)
    if not (sigma_r > 0 and theta_norm > 0):
        return np.full(L.shape, ROUNDING_FLOOR)
    return np.maximum(factor * np.sqrt(n_probe * L) / (sigma_r * theta_norm), ROUNDING_FLOOR)


def agreement_tolerance(tol: float, output_power: float, agree_tol: float = DEFAULT_AGREE_TOL,
                        factor: float = GENERALISATION_FACTOR) -> float:
    """Relative discrepancy on held-out or far inputs at or below which an element *agrees* there:

        τ_agree = max(agree_tol, G · tol / P*),

    tol the search tolerance (absolute, probe), P* the reference's probe output power, G = 100.
    A converged element may differ on the probe set by tol / P* (relative); a symmetry copy's
    leftover error generalises to held-out and far inputs with a modest gain (measured on tanh
    teachers: far / probe ≈ 5), so an element whose error grows by more than G off the probe set
    has learnt something else there.  The floor (1e-6: RMS error 0.1 % of the output) keeps the
    test meaningful when tol is tiny.
    """
    p = float(output_power)
    return max(float(agree_tol), factor * float(tol) / p) if p > 0 and np.isfinite(p) else float(agree_tol)


LINEARITY_LIMIT = 0.5
"""A copy's far discrepancy is explained by its displacement δ when the first-order model misses it by
at most half: ‖r_far − J_far δ‖ ≤ 0.5 ‖r_far‖ (see :func:`far_linearity`)."""


def split_displacement(delta: np.ndarray, null_basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Norms of the parts of each displacement that J sees and does not see.

    delta : ndarray [N, P] (aligned, balanced element − balanced θ*);  null_basis : [P, P − rank]
        orthonormal basis of the numerical null space of J (:attr:`Spectrum.null_basis`)
    returns : (‖δ_R‖ [N], ‖δ_N‖ [N]): δ_N the projection onto the null space (directions the probe
        set cannot see), δ_R = δ − δ_N the part in the row space of J
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


def far_linearity(spec: MLPSpec, theta_ref: np.ndarray, delta: np.ndarray, X_far: np.ndarray,
                  residual_far: np.ndarray, chunk: int = 32) -> np.ndarray:
    """ρ = ‖r_far − J_far δ‖ / ‖r_far‖ per element: how well the first-order model at θ* along the
    element's own displacement δ reproduces its discrepancy on the far inputs.

    A copy displaced by a small δ differs from θ* by J δ + O(‖δ‖²) everywhere, so ρ ≪ 1 (measured:
    2e-3 for a 2-3-1 tanh teacher searched to tol 1e-8, 2e-8 at 1e-16); an element that lies
    elsewhere on the class (a different network that happens to match on the data) is not
    described by the linearisation at θ*, and ρ = O(1) or larger.  J_far δ is a forward-mode
    Jacobian-vector product (``torch.func.jvp``), never the full far Jacobian.

    theta_ref : [P] (balanced θ*);  delta : [N, P];  X_far : [m, w_0];  residual_far : [N, m, w_L]
        (f_θ(X_far) − f_θ*(X_far) of each element)
    returns : ndarray [N] (NaN where r_far = 0 exactly)
    """
    from torch.func import jvp

    delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
    x = torch.as_tensor(np.asarray(X_far), dtype=torch.float64)
    ref = torch.as_tensor(np.asarray(theta_ref), dtype=torch.float64)
    out = np.empty(len(delta))
    for i in range(0, len(delta), chunk):
        d = torch.as_tensor(delta[i:i + chunk])
        _, lin = jvp(lambda t: nets.forward(spec, t, x), (ref.expand_as(d).contiguous(),), (d,))
        r = np.asarray(residual_far[i:i + chunk], dtype=np.float64).reshape(len(d), -1)
        miss = np.linalg.norm(r - lin.reshape(len(d), -1).numpy(), axis=1)
        size = np.linalg.norm(r, axis=1)
        out[i:i + chunk] = np.where(size > 0, miss / np.where(size > 0, size, 1.0), np.nan)
    return out


def classify(converged: np.ndarray, relative_heldout: np.ndarray, relative_far: np.ndarray, agree: float,
             score: np.ndarray, linearity: np.ndarray) -> np.ndarray:
    """Verdict codes (indices into :data:`VERDICTS`), every array of shape [N].

    * probe discrepancy above tol → ``not_converged``;
    * relative held-out discrepancy > agree → ``probe_only``;
    * :func:`copy_score` ≤ 1 (the displacement from θ* is what the residual explains) and on far inputs
      either agreement (relative discrepancy ≤ agree) or a first-order explanation
      (:func:`far_linearity` ≤ 0.5) → ``symmetry_copy``;
    * relative far discrepancy ≤ agree → ``hidden_equivalent``;
    * otherwise → ``data_equivalent``.

    ``agree`` is :func:`agreement_tolerance`.  NaN discrepancies count as disagreement.
    """
    converged = np.asarray(converged, bool)
    heldout_ok = np.asarray(relative_heldout, np.float64) <= agree
    far_ok = np.asarray(relative_far, np.float64) <= agree
    explained = far_ok | (np.nan_to_num(np.asarray(linearity, np.float64), nan=np.inf) <= LINEARITY_LIMIT)
    copy = (np.asarray(score, np.float64) <= 1.0) & explained
    code = np.where(copy, 0, np.where(far_ok, 1, 2))
    code = np.where(heldout_ok, code, 3)
    return np.where(converged, code, 4).astype(np.int8)
