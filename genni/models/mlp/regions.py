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

if TYPE_CHECKING:  # pragma: no cover
    from . import MLP


def _pattern_forward(layers: list, x: torch.Tensor, t: torch.Tensor | None, dsig: list[torch.Tensor]) -> list[torch.Tensor]:
    """[h_0 = x, h_1, …]: h_l = σ'_l ⊙ (W_l h_{l−1} + t·b_l) through ``layers`` ((W_l, b_l) pairs) with the patterns
    σ'_l given (t None: bias-free layers).  x : [m, w_0];  t : [m];  dsig : [m, w_l] per layer"""
    hs = [x]
    for l, (W, b) in enumerate(layers):
        z = hs[-1] @ W.T
        if t is not None:
            z = torch.addr(z, t, b)
        hs.append(z * dsig[l])
    return hs


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
    Ws = layout.unflatten(theta, model.widths, model.bias)
    m, K = x.shape[0], model.widths[-1]
    hs = _pattern_forward(Ws[:-1], x, t, dsig)
    J = theta.new_empty(m, K, theta.shape[0])
    G = torch.eye(K, dtype=theta.dtype, device=theta.device).expand(m, K, K)
    for l, s in reversed(list(enumerate(layout.layer_slices(model.widths, model.bias)))):
        if model.bias:
            torch.mul(G, t[:, None, None], out=J[..., s.bias])
        torch.mul(G.unsqueeze(-1), hs[l][:, None, None, :], out=J[..., s.weight].view(m, K, *s.shape))
        if l > 0:
            G = (G.reshape(m * K, -1) @ Ws[l][0]).view(m, K, -1) * dsig[l - 1][:, None, :]
    return J


def pattern_regions(pattern: torch.Tensor) -> torch.Tensor:
    """region [n] int64: equal rows of the boolean pattern [n, H] share a region id in 0..g−1.  Each chunk of
    62 columns is packed into an integer key; a chunk's ids (< n) fold into the previous ones as region·n + id
    (1-D ``unique`` only: ``unique(dim=0)`` sorts rows, ~50× slower here)."""
    n, H = pattern.shape
    region = pattern.new_zeros(n, dtype=torch.int64)
    for c in range(0, H, 62):
        bits = pattern[:, c:c + 62].to(torch.int64)
        key = torch.unique((bits << torch.arange(bits.shape[1], device=bits.device)).sum(1), return_inverse=True)[1]
        region = torch.unique(region * n + key, return_inverse=True)[1] if c else key
    return region


def _compress(groups: torch.Tensor, Xh: torch.Tensor, extra: torch.Tensor | None, e: int):
    """Per group (``groups`` [k]: an integer id per row of Xh [k, e]) with more than e rows: the R of the thin QR of
    [Xh | extra] over its rows (one batched Householder QR, zero-padded to the largest group).
    returns : (big [k] bool, the rows in big groups;  T [g', e, e + extra columns] (None when no group is big);
    first [g'], a row of each big group, in the order of T)"""
    _, group, count = torch.unique(groups, return_inverse=True, return_counts=True)
    large = count > e
    big = large[group]
    if not bool(large.any()):
        return big, None, None
    place = torch.cumsum(large, 0) - 1
    inside = torch.nonzero(big).flatten()
    order = inside[torch.argsort(group[inside], stable=True)]
    reg = place[group[order]]
    g = int(large.sum())
    start = torch.searchsorted(reg, torch.arange(g, device=Xh.device))
    pos = torch.arange(len(order), device=Xh.device) - start[reg]
    cols = Xh if extra is None else torch.cat([Xh, extra], 1)
    A = Xh.new_zeros(g, int(count[large].max()), cols.shape[1])
    A[reg, pos] = cols[order]
    return big, torch.linalg.qr(A, mode="r")[1][:, :e], order[start]


def reduced_jacobian(model: MLP, theta: torch.Tensor, X: torch.Tensor, dsig: list[torch.Tensor],
                     residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C [m, P], b [m]) with J = U C for a U [n·K, m] with orthonormal columns, b = Uᵀ r (r = ``residual``).

    Regions (inputs sharing σ' on every hidden unit) with more than e = dim x̃ inputs give e·K rows
    T_s V_s (module docstring), from the thin QR of [X̃_s | r_s] whose upper blocks are T_s and U_sᵀ r_s
    (one batched Householder QR over the regions, zero-padded to the largest; zero rows leave R unchanged);
    the other inputs keep their own rows.  So CᵀC = JᵀJ, Cᵀb = Jᵀr and ‖Jδ − r‖² = ‖Cδ − b‖² + ‖r − UUᵀr‖²
    for every δ: J and C share singular values and right singular vectors, and least squares in J and in C
    have the same solutions.  Rows: the reduced regions' (by region, virtual input, output), then the
    other inputs' (by input, output).
    theta : Tensor, shape [P];  X : Tensor, shape [n, w_0];  dsig : σ' of every hidden layer at X, [n, w_l]
    residual : Tensor, shape [n, K] (or None)
    returns : (C : Tensor, shape [m, P];  b : Tensor, shape [m], None without a residual)
    """
    n, K = X.shape[0], model.widths[-1]
    e = X.shape[1] + int(model.bias)
    region = pattern_regions(torch.cat(dsig, 1) == 1 if dsig else X.new_zeros(n, 0, dtype=torch.bool))
    Xh = torch.cat([X, X.new_ones(n, 1)], 1) if model.bias else X
    big, T, first = _compress(region, Xh, None if residual is None else residual.reshape(n, K), e)
    keep = torch.nonzero(~big).flatten()
    if T is not None:
        virtual = torch.cat([T[:, :, :e].reshape(-1, e), Xh[keep]])         # homogeneous inputs
        source = torch.cat([first.repeat_interleave(e), keep])              # whose pattern each one takes
    else:
        virtual, source = Xh, keep
    C = virtual_jacobian(model, theta, virtual[:, :X.shape[1]], virtual[:, -1] if model.bias else None,
                         [d[source] for d in dsig]).view(-1, theta.shape[0])
    if residual is None:
        return C, None
    r = residual.reshape(n, K)
    return C, (torch.cat([T[:, :, e:].reshape(-1), r[keep].reshape(-1)]) if T is not None else r.reshape(-1))


def virtual_unit_rows(model: MLP, theta: torch.Tensor, l: int, j: torch.Tensor, x: torch.Tensor,
                      t: torch.Tensor | None, dsig: list[torch.Tensor], norms: bool = False) -> torch.Tensor:
    """Rows ∂z_lj/∂θ of hidden layer l's units j at virtual homogeneous inputs (x, t) with the patterns σ' of
    the layers before l given: h_0 = x, h_m = σ'_m ⊙ (W_m h_{m−1} + t·b_m); the row holds [h_{l−1}, t] at unit
    j's weights and bias, and g_m ⊗ h_{m−1}, t·g_m at layer m < l (g_{l−1} = W_l[j] ⊙ σ'_{l−1},
    g_{m−1} = (W_mᵀ g_m) ⊙ σ'_{m−1}).  For t = 1 and x's own pattern, the pre-activation's gradient at x.
    theta : Tensor, shape [P];  j : [k] int64;  x : [k, w_0];  t : [k] (None: bias-free layers);  dsig : [k, w_m], m < l
    returns : Tensor, shape [k, P] (``norms``: the rows' squared norms, shape [k], the rows not formed)
    """
    Ws, bs = zip(*layout.unflatten(theta, model.widths, model.bias))
    slices = layout.layer_slices(model.widths, model.bias)
    k = len(x)
    hs = _pattern_forward(list(zip(Ws[:l], bs[:l])), x, t, dsig)
    t2 = t * t if model.bias else None
    if norms:
        out = (hs[l] * hs[l]).sum(1) + (t2 if model.bias else 0.0)
    else:
        out = theta.new_zeros(k, theta.shape[0])
        s, (_, d) = slices[l], slices[l].shape
        at = torch.arange(k, device=x.device)
        out.view(k, -1)[:, s.weight].view(k, -1, d)[at, j] = hs[l]
        if model.bias:
            out[at, s.bias.start + j] = t
    g = Ws[l][j] * dsig[l - 1] if l > 0 else None
    for m in range(l - 1, -1, -1):
        if norms:
            gg = (g * g).sum(1)
            out = out + gg * ((hs[m] * hs[m]).sum(1) + (t2 if model.bias else 0.0))
        else:
            s = slices[m]
            torch.mul(g[:, :, None], hs[m][:, None, :], out=out[:, s.weight].view(k, *s.shape))
            if model.bias:
                torch.mul(g, t[:, None], out=out[:, s.bias])
        if m > 0:
            g = (g @ Ws[m]) * dsig[m - 1]
    return out


def unit_rows(model: MLP, theta: torch.Tensor, X: torch.Tensor, dsig: list[torch.Tensor], below: list[torch.Tensor],
              layer: int, j: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rows C [m, P] with CᵀC = Σ_i ĝ_i ĝ_iᵀ, ĝ_i = g_i/‖g_i‖ the unit-length gradients g_i = ∂z_{layer, j_i}(x_i)/∂θ
    (rows of norm 0 left out), for pairs of one hidden layer.

    On the inputs sharing the patterns of the layers below (``below``: their region ids [n]), g is linear in
    x̃ (module docstring), g(x̃) = V_sᵀ x̃, so a group s of pairs (one unit, one such region) has
    Σ_{i∈s} ĝ_iĝ_iᵀ = V_sᵀ X̃_sᵀ W_s X̃_s V_s with W_s = diag(1/‖g_i‖²): with W_s^½ X̃_s = U_s T_s (thin QR),
    the e rows g(T_s[r]) (:func:`virtual_unit_rows` at the rows of T_s).  Groups of at most e pairs keep their
    rows, as g(x̃_i/‖g_i‖).
    dsig : σ' of every hidden layer at X, [n, w_m];  j, x : [k] units and inputs
    """
    e = X.shape[1] + int(model.bias)
    pat = [d[x] for d in dsig[:layer]]
    one = X.new_ones(len(x))
    n2 = virtual_unit_rows(model, theta, layer, j, X[x], one if model.bias else None, pat, norms=True)
    scale = torch.where(n2 > 0, n2, torch.ones_like(n2)).rsqrt() * (n2 > 0)
    Xh = (torch.cat([X[x], one[:, None]], 1) if model.bias else X[x]) * scale[:, None]
    big, T, first = _compress(j * (int(below[layer].max()) + 1) + below[layer][x], Xh, None, e)
    if T is None:
        v, src, unit = Xh, torch.arange(len(x), device=X.device), j
    else:
        small = torch.nonzero(~big).flatten()
        v = torch.cat([T.reshape(-1, e), Xh[small]])
        src = torch.cat([first.repeat_interleave(e), small])
        unit = j[src]
    return virtual_unit_rows(model, theta, layer, unit, v[:, :X.shape[1]], v[:, -1] if model.bias else None,
                             [d[x[src]] for d in dsig[:layer]])

__all__ = ["pattern_regions", "virtual_jacobian", "reduced_jacobian", "virtual_unit_rows", "unit_rows"]
