"""The exact functional dimension on a domain: rank of J over every linear region.

On a region R_s the network is f(x) = F_s(θ) x + g_s(θ), so its parameter Jacobian
J(x) = ∂g_s/∂θ + Σ_k x_k ∂F_s[:, k]/∂θ is affine in x: the rows of J at d + 1 affinely independent
points span every row the region contributes.  The rank over D is therefore the rank of those rows
over all regions.  The points used are the simplex p_0 = centre of the box, p_k = p_0 + (w_k / 4) e_k
(w the box's widths), at which J is evaluated *with the region's slopes fixed*
(:meth:`~genni.exact.pieces.Network.pattern_jacobian`): J's affine extension takes the same values
on the region, the simplex is as well spread as the box allows however thin the region is, and the
rows have the size J has inside D.

Rows are accumulated much as :func:`genni.identifiability.rank_growth` does: only the triangular factor
R of the stacked rows is kept ([A; B] and [R_A; B] have the same singular values when A = Q_A R_A), so
memory stays O(P²).  The rank is
read after scaling every column (parameter) to unit norm (invertible diagonal scalings, so the rank is
unchanged: first by each column's norm over samples of D, :func:`column_scale`, before compression,
then exactly, :func:`equilibrate`): without it the spread of the parameters' own scales (a nearly
silent unit with weights of 1e-7) fills the spectrum with small singular values and hides the gap.
On the default reference the scaled spectrum falls from 1.4e-3 to 1e-16 at the rank; unscaled it
decays smoothly through every threshold.

Status:
- ``certified at the bound``: the rank reached the architecture's bound P − #hidden (the positive
  rescaling of each hidden unit is invisible), so θ is locally identifiable on D up to the declared
  symmetries; the regions of sampled points often suffice, and the walk stops there;
- ``certified deficit``: every region was visited and the rank is below the bound: hidden symmetries
  on D, of dimension bound − rank;
- ``lower bound``: the budget ended the walk first; the rank is a lower bound after R regions.

The rank is numerical (singular values above rtol · σ_max); the singular values, the gap at the
threshold and the rank at tolerances 1e-6 … 1e-13 are kept so a reader sees how clear-cut it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..identifiability import DEFAULT_RTOL
from ..models import Model
from ..progress import bar
from .domain import Domain
from .pieces import Network, Pieces
from .regions import Walk, walk

STATUSES = ("certified at the bound", "certified deficit", "lower bound")
TOLERANCES = (1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13)
"""The relative tolerances at which the rank is also reported."""


@dataclass(frozen=True)
class ExactRank:
    """The functional dimension of one network on a domain.

    rank : numerical rank of J over the regions visited;  bound : the architecture's bound P − #hidden;
    status : one of :data:`STATUSES`;  singular_values : [min(rows, P)] descending;  rank_tolerance :
    rtol · σ_max;  gap : σ_rank / σ_{rank+1} (∞ when nothing lies below the threshold);
    by_tolerance : [len(TOLERANCES), 2] (rtol, rank);  trace : [k, 2] int (regions visited, rank) each
    time the rank grew;  regions : every region used (patterns, interior points, completeness, time);
    n_sampled : how many of them the sampled points found before the walk
    """

    rank: int
    bound: int
    n_params: int
    status: str
    singular_values: np.ndarray
    rtol: float
    rank_tolerance: float
    gap: float
    by_tolerance: np.ndarray
    trace: np.ndarray
    regions: Walk
    seconds: float
    n_sampled: int = 0

    @property
    def n_regions(self) -> int:
        return self.regions.n_regions

    def summary(self) -> str:
        """One line: the rank, its bound and what certifies it."""
        how = (f"complete enumeration of {self.n_regions} regions" if self.regions.complete
               else f"{self.n_regions} regions visited")
        return (f"functional dimension on D: {self.rank} of bound {self.bound} ({self.status}; {how}, "
                f"{self.seconds:.1f} s)")


def simplex(domain: Domain) -> np.ndarray:
    """The d + 1 points p_0 = centre, p_k = centre + (w_k / 4) e_k of the box; shape [d + 1, d]."""
    d = domain.dim
    return domain.centre + np.vstack([np.zeros(d), np.diag(domain.width / 4)])


SCALE_SAMPLES = 2048


def column_scale(net: Network, domain: Domain, n: int = SCALE_SAMPLES, seed: int = 0) -> np.ndarray:
    """1 / (each column's norm of J over n uniform points of D), 1 where a column vanishes there; [P].

    Applied to every row before the rows are compressed, so that the compression's rounding
    (≈ 1e-16 of the largest singular value) is not amplified later by the scaling of a column whose
    parameters are tiny."""
    X = domain.sample(n, np.random.default_rng(seed))
    Z, _ = net.preactivations(X)
    norms = np.zeros(sum(W.size + (b.size if net.bias else 0) for W, b in net.layers))
    for i in range(0, n, 256):
        J = np.concatenate([net.pattern_jacobian(z > 0, x[None]) for z, x in zip(Z[i:i + 256], X[i:i + 256])])
        norms += (J.reshape(-1, len(norms)) ** 2).sum(0)
    norms = np.sqrt(norms)
    return 1.0 / np.where(norms > 0, norms, 1.0)


def equilibrate(C: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """C with every column divided by ``norms`` (the column norms of the rows C stands for, summed
    exactly as the rows came), and columns whose rows were all zero set to zero (compression leaves
    rounding there).  The rows are Q C with Q's columns orthonormal, so their scaled stack is Q (C·D):
    scaling C scales the rows it stands for, and an invertible diagonal D keeps the rank."""
    return np.where(norms > 0, C / np.where(norms > 0, norms, 1.0), 0.0)


def _rank(s: np.ndarray, rtol: float) -> int:
    return int((s > rtol * (s[0] if len(s) else 0.0)).sum())


class _Rows:
    """The rows absorbed so far, as the triangular factor R of their column-scaled stack (QR: the stack is
    Q R with Q's columns orthonormal, so R has its singular values), and the rank they give."""

    def __init__(self, P: int, scale: np.ndarray, rtol: float):
        self.C, self.s, self.colsq = np.zeros((0, P)), np.zeros(0), np.zeros(P)
        self.scale, self.rtol, self.pending, self.rank = scale, rtol, [], 0

    def add(self, rows: np.ndarray) -> None:
        self.pending.append(rows * self.scale)

    @property
    def n_pending(self) -> int:
        return sum(len(p) for p in self.pending)

    def absorb(self) -> int:
        if self.pending:
            rows = np.vstack(self.pending)
            self.colsq += (rows ** 2).sum(0)
            self.C, self.pending = np.linalg.qr(np.vstack([self.C, rows]), mode="r"), []
            self.s = np.linalg.svd(equilibrate(self.C, np.sqrt(self.colsq)), compute_uv=False)
            self.rank = _rank(self.s, self.rtol)
        return self.rank


SAMPLES = 8192
"""Uniform points of D whose regions are absorbed before the walk (in chunks of 1024)."""


def exact_rank(model: Model, theta: np.ndarray, domain: Domain, *, rtol: float = DEFAULT_RTOL,
               max_regions: int | None = None, max_seconds: float | None = None, samples: int = SAMPLES,
               points: np.ndarray | None = None, seed: int = 0, progress: bool = False) -> ExactRank:
    """The functional dimension of the relu / leaky-relu MLP ``model`` at θ on ``domain``, exact up to
    the numerical rank's tolerance (see the module's text for the statuses).

    Two phases.  First the regions of ``points`` (e.g. the probe inputs; those inside D) and of
    ``samples`` uniform points of D: a pattern seen at a point with every pre-activation nonzero is a
    full-dimensional region of D, so its rows count, and reaching the bound this way certifies it.
    Then, below the bound, the walk over every region (:func:`~genni.exact.regions.walk`), which alone can
    certify a deficit.

    theta : ndarray, shape [P];  points : ndarray [m, d] or None;  max_regions, max_seconds : the walk's
    budget (None: none)
    """
    with threadpool_limits(1, user_api="blas"):  # small matrices: BLAS threads only contend (40× slower when busy)
        return _exact_rank(model, theta, domain, rtol, max_regions, max_seconds, samples, points, seed, progress)


def _exact_rank(model, theta, domain, rtol, max_regions, max_seconds, samples, points, seed, progress) -> ExactRank:
    net = Network.of(model, theta)
    P = model.n_params
    bound = model.expected_rank()
    pts = simplex(domain)
    chunk = max(4 * P, 256)
    out = Walk(domain)
    t0 = time.perf_counter()
    counter = [0]
    rows = _Rows(P, column_scale(net, domain), rtol)
    trace: list[tuple[int, int]] = []
    seen: dict[bytes, int] = {}

    def take(pattern, point, radius) -> None:
        seen[pattern.tobytes()] = len(out.patterns)
        out.patterns.append(pattern)
        out.points.append(point)
        out.radii.append(radius)
        rows.add(net.pattern_jacobian(pattern, pts).reshape(-1, P))

    def check(pb) -> bool:
        before = rows.rank
        if rows.absorb() > before or not trace:
            trace.append((len(out.patterns), rows.rank))
            pb.set_postfix(rank=f"{rows.rank}/{bound}")
        return rows.rank >= bound

    stopped = None
    with bar(progress=progress, desc="functional dimension on D", unit=" regions") as pb:
        rng = np.random.default_rng(seed)
        given = np.asarray(points, dtype=np.float64).reshape(-1, domain.dim) if points is not None else np.zeros((0, domain.dim))
        given = given[domain.contains(given)]
        batches = [given[i:i + 1024] for i in range(0, len(given), 1024)]
        batches += [domain.sample(min(1024, samples - i), rng) for i in range(0, samples, 1024)]
        for X in batches:
            Z = net.preactivations(X)[0]
            generic = (np.abs(Z) > 0).all(1)
            for z, x in zip(Z[generic], X[generic]):
                pattern = z > 0
                if pattern.tobytes() not in seen:
                    take(pattern, x, float("nan"))
                    pb.update(1)
            if check(pb):
                stopped = "sampled"
                break
        n_sampled = len(out.patterns)
        if stopped is None:
            gen = walk(Pieces((net,)), domain, counter=counter)
            visited = 0
            for region in gen:
                visited += 1
                i = seen.get(region.pattern.tobytes())
                if i is None:
                    take(region.pattern, region.point, region.radius)
                    pb.update(1)
                else:  # a sampled region: keep the walk's interior point (the Chebyshev centre)
                    out.points[i], out.radii[i] = region.point, region.radius
                if rows.n_pending >= chunk and check(pb):
                    stopped = "bound"
                    break
                if max_regions is not None and visited >= max_regions:
                    stopped = "regions"
                    break
                if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                    stopped = "seconds"
                    break
            gen.close()
        check(pb)
    rank, s = rows.rank, rows.s
    n = len(out.patterns)
    out.complete = stopped is None
    out.status = {None: "complete",
                  "sampled": f"stopped at the bound after the regions of {n} sampled points' patterns",
                  "bound": f"stopped at the bound after {n} regions",
                  "regions": f"incomplete after {n} regions: region budget",
                  "seconds": f"incomplete after {n} regions: time budget"}[stopped]
    out.seconds, out.lps = time.perf_counter() - t0, counter[0]
    if rank >= bound:
        status = STATUSES[0]
    elif out.complete:
        status = STATUSES[1]
    else:
        status = STATUSES[2]
    tol = rtol * (s[0] if len(s) else 0.0)
    gap = float(s[rank - 1] / s[rank]) if 0 < rank < len(s) and s[rank] > 0 else float("inf")
    by_tol = np.array([(t, _rank(s, t)) for t in TOLERANCES])
    return ExactRank(rank=rank, bound=bound, n_params=P, status=status, singular_values=s, rtol=rtol,
                     rank_tolerance=float(tol), gap=gap, by_tolerance=by_tol,
                     trace=np.array(trace, dtype=np.int64).reshape(-1, 2), regions=out, seconds=out.seconds,
                     n_sampled=n_sampled)


__all__ = ["STATUSES", "TOLERANCES", "ExactRank", "exact_rank", "simplex"]
