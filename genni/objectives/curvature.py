r"""Curvature of the training loss along the class: the largest Hessian eigenvalue (sharpness, by Lanczos)
and the Hessian trace (by Hutchinson), each a differentiable function of θ.

The training loss L(θ) is one of

- the mean squared error to targets Y [n, K]: L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖² (the discrepancy's
  formula, :func:`genni.discrepancy.mean_squared`);
- the reference's own training loss on integer labels [n] (:func:`genni.train.train_reference`):
  binary cross-entropy with f as a logit when K = 1 (labels 0 / 1), softmax cross-entropy when K > 1,
  each a mean over the n inputs.

Hessian-vector products H(θ)v = ∂/∂t ∇L(θ + tv) at t = 0 are forward-over-reverse
(``torch.func.jvp`` of ``torch.func.grad``); the Hessian is never formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import grad, jvp

from ..discrepancy import mean_squared
from ..errors import ConfigError
from ..models.base import Model
from .base import Objective, acts_orthogonally

__all__ = ["training_loss", "hvp", "TopEigen", "start_vector", "lanczos_top", "sharpness", "hessian_trace"]


def training_loss(model: Model, X, Y=None, labels=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """L(θ), a function of θ [P] returning a 0-d tensor (see the module docstring for the formulas).

    X : [n, d_in];  Y : [n, K] targets (mean squared error), or
    labels : [n] integers (cross-entropy: 0 / 1 for K = 1, 0 … K−1 otherwise); exactly one of Y, labels
    """
    if (Y is None) == (labels is None):
        raise ConfigError("the training loss needs exactly one of Y (targets: mean squared error) or labels "
                          "(cross-entropy)")
    X = torch.as_tensor(X, dtype=torch.float64)
    n, K = X.shape[0], model.out_dim
    if Y is not None:
        Y = torch.as_tensor(Y, dtype=torch.float64)
        if Y.dim() == 1 and K == 1:
            Y = Y[:, None]
        if tuple(Y.shape) != (n, K):
            raise ConfigError(f"targets Y must have shape [{n}, {K}] (inputs × outputs), got {list(Y.shape)}")
        return lambda theta: mean_squared(model.forward(theta, X) - Y)
    y = np.asarray(labels)
    integral = np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.array_equal(y, np.round(y)))
    if y.shape != (n,) or not integral:
        raise ConfigError(f"labels must be {n} integers (one per input), got shape {list(y.shape)} of {y.dtype}")
    top = 1 if K == 1 else K - 1
    if y.size and (y.min() < 0 or y.max() > top):
        raise ConfigError(f"labels must lie in 0..{top} for {K} output{'s' if K > 1 else ''} "
                          f"({'binary cross-entropy' if K == 1 else 'softmax cross-entropy'}), "
                          f"got {int(y.min())}..{int(y.max())}")
    if K == 1:
        target = torch.as_tensor(y, dtype=torch.float64)
        return lambda theta: torch.nn.functional.binary_cross_entropy_with_logits(model.forward(theta, X)[:, 0], target)
    classes = torch.as_tensor(y.astype(np.int64))
    return lambda theta: torch.nn.functional.cross_entropy(model.forward(theta, X), classes)


def hvp(loss: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H(θ)v, the Hessian of ``loss`` at θ times v (forward over reverse).  theta, v : [P] -> [P]"""
    return jvp(grad(loss), (theta,), (v,))[1]


@dataclass(frozen=True)
class TopEigen:
    """The largest eigenvalue of a symmetric operator and its unit eigenvector, from Lanczos.

    value : the Ritz value λ;  vector : Tensor [P], ‖v‖ = 1;
    residual : ‖Hv − λv‖ (= β_k |y_k|, the Lanczos estimate);  iterations : matrix-vector products used
    """

    value: float
    vector: torch.Tensor
    residual: float
    iterations: int


def start_vector(P: int, seed: int = 0) -> torch.Tensor:
    """The Lanczos start vector: N(0, I_P) from a ``torch.Generator`` seeded with ``seed``, normalised. -> [P]"""
    q = torch.randn(P, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return q / q.norm()


def lanczos_top(matvec: Callable[[torch.Tensor], torch.Tensor], P: int, iterations: int = 80, seed: int = 0,
                tol: float = 1e-10, start: torch.Tensor | None = None) -> TopEigen:
    """The largest (algebraic) eigenvalue of a symmetric P × P operator given by ``matvec`` (v [P] -> [P]).

    Lanczos from ``start`` (default :func:`start_vector` of ``seed``), with full
    reorthogonalisation (twice, classical Gram–Schmidt) against every previous Lanczos vector, so that
    the Krylov basis stays orthonormal to rounding: k = min(``iterations``, P) steps build the
    tridiagonal T_k = Qᵀ H Q, whose top eigenpair (λ, y) gives the Ritz pair (λ, Qy).  It stops early
    when the residual β_j |y_j| ≤ ``tol`` · max(|λ|, 1e-300), or when the Krylov space is invariant
    (β_j ≤ 1e-14 · the largest |α|, β seen).  With k = P steps the result is exact to rounding.  The
    same seed gives the same arithmetic, so the result is a deterministic function of the operator.

    returns : :class:`TopEigen`
    """
    Q = [start_vector(P, seed) if start is None else start / start.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    k = max(1, min(int(iterations), P))
    lam, y, resid = 0.0, np.ones(1), float("inf")
    scale = 0.0
    for j in range(k):
        w = matvec(Q[j]).detach()
        a = float(Q[j] @ w)
        alphas.append(a)
        B = torch.stack(Q)
        for _ in range(2):
            w = w - B.T @ (B @ w)
        b = float(w.norm())
        scale = max(scale, abs(a), b)
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        evals, evecs = np.linalg.eigh(T)
        lam, y = float(evals[-1]), evecs[:, -1]
        resid = b * abs(float(y[-1]))
        if j + 1 == k or resid <= tol * max(abs(lam), 1e-300) or b <= 1e-14 * scale:
            break
        betas.append(b)
        Q.append(w / b)
    v = torch.stack(Q[:len(y)]).T @ torch.as_tensor(y, dtype=torch.float64)
    return TopEigen(lam, v / v.norm(), resid, len(alphas))


def sharpness(model: Model, X, Y=None, labels=None, iterations: int = 80, seed: int = 0,
              tol: float = 1e-10) -> Objective:
    """Sharpness: λ_max(θ) = the largest eigenvalue of the Hessian ∇²L(θ) of the training loss L
    (:func:`training_loss`: MSE to Y, or cross-entropy on labels).

    λ_max and its unit eigenvector v come from Lanczos on Hessian-vector products (:func:`lanczos_top`
    with ``iterations``, ``seed``, ``tol``), computed from a detached θ; the returned value is the
    Rayleigh quotient vᵀH(θ)v with v held fixed, which equals λ_max (to the accuracy of the Ritz pair:
    residual ≤ ``tol``·|λ| unless the iterations run out first; below λ_max otherwise) and whose gradient is
    ∇_θ λ_max = ∇_θ (vᵀ H(θ) v) (Hellmann–Feynman: the derivative of a simple eigenvalue of a
    symmetric matrix is its eigenvector's Rayleigh quotient of the derivative).  The gradient is a
    third derivative of L; it exists where λ_max is simple (a repeated top eigenvalue is not
    differentiable, only directionally), and for relu where no probe input sits at a kink.  Second
    derivatives through this objective (``torch.func.hessian``, its Hessian-vector products) hold v
    fixed: they are those of vᵀH(θ)v, not of λ_max, which has the further term
    2 Σ_{k>1} (v_kᵀ (∂H) v)² / (λ_max − λ_k) from the eigenvector's motion.

    Invariant under the exact symmetries when they act orthogonally on θ (permutations; tanh's sign
    flips: :func:`~genni.objectives.base.acts_orthogonally`), not under relu's rescaling (Dinh et al. 2017).
    """
    loss = training_loss(model, X, Y, labels)
    P = model.n_params
    start = start_vector(P, seed)  # drawn here, once: fn draws nothing (torch.func.vmap refuses random calls)

    def fn(theta: torch.Tensor) -> torch.Tensor:
        fixed = theta.detach()
        top = lanczos_top(lambda v: hvp(loss, fixed, v), P, iterations, tol=tol, start=start)
        v = top.vector
        return v @ hvp(loss, theta, v)

    return Objective("sharpness", fn, acts_orthogonally(model), "λ_max(∇²L(θ)) by Lanczos; gradient vᵀ(∇_θ H)v")


def hessian_trace(model: Model, X, Y=None, labels=None, probes: int | str = 64, seed: int = 0,
                  chunk: int = 32) -> Objective:
    """The Hessian trace tr ∇²L(θ) of the training loss (:func:`training_loss`), by Hutchinson's estimator

        T(θ) = (1/m) Σ_{i=1..m} z_iᵀ H(θ) z_i,   z_i ∈ {−1, +1}^P Rademacher,

    with the m = ``probes`` vectors drawn once by a ``torch.Generator`` seeded with ``seed``, so T is a
    deterministic, differentiable function of θ: ∇T = (1/m) Σ ∇_θ (z_iᵀ H(θ) z_i) (a third derivative
    of L).  E[T] = tr H; its variance is Var T = (2/m) Σ_{j≠k} H_jk² = (2/m)(‖H‖_F² − Σ_j H_jj²).
    ``probes="basis"`` uses the P unit vectors instead: T = Σ_j e_jᵀ H e_j = tr H exactly (P products).
    Products are taken ``chunk`` probes at a time (``torch.vmap``).

    Invariant under orthogonally acting symmetries only with ``probes="basis"``: fixed random probes
    see a permuted Hessian differently (the estimate is invariant in expectation only).
    """
    loss = training_loss(model, X, Y, labels)
    P = model.n_params
    exact = isinstance(probes, str)
    if exact and probes != "basis":
        raise ConfigError(f"probes must be a positive number or 'basis', got '{probes}'")
    if exact:
        Z, weight = torch.eye(P, dtype=torch.float64), 1.0
    else:
        if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 1:
            raise ConfigError(f"probes must be a positive number or 'basis', got {probes!r}")
        g = torch.Generator().manual_seed(int(seed))
        Z = torch.randint(0, 2, (int(probes), P), generator=g).to(torch.float64) * 2 - 1
        weight = 1.0 / int(probes)

    def fn(theta: torch.Tensor) -> torch.Tensor:
        # randomness="same": a generic kind's forward builds its module (random init, then overwritten)
        quad = torch.vmap(lambda z: z @ hvp(loss, theta, z), chunk_size=chunk, randomness="same")(Z)
        return quad.sum() * weight

    name = "hessian_trace"
    formula = "tr ∇²L(θ) exactly (unit vectors)" if exact else f"Hutchinson (1/{Z.shape[0]}) Σ zᵀ∇²L(θ)z, Rademacher z"
    return Objective(name, fn, exact and acts_orthogonally(model), formula)
