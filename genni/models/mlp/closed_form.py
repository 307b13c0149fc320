"""The MLP's closed forms: the batched forward pass over many parameter vectors, the exact output
Jacobian, J·v and Jᵀ·u products, diag(JᵀJ), the hidden pre-activations' Jacobian (dense, and as
products at the relu kinks), dead-unit handling and initialisation.

Every function evaluates N parameter vectors at once (θ of shape ``[N, P]``, the layout of
:mod:`genni.models.mlp.layout`) as one tensor program of batched matrix products; each is checked
against ``torch.func`` on the equivalent ``torch.nn.Sequential`` (the model contract).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..activations import activate, activate_with_derivative
from ..base import Kinks
from . import layout, regions

if TYPE_CHECKING:  # pragma: no cover
    from . import MLP


def _as_batch(theta: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if theta.dim() == 1:
        return theta.unsqueeze(0), True
    if theta.dim() != 2:
        raise ValueError(f"theta must have shape [P] or [N, P], got {tuple(theta.shape)}")
    return theta, False


def _linear(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # h : [n, in] (shared by all N) or [N, n, in]; W : [N, out, in]; b : [N, out] -> [N, n, out]
    return torch.baddbmm(b.unsqueeze(1), h.expand(W.shape[0], *h.shape[-2:]), W.transpose(1, 2))


def forward(model: MLP, theta: torch.Tensor, X: torch.Tensor, *, layers: bool = False,
            preactivations: bool = False):
    """Outputs of N networks on the same inputs.

    theta : Tensor, shape [N, P] (or [P], giving outputs of shape [n, w_L])
    X : Tensor, shape [n, w_0]
    returns : Tensor, shape [N, n, w_L]; with ``layers=True`` also the list of
        post-activation representations ``[X, h_1, ..., h_{L-1}, f]``, each [N, n, w_l];
        with ``preactivations=True`` as well, every hidden pre-activation z_l = W_l h_{l−1} + b_l
        goes before its h_l: ``[X, z_1, h_1, ..., z_{L-1}, h_{L-1}, f]`` (names from
        :func:`layer_names`)
    """
    th, single = _as_batch(theta)
    h = X
    reps = [X.expand(th.shape[0], *X.shape)] if layers else None
    Ws = layout.unflatten(th, model.widths, model.bias)
    for i, (W, b) in enumerate(Ws):
        z = _linear(h, W, b)
        h = z if i == len(Ws) - 1 else activate(model.activation, z, model.negative_slope)
        if layers:
            if preactivations and i < len(Ws) - 1:
                reps.append(z)
            reps.append(h)
    out = h[0] if single else h
    if layers:
        return out, ([r[0] for r in reps] if single else reps)
    return out


def forward_combination(model: MLP, stack: torch.Tensor, coeffs: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Outputs of the networks θ_i = Σ_j coeffs[i, j] · stack[j] (e.g. points of an affine
    subspace: stack = [origin; basis], coeffs = [1, a_1, …, a_k]) without forming each θ_i.

    Every layer's parameters are linear in θ, so W_l(θ_i) = Σ_j c_ij W_l^j.  The first layer
    uses that its input is shared: z_1(θ_i) = Σ_j c_ij (X W_1^jᵀ + b_1^j), with the J products
    computed once; each later layer forms its m weight matrices by one [m, J]·[J, in·out]
    product and applies them in a batched GEMM.  Equal to :func:`forward` at θ_i up to
    float rounding (the sums are taken in a different order).

    stack : Tensor, shape [J, P];  coeffs : Tensor, shape [m, J];  X : Tensor, shape [n, w_0]
    returns : Tensor, shape [m, n, w_L]
    """
    J, m = stack.shape[0], coeffs.shape[0]
    if coeffs.dim() != 2 or coeffs.shape[1] != J:
        raise ValueError(f"coeffs must have shape [m, {J}], got {tuple(coeffs.shape)}")
    layers = layout.unflatten(stack, model.widths, model.bias)
    W1, b1 = layers[0]
    z1 = torch.matmul(X, W1.transpose(1, 2)) + b1.unsqueeze(1)  # [J, n, w_1]
    z = torch.matmul(coeffs, z1.reshape(J, -1)).reshape(m, X.shape[0], -1)
    for W, b in layers[1:]:
        h = activate(model.activation, z, model.negative_slope)
        Wt = torch.matmul(coeffs, W.transpose(1, 2).reshape(J, -1)).reshape(m, W.shape[2], W.shape[1])
        z = torch.baddbmm(torch.matmul(coeffs, b).unsqueeze(1), h, Wt)
    return z


def layer_names(model: MLP, preactivations: bool = False) -> list[str]:
    """Names of the representations :func:`forward` returns with ``layers=True``:
    ``input``, ``z1``/``h1``, …, ``output``."""
    hidden = range(1, len(model.widths) - 1)
    mid = [n for l in hidden for n in ((f"z{l}", f"h{l}") if preactivations else (f"h{l}",))]
    return ["input", *mid, "output"]


def jacobian(model: MLP, theta: torch.Tensor, X: torch.Tensor, out: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and their exact Jacobian with respect to θ, for N networks at once.

    With z_l = W_l h_{l-1} + b_l, h_l = σ(z_l), f = z_L, the sensitivity of output k,
    G_l = ∂f_k/∂z_l, obeys G_L = e_k and G_{l-1} = (W_lᵀ G_l) ⊙ σ'(z_{l-1}); then
    ∂f_k/∂W_l = G_l h_{l-1}ᵀ (an outer product) and ∂f_k/∂b_l = G_l.

    theta : Tensor, shape [N, P]
    X : Tensor, shape [n, w_0]
    out : Tensor, shape [N, n, w_L, P], contiguous, or None: where J is written
    returns : (f, J) with f : shape [N, n, w_L] and J : shape [N, n, w_L, P]
    """
    th, single = _as_batch(theta)
    N, n, K = th.shape[0], X.shape[0], model.widths[-1]
    Ws, hs, dsig = forward_cache(model, th, X)
    h = _linear(hs[-1], *Ws[-1])
    J = th.new_empty(N, n, K, th.shape[1]) if out is None else out
    G = torch.eye(K, dtype=th.dtype, device=th.device).expand(N, n, K, K)
    for l, s in reversed(list(enumerate(layout.layer_slices(model.widths, model.bias)))):
        if model.bias:
            J[..., s.bias] = G
        # the outer products G_l h_{l-1}ᵀ written straight into J's columns of W_l
        torch.mul(G.unsqueeze(-1), hs[l].unsqueeze(2).unsqueeze(2), out=J[..., s.weight].view(N, n, K, *s.shape))
        if l > 0:  # G_{l-1} = (G_l W_l) ⊙ σ'(z_{l-1}): one [n·K, w_l]·[w_l, w_{l-1}] product per network
            G = torch.bmm(G.reshape(N, n * K, -1), Ws[l][0]).view(N, n, K, -1) * dsig[l - 1].unsqueeze(2)
    if single:
        return h[0], J[0]
    return h, J


def preactivation_jacobian(model: MLP, theta: np.ndarray, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Every hidden pre-activation z_lj(x) on the inputs and its gradient in θ.

    Hidden layer l's pre-activations are the outputs of the truncated network widths[:l+2] (no
    activation on its last layer), whose parameters are a prefix of θ, so the closed-form output
    Jacobian of :func:`jacobian` gives them.
    theta : [P];  X : [n, w_0]
    returns : (z : [n·H] (input-major within each layer, layers concatenated), G : [n·H, P])
    """
    zs, Gs = [], []
    th = torch.as_tensor(theta, dtype=torch.float64)
    for l in range(len(model.hidden_widths)):
        sub = replace(model, widths=model.widths[: l + 2])
        f, J = jacobian(sub, th[: sub.n_params][None], X)
        zs.append(f[0].reshape(-1).numpy())
        G = np.zeros((J.shape[1] * J.shape[2], model.n_params))
        G[:, : sub.n_params] = J[0].reshape(-1, sub.n_params).numpy()
        Gs.append(G)
    return np.concatenate(zs), np.concatenate(Gs)


def kinks(model: MLP, theta: torch.Tensor, X: torch.Tensor) -> Kinks:
    """Every hidden pre-activation z_lj(x) at θ and products with its Jacobian G = ∂z/∂θ, without forming G.

    Forward mode (``jvp``): dz_l = dW_l h_{l−1} + db_l + W_l dh_{l−1}, dh_l = σ'(z_l) ⊙ dz_l, dh_0 = 0,
    O(n·P) per product.  Rows (``rows``): the pair (l, j, x)'s gradient by reverse mode from the cotangent
    e_j at layer l: g_l = e_j, ∂z/∂W_m = g_m h_{m−1}(x)ᵀ, ∂z/∂b_m = g_m, g_{m−1} = (W_mᵀ g_m) ⊙ σ'(z_{m−1}(x)),
    O(P) per row asked for.  Both in :func:`preactivation_jacobian`'s order (input-major within each hidden
    layer, layers concatenated).

    theta : Tensor, shape [P];  X : Tensor, shape [n, w_0]
    returns : :class:`~genni.models.base.Kinks` with z of shape [n·H]
    """
    th = torch.as_tensor(theta, dtype=torch.float64, device=X.device)[None]
    Ws, hs, dsig = forward_cache(model, th, X)
    n, hidden = X.shape[0], model.hidden_widths
    zs = torch.cat([_linear(hs[l], *Ws[l])[0].reshape(-1) for l in range(len(hidden))])
    offsets = np.cumsum([0] + [n * w for w in hidden])
    slices = layout.layer_slices(model.widths, model.bias)

    def jvp_(v: torch.Tensor) -> torch.Tensor:
        dWs = layout.unflatten(v.reshape(1, -1), model.widths, model.bias)
        out, dh = [], None
        for l in range(len(hidden)):
            dz = _linear(hs[l], *dWs[l])
            if dh is not None:
                dz = dz + torch.bmm(dh, Ws[l][0].transpose(1, 2))
            out.append(dz.reshape(-1))
            dh = dz * dsig[l]
        return torch.cat(out)

    def pairs(idx: torch.Tensor):
        """Per hidden layer l with pairs in idx: (l, positions in idx, inputs x, units j)."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=X.device)
        for l, w in enumerate(hidden):
            sel = torch.nonzero((idx >= int(offsets[l])) & (idx < int(offsets[l + 1]))).flatten()
            if len(sel):
                local = idx[sel] - int(offsets[l])
                yield l, sel, local // w, local % w

    def prefix(l: int, x: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """∂z_lj(x)/∂(parameters of the layers before l) [k, P_<l], by reverse mode from e_j at layer l."""
        a = th.new_empty(len(x), slices[l].weight.start)
        g = Ws[l][0][0][j] * dsig[l - 1][0, x] if l > 0 else None
        for m in range(l - 1, -1, -1):
            s = slices[m]
            a[:, s.weight] = (g[:, :, None] * hs[m][0, x][:, None, :]).reshape(len(x), -1)
            if model.bias:
                a[:, s.bias] = g
            if m > 0:
                g = (g @ Ws[m][0][0]) * dsig[m - 1][0, x]
        return a

    def own(l: int, x: torch.Tensor) -> torch.Tensor:
        """∂z_lj(x)/∂(row j of layer l's weight, and its bias) = [h_{l−1}(x), 1] [k, w_{l−1} (+1)]."""
        h = hs[l][0, x]
        return torch.cat([h, h.new_ones(len(x), 1)], 1) if model.bias else h

    def own_index(l: int) -> torch.Tensor:
        """θ's indices of row j of layer l's weight and its bias, [w_l, w_{l−1} (+1)]."""
        s, (w, d) = slices[l], slices[l].shape
        W_idx = s.weight.start + torch.arange(w * d, device=X.device).reshape(w, d)
        return torch.cat([W_idx, (s.bias.start + torch.arange(w, device=X.device))[:, None]], 1) if model.bias else W_idx

    def rows(idx: torch.Tensor) -> torch.Tensor:
        out = th.new_zeros(len(idx), th.shape[1])
        for l, sel, x, j in pairs(idx):
            R = th.new_zeros(len(sel), th.shape[1])
            p = slices[l].weight.start
            R[:, :p] = prefix(l, x, j)
            R.scatter_(1, own_index(l)[j], own(l, x))
            out[sel] = R
        return out

    below: list[torch.Tensor] = []  # per hidden layer, the region ids of the patterns of the layers below

    def unit_rows(idx: torch.Tensor) -> torch.Tensor:
        """Compressed unit rows per hidden layer (:func:`.regions.unit_rows`), layers concatenated."""
        d = [s[0] for s in dsig]
        if not below:
            below.extend(regions.pattern_regions(torch.cat(d[:l], 1) == 1 if l else X.new_zeros(n, 0, dtype=torch.bool))
                         for l in range(len(hidden)))
        out = [regions.unit_rows(model, th[0], X, d, below, l, j, x) for l, _, x, j in pairs(idx)]
        return torch.cat(out) if out else th.new_zeros(0, th.shape[1])

    return Kinks(zs, jvp_, rows, unit_rows)


def dead_mask(model: MLP, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """dead[b, u] for every hidden unit u (layers concatenated): z_u(x) ≤ 0 on all of X."""
    Ws = layout.unflatten(theta, model.widths, model.bias)
    h, out = X, []
    for W, b in Ws[:-1]:
        z = torch.baddbmm(b.unsqueeze(1), h.expand(W.shape[0], *h.shape[-2:]), W.transpose(1, 2))
        out.append(~(z > 0).any(1))
        h = torch.relu(z)
    return torch.cat(out, 1)


def revive(model: MLP, theta: torch.Tensor, dead: torch.Tensor, gens: list) -> torch.Tensor:
    """θ with every dead unit re-drawn (incoming row and bias) and its outgoing column zeroed."""
    theta = theta.clone()
    slices = layout.layer_slices(model.widths, model.bias)
    for b, g in enumerate(gens):
        if g is None:
            continue
        fresh = init_theta(model, 1, g)[0].to(theta.device)
        off = 0
        for l, w in enumerate(model.hidden_widths):
            s_in, s_out = slices[l], slices[l + 1]
            Wi = theta[b, s_in.weight].view(s_in.shape)
            Wo = theta[b, s_out.weight].view(s_out.shape)
            Fi = fresh[s_in.weight].view(s_in.shape)
            for j in torch.nonzero(dead[b, off:off + w]).flatten().tolist():
                Wi[j] = Fi[j]
                if model.bias:
                    theta[b, s_in.bias.start + j] = fresh[s_in.bias.start + j]
                Wo[:, j] = 0.0
            off += w
    return theta


def forward_cache(model: MLP, th: torch.Tensor, X: torch.Tensor):
    """Layers (W_l, b_l), inputs h_{l−1} of every layer and σ'(z_l) of every hidden layer."""
    Ws = layout.unflatten(th, model.widths, model.bias)
    hs, dsig, h = [X.expand(th.shape[0], *X.shape)], [], X
    for W, b in Ws[:-1]:
        h, d = activate_with_derivative(model.activation, _linear(h, W, b), model.negative_slope)
        hs.append(h)
        dsig.append(d)
    return Ws, hs, dsig


def jvp(model: MLP, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor, cache=None, outputs: bool = False):
    """J·v without forming J: the directional derivative of the outputs along v (forward mode,
    layer by layer: dz_l = dW_l h_{l−1} + W_l dh_{l−1} + db_l, dh_l = σ'(z_l) ⊙ dz_l, dh_0 = 0).

    theta, v : Tensor, shape [N, P];  X : Tensor, shape [n, w_0]
    cache : :func:`forward_cache` of (θ, X), reused across many products at one θ
    outputs : also the outputs f (from the same forward pass)
    returns : Tensor, shape [N, n, w_L] (``outputs``: (f, J·v), both of that shape)
    """
    Ws, hs, dsig = cache or forward_cache(model, theta, X)
    if outputs:
        return _linear(hs[-1], *Ws[-1]), jvp(model, theta, X, v, (Ws, hs, dsig))
    dWs = layout.unflatten(v, model.widths, model.bias)
    dh = None
    for l, ((W, _), (dW, db)) in enumerate(zip(Ws, dWs)):
        dz = _linear(hs[l], dW, db)
        if dh is not None:
            dz = dz + torch.bmm(dh, W.transpose(1, 2))
        dh = dz * dsig[l] if l < len(Ws) - 1 else dz
    return dh


def vjp(model: MLP, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor, cache=None) -> torch.Tensor:
    """Jᵀ·u without forming J (reverse mode, layer by layer: G_L = u, ∂/∂W_l = Σ_x G_l h_{l−1}ᵀ,
    ∂/∂b_l = Σ_x G_l, G_{l−1} = (G_l W_l) ⊙ σ'(z_{l−1})).

    theta : Tensor, shape [N, P];  X : Tensor, shape [n, w_0];  u : Tensor, shape [N, n, w_L]
    cache : :func:`forward_cache` of (θ, X)
    returns : Tensor, shape [N, P]
    """
    Ws, hs, dsig = cache or forward_cache(model, theta, X)
    out = theta.new_zeros(theta.shape)
    G = u
    for l, s in reversed(list(enumerate(layout.layer_slices(model.widths, model.bias)))):
        out[:, s.weight] = torch.bmm(G.transpose(1, 2), hs[l]).reshape(theta.shape[0], -1)
        if model.bias:
            out[:, s.bias] = G.sum(1)
        if l > 0:
            G = torch.bmm(G, Ws[l][0]) * dsig[l - 1]
    return out


def jtj_diagonal(model: MLP, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """diag(JᵀJ) without forming J: for W_l[i, j], Σ_x Σ_k G_l[x, k, i]² h_{l−1}[x, j]²; for b_l[i],
    Σ_x Σ_k G_l[x, k, i]² (G_l[x, k] = ∂f_k(x)/∂z_l, one row per output k).

    theta : Tensor, shape [N, P];  X : Tensor, shape [n, w_0]
    returns : Tensor, shape [N, P]
    """
    Ws, hs, dsig = forward_cache(model, theta, X)
    N, n, K = theta.shape[0], X.shape[0], model.widths[-1]
    out = theta.new_zeros(theta.shape)
    G = torch.eye(K, dtype=theta.dtype, device=theta.device).expand(N, n, K, K)  # [N, n, K, w_l]
    for l, s in reversed(list(enumerate(layout.layer_slices(model.widths, model.bias)))):
        g2 = (G * G).sum(2)  # [N, n, w_l]
        out[:, s.weight] = torch.bmm(g2.transpose(1, 2), hs[l] * hs[l]).reshape(N, -1)
        if model.bias:
            out[:, s.bias] = g2.sum(1)
        if l > 0:
            G = torch.matmul(G, Ws[l][0].unsqueeze(1)) * dsig[l - 1].unsqueeze(2)
    return out


def init_theta(model: MLP, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Random θ as ``torch.nn.Linear`` initialises them, times ``scale``.

    Every weight and bias of layer l is uniform on ±scale/√w_{l-1} (float64).
    returns : Tensor, shape [n, P]
    """
    theta = torch.empty(n, model.n_params, dtype=torch.float64)
    for s in layout.layer_slices(model.widths, model.bias):
        bound = scale / math.sqrt(s.shape[1])
        for sl in (s.weight, s.bias):
            theta[:, sl] = (torch.rand(n, sl.stop - sl.start, generator=generator, dtype=torch.float64) * 2 - 1) * bound
    return theta


__all__ = ["forward", "forward_combination", "layer_names", "jacobian", "preactivation_jacobian", "kinks", "dead_mask", "revive",
           "forward_cache", "jvp", "vjp", "jtj_diagonal", "init_theta"]
