"""The shape metrics in torch, differentiable in the representations: :func:`torch_distance`.

Each agrees with :func:`~genni.geometry.metrics.distance` (the same points, the same exact-difference
angle 2·atan2(‖a − b‖, ‖a + b‖)), computed with torch so that autograd reaches the representations and
through them θ.

- ``angular_cka``: a, b the centred Gram matrices X̃X̃ᵀ, ỸỸᵀ normalised to unit Frobenius norm;
  smooth wherever both are non-zero.
- ``angular_procrustes``, ``procrustes``, ``zscore_procrustes``: a = X̃, b = ỸQ with Q the optimal
  orthogonal alignment (SVD of ỸᵀX̃ after zero-padding the narrower side).  Q is computed without
  gradient: the distance is a minimum over Q, so at the minimiser its gradient is the gradient with Q
  held fixed (Danskin's theorem), exact wherever the minimiser is unique (ỸᵀX̃ without a zero singular
  value).  Second derivatives hold Q fixed too, so they are not the distance's own beyond first
  order (angular CKA has no such step: all its derivatives are exact).  ``zscore_procrustes``
  divides every unit by its standard deviation; which units the variance floor drops is decided
  without gradient (the floor is a threshold: the distance jumps where a unit crosses it).
- ``zscore_permutation`` is not offered: its Hungarian matching of units is a discrete choice
  (``scipy.optimize.linear_sum_assignment``) that autograd cannot pass through.

Every distance is a cone at 0, like |x|: where a layer coincides with the other up to the metric's
invariances it is not differentiable, and the gradient there is taken as 0 (the minimum-norm
subgradient).
"""

from __future__ import annotations

import torch

from .registry import DEFAULT_FLOOR, registered

__all__ = ["DIFFERENTIABLE", "torch_distance"]

DIFFERENTIABLE = ("angular_cka", "angular_procrustes", "procrustes", "zscore_procrustes")
"""The metrics :func:`torch_distance` computes (every registered one but ``zscore_permutation``)."""


def _norm(F: torch.Tensor) -> torch.Tensor:
    """Frobenius norm with gradient 0 at F = 0 (instead of NaN)."""
    s = (F * F).sum()
    pos = s > 0
    return torch.where(pos, torch.where(pos, s, torch.ones_like(s)).sqrt(), torch.zeros_like(s))


def _unit(F: torch.Tensor) -> torch.Tensor:
    n = _norm(F)
    return F / torch.where(n > 0, n, torch.ones_like(n))


def _point(X: torch.Tensor, metric: str, floor: float) -> torch.Tensor:
    Xc = X - X.mean(0, keepdim=True)
    if metric == "zscore_procrustes":
        var = (Xc * Xc).mean(0)
        vmax = var.detach().max() if var.numel() else var.new_zeros(())
        if not vmax > 0:
            return Xc[:, :0]
        keep = var.detach() >= floor * vmax
        Xc = Xc[:, keep] / var[keep].sqrt()
    return Xc


def torch_distance(X: torch.Tensor, Y: torch.Tensor, metric: str = "angular_procrustes",
                   floor: float = DEFAULT_FLOOR) -> torch.Tensor:
    """d(X, Y) for representations X [n, d_x], Y [n, d_y] (float64 tensors), a 0-d tensor differentiable in
    both (see the module docstring); ``metric`` one of :data:`DIFFERENTIABLE`, ``floor`` the z-score
    metric's relative variance floor.  ValueError for another metric or mismatched rows."""
    registered(metric)
    if metric not in DIFFERENTIABLE:
        raise ValueError(f"metric '{metric}' is not differentiable (differentiable: {', '.join(DIFFERENTIABLE)})")
    X = X.reshape(X.shape[0], -1)
    Y = Y.reshape(Y.shape[0], -1)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"representations must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}")
    Fx, Fy = _point(X, metric, floor), _point(Y, metric, floor)
    if metric == "angular_cka":
        a, b = _unit(Fx @ Fx.T), _unit(Fy @ Fy.T)
        return 2.0 * torch.atan2(_norm(a - b), _norm(a + b))
    if metric != "procrustes":
        Fx, Fy = _unit(Fx), _unit(Fy)
    d = max(Fx.shape[1], Fy.shape[1], 1)
    Fx = torch.cat([Fx, Fx.new_zeros(Fx.shape[0], d - Fx.shape[1])], 1)
    Fy = torch.cat([Fy, Fy.new_zeros(Fy.shape[0], d - Fy.shape[1])], 1)
    U, _, Vt = torch.linalg.svd((Fy.T @ Fx).detach())
    YQ = Fy @ (U @ Vt)
    c = _norm(Fx - YQ)
    if metric == "procrustes":
        return c
    return 2.0 * torch.atan2(c, _norm(Fx + YQ))
