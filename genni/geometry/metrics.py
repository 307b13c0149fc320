"""Distances between neural representations, and the geometry of layer paths.

A representation is an array X of shape [n, d]: the activations of d units on the
same n probe inputs (rows correspond across representations, widths may differ).
Every metric here works in float64 and compares X [n, d_x] with Y [n, d_y].

Metrics (registry :data:`METRICS`; every one is a metric on its quotient space, so
path lengths, triangle inequality and geodesics make sense: ``is_length_metric``):

``angular_cka``
    arccos CKA(X, Y) with the linear kernel: the angle between the centred Gram
    matrices K̃ = X̃X̃ᵀ, L̃ = ỸỸᵀ, CKA = ⟨K̃, L̃⟩_F / (‖K̃‖_F ‖L̃‖_F).  Lives on the
    unit sphere of centred Gram matrices ("CKA sphere"); range [0, π/2].
``angular_procrustes``
    arccos(‖X̃ᵀỸ‖_* / (‖X̃‖_F ‖Ỹ‖_F)), X̃, Ỹ column-centred; the narrower side is
    padded with zero columns, so widths may differ.  Equals the Bures angle of the
    centred Grams, arccos tr((K̃^{1/2} L̃ K̃^{1/2})^{1/2}) / √(tr K̃ tr L̃).  Range [0, π/2].
``procrustes``
    Euclidean Procrustes distance min_Q ‖X̃ − ỸQ‖_F = √(‖X̃‖² + ‖Ỹ‖² − 2‖X̃ᵀỸ‖_*),
    i.e. the Bures–Wasserstein distance of the centred Grams.  **Not normalised**:
    it is scale-dependent (in the units of the activations).
``zscore_procrustes``
    z-score every unit (column), dropping units whose variance is below
    ``floor · max variance`` (dead or constant units), then angular Procrustes.
``zscore_permutation``
    z-score (same rule), then match units one to one by the Hungarian algorithm,
    maximising the summed correlation (the narrower side padded with zero columns):
    arccos(Σ_matched ⟨x̂_i, ŷ_π(i)⟩ / (‖X̂‖ ‖Ŷ‖)).

Invariances (a transformation T with d(X, T X) = 0):

=====================  ==========  =========  ===========  ===========  ====================
metric                 orthogonal  isotropic  translation  permutation  per-unit pos. scaling
=====================  ==========  =========  ===========  ===========  ====================
angular_cka            yes         yes        yes          yes          no
angular_procrustes     yes         yes        yes          yes          no
procrustes             yes         no         yes          yes          no
zscore_procrustes      no          yes        yes          yes          yes (also sign flips)
zscore_permutation     no          yes        yes          yes          yes (not sign flips)
=====================  ==========  =========  ===========  ===========  ====================

Sign flips of units are orthogonal maps, so every orthogonally invariant metric is
invariant to them.  **The standard metrics (angular CKA, (angular) Procrustes) are
not invariant to per-unit rescaling**: a relu network and its exact copy with
hidden unit j's incoming weights × c_j and outgoing weights × 1/c_j compute the
same function, yet their hidden representations are X·diag(c), which these
metrics see as a different point — a rescaled copy moves a hidden layer, often by
as much as a whole layer step.  The z-score metrics quotient out exactly the
relu symmetry group (permutation × positive per-unit scaling); :func:`warn_missing_symmetries`
says when a chosen metric misses an architecture's exact symmetries.
(The variance floor is relative to the largest unit variance; a unit whose
variance sits right at the floor can be kept in one copy and dropped in another.)

Degenerate points: a representation with no variance (all units constant) is the
origin; its angular distance is π/2 to any non-degenerate representation and 0 to
another degenerate one.

Numerics: angles are computed as 2·atan2(‖a − b‖, ‖a + b‖) from explicitly formed
differences of aligned, normalised points (for CKA from the R factor of a QR of
[X̂, Ŷ]), not as arccos of a cosine, so that a distance of zero comes out at
≈1e-15 rather than ≈1e-8.

Geometry: :func:`geodesic` (slerp of normalised centred Grams on the CKA sphere;
align-then-slerp in Procrustes shape space), :func:`angle` (at the middle point,
between the log-map directions towards its neighbours; π for a straight path),
:func:`project_onto_geodesic` (CKA sphere: position along the geodesic and distance off it),
:func:`path_summary` (step lengths, length, straightness, angles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize_scalar

DEFAULT_FLOOR = 1e-8


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its name, the transformations it is invariant to, and
    whether it is a length metric (a true metric on its quotient: triangle inequality,
    so that path lengths and geodesics are meaningful)."""

    name: str
    invariances: tuple[str, ...]
    is_length_metric: bool
    angular: bool
    description: str


_ORTH = ("orthogonal", "sign_flip", "permutation", "translation")
METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("angular_cka", _ORTH + ("isotropic_scaling",), True, True,
                   "arccos of linear CKA of centred Gram matrices"),
        MetricSpec("angular_procrustes", _ORTH + ("isotropic_scaling",), True, True,
                   "arccos(||X~^T Y~||_* / (||X~|| ||Y~||)); Bures angle of centred Grams"),
        MetricSpec("procrustes", _ORTH, True, False,
                   "Euclidean Procrustes distance of centred data (Bures-Wasserstein); not normalised, scale-dependent"),
        MetricSpec("zscore_procrustes", ("permutation", "sign_flip", "per_unit_scaling", "translation", "isotropic_scaling"),
                   True, True, "z-score each unit (variance floor, dead units dropped), then angular Procrustes"),
        MetricSpec("zscore_permutation", ("permutation", "per_unit_scaling", "translation", "isotropic_scaling"), True, True,
                   "z-score each unit, then Hungarian unit matching; angle of the matched correlation"),
    )
}

# exact symmetries of hidden units, by activation (cf. genni.symmetries)
_ARCH_SYMMETRIES = {
    "relu": ("permutation", "per_unit_scaling"),
    "leaky_relu": ("permutation", "per_unit_scaling"),
    "tanh": ("permutation", "sign_flip"),
    "sigmoid": ("permutation", "sign_flip"),  # h -> 1 - h: a reflection plus a translation
    "gelu": ("permutation",),
}


def _spec(metric: str) -> MetricSpec:
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric '{metric}' (choose from: {', '.join(METRICS)})") from None


def warn_missing_symmetries(metric: str, activation: str | tuple[str, ...], what: str | None = None) -> str | None:
    """A warning text when ``metric`` is not invariant to all exact symmetries acting on the hidden
    representations (so exactly equivalent networks get different paths); None when it is.

    activation : an MLP activation name (its hidden-unit symmetries), or the names of the symmetries
        themselves (``Model.representation_symmetries()``: permutation, per_unit_scaling, sign_flip,
        translation, invertible_linear), with ``what`` naming the networks in the message."""
    spec = _spec(metric)
    if isinstance(activation, str):
        try:
            needed = _ARCH_SYMMETRIES[activation]
        except KeyError:
            raise ValueError(f"unknown activation '{activation}' (choose from: {', '.join(_ARCH_SYMMETRIES)})") from None
        what = what or f"{activation} networks"
    else:
        needed = tuple(activation)
        what = what or "these networks"
    missing = [s for s in needed if s not in spec.invariances]
    if not missing:
        return None
    names = {"per_unit_scaling": "positive per-unit rescaling", "sign_flip": "per-unit sign flips",
             "permutation": "unit permutations", "translation": "translations",
             "invertible_linear": "invertible linear maps", "orthogonal": "rotations"}
    better = [m for m, s in METRICS.items() if all(k in s.invariances for k in needed)]
    return (f"metric '{metric}' is not invariant to {', '.join(names.get(s, s) for s in missing)}, an exact symmetry "
            f"of {what}: exactly equivalent networks can have different hidden-layer points and paths"
            + (f" (invariant metrics: {', '.join(better)})" if better else " (no metric here is invariant to all)"))


# ---------------------------------------------------------------- preparation


def _as_rep(X) -> np.ndarray:
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"a representation must have shape [n, d], got {X.shape}")
    return X


def _centre(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=0, keepdims=True)


def zscore(X, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Column-wise z-scores of X [n, d]; units with variance < floor · max variance are dropped
    (returns [n, d_live]; [n, 0] when every unit is constant)."""
    Xc = _centre(_as_rep(X))
    var = (Xc * Xc).mean(axis=0)
    vmax = var.max(initial=0.0)
    if vmax <= 0:
        return Xc[:, :0]
    keep = var >= floor * vmax
    return Xc[:, keep] / np.sqrt(var[keep])


def _normalise(F: np.ndarray) -> np.ndarray:
    nrm = float(np.sqrt(np.square(F).sum()))  # not np.linalg.norm: a BLAS call per small array wakes its threads
    return F / nrm if nrm > 0 else np.zeros_like(F)


def _ensure_width(F: np.ndarray) -> np.ndarray:
    return F if F.shape[1] > 0 else np.zeros((F.shape[0], 1))


def _thin(F: np.ndarray) -> np.ndarray:
    """A factor with the same centred Gram (F Fᵀ) and at most n columns (right-orthogonal change of basis)."""
    n, d = F.shape
    if d <= n:
        return F
    U, S, _ = np.linalg.svd(F, full_matrices=False)
    return U * S


def _point(X, metric: str, floor: float) -> np.ndarray:
    """The representation as a point of the metric's space, in its own unit coordinates
    (centred / z-scored, normalised where the metric is angular); [n, d'], d' ≥ 1."""
    X = _as_rep(X)
    if metric in ("zscore_procrustes", "zscore_permutation"):
        F = zscore(X, floor)
    else:
        F = _centre(X)
    if metric == "angular_cka":
        g = np.linalg.norm(F.T @ F) if F.shape[1] <= F.shape[0] else np.linalg.norm(F @ F.T)
        F = F / np.sqrt(g) if g > 0 else np.zeros_like(F)
    elif metric != "procrustes":
        F = _normalise(F)
    return _ensure_width(F)


def _factor(X, metric: str, floor: float) -> np.ndarray:
    """Per-representation precomputation for distances (a thin factor where the metric allows):
    all-zero columns (dead relu units) are dropped, which changes no Gram, cross-product norm or
    matching."""
    F = _point(X, metric, floor)
    live = np.any(F != 0, axis=0)
    if not live.all():
        F = _ensure_width(np.ascontiguousarray(F[:, live]))
    return F if metric == "zscore_permutation" else _thin(F)


# ---------------------------------------------------------------- batched kernels


def _half_angle(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    # unit vectors u, v: ‖u − v‖ = 2 sin(θ/2), ‖u + v‖ = 2 cos(θ/2)
    return 2.0 * np.arctan2(c, a)


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


def _batch_distance(Fx: np.ndarray, Fy: np.ndarray, metric: str) -> np.ndarray:
    if metric == "angular_cka":
        return _half_angle(*_cka_kernel(Fx, Fy))
    if metric == "zscore_permutation":
        ca = np.array([_perm_pair(x, y) for x, y in zip(Fx, Fy)]).reshape(-1, 2)
        return _half_angle(ca[:, 0], ca[:, 1])
    c, a = _orth_kernel(Fx, Fy)
    return c if metric == "procrustes" else _half_angle(c, a)


# ---------------------------------------------------------------- public distances


def distance(X, Y, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> float:
    """Distance between representations X [n, d_x] and Y [n, d_y] (same n, widths may differ).

    metric : a name in :data:`METRICS`
    floor : relative variance floor of the z-score metrics
    """
    _spec(metric)
    Fx, Fy = _factor(X, metric, floor), _factor(Y, metric, floor)
    if Fx.shape[0] != Fy.shape[0]:
        raise ValueError(f"representations must have the same number of rows, got {Fx.shape[0]} and {Fy.shape[0]}")
    return float(_batch_distance(Fx[None], Fy[None], metric)[0])


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
    _spec(metric)
    F_all = [_factor(X, metric, floor) for X in reps]
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
            d = _batch_distance(np.stack([F[i] for i in chunk[:, 0]]), np.stack([F[j] for j in chunk[:, 1]]), metric)
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
    return float(_half_angle(np.linalg.norm(Kh - Lh), np.linalg.norm(Kh + Lh)))


def _unit_gram(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    K = K - K.mean(axis=0, keepdims=True)
    K = K - K.mean(axis=1, keepdims=True)
    return _normalise(K)


def _cka_gram(X, floor: float) -> np.ndarray:
    F = _point(X, "angular_cka", floor)
    return _normalise(F @ F.T)


# ---------------------------------------------------------------- geometry


def _pad(F: np.ndarray, d: int) -> np.ndarray:
    return F if F.shape[1] == d else np.concatenate([F, np.zeros((F.shape[0], d - F.shape[1]))], axis=1)


def _align(P_ref: np.ndarray, P: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(P_ref, P aligned to P_ref), both zero-padded to a common width."""
    d = max(P_ref.shape[1], P.shape[1])
    A, B = _pad(P_ref, d), _pad(P, d)
    if metric == "zscore_permutation":
        rows, cols = linear_sum_assignment(A.T @ B, maximize=True)
        out = np.zeros_like(B)
        out[:, rows] = B[:, cols]
        return A, out
    U, _, Vt = np.linalg.svd(B.T @ A)
    return A, B @ (U @ Vt)


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    theta = float(_half_angle(np.linalg.norm(a - b), np.linalg.norm(a + b)))
    if theta < 1e-15:
        return (1.0 - t) * a + t * b
    s = np.sin(theta)
    return (np.sin((1.0 - t) * theta) * a + np.sin(t * theta) * b) / s


def geodesic(X, Y, t: float, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """The point γ(t) of the geodesic from X (t = 0) to Y (t = 1); d(X, γ(t)) = t · d(X, Y).

    angular_cka : slerp of the normalised centred Gram matrices; returns a Gram [n, n]
    angular_procrustes : Y is aligned to X first (orthogonal Procrustes, after zero-padding
        to equal widths), then the normalised centred points are slerped; returns a
        representation [n, max(d_x, d_y)]
    procrustes : straight line between X̃ and the aligned Ỹ; returns a representation

    The z-score metrics have no geodesic here: a point between two z-scored representations
    is not itself z-scored, so re-z-scoring it moves it.  For zscore_procrustes use
    ``geodesic(zscore(X), zscore(Y), t, "angular_procrustes")`` (distances measured with
    angular_procrustes in the z-scored coordinates).
    """
    _spec(metric)
    if metric.startswith("zscore"):
        raise ValueError(f"no geodesic for '{metric}': use geodesic(zscore(X), zscore(Y), t, 'angular_procrustes')")
    if metric == "angular_cka":
        return _slerp(_cka_gram(X, floor), _cka_gram(Y, floor), t)
    A, B = _align(_point(X, metric, floor), _point(Y, metric, floor), metric)
    if metric == "procrustes":
        return (1.0 - t) * A + t * B
    return _slerp(A, B, t)


def _tangent(P: np.ndarray, base: np.ndarray, sphere: bool) -> np.ndarray:
    v = P - base
    if sphere:
        v = P - np.sum(P * base) * base
    return v


def angle(A, B, C, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> float:
    """Angle at B between the directions towards A (incoming) and towards C (outgoing), from
    the log maps at B: π for a straight path (B on the geodesic between A and C), 0 for a
    full reversal; nan when B coincides with A or C.  For the shape-space metrics A and C are
    aligned to B first."""
    _spec(metric)
    if metric == "angular_cka":
        Pb = _cka_gram(B, floor)
        ua, uc = (_tangent(_cka_gram(P, floor), Pb, True) for P in (A, C))
    else:
        pa, pb, pc = (_point(P, metric, floor) for P in (A, B, C))
        d = max(p.shape[1] for p in (pa, pb, pc))
        pa, pb, pc = (_pad(p, d) for p in (pa, pb, pc))
        sphere = metric != "procrustes"
        ua = _tangent(_align(pb, pa, metric)[1], pb, sphere)
        uc = _tangent(_align(pb, pc, metric)[1], pb, sphere)
    na, nc = np.linalg.norm(ua), np.linalg.norm(uc)
    if na == 0 or nc == 0:
        return float("nan")
    ua, uc = ua / na, uc / nc
    return float(_half_angle(np.linalg.norm(ua - uc), np.linalg.norm(ua + uc)))


def project_onto_geodesic(P, A, B, metric: str = "angular_cka", floor: float = DEFAULT_FLOOR, *,
                          t_range: tuple[float, float] = (-0.5, 1.5)) -> tuple[float, float]:
    """Closest point to P on the geodesic through A and B: (t, off) with
    off = min_t d(P, γ(t)) and γ(t) = ``geodesic(A, B, t)`` (t = 0 at A, 1 at B; outside [0, 1]
    beyond the ends).

    angular_cka : closed form on the sphere of unit centred Grams, exact for every t (spherical
        Pythagoras: cos d(A, P) = cos(off) · cos(t · d(A, B))).
    angular_procrustes, procrustes : shape space has no closed form; 1-D minimisation of
        t ↦ d(P, γ(t)) over ``t_range`` (scan of 41 points, then bounded Brent to |Δt| ≤ 1e-10).
        A minimum at the ends of ``t_range`` is returned as found.
    zscore_procrustes : the above for angular_procrustes after z-scoring P, A and B.
    zscore_permutation : raises ValueError (a permutation quotient has no geodesics here).
    P, A, B : representations [n, d_P], [n, d_A], [n, d_B] on the same n inputs
    """
    _spec(metric)
    if metric == "zscore_permutation":
        raise ValueError("no geodesic for 'zscore_permutation': project under zscore_procrustes instead")
    if metric == "zscore_procrustes":
        P, A, B = (zscore(X, floor) for X in (P, A, B))
        metric = "angular_procrustes"
    if metric != "angular_cka":
        a, b = _align(_point(A, metric, floor), _point(B, metric, floor), metric)
        if np.linalg.norm(a - b) < 1e-15:
            raise ValueError("A and B are the same point: the geodesic between them is undefined")

        def off(t: float) -> float:
            g = (1.0 - t) * a + t * b if metric == "procrustes" else _slerp(a, b, t)
            return distance(P, g, metric, floor)

        ts = np.linspace(*t_range, 41)
        vals = [off(t) for t in ts]
        i = int(np.argmin(vals))
        lo, hi = ts[max(i - 1, 0)], ts[min(i + 1, len(ts) - 1)]
        res = minimize_scalar(off, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        t_best, v_best = (float(res.x), float(res.fun)) if res.fun <= vals[i] else (float(ts[i]), float(vals[i]))
        return t_best, v_best
    a, b, p = (_cka_gram(X, floor) for X in (A, B, P))
    theta = float(_half_angle(np.linalg.norm(a - b), np.linalg.norm(a + b)))
    if theta < 1e-15:
        raise ValueError("A and B are the same point: the geodesic between them is undefined")
    e2 = _normalise(b - np.sum(a * b) * a)
    x, y = float(np.sum(p * a)), float(np.sum(p * e2))
    phi = float(np.arctan2(y, x))
    off_ = float(np.arctan2(np.linalg.norm(p - x * a - y * e2), np.hypot(x, y)))
    return phi / theta, off_


def path_summary(reps, metric: str = "angular_procrustes", floor: float = DEFAULT_FLOOR) -> dict:
    """Summary of a layer path (representations [X_0, ..., X_{L-1}] in layer order).

    returns : dict with ``steps`` [L−1] (consecutive distances), ``length`` (their sum),
        ``endpoint_distance`` d(first, last), ``straightness`` d(first, last)/length (≤ 1 by the
        triangle inequality; nan for a zero-length path), ``angles`` [L−2] (angle at each interior
        layer, π = straight) and ``turning_angles`` [L−2] = π − angles.
    """
    _spec(metric)
    reps = list(reps)
    L = len(reps)
    steps = np.array([distance(reps[i], reps[i + 1], metric, floor) for i in range(L - 1)])
    length = float(steps.sum())
    end = distance(reps[0], reps[-1], metric, floor) if L > 1 else 0.0
    angles = np.array([angle(reps[i - 1], reps[i], reps[i + 1], metric, floor) for i in range(1, L - 1)])
    return {
        "metric": metric,
        "steps": steps,
        "length": length,
        "endpoint_distance": float(end),
        "straightness": float(end / length) if length > 0 else float("nan"),
        "angles": angles,
        "turning_angles": np.pi - angles,
    }


__all__ = ["METRICS", "MetricSpec", "DEFAULT_FLOOR", "distance", "pairwise", "gram_angle", "zscore", "geodesic",
           "angle", "project_onto_geodesic", "path_summary", "warn_missing_symmetries"]
