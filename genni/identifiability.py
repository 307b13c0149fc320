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


VERDICTS = ("symmetry_copy", "hidden_equivalent", "probe_only", "not_converged")
"""Per-element verdicts; ``/equivalents/verdict`` stores the index into this tuple."""

DEFAULT_SYMMETRY_TOL = 1e-4
"""Relative parameter distance ‖align(θ) − θ*‖ / ‖θ*‖ below which a converged element
counts as a copy of the reference under the known group.  An element at discrepancy
L ≤ 1e-10 sits within about √L / σ_min(J) of the class in parameter space, which for the
default networks is far below 1e-4, while distinct equivalents differ by O(1)."""

DEFAULT_HELDOUT_TOL = 1e-6
"""Relative held-out discrepancy (mean squared, over the reference's output power)
below which a converged element also matches on fresh inputs (RMS error ≤ 0.1 %)."""


def classify(converged: np.ndarray, distance: np.ndarray, relative_heldout: np.ndarray,
             symmetry_tol: float = DEFAULT_SYMMETRY_TOL, heldout_tol: float = DEFAULT_HELDOUT_TOL) -> np.ndarray:
    """Verdict codes (indices into :data:`VERDICTS`), each array of shape [N].

    not converged on the probe set → ``not_converged``; otherwise aligned distance ≤
    symmetry_tol → ``symmetry_copy``; otherwise relative held-out discrepancy ≤ heldout_tol →
    ``hidden_equivalent``; otherwise ``probe_only`` (the probe set did not pin the function down).
    """
    converged = np.asarray(converged, bool)
    code = np.where(np.asarray(relative_heldout) <= heldout_tol, 1, 2)
    code = np.where(np.asarray(distance) <= symmetry_tol, 0, code)
    return np.where(converged, code, 3).astype(np.int8)
