r"""Projections of the equivalence class: subspaces, discrepancy grids, paths and barriers.

The GENNI pictures.  An affine subspace of parameter space is an ``origin`` θ₀ (shape [P])
and k orthonormal directions, the rows of ``basis`` B (shape [k, P], B Bᵀ = I_k).  A point
with coordinates u ∈ R^k is θ(u) = θ₀ + uB.  An element θ_i lands at its coordinates
u_i = (θ_i − θ₀)Bᵀ, and its *residual* ‖θ_i − θ₀ − u_i B‖ is its distance to the subspace:
the picture is faithful for the elements whose residual is small.

Four kinds of subspace (:class:`Subspace`, ``kind``):

* ``pca``    — top-k principal directions of the elements (:func:`pca_subspace`);
* ``plane``  — the plane (k = 2) or 3-space (k = 3) through the reference and two (three)
  chosen elements, orthonormalised by QR as in GENNI (:func:`plane_subspace`);
* ``null``   — directions of the output Jacobian's null space at the reference, the tangent
  of the equivalence class there (:func:`null_subspace`);
* ``random`` — filter-normalised random directions, Li et al. 2018 (:func:`random_subspace`).

On a regular grid of coordinates (:func:`grid_axes`) the probe discrepancy

    L(θ) = (1/n) Σ_{x ∈ X} ‖f_θ(x) − y(x)‖²

is evaluated at every point (:func:`evaluate_grid`, :func:`iter_grid`), batched through the
same [N, P] forward pass as the search, in chunks whose boundaries are fixed multiples of
``batch`` in the flat (C-order) grid index: a chunk is always computed with the same
composition, so an interrupted grid that is resumed gives bitwise the same values as an
uninterrupted one (for the same ``batch``, device and thread count).

Paths between elements: the straight line (:func:`linear_path`) and a quadratic Bézier curve
(:func:`bezier_path`) whose control point is optimised (:func:`fit_bezier`, Garipov et al.
2018); the discrepancy along a path (:func:`path_discrepancy`), its barrier (:func:`barrier`),
and the graph of elements joined by paths that stay below ε (:func:`barrier_graph`).

ε is relative by default (DESIGN.md): ε = relative × output power, the reference's mean
squared output on the probe set (:func:`default_epsilon`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .discrepancy import discrepancy, mean_squared
from .errors import GenniError
from .models import Model
from .progress import bar

KINDS = ("pca", "plane", "null", "random")
"""The subspace kinds (the ``kind`` of a :class:`Subspace`)."""

DEFAULT_BATCH = 64
"""Grid points per forward pass.  Measured on 2 cores by benchmarks/bench_grid.py (101 × 101 grid,
2-16-16-1 relu, 512 probe inputs, MLP.forward_combination): 32 → 0.79 s, 64 → 0.76 s,
128 → 1.07 s, 256 → 1.54 s; larger chunks leave the cache."""


class ProjectionError(GenniError, ValueError):
    """Bad input to a projection (too few elements or directions, degenerate span, wrong shapes)."""


# ----------------------------------------------------------------------------- subspaces


@dataclass(frozen=True)
class Subspace:
    """An affine subspace of parameter space and the elements' places in it.

    kind : one of :data:`KINDS`
    basis : ndarray, shape [k, P], orthonormal rows (basis @ basis.T = I_k)
    origin : ndarray, shape [P]
    coords : ndarray, shape [N, k]: u_i = (θ_i − origin) · basisᵀ
    residuals : ndarray, shape [N]: ‖θ_i − origin − u_i · basis‖, each element's distance
        to the subspace
    explained : ndarray, shape [k] (``pca`` only, else None): fraction of the elements'
        variance (about their mean) along each direction
    """

    kind: str
    basis: np.ndarray
    origin: np.ndarray
    coords: np.ndarray
    residuals: np.ndarray
    explained: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.basis.shape[0])

    def point(self, u: np.ndarray) -> np.ndarray:
        """θ(u) = origin + u · basis; u : [k] or [M, k] → [P] or [M, P]."""
        return self.origin + np.asarray(u, dtype=np.float64) @ self.basis


def project(thetas: np.ndarray, origin: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and residuals of points in the affine subspace (origin, basis).

    thetas : [N, P];  origin : [P];  basis : [k, P] orthonormal rows
    returns : (coords [N, k] = (θ − origin)·basisᵀ, residuals [N] = ‖θ − origin − coords·basis‖)
    """
    d = _rows(thetas) - _vec(origin)
    coords = d @ basis.T
    residuals = np.linalg.norm(d - coords @ basis, axis=1)
    return coords, residuals


def _vec(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ProjectionError(f"expected a parameter vector of shape [P], got shape {a.shape}")
    return a


def _rows(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ProjectionError(f"expected parameter vectors of shape [N, P], got shape {a.shape}")
    return a


def _orthonormal_rows(vectors: np.ndarray, what: str, rtol: float = 1e-10) -> np.ndarray:
    """QR of the columns vectorsᵀ: orthonormal rows spanning the same space, in the same
    order (row i is the part of vectors[i] orthogonal to the rows before it, normalised, so
    it points the same way as vectors[i]).  vectors : [k, P] → [k, P]."""
    V = np.asarray(vectors, dtype=np.float64)
    k, P = V.shape
    if k > P:
        raise ProjectionError(f"{what}: {k} directions cannot be independent in {P} dimensions")
    Q, R = np.linalg.qr(V.T)  # V.T = Q R, Q : [P, k]
    d = np.diag(R)
    scale = np.linalg.norm(V, axis=1).max(initial=0.0)
    if scale == 0.0 or np.any(np.abs(d) <= rtol * scale):
        raise ProjectionError(f"{what}: the directions are linearly dependent (or zero); cannot span {k} dimensions")
    return (Q * np.sign(d)).T.copy()


def _subspace(kind: str, basis: np.ndarray, origin: np.ndarray, thetas: np.ndarray,
              explained: np.ndarray | None = None) -> Subspace:
    thetas = _rows(thetas)
    origin = _vec(origin)
    if thetas.shape[1] != origin.shape[0] or basis.shape[1] != origin.shape[0]:
        raise ProjectionError(f"shape mismatch: elements {thetas.shape}, origin {origin.shape}, basis {basis.shape}")
    coords, residuals = project(thetas, origin, basis)
    return Subspace(kind, basis, origin.copy(), coords, residuals, explained)


def pca_subspace(thetas: np.ndarray, origin: np.ndarray | None = None, k: int = 2) -> Subspace:
    """The top-k principal directions of the elements.

    With C = Σ_i (θ_i − θ̄)ᵀ(θ_i − θ̄) the scatter of the elements about their mean θ̄, the
    basis rows are C's top-k eigenvectors (the right singular vectors of the centred
    elements, largest singular values first), each signed so that its largest-magnitude
    entry is positive; ``explained`` = σ_i² / Σ_j σ_j² (the explained-variance ratio).

    thetas : ndarray, shape [N, P], N ≥ max(2, k) (with N = k the last direction carries no
        variance: its explained ratio is 0 and it is arbitrary but orthonormal)
    origin : ndarray, shape [P] — where the coordinates are measured from (pass the
        reference so that it sits at 0); default: the elements' mean θ̄
    returns : :class:`Subspace` with basis [k, P]
    """
    thetas = _rows(thetas)
    N, P = thetas.shape
    if N < 2:
        raise ProjectionError(f"pca needs at least 2 elements, got {N}")
    if not 1 <= k <= P:
        raise ProjectionError(f"pca: k must be in 1..{P}, got {k}")
    if N < k:
        raise ProjectionError(f"pca with k = {k} needs at least {k} elements, got {N}")
    mean = thetas.mean(0)
    _, s, Vt = np.linalg.svd(thetas - mean, full_matrices=False)
    basis = Vt[:k]
    big = np.argmax(np.abs(basis), axis=1)
    basis = basis * np.sign(basis[np.arange(k), big])[:, None]
    total = float((s * s).sum())
    explained = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    return _subspace("pca", basis, mean if origin is None else origin, thetas, explained)


def plane_subspace(theta_ref: np.ndarray, a: np.ndarray, b: np.ndarray, thetas: np.ndarray,
                   c: np.ndarray | None = None) -> Subspace:
    """The plane through the reference and two elements (a 3-space with a third one, ``c``).

    basis = orthonormalised rows of [a − θ*, b − θ*(, c − θ*)] by QR (Gram–Schmidt order:
    basis[0] ∥ a − θ*, basis[1] the part of b − θ* orthogonal to it, ...); origin = θ*, so the
    reference sits at 0 and a, b (c) lie exactly in the subspace (residual 0).

    theta_ref, a, b, c : ndarray, shape [P];  thetas : ndarray, shape [N, P]
    returns : :class:`Subspace` with basis [2, P] (or [3, P])
    """
    ref = _vec(theta_ref)
    pts = [a, b] + ([] if c is None else [c])
    V = np.stack([_vec(p) - ref for p in pts])
    return _subspace("plane", _orthonormal_rows(V, "plane"), ref, thetas)


def null_subspace(null_basis: np.ndarray, theta_ref: np.ndarray, thetas: np.ndarray, k: int = 2,
                  seed: int | np.random.Generator | None = None) -> Subspace:
    """k directions of the output Jacobian's null space at the reference (the tangent of the
    equivalence class at θ*), with origin θ*.

    With N = ``null_basis`` (orthonormal columns, [P, m], e.g. ``Spectrum.null_basis`` of
    :mod:`genni.identifiability`): ``seed=None`` takes its first k columns; otherwise the
    basis is N·Q with Q ∈ R^{m×k} the orthonormal Q-factor of a seeded gaussian m×k matrix,
    a uniformly random k-dimensional subspace of the null space.

    null_basis : ndarray, shape [P, m], m ≥ k;  theta_ref : [P];  thetas : [N, P]
    returns : :class:`Subspace` with basis [k, P]
    """
    Nb = np.asarray(null_basis, dtype=np.float64)
    if Nb.ndim != 2:
        raise ProjectionError(f"null basis must have shape [P, m], got {Nb.shape}")
    P, m = Nb.shape
    if m < k:
        raise ProjectionError(f"the Jacobian null space has dimension {m} < k = {k}: "
                              "no such null subspace (run `genni identify` on a network with a larger null space)")
    if seed is None:
        D = Nb[:, :k]
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.standard_normal((m, k)))
        D = Nb @ Q
    return _subspace("null", _orthonormal_rows(D.T, "null"), theta_ref, thetas)


def filter_normalized_direction(model: Model, theta_ref: np.ndarray, rng: np.random.Generator,
                                exclude_bias: bool = True) -> np.ndarray:
    """One filter-normalised random direction d (Li et al. 2018), shape [P].

    Per layer l and output unit (or channel) j, with g ~ N(0, I) of the unit's size (the model's
    :meth:`~genni.models.base.Model.filter_groups`):
    exclude_bias: d(W_l[j, :]) = g · ‖θ*(W_l[j, :])‖ / ‖g‖ and d(b_l) = 0;
    otherwise the unit's whole incoming vector (W_l[j, :], b_l[j]) is the filter:
    d(W_l[j, :], b_l[j]) = g · ‖(W_l[j, :], b_l[j])‖ / ‖g‖.
    """
    ref = _vec(theta_ref)
    d = np.zeros_like(ref)
    for ws, out, bs in model.filter_groups():  # a weight tensor as [filters, fan_in], and its bias
        inp = (ws.stop - ws.start) // out
        W = ref[ws].reshape(out, inp)
        b = ref[bs] if bs is not None else np.zeros(out)
        if exclude_bias or bs is None:
            g = rng.standard_normal((out, inp))
            norm = np.linalg.norm(W, axis=1)
        else:
            g = rng.standard_normal((out, inp + 1))
            norm = np.sqrt((W * W).sum(1) + b * b)
        g *= (norm / np.linalg.norm(g, axis=1))[:, None]
        d[ws] = g[:, :inp].ravel()
        if not exclude_bias and bs is not None:
            d[bs] = g[:, inp]
    return d


def random_subspace(model: Model, theta_ref: np.ndarray, thetas: np.ndarray, k: int = 2, seed: int = 0,
                    exclude_bias: bool = True) -> Subspace:
    """k filter-normalised random directions (Li et al. 2018) through the reference.

    k directions from :func:`filter_normalized_direction` (a ``numpy.random.default_rng(seed)``
    stream), then orthonormalised by QR.  The filter normalisation shapes the span (each
    unit's share of a direction matches its share of θ*); QR makes the rows orthonormal, so
    a row is not exactly filter-normalised (two random high-dimensional directions are
    nearly orthogonal, so it nearly is).  With ``exclude_bias`` the basis has zero bias entries.

    theta_ref : [P];  thetas : [N, P]
    returns : :class:`Subspace` with basis [k, P], origin θ*
    """
    rng = np.random.default_rng(seed)
    D = np.stack([filter_normalized_direction(model, theta_ref, rng, exclude_bias) for _ in range(k)])
    return _subspace("random", _orthonormal_rows(D, "random"), theta_ref, thetas)


# ----------------------------------------------------------------------------- grids


def grid_axes(coords: np.ndarray, include: np.ndarray | None = None, resolution: int = 101, margin: float = 0.25,
              symmetric: bool = False) -> np.ndarray:
    """Grid coordinates along each basis direction, spanning the elements and ``include``.

    Per direction i, [lo_i, hi_i] is the range of coords[:, i] and include[..., i], widened by
    ``margin`` × (hi_i − lo_i) on each side; a zero-width range falls back to
    [centre − 1, centre + 1].  With ``symmetric`` the range is [−a_i, a_i], a_i the widened
    largest |coordinate|, built so that with an odd resolution the middle entry is exactly 0
    (the origin, e.g. the reference, lies on the grid).

    coords : ndarray, shape [N, k];  include : ndarray, shape [k] or [M, k] (default: the
        origin, zeros [k]);  resolution : R ≥ 2
    returns : ndarray, shape [k, R], each row increasing
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, np.shape(coords)[-1])
    k = coords.shape[1]
    inc = np.zeros((1, k)) if include is None else np.asarray(include, dtype=np.float64).reshape(-1, k)
    pts = np.concatenate([coords, inc])
    R = int(resolution)
    if R < 2:
        raise ProjectionError(f"grid resolution must be at least 2, got {R}")
    axes = np.empty((k, R))
    for i in range(k):
        if symmetric:
            a = float(np.abs(pts[:, i]).max()) * (1.0 + margin)
            a = a if a > 0 else 1.0
            half = (R - 1) / 2.0
            axes[i] = a * ((np.arange(R) - half) / half)
        else:
            lo, hi = float(pts[:, i].min()), float(pts[:, i].max())
            span = hi - lo
            if span > 0:
                lo, hi = lo - margin * span, hi + margin * span
            else:
                lo, hi = lo - 1.0, hi + 1.0
            axes[i] = np.linspace(lo, hi, R)
    return axes


def _shape(axes) -> tuple[int, ...]:
    return tuple(len(a) for a in axes)


def grid_points(axes: np.ndarray, origin: np.ndarray, basis: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Parameter vectors at grid points given by flat (C-order) indices.

    θ = origin + Σ_i axes[i][j_i] · basis[i], with (j_0, …, j_{k−1}) = unravel_index(index,
    (R,)*k); summed elementwise in the order i = 0, 1, …, so every point's bits depend on its
    own index only.

    axes : ndarray, shape [k, R];  origin : [P];  basis : [k, P];  indices : int array [M]
    returns : ndarray, shape [M, P]
    """
    basis = np.asarray(basis, dtype=np.float64)
    if len(axes) != basis.shape[0]:
        raise ProjectionError(f"{len(axes)} grid axes for a basis of {basis.shape[0]} directions")
    multi = np.unravel_index(np.asarray(indices, dtype=np.int64), _shape(axes))
    out = np.broadcast_to(_vec(origin), (len(multi[0]), basis.shape[1])).copy()
    for i, j in enumerate(multi):
        out += np.asarray(axes[i], dtype=np.float64)[j][:, None] * basis[i][None, :]
    return out


def _tensor(a, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64) if not isinstance(a, torch.Tensor) else a,
                           dtype=torch.float64, device=device)


def _discrepancy(model: Model, thetas: np.ndarray, Xt: torch.Tensor, Yt: torch.Tensor, device) -> np.ndarray:
    with torch.no_grad():
        return discrepancy(model, _tensor(thetas, device), Xt, Yt).cpu().numpy()


def _coefficients(axes, indices: np.ndarray) -> np.ndarray:
    """[1, a_0, …, a_{k−1}] at the grid points with these flat (C-order) indices: [M, k + 1]."""
    multi = np.unravel_index(np.asarray(indices, dtype=np.int64), _shape(axes))
    return np.column_stack([np.ones(len(multi[0]))] + [np.asarray(axes[i], dtype=np.float64)[j] for i, j in enumerate(multi)])


def iter_grid(model: Model, X, Y, origin: np.ndarray, basis: np.ndarray, axes: np.ndarray, *,
              batch: int = DEFAULT_BATCH, done_mask: np.ndarray | None = None, start: int = 0,
              device: str | torch.device = "cpu", progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The probe discrepancy on the grid, chunk by chunk.

    The R^k grid points, in flat C order, are cut into chunks [c·batch, (c+1)·batch); each
    chunk of m points is evaluated at once by :meth:`genni.models.base.Model.forward_combination` with
    stack = [origin; basis] and coefficients [1, a] (never forming the m parameter vectors
    of :func:`grid_points`; equal to them up to rounding), L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖².  Since the boundaries
    do not depend on what was done before, a chunk always has the same composition and
    resuming reproduces an uninterrupted run bit for bit (same ``batch``).

    X : [n, w_0];  Y : [n, w_L];  origin : [P];  basis : [k, P];  axes : [k, R]
    batch : points per chunk; the forward pass holds a few arrays of
        batch × n × (widest layer) × 8 bytes
    done_mask : bool, shape [R]*k or [R^k] (e.g. ``~numpy.isnan(values)``): chunks whose every
        point is done are skipped; a partly done chunk is evaluated whole
    start : flat index; chunks ending at or before it are skipped
    yields : (flat indices [m] — one contiguous run — , values [m])
    """
    if batch < 1:
        raise ProjectionError(f"batch must be positive, got {batch}")
    shape = _shape(axes)
    total = int(np.prod(shape))
    done = None if done_mask is None else np.asarray(done_mask, bool).reshape(-1)
    if done is not None and done.size != total:
        raise ProjectionError(f"done mask has {done.size} entries for a grid of {total} points")
    Xt, Yt = _tensor(X, device), _tensor(Y, device)
    stack = _tensor(np.concatenate([_vec(origin)[None], np.asarray(basis, dtype=np.float64)]), device)
    if stack.shape[0] != len(axes) + 1:
        raise ProjectionError(f"{len(axes)} grid axes for a basis of {stack.shape[0] - 1} directions")
    chunks = [c for c in range(-(-total // batch))
              if (c + 1) * batch > start and (done is None or not done[c * batch:(c + 1) * batch].all())]
    pbar = bar(total=len(chunks), progress=progress, desc="grid", unit="chunk")
    try:
        for c in chunks:
            idx = np.arange(c * batch, min((c + 1) * batch, total))
            coeffs = torch.as_tensor(_coefficients(axes, idx), dtype=stack.dtype, device=stack.device)
            with torch.no_grad():
                values = mean_squared(model.forward_combination(stack, coeffs, Xt) - Yt).cpu().numpy()
            yield idx, values
            pbar.update(1)
    finally:
        pbar.close()


def evaluate_grid(model: Model, X, Y, origin: np.ndarray, basis: np.ndarray, axes: np.ndarray, *,
                  batch: int = DEFAULT_BATCH, start: int = 0, on_chunk: Callable[[int, np.ndarray], None] | None = None,
                  out: np.ndarray | None = None, device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """The probe discrepancy L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖² at every grid point
    θ = origin + Σ_i axes[i][j_i] · basis[i] (see :func:`iter_grid` for chunking).

    on_chunk : called as ``on_chunk(flat_start, values_1d)`` after each chunk (values of the
        contiguous flat indices flat_start, flat_start + 1, …), e.g. to write them to a file
    out : optional array of shape [R]*k pre-filled with NaN where not yet computed; only
        chunks with a NaN are evaluated (resume), and it is filled in place and returned
    returns : ndarray, shape [R]*k (entries before ``start`` stay NaN unless given in ``out``)
    """
    shape = _shape(axes)
    if out is None:
        out = np.full(shape, np.nan)
    elif out.shape != shape:
        raise ProjectionError(f"output array has shape {out.shape}, the grid {shape}")
    flat = out.reshape(-1)
    if not np.shares_memory(flat, out):
        raise ProjectionError("output array must be contiguous")
    for idx, vals in iter_grid(model, X, Y, origin, basis, axes, batch=batch, done_mask=~np.isnan(out), start=start,
                               device=device, progress=progress):
        flat[idx] = vals
        if on_chunk is not None:
            on_chunk(int(idx[0]), vals)
    return out


# ----------------------------------------------------------------------------- paths


def _ts(n_points: int) -> np.ndarray:
    if n_points < 2:
        raise ProjectionError(f"a path needs at least 2 points, got {n_points}")
    return np.linspace(0.0, 1.0, int(n_points))


def linear_path(theta_a: np.ndarray, theta_b: np.ndarray, n_points: int = 65) -> np.ndarray:
    """φ(t) = (1 − t) θ_a + t θ_b at t = 0, 1/(T−1), …, 1 (exact endpoints).

    theta_a, theta_b : [P];  returns : ndarray, shape [T, P]
    """
    t = _ts(n_points)[:, None]
    return (1.0 - t) * _vec(theta_a)[None] + t * _vec(theta_b)[None]


def bezier_path(theta_a: np.ndarray, theta_b: np.ndarray, control: np.ndarray, n_points: int = 65) -> np.ndarray:
    """The quadratic Bézier curve φ(t) = (1 − t)² θ_a + 2t(1 − t) c + t² θ_b at T equally spaced t.

    theta_a, theta_b, control : [P];  returns : ndarray, shape [T, P]
    """
    t = _ts(n_points)[:, None]
    return ((1.0 - t) ** 2) * _vec(theta_a)[None] + (2.0 * t * (1.0 - t)) * _vec(control)[None] + (t * t) * _vec(theta_b)[None]


def fit_bezier(model: Model, X, Y, theta_a: np.ndarray, theta_b: np.ndarray, *, steps: int = 300, lr: float = 1e-2,
               n_train_t: int = 16, seed: int = 0, control0: np.ndarray | None = None,
               device: str | torch.device = "cpu") -> np.ndarray:
    r"""The control point of a low-discrepancy quadratic Bézier curve between two elements
    (Garipov et al. 2018, *Loss surfaces, mode connectivity, and fast ensembling of DNNs*).

    Minimises over the control point c ∈ R^P

        J(c) = E_{t ~ U(0,1)} L(φ_c(t)),   φ_c(t) = (1 − t)² θ_a + 2t(1 − t) c + t² θ_b,
        L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖²,

    by Adam (learning rate ``lr``, β = (0.9, 0.999)) from c = (θ_a + θ_b)/2 (the straight line), each step
    estimating J on ``n_train_t`` stratified uniform samples t_i = (i + u_i)/n_train_t,
    u_i ~ U(0,1) (an unbiased estimate; seeded by ``seed``), evaluated as one batch.

    theta_a, theta_b : [P];  control0 : optional start instead of the midpoint
    returns : ndarray, shape [P], the control point after ``steps`` steps
    """
    a, b = _tensor(_vec(theta_a), device), _tensor(_vec(theta_b), device)
    Xt, Yt = _tensor(X, device), _tensor(Y, device)
    c0 = (a + b) / 2 if control0 is None else _tensor(_vec(control0), device)
    c = c0.clone()
    m, v = torch.zeros_like(c), torch.zeros_like(c)
    b1, b2, tiny = 0.9, 0.999, 1e-8
    gen = torch.Generator().manual_seed(int(seed))
    base = torch.arange(n_train_t, dtype=torch.float64)
    for step in range(1, int(steps) + 1):
        t = ((base + torch.rand(n_train_t, generator=gen, dtype=torch.float64)) / n_train_t).to(device)[:, None]
        c.requires_grad_(True)
        phi = (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t * t * b
        (g,) = torch.autograd.grad(discrepancy(model, phi, Xt, Yt).mean(), c)
        with torch.no_grad():
            c = c.detach()
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            c -= lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + tiny)
    return c.detach().cpu().numpy()


def path_discrepancy(model: Model, X, Y, path: np.ndarray, *, batch: int = DEFAULT_BATCH,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """L(φ(t_s)) = (1/n) Σ_x ‖f_{φ(t_s)}(x) − y(x)‖² at every point of a path, in chunks of ``batch``.

    path : ndarray, shape [T, P];  returns : ndarray, shape [T]
    """
    path = _rows(path)
    Xt, Yt = _tensor(X, device), _tensor(Y, device)
    return np.concatenate([_discrepancy(model, path[i:i + batch], Xt, Yt, device) for i in range(0, len(path), batch)])


def barrier(values: np.ndarray) -> float:
    """The barrier along a path: max_s L(φ(t_s)) − max(L(φ(0)), L(φ(1))).

    values : ndarray, shape [T] (the discrepancy along the path, endpoints first and last);
    ≥ 0 by construction (the endpoints are among the values), 0 when the path never rises
    above its higher endpoint.  (Computed from batched forward passes, whose rows may round
    differently, a constant path gives a barrier of a few ulps of L rather than exactly 0.)
    """
    v = np.asarray(values, dtype=np.float64)
    return float(v.max() - max(v[0], v[-1]))


def barrier_graph(model: Model, X, Y, thetas: np.ndarray, eps: float, n_points: int = 33, kind: str = "linear", *,
                  batch: int = DEFAULT_BATCH, device: str | torch.device = "cpu", fit_kw: dict | None = None,
                  return_peaks: bool = False):
    """Pairwise barriers between elements and the connected components of the graph they induce.

    For every pair i < j, the path φ_ij from θ_i to θ_j (``kind``: "linear", or "bezier" with
    a control point from :func:`fit_bezier`, options ``fit_kw``) is evaluated at
    ``n_points`` equally spaced t, giving the barrier B_ij = :func:`barrier` and the peak
    M_ij = max_t L(φ_ij(t)) = B_ij + max(L(θ_i), L(θ_j)).  i and j are joined when the whole
    path stays in the ε-sublevel set, M_ij ≤ ε.  (For equivalents, L(θ_i) ≤ tol ≪ ε, this is
    B_ij ≤ ε up to tol; asking only B_ij ≤ ε would join a non-equivalent element to the class
    whenever the path to it rises monotonically.)  Components by
    ``scipy.sparse.csgraph.connected_components``.

    thetas : ndarray, shape [M, P];  eps : absolute threshold (see :func:`default_epsilon`)
    returns : (barriers [M, M] symmetric, zero diagonal; n_components; labels [M]), and the
        peaks [M, M] (diagonal: L(θ_i)) too with ``return_peaks``
    """
    thetas = _rows(thetas)
    M = len(thetas)
    if kind not in ("linear", "bezier"):
        raise ProjectionError(f"unknown path kind '{kind}' (choose linear or bezier)")
    Xt, Yt = _tensor(X, device), _tensor(Y, device)
    ends = _discrepancy(model, thetas, Xt, Yt, device) if M else np.zeros(0)
    B = np.zeros((M, M))
    peak = np.diag(ends).astype(np.float64)
    pairs = [(i, j) for i in range(M) for j in range(i + 1, M)]
    per_block = max(1, batch // n_points)
    for s in range(0, len(pairs), per_block):
        block = pairs[s:s + per_block]
        paths = []
        for i, j in block:
            ctrl = None if kind == "linear" else fit_bezier(model, X, Y, thetas[i], thetas[j], device=device, **(fit_kw or {}))
            paths.append(linear_path(thetas[i], thetas[j], n_points) if ctrl is None
                         else bezier_path(thetas[i], thetas[j], ctrl, n_points))
        vals = _discrepancy(model, np.concatenate(paths), Xt, Yt, device).reshape(len(block), n_points)
        for (i, j), v in zip(block, vals):
            B[i, j] = B[j, i] = barrier(v)
            peak[i, j] = peak[j, i] = float(v.max())
    adj = csr_matrix(np.triu(peak <= eps, 1))
    n_comp, labels = connected_components(adj, directed=False)
    if return_peaks:
        return B, int(n_comp), labels, peak
    return B, int(n_comp), labels


def default_epsilon(output_power: float, relative: float = 1e-6) -> float:
    """ε = relative × output power, the threshold for equivalence masks and paths.

    output_power : mean ‖f_θ*(x)‖² of the reference on the probe set; must be positive and
    finite (a near-zero reference would make the zero function look equivalent).
    """
    p = float(output_power)
    if not np.isfinite(p) or p <= 0:
        raise ProjectionError(f"the reference's output power is {p}: a relative epsilon needs a positive output power")
    return float(relative) * p


def sublevel_components(values: np.ndarray, epsilon: float) -> tuple[int, np.ndarray]:
    """Connected components of the grid cells with discrepancy ≤ ε (face-neighbours connected;
    ``scipy.ndimage.label``).  A grid sees only its own points: two components may be one set joined
    between grid points, or split by a barrier thinner than the spacing; certificates decide.

    values : ndarray [R, R] or [R, R, R] (NaN: not evaluated, counts as above ε)
    returns : (number of components, labels of the same shape, 0 = above ε)
    """
    from scipy import ndimage

    mask = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=np.inf) <= epsilon
    labels, k = ndimage.label(mask)
    return int(k), labels


__all__ = ["KINDS", "ProjectionError", "Subspace", "project", "pca_subspace", "plane_subspace", "null_subspace",
           "random_subspace", "filter_normalized_direction", "grid_axes", "sublevel_components", "grid_points",
           "iter_grid", "evaluate_grid", "linear_path", "bezier_path", "fit_bezier", "path_discrepancy", "barrier",
           "barrier_graph", "default_epsilon"]
