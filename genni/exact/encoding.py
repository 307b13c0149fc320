"""The MILP encoding of two relu / leaky-relu MLPs on one box, and the paired bounds that make it tight.

One network.  With z = W_l h_{l−1} + b_l and a = σ(z) per hidden unit (σ(z) = max(z, αz), α = 0 for relu,
the negative slope for leaky relu, α ≤ 1), bounds l ≤ z ≤ u over the box are propagated layer by layer
(interval arithmetic on the affine expressions below, optionally tightened by one LP per unit).  A unit
with l ≥ 0 is linear (a = z), one with u ≤ 0 too (a = αz); only a unit whose bounds straddle 0 gets a
variable a and a binary δ (δ = 1: active) with the big-M constraints

    relu:        a ≥ z,  a ≥ 0,  a ≤ z − l(1 − δ),  a ≤ u δ,
    leaky relu:  a ≥ z,  a ≥ αz, a ≤ z + (1 − α)(−l)(1 − δ),  a ≤ αz + (1 − α) u δ,

which force a = σ(z) exactly when δ ∈ {0, 1}.  The pre-activations z and the linear units' a are affine
in the remaining variables v = (x, then one (a, δ) pair per unstable unit) and are substituted, so those
are the only variables; the outputs are f = F v + g.

Two networks.  Each hidden unit j of θ is paired with a unit π(j) of θ* of the same layer and a scale
c_j > 0 (the assignment that best fits z_j ≈ c_j z*_π(j) on samples: for a permuted, positively rescaled
copy it recovers the symmetry).  Any pairing gives sound bounds on D_j = z_j − c_j z*_π(j), propagated
layer by layer from the previous layer's h_m − c_m h*_π(m) (σ(z) − σ(z') = s (z − z') with s between
α and 1, and σ(c z*) = c σ(z*)); they tighten θ's bounds (z_j ∈ c_j [l*, u*] + D_j) and add the cuts
h_j − c_j h*_π(j) ∈ [lo_j, hi_j] to the joint MILP, and bound Δ = f_θ − f_θ* directly at the output.  For
near-copies these cuts make the relaxation nearly as tight as the difference itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import csr_matrix, hstack, vstack

from .domain import Domain
from .pieces import Network


@contextlib.contextmanager
def quiet_solver():
    """Point file descriptor 1 at /dev/null while HiGHS runs: it sometimes prints progress lines to the C-level
    stdout whatever ``disp`` says, and ``genni ... --json`` must print JSON alone."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real stdout (an embedded interpreter): nothing to guard
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(frozen=True)
class Encoding:
    """One network's MILP encoding on its own variables v = (x [d], then (a, δ) per unstable unit).

    A [r, d + n], lo [r], hi [r] : rows lo ≤ A v ≤ hi;  lb, ub [n], integrality [n] : the own variables;
    F [K, d + n], g [K] : the outputs f = F v + g;  n_binaries : unstable units;  posts : per layer
    l = 0 … L−1 the post-activations h_l = E v + e as (E [w_l, d + n], e [w_l]) (h_0 = x);  zbounds : per
    hidden layer the bounds (l, u) of z used by the encoding;  cuts (encoded against a partner θ* only):
    (C [r', d + n], C_ref [r', d + n_ref], lo [r'], hi [r']) with lo ≤ C v + C_ref v_ref ≤ hi;  out : the
    paired bound (lo [K], hi [K]) on Δ = f − f_ref
    """

    A: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    F: np.ndarray
    g: np.ndarray
    n_binaries: int
    posts: tuple
    zbounds: tuple
    cuts: tuple | None = None
    out: tuple | None = None


def interval(Z: np.ndarray, c: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range of Z v + c over lb ≤ v ≤ ub, exactly (one affine function per row): (lo [w], hi [w])."""
    Zp, Zn = np.maximum(Z, 0.0), np.minimum(Z, 0.0)
    return c + Zp @ lb + Zn @ ub, c + Zp @ ub + Zn @ lb


def _pad(M: np.ndarray, n: int) -> np.ndarray:
    return np.pad(M, ((0, 0), (0, n - M.shape[1])))


def _rows(rows: list, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (coefficients, lo, hi) with coefficient vectors of growing length, as (A [r, n], lo [r], hi [r])."""
    A = np.zeros((len(rows), n))
    for i, (r, _, _) in enumerate(rows):
        A[i, :r.size] = r
    return A, np.array([r[1] for r in rows], dtype=np.float64), np.array([r[2] for r in rows], dtype=np.float64)


def tighten_bounds(Z, c, l, u, rows, lb, ub):
    """Bounds of z = Z v + c over the linear relaxation of the rows so far (δ ∈ [0, 1]), one LP each way
    per unit that the bounds so far leave straddling 0, padded outwards by a tolerance margin."""
    A, lo, hi = _rows(rows, lb.size)
    cons = [LinearConstraint(A, lo, hi)]
    bounds, integ = Bounds(lb, ub), np.zeros(lb.size)
    l, u = l.copy(), u.copy()
    for j in np.flatnonzero((l < 0) & (u > 0)):
        margin = 1e-6 * (u[j] - l[j]) + 1e-9
        for sign in (1.0, -1.0):
            with quiet_solver():
                res = milp(sign * Z[j], bounds=bounds, constraints=cons, integrality=integ)
            if res.status != 0:
                continue
            if sign > 0:
                l[j] = max(l[j], res.fun + c[j] - margin)
            else:
                u[j] = min(u[j], -res.fun + c[j] + margin)
    return l, u


def match_layer(Z: np.ndarray, Z_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair each unit j of one layer with a unit π(j) of the reference's, z_j ≈ c_j z*_π(j) (c_j > 0) on the
    samples: the assignment minimising the least-squares residuals.  Z, Z_ref : [m, w];  returns (π [w], c [w])."""
    num, den = Z.T @ Z_ref, (Z_ref * Z_ref).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        C = num / den[None]
        res = np.sqrt(np.maximum((Z * Z).sum(0)[:, None] - C * num, 0.0)) / (np.linalg.norm(Z, axis=0)[:, None] + 1e-300)
    valid = (den[None] > 0) & np.isfinite(C) & (C > 0)
    cost = np.where(valid, np.minimum(res, 1.0), 2.0)
    _, pi = linear_sum_assignment(cost)
    c = np.where(valid[np.arange(len(pi)), pi], C[np.arange(len(pi)), pi], 1.0)
    return pi, c


def paired_bounds(W, b, W_ref, b_ref, pi, c, pi_prev, c_prev, hd_lo, hd_hi, E_ref, e_ref, lb_ref, ub_ref):
    """Bounds on D_j = z_j − c_j z*_π(j) for one layer (W, b of θ; W_ref, b_ref of θ*):

    D_j = Σ_m W_jm (h_m − c'_m h*_π'(m)) + Σ_i R_ji h*_i + (b_j − c_j b*_π(j)),
    R = W diag(c') P' − diag(c) P W_ref, with h − c' h*_π' ∈ [hd_lo, hd_hi] from the layer before and
    h* = E_ref v_ref + e_ref.  π = identity, c = 1 at the output."""
    R = np.zeros((W.shape[0], W_ref.shape[1]))
    R[:, pi_prev] = W * c_prev[None]
    R -= c[:, None] * W_ref[pi]
    t1_lo, t1_hi = interval(W, np.zeros(W.shape[0]), hd_lo, hd_hi)
    t2_lo, t2_hi = interval(R @ E_ref, R @ e_ref + b - c * b_ref[pi], lb_ref, ub_ref)
    lo, hi = t1_lo + t2_lo, t1_hi + t2_hi
    pad = 1e-12 * (np.abs(lo) + np.abs(hi) + np.abs(W) @ np.maximum(np.abs(hd_lo), np.abs(hd_hi))
                   + np.abs(R @ E_ref) @ np.maximum(np.abs(lb_ref), np.abs(ub_ref)) + np.abs(b)) + 1e-300
    return lo - pad, hi + pad


def encode(net: Network, domain: Domain, tighten: bool, ref: Encoding | None = None, ref_net: Network | None = None,
            pairs: list | None = None) -> Encoding:
    """The big-M encoding of ``net`` on ``domain`` (see the module's docstring); against a partner (``ref``, its
    encoding; ``ref_net``; ``pairs`` = [(π, c)] per hidden layer) also the paired bounds and cuts."""
    d, alpha = net.in_dim, float(net.alpha)
    E, e = np.eye(d), np.zeros(d)  # h_{l−1} = E v + e
    lb, ub = domain.lo.copy(), domain.hi.copy()
    integ: list[int] = [0] * d
    rows: list[tuple[np.ndarray, float, float]] = []
    cut_rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
    posts, zbounds, n_bin = [(E, e)], [], 0
    if ref is not None:
        lb_ref = np.concatenate([domain.lo, ref.lb])
        ub_ref = np.concatenate([domain.hi, ref.ub])
        pi_prev, c_prev, hd_lo, hd_hi = np.arange(d), np.ones(d), np.zeros(d), np.zeros(d)
    for li, (W, b) in enumerate(net.layers[:-1]):
        Z, c = W @ E, W @ e + b
        l, u = interval(Z, c, lb, ub)
        if tighten and len(rows) > 0:
            l, u = tighten_bounds(Z, c, l, u, rows, lb, ub)
        if ref is not None:
            pi, cs = pairs[li]
            d_lo, d_hi = paired_bounds(W, b, *ref_net.layers[li], pi, cs, pi_prev, c_prev, hd_lo, hd_hi,
                                 *ref.posts[li], lb_ref, ub_ref)
            l_ref, u_ref = (v[pi] for v in ref.zbounds[li])
            l, u = np.maximum(l, cs * l_ref + d_lo), np.minimum(u, cs * u_ref + d_hi)
            u = np.maximum(u, l)
        zbounds.append((l, u))
        n0 = E.shape[1]
        unstable = np.flatnonzero((l < 0) & (u > 0)) if alpha != 1.0 else np.zeros(0, int)
        n = n0 + 2 * unstable.size
        Z = _pad(Z, n)
        slope = np.where(l >= 0, 1.0, alpha)  # stable units: a = z or a = αz
        E_new, e_new = slope[:, None] * Z, slope * c
        new_lb, new_ub = [], []
        for i, j in enumerate(unstable):
            ia, idl = n0 + 2 * i, n0 + 2 * i + 1
            lj, uj, z = l[j], u[j], Z[j]
            ea, ed = np.zeros(n), np.zeros(n)
            ea[ia], ed[idl] = 1.0, 1.0
            rows.append((ea - z, c[j], np.inf))                                   # a ≥ z
            if alpha != 0.0:
                rows.append((ea - alpha * z, alpha * c[j], np.inf))               # a ≥ αz
            m_off = (1.0 - alpha) * (-lj)
            rows.append((ea - z + m_off * ed, -np.inf, c[j] + m_off))             # a ≤ z + (1−α)(−l)(1−δ)
            rows.append((ea - alpha * z - (1.0 - alpha) * uj * ed, -np.inf, alpha * c[j]))  # a ≤ αz + (1−α)uδ
            new_lb += [min(alpha * lj, 0.0), 0.0]
            new_ub += [max(uj, alpha * lj), 1.0]
            integ += [0, 1]
            E_new[j], e_new[j] = ea, 0.0
        lb, ub = np.concatenate([lb, new_lb]), np.concatenate([ub, new_ub])
        E, e = E_new, e_new
        posts.append((E, e))
        n_bin += unstable.size
        if ref is not None:
            # h_j − c_j h*_π(j) = σ(z_j) − σ(c_j z*_π(j)) = s·D_j for a slope s between α and 1
            hd_lo = np.minimum.reduce([d_lo, d_hi, alpha * d_lo, alpha * d_hi])
            hd_hi = np.maximum.reduce([d_lo, d_hi, alpha * d_lo, alpha * d_hi])
            active, inactive = (l >= 0) & (l_ref >= 0), (u <= 0) & (u_ref <= 0)
            hd_lo = np.where(active, d_lo, np.where(inactive, np.minimum(alpha * d_lo, alpha * d_hi), hd_lo))
            hd_hi = np.where(active, d_hi, np.where(inactive, np.maximum(alpha * d_lo, alpha * d_hi), hd_hi))
            E_ref, e_ref = ref.posts[li + 1]
            for j in range(W.shape[0]):
                k = pi[j]
                cut_rows.append((E[j], -cs[j] * E_ref[k], hd_lo[j] - e[j] + cs[j] * e_ref[k],
                                 hd_hi[j] - e[j] + cs[j] * e_ref[k]))
            pi_prev, c_prev = pi, cs
    W, b = net.layers[-1]
    n = E.shape[1]
    A, lo, hi = _rows(rows, n)
    cuts = out = None
    if ref is not None:
        K = W.shape[0]
        out = paired_bounds(W, b, *ref_net.layers[-1], np.arange(K), np.ones(K), pi_prev, c_prev, hd_lo, hd_hi,
                      *ref.posts[-1], lb_ref, ub_ref)
        if cut_rows:
            C, c_lo, c_hi = _rows([(r, lo, hi) for r, _, lo, hi in cut_rows], n)
            cuts = (C, np.vstack([r for _, r, _, _ in cut_rows]), c_lo, c_hi)
    posts = tuple((_pad(P, n), q) for P, q in posts)
    return Encoding(A, lo, hi, lb[d:], ub[d:], np.array(integ[d:], dtype=np.int64), W @ E, W @ e + b, n_bin,
                     posts, tuple(zbounds), cuts, out)


def pair_units(net: Network, ref: Network, X: np.ndarray) -> list:
    """[(π, c)] per hidden layer, from the pre-activations of both networks at the rows of X [m, d]."""
    Z, Z_ref = net.preactivations(X)[0], ref.preactivations(X)[0]
    cuts = np.cumsum([W.shape[0] for W, _ in net.layers[:-1]])[:-1]
    return [match_layer(a, b) for a, b in zip(np.split(Z, cuts, axis=1), np.split(Z_ref, cuts, axis=1))]


def joint(enc: Encoding, ref: Encoding, d: int):
    """Both encodings on v = (x, θ's variables, θ*'s variables): (A csr, lo, hi, lb, ub, integrality, G, g₀)
    with Δ = f_θ − f_θ* = G v + g₀."""
    n1, n2 = enc.lb.size, ref.lb.size
    blocks = [hstack([csr_matrix(enc.A), csr_matrix((enc.A.shape[0], n2))]),
              hstack([csr_matrix(ref.A[:, :d]), csr_matrix((ref.A.shape[0], n1)), csr_matrix(ref.A[:, d:])])]
    lo, hi = [enc.lo, ref.lo], [enc.hi, ref.hi]
    if enc.cuts is not None:
        C, C_ref, c_lo, c_hi = enc.cuts
        blocks.append(csr_matrix(np.hstack([C[:, :d] + C_ref[:, :d], C[:, d:], C_ref[:, d:]])))
        lo.append(c_lo)
        hi.append(c_hi)
    G = np.hstack([enc.F[:, :d] - ref.F[:, :d], enc.F[:, d:], -ref.F[:, d:]])
    return (vstack(blocks).tocsr(), np.concatenate(lo), np.concatenate(hi),
            np.concatenate([enc.lb, ref.lb]), np.concatenate([enc.ub, ref.ub]),
            np.concatenate([enc.integrality, ref.integrality]), G, enc.g - ref.g)


__all__ = ["Encoding", "encode", "interval", "joint", "pair_units"]
