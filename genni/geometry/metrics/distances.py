"""Distances between representations: one pair (:func:`distance`), all pairs of many (:func:`pairwise`), and
the angle between two Gram matrices (:func:`gram_angle`).

Angles are computed as 2·atan2(‖a − b‖, ‖a + b‖) from explicitly formed differences of aligned,
normalised points (for CKA from the R factor of a QR of [X̂, Ŷ]), not as arccos of a cosine, so that a
distance of zero comes out at ≈1e-15 rather than ≈1e-8.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .points import factor, half_angle, normalise
from .registry import DEFAULT_FLOOR, registered

__all__ = ["distance", "pairwise", "gram_angle", "batch_distance"]


def _orth_kernel(Fx: np.ndarray, Fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For stacks Fx [B, n, dx], Fy [B, n, dy]: (‖Fx − Fy Q‖, ‖Fx + Fy Q‖) with Q the optimal
    orthogonal alignment after zero-padding both to width max(dx, dy)."""
    B, _, dx = Fx.shape
    dy = Fy.shape[2]
    d = max(dx, dy)
    M = np.zeros((B, d, d))
    M[:, :dy, :dx] = np.matmul(Fy.transpose(0, 2, 1), Fx)
    U, _, Vt = np.linalg.svd(M)
    YQ = np.matmul(Fy, np.matmul(U[:, :dy, :], Vt))  # [B, n, d]
    head, tail = YQ[..., :dx], (YQ[..., dx:] ** 2).sum(axis=(1, 2))
    c = np.sqrt(((Fx - head) ** 2).sum(axis=(1, 2)) + tail)
    a = np.sqrt(((Fx + head) ** 2).sum(axis=(1, 2)) + tail)
    return c, a


def _cka_kernel(Gx: np.ndarray, Gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(‖GxGxᵀ − GyGyᵀ‖_F, ‖GxGxᵀ + GyGyᵀ‖_F) via the R factor of [Gx, Gy] (exact differences)."""
    dx = Gx.shape[2]
    R = np.linalg.qr(np.concatenate([Gx, Gy], axis=2), mode="r")
    Rx, Ry = R[..., :dx], R[..., dx:]
    A = np.matmul(Rx, Rx.transpose(0, 2, 1))
    Bm = np.matmul(Ry, Ry.transpose(0, 2, 1))
    return np.linalg.norm(A - Bm, axis=(1, 2)), np.linalg.norm(A + Bm, axis=(1, 2))


def _perm_match(Fx: np.ndarray, Fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = linear_sum_assignment(Fx.T @ Fy, maximize=True)
    return rows, cols


def _perm_pair(Fx: np.ndarray, Fy: np.ndarray) -> tuple[float, float]:
    rows, cols = _perm_match(Fx, Fy)
    mx = np.ones(Fx.shape[1], bool)
    my = np.ones(Fy.shape[1], bool)
    mx[rows] = False
    my[cols] = False
    rest = (Fx[:, mx] ** 2).sum() + (Fy[:, my] ** 2).sum()
    c = np.sqrt(((Fx[:, rows] - Fy[:, cols]) ** 2).sum() + rest)
    a = np.sqrt(((Fx[:, rows] + Fy[:, cols]) ** 2).sum() + rest)
    return c, a


def batch_distance(Fx: np.ndarray, Fy: np.ndarray, metric: str) -> np.ndarray:
    if metric == "angular_cka":
        return half_angle(*_cka_kernel(Fx, Fy))
    if metric == "zscore_permutation":
        ca = np.array([_perm_pair(x, y) for x, y in zip(Fx, Fy)]).reshape(-1, 2)
        return half_angle(ca[:, 0], ca[:, 1])
    c, a = _orth_kernel(Fx, Fy)
    return c if metric == "procrustes" else half_angle(c, a)


def distance(X, Y, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> float:
    """Distance between representations X [n, d_x] and Y [n, d_y] (same n, widths may differ).

    metric : a name in :data:`METRICS`
    floor : relative variance floor of the z-score metrics
    """
    registered(metric)
    Fx, Fy = factor(X, metric, floor), factor(Y, metric, floor)
    if Fx.shape[0] != Fy.shape[0]:
        raise ValueError(f"representations must have the same number of rows, got {Fx.shape[0]} and {Fy.shape[0]}")
    return float(batch_distance(Fx[None], Fy[None], metric)[0])


_FALLBACK = 1e-3  # pairs with 1 − cos below this (relative residual² for procrustes) are recomputed exactly


def pairwise(reps, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR, batch_size: int = 256,
             max_block_bytes: int = 1 << 28) -> np.ndarray:
    """All pairwise distances between many representations (e.g. every (network, layer) point).

    Each representation is centred / z-scored / normalised and reduced to a thin factor
    once; representations whose factors are identical (e.g. the input layer that every
    network shares) are computed once and their mutual distances are 0.  The cross products
    F_iᵀF_j of all pairs come from one matrix product per pair of width groups (in row blocks
    of at most ``max_block_bytes``; within a group only the blocks on and above the diagonal,
    about half the work); from them angular CKA is ‖F_iᵀF_j‖_F² (summed straight from the
    product), angular Procrustes the sum of singular values (batched SVDs; a rank-one
    product's norm), the permutation metric a Hungarian matching.  Pairs that
    come out nearly identical (1 − cos < 1e-3, where arccos loses accuracy) are recomputed
    with the exact-difference kernels of :func:`distance`, ``batch_size`` pairs at a time, so
    the result agrees with :func:`distance` to ~1e-13.
    reps : list of arrays [n, d_i] (same n)
    returns : ndarray [M, M], symmetric, zero diagonal, float64
    """
    registered(metric)
    F_all = [factor(X, metric, floor) for X in reps]
    if not F_all:
        return np.zeros((0, 0))
    F, inv = _unique_factors(F_all)
    if len(F) < len(F_all):
        return _pairwise_factors(F, metric, batch_size, max_block_bytes)[np.ix_(inv, inv)]
    return _pairwise_factors(F, metric, batch_size, max_block_bytes)


def _unique_factors(F: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """(distinct factors, index of each input's factor among them): exact equality, found by
    checksum first and confirmed with array_equal."""
    uniq: list[np.ndarray] = []
    seen: dict[tuple, list[int]] = {}
    inv = np.empty(len(F), dtype=np.int64)
    for i, f in enumerate(F):
        key = (f.shape, float(f.sum()), float(f[0].sum()), float(f[-1].sum()))
        for u in seen.get(key, ()):
            if np.array_equal(uniq[u], f):
                inv[i] = u
                break
        else:
            seen.setdefault(key, []).append(len(uniq))
            inv[i] = len(uniq)
            uniq.append(f)
    return uniq, inv


def _pairwise_factors(F: list[np.ndarray], metric: str, batch_size: int, max_block_bytes: int) -> np.ndarray:
    """:func:`pairwise` on distinct thin factors."""
    M = len(F)
    D = np.zeros((M, M))
    n = F[0].shape[0]
    if any(f.shape[0] != n for f in F):
        raise ValueError("all representations must have the same number of rows")
    members: dict[int, list[int]] = {}
    for i, f in enumerate(F):
        members.setdefault(f.shape[1], []).append(i)
    groups = {w: np.asarray(idx) for w, idx in members.items()}
    stacks = {w: np.stack([F[i] for i in idx]) for w, idx in groups.items()}  # [m, n, w]
    flat = {w: st.transpose(1, 0, 2).reshape(n, -1) for w, st in stacks.items()}  # [n, m·w]
    sq = np.array([float((f * f).sum()) for f in F])
    redo: list[tuple[int, int]] = []
    widths = sorted(groups)
    for gi, wa in enumerate(widths):
        for wb in widths[gi:]:
            ia, ib = groups[wa], groups[wb]
            mb = len(ib)
            rows = max(1, int(max_block_bytes // (8 * wa * mb * wb)))
            if wa == wb:  # one group with itself: only the upper triangle of blocks (≈ half the products)
                rows = min(rows, -(-len(ia) // 16))
            for s0 in range(0, len(ia), rows):
                s1 = min(s0 + rows, len(ia))
                ca = s1 - s0
                c0 = s0 if wa == wb else 0
                jb = ib[c0:]
                mc = len(jb)
                C = (flat[wa][:, s0 * wa:s1 * wa].T @ flat[wb][:, c0 * wb:]).reshape(ca, wa, mc, wb)
                ii = np.repeat(ia[s0:s1], mc)
                jj = np.tile(jb, ca)
                keep = ii < jj if wa == wb else slice(None)
                ii, jj = ii[keep], jj[keep]
                if len(ii) == 0:
                    continue
                if metric == "angular_cka":  # ‖F_iᵀF_j‖_F², without forming the per-pair blocks
                    d, bad = _from_cos(np.square(C, out=C).sum(axis=(1, 3)).reshape(-1)[keep], sq[ii], sq[jj])
                else:
                    C = C.transpose(0, 2, 1, 3).reshape(ca * mc, wa, wb)[keep]
                    d, bad = _from_cross(C, sq[ii], sq[jj], metric)
                D[ii, jj] = d
                D[jj, ii] = d
                redo.extend(zip(ii[bad].tolist(), jj[bad].tolist()))
    # exact recomputation of the nearly identical pairs, batched by shape
    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in redo:
        by_shape.setdefault((F[i].shape[1], F[j].shape[1]), []).append((i, j))
    for pairs in by_shape.values():
        for s0 in range(0, len(pairs), batch_size):
            chunk = np.array(pairs[s0:s0 + batch_size])
            d = batch_distance(np.stack([F[i] for i in chunk[:, 0]]), np.stack([F[j] for j in chunk[:, 1]]), metric)
            D[chunk[:, 0], chunk[:, 1]] = d
            D[chunk[:, 1], chunk[:, 0]] = d
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def _from_cross(C: np.ndarray, sx: np.ndarray, sy: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Distances from the cross products C [B, dx, dy] of the factors (squared norms sx, sy);
    also a mask of the pairs whose value must be recomputed exactly."""
    if metric == "angular_cka":
        cos = (C * C).sum(axis=(1, 2))
    elif metric == "zscore_permutation":
        cos = np.empty(len(C))
        for k, c in enumerate(C):
            r, q = linear_sum_assignment(c, maximize=True)
            cos[k] = c[r, q].sum()
    else:
        if min(C.shape[1:]) == 1:  # a rank-one product: its only singular value is its norm
            nuc = np.sqrt((C * C).sum(axis=(1, 2)))
        else:
            nuc = _nuclear_norms(C)
        if metric == "procrustes":
            tot = sx + sy
            r2 = tot - 2.0 * nuc
            return np.sqrt(np.maximum(r2, 0.0)), r2 < _FALLBACK * tot
        cos = nuc
    return _from_cos(cos, sx, sy)


def _nuclear_norms(C: np.ndarray) -> np.ndarray:
    """Σ singular values of each C[b] [B, dx, dy] (batched LAPACK SVDs; a thread pool over the
    batch measured no faster here)."""
    return np.linalg.svd(C, compute_uv=False).sum(axis=-1)


def _from_cos(cos: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a degenerate (zero) factor has squared norm 0; the exact kernels handle it
    bad = (cos > 1.0 - _FALLBACK) | (sx == 0) | (sy == 0)
    return np.arccos(np.clip(cos, -1.0, 1.0)), bad


def gram_angle(K, L) -> float:
    """Angle between two Gram matrices [n, n] after double centring and Frobenius normalisation
    (the angular CKA distance when K = XXᵀ, L = YYᵀ)."""
    Kh, Lh = _unit_gram(K), _unit_gram(L)
    return float(half_angle(np.linalg.norm(Kh - Lh), np.linalg.norm(Kh + Lh)))


def _unit_gram(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    K = K - K.mean(axis=0, keepdims=True)
    K = K - K.mean(axis=1, keepdims=True)
    return normalise(K)
