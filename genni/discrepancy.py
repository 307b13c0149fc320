r"""The discrepancy quantities: output power, mean squared discrepancy (absolute and relative),
and the certificate of a straight segment.

For a model f, parameters θ, inputs X = {x_1, …, x_n} and target outputs y(x) (usually the
reference's, y = f_θ*):

    output power          P = (1/n) Σ_x ‖y(x)‖²
    discrepancy           L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖²
    relative discrepancy  L(θ) / P
    segment certificate   max_{t ∈ [0, 1]} L(a + t(b − a)) / P

:func:`output_power` and :func:`mean_squared` compute with the library of their argument (numpy
arrays in numpy, torch tensors in torch): the two may round a reduction differently in the last
bit, and each caller keeps the library its data lives in.
"""

from __future__ import annotations

import numpy as np
import torch

from .models.base import Model

SEGMENT_POINTS = 9
"""Points at which :func:`segment_max` evaluates the residual and its derivative along a segment."""

SEGMENT_SUBDIVISIONS = 8
"""Hermite-interpolated points per interval between those samples."""


def output_power(Y) -> float:
    """P = (1/n) Σ_x ‖y(x)‖², the mean squared norm of the outputs.

    Y : [n, K], a torch tensor (reduced in torch) or anything numpy reads (reduced in numpy, float64)
    returns : float
    """
    if not isinstance(Y, torch.Tensor):
        Y = np.asarray(Y, dtype=np.float64)
    return float((Y * Y).sum(-1).mean())


def mean_squared(residuals):
    """(1/n) Σ_x ‖r(x)‖² over the last two axes, in the library of the input.

    residuals : [..., n, K] numpy array or torch tensor (r(x) = f_θ(x) − y(x))
    returns : [...] of the same library
    """
    return (residuals * residuals).sum(-1).mean(-1)


def discrepancy(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖² for each row of θ (torch).

    theta : [N, P] (or one θ, [P]);  X : [n, w_0];  Y : [n, w_L]
    returns : [N] (a scalar tensor for one θ)
    """
    return mean_squared(model.forward(theta, X) - Y)


def relative_discrepancy(L: np.ndarray, power: float) -> np.ndarray:
    """L / P, the discrepancy over the reference's output power (numpy); ∞ for every element when
    P ≤ 0 (a reference without output makes nothing equivalent).

    L : [N];  power : P;  returns : [N]
    """
    L = np.asarray(L)
    return L / power if power > 0 else np.full_like(L, np.inf)


def segment_max(model: Model, a: np.ndarray, b: np.ndarray, X: torch.Tensor, Y: torch.Tensor,
                power: float) -> float:
    """max over t ∈ [0, 1] of L(a + t(b − a)) / P*, the certificate of the straight segment a → b.

    The residual r(t) and its derivative r′(t) = J(θ(t))(b − a) (forward mode, ``model.forward_jvp``) are evaluated at
    :data:`SEGMENT_POINTS` = 9 equally spaced t (ends included); between neighbours r is replaced by
    its cubic Hermite interpolant (values and derivatives at both ends) at 8 further points.  A smooth
    residual along a short segment is a low-degree polynomial in t to high accuracy, and the Hermite
    interpolant is exact for cubics, so a bump between samples is not missed; for relu, r(t) is
    piecewise polynomial with kinks where a unit's pattern flips, and such a kink between samples
    shows as disagreeing end derivatives, which the interpolant turns into a bulge.  The tests
    check the result against 2,001 direct evaluations.

    a, b : [P];  X : [n, w_0];  Y : [n, w_L];  power : P*;  returns : float
    """
    a_t, b_t = (torch.as_tensor(v, dtype=torch.float64, device=X.device) for v in (a, b))
    t = torch.linspace(0, 1, SEGMENT_POINTS, dtype=torch.float64, device=X.device)
    d = b_t - a_t
    thetas = a_t[None] + t[:, None] * d[None]
    with torch.no_grad():
        f, df = model.forward_jvp(thetas, X, d.expand_as(thetas).contiguous())
    r = (f - Y).reshape(SEGMENT_POINTS, -1)
    dr = df.reshape(SEGMENT_POINTS, -1) / (SEGMENT_POINTS - 1)  # per unit of the interval variable
    n = X.shape[0]
    s = torch.linspace(0, 1, SEGMENT_SUBDIVISIONS + 2, dtype=torch.float64, device=X.device)[1:-1, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    p = h00 * r[:-1, None] + h10 * dr[:-1, None] + h01 * r[1:, None] + h11 * dr[1:, None]  # [intervals, 8, n·K]
    return max(float(((r * r).sum(-1) / n).max()), float(((p * p).sum(-1) / n).max())) / power


__all__ = ["SEGMENT_POINTS", "SEGMENT_SUBDIVISIONS", "output_power", "mean_squared", "discrepancy",
           "relative_discrepancy", "segment_max"]
