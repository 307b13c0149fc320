"""The relu / leaky_relu MLP's output Jacobian reduced along its linear regions.

On the inputs that share an activation pattern s (one *region*), the network is affine in x:
h_l = σ'(z_l) ⊙ z_l with σ'(z_l) fixed by s, so every row of J is linear in the homogeneous input
x̃ = [x, 1] (x alone for bias-free layers), J(x̃) = Σ_i x̃_i V_s,i.  A region's rows J_s = X̃_s V_s [n_s·K, P]
then have rank ≤ e = dim x̃, and with X̃_s = U_s T_s (thin QR, U_s [n_s, e] orthonormal, T_s [e, e]) they
are J_s = U_s (T_s V_s): the e·K rows T_s V_s are J at the *virtual* inputs x̃ = rows of T_s, with pattern s
(the closed form below, biases scaled by the virtual input's last coordinate).  On the default reference
(2-16-16-1 relu, 512 moons inputs) the 512 rows come from 45 patterns and reduce to 104.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import layout
from .closed_form import forward_cache

if TYPE_CHECKING:  # pragma: no cover
    from . import MLP


def virtual_jacobian(model: MLP, theta: torch.Tensor, x: torch.Tensor, t: torch.Tensor | None,
                     dsig: list[torch.Tensor]) -> torch.Tensor:
    """J at virtual homogeneous inputs with given activation patterns, linear in (x, t).

    With h_0 = x, z_l = W_l h_{l−1} + t·b_l, h_l = σ'_l ⊙ z_l (the pattern given, not z_l's own), f = z_L:
    ∂f/∂W_l = G_l h_{l−1}ᵀ, ∂f/∂b_l = t·G_l, G_L = I_K, G_{l−1} = (G_l W_l) ⊙ σ'_{l−1}.  For t = 1 and the
    pattern of x itself this is the output Jacobian at x.
    theta : Tensor, shape [P];  x : Tensor, shape [m, w_0];  t : Tensor, shape [m] (None: bias-free layers)
    dsig : σ' of every hidden layer, Tensors of shape [m, w_l]
    returns : Tensor, shape [m, K, P]
    """
    Ws = layout.unflatten(theta[None], model.widths, model.bias)
    m, K = x.shape[0], model.widths[-1]
    hs = [x]
    for l, (W, b) in enumerate(Ws[:-1]):
        z = hs[-1] @ W[0].T
        if model.bias:
            z = torch.addr(z, t, b[0])
        hs.append(z * dsig[l])
    J = theta.new_empty(m, K, theta.shape[0])
    G = torch.eye(K, dtype=theta.dtype, device=theta.device).expand(m, K, K)
    for l, s in reversed(list(enumerate(layout.layer_slices(model.widths, model.bias)))):
        if model.bias:
            torch.mul(G, t[:, None, None], out=J[..., s.bias])
        torch.mul(G.unsqueeze(-1), hs[l][:, None, None, :], out=J[..., s.weight].view(m, K, *s.shape))
        if l > 0:
            G = (G.reshape(m * K, -1) @ Ws[l][0][0]).view(m, K, -1) * dsig[l - 1][:, None, :]
    return J


def pattern_regions(pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(region [n] int64, count [g]): equal rows of the boolean pattern [n, H] share a region id in 0..g−1,
    count the inputs per region.  Each chunk of 62 columns is packed into an integer key; a chunk's ids
    (< n) fold into the previous ones as region·n + id (1-D ``unique`` only: ``unique(dim=0)`` sorts rows,
    ~50× slower here)."""
    n, H = pattern.shape
    region = pattern.new_zeros(n, dtype=torch.int64)
    for c in range(0, H, 62):
        bits = pattern[:, c:c + 62].to(torch.int64)
        key = torch.unique((bits << torch.arange(bits.shape[1], device=bits.device)).sum(1), return_inverse=True)[1]
        region = torch.unique(region * n + key, return_inverse=True)[1] if c else key
    return region, torch.bincount(region, minlength=1)


def reduced_jacobian(model: MLP, theta: torch.Tensor, X: torch.Tensor, residual: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C [m, P], b [m]) with J = U C for a U [n·K, m] with orthonormal columns, b = Uᵀ r (r = ``residual``).

    Regions (inputs sharing σ' on every hidden unit) with more than e = dim x̃ inputs give e·K rows
    T_s V_s (module docstring), from the thin QR of [X̃_s | r_s] whose upper blocks are T_s and U_sᵀ r_s
    (one batched Householder QR over the regions, zero-padded to the largest; zero rows leave R unchanged);
    the other inputs keep their own rows.  So CᵀC = JᵀJ, Cᵀb = Jᵀr and ‖Jδ − r‖² = ‖Cδ − b‖² + ‖r − UUᵀr‖²
    for every δ: J and C share singular values and right singular vectors, and least squares in J and in C
    have the same solutions.  Rows: the reduced regions' (by region, virtual input, output), then the
    other inputs' (by input, output).
    theta : Tensor, shape [P];  X : Tensor, shape [n, w_0];  residual : Tensor, shape [n, K] (or None)
    returns : (C : Tensor, shape [m, P];  b : Tensor, shape [m], None without a residual)
    """
    th = theta[None]
    _, _, dsig = forward_cache(model, th, X)
    dsig = [d[0] for d in dsig]
    n, K = X.shape[0], model.widths[-1]
    e = X.shape[1] + int(model.bias)
    region, count = pattern_regions(torch.cat(dsig, 1) == 1 if dsig else X.new_zeros(n, 0, dtype=torch.bool))
    big = count > e
    reduce = big[region]
    keep = torch.nonzero(~reduce).flatten()
    Xh = torch.cat([X, X.new_ones(n, 1)], 1) if model.bias else X
    g = int(big.sum())
    if g:
        slot = torch.cumsum(big, 0) - 1                                     # region → its place among the reduced
        inside = torch.nonzero(reduce).flatten()
        order = inside[torch.argsort(region[inside], stable=True)]
        reg = slot[region[order]]
        start = torch.searchsorted(reg, torch.arange(g, device=X.device))
        pos = torch.arange(len(order), device=X.device) - start[reg]
        cols = Xh if residual is None else torch.cat([Xh, residual.reshape(n, K)], 1)
        A = X.new_zeros(g, int(count[big].max()), cols.shape[1])
        A[reg, pos] = cols[order]
        T = torch.linalg.qr(A, mode="r")[1][:, :e]                          # [g, e, e (+K)]
        virtual = torch.cat([T[:, :, :e].reshape(g * e, e), Xh[keep]])      # homogeneous inputs
        source = torch.cat([order[start].repeat_interleave(e), keep])       # whose pattern each one takes
    else:
        virtual, source = Xh, torch.arange(n, device=X.device)
    C = virtual_jacobian(model, theta, virtual[:, :X.shape[1]], virtual[:, -1] if model.bias else None,
                         [d[source] for d in dsig]).view(-1, theta.shape[0])
    if residual is None:
        return C, None
    r = residual.reshape(n, K)
    return C, (torch.cat([T[:, :, e:].reshape(-1), r[keep].reshape(-1)]) if g else r.reshape(-1))

__all__ = ["pattern_regions", "virtual_jacobian", "reduced_jacobian"]
