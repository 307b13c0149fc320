"""Linear regions of a piecewise-linear map inside a box, by walking across facets.

A region R_s = {x ∈ D : σ_j z_j(x) ≥ 0 for every hidden unit j}, σ_j = +1 for active and −1 for
inactive units of the pattern s, is a convex polytope {x : B x ≤ g} (the unit rows B_j = −σ_j A_j,
g_j = σ_j c_j with z(x) = A x + c on R_s, then the box's rows).  The walk starts from the region
holding the box's centre and, breadth first, for each region found:

1. a point well inside it: for the first region the Chebyshev centre, max r s.t. B_i x + r‖B_i‖ ≤ g_i
   (one LP); for the others, the point reached from across a facet, pushed along the facet's normal to
   where its least distance to every row is largest;
2. its *facets*: the region's vertices from Qhull's halfspace intersection about that point; a unit's
   row is a facet when at least d vertices lie on its hyperplane, its point x_f their centroid and its
   margin t the distance from x_f to every other row.  When Qhull cannot (d = 1, a degenerate region)
   or a margin is too thin to trust, one LP per unit decides: max t s.t. B_j x = g_j,
   B_i x + t‖B_i‖ ≤ g_i (i ≠ j), a facet when t > 0;
3. its neighbours: from x_f a step η = min(t/2, ``STEP`` × the box's diameter) across the hyperplane,
   x' = x_f + η B_j / ‖B_j‖, and the pattern at x' by a forward pass (deeper units bend at the facet,
   so the neighbour's pattern is computed, never guessed).

The box is convex and the regions tile it, so their facet graph is connected and the walk finds every
region whose facets it can resolve: facets thinner than ``FACET_TOL`` × the box's diameter are not
crossed (a region reached only through such slivers would be missed; the brute-force test compares
with dense sampling).  LPs are scipy's HiGHS.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import HalfspaceIntersection, QhullError
from threadpoolctl import threadpool_limits

from ..errors import GenniError
from ..progress import bar
from .domain import Domain
from .pieces import Pieces

FACET_TOL = 1e-9
"""A unit's hyperplane is a facet when its margin t exceeds this × the box's diameter."""

STEP = 1e-6
"""The step across a facet is min(t/2, STEP × the box's diameter)."""


@dataclass(frozen=True)
class Region:
    """One linear region: pattern (bool [H]), an interior point ([d]: the centroid of its vertices, or its
    Chebyshev centre where the vertices were not computed) and the radius of a ball about it inside the
    region; A [H, d], c [H]: the pre-activations z = A x + c."""

    pattern: np.ndarray
    point: np.ndarray
    radius: float
    A: np.ndarray
    c: np.ndarray


@dataclass
class Walk:
    """What a walk over regions found (filled in as it goes).

    patterns : bool [R, H];  points : [R, d];  radii : [R];  complete : every region reached;
    status : "complete" | "incomplete after R regions: region budget" | "…: time budget" | "stopped";
    seconds, lps : time taken and LPs solved
    """

    domain: Domain
    patterns: list = field(default_factory=list)
    points: list = field(default_factory=list)
    radii: list = field(default_factory=list)
    complete: bool = False
    status: str = "stopped"
    seconds: float = 0.0
    lps: int = 0

    @property
    def n_regions(self) -> int:
        return len(self.patterns)

    def arrays(self) -> dict:
        """patterns bool [R, H], points [R, d], radii [R]."""
        d = self.domain.dim
        return {"patterns": np.array(self.patterns, dtype=bool).reshape(len(self.patterns), -1),
                "points": np.array(self.points, dtype=np.float64).reshape(-1, d),
                "radii": np.array(self.radii, dtype=np.float64)}


def _lp(c, A_ub, b_ub, A_eq=None, b_eq=None, bounds=None):
    return linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")


def halfspaces(A: np.ndarray, c: np.ndarray, pattern: np.ndarray, domain: Domain):
    """The region {x ∈ D : σ_j (A_j x + c_j) ≥ 0} as B x ≤ g.

    Units whose pre-activation is constant on the region (A_j = 0: every unit feeding them is
    inactive) bound nothing and are left out.
    returns : (B [m, d], g [m], row norms [m], units [m]: the unit of each row, −1 for the box's rows)
    """
    sigma = np.where(pattern, 1.0, -1.0)
    G, h = domain.halfspaces
    scale = np.abs(A).max(initial=0.0) * np.abs(np.r_[domain.lo, domain.hi]).max() + np.abs(c).max(initial=0.0) + 1.0
    live = np.flatnonzero(np.linalg.norm(A, axis=1) > 1e-12 * scale)
    B = np.vstack([-sigma[live, None] * A[live], G])
    g = np.concatenate([sigma[live] * c[live], h])
    return B, g, np.linalg.norm(B, axis=1), np.r_[live, -np.ones(len(h), dtype=int)]


def chebyshev(B: np.ndarray, g: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of the largest ball in {x : B x ≤ g} (rows with zero norm are constant checks)."""
    d = B.shape[1]
    res = _lp(np.r_[np.zeros(d), -1.0], np.hstack([B, norms[:, None]]), g,
              bounds=[(None, None)] * d + [(0, None)])
    if res.status != 0:
        return np.full(d, np.nan), -1.0
    return res.x[:d], float(res.x[d])


def _facets_lp(B, g, norms, rows, diam: float):
    """Facets among ``rows`` by one LP each: [(j, point on the facet, margin t)].  Rows that coincide with
    row j (units sharing a hyperplane, as bias-free units of a 1-D input all do) are crossed with it."""
    d = B.shape[1]
    Bt = np.hstack([B, norms[:, None]])
    unit = np.hstack([B, g[:, None]]) / norms[:, None]
    out = []
    for j in rows:
        keep = np.abs(unit - unit[j]).max(1) > 1e-12 * (1 + np.abs(unit[j]).max())  # rows coinciding with j cross with it
        res = _lp(np.r_[np.zeros(d), -1.0], Bt[keep], g[keep], A_eq=np.r_[B[j], 0.0][None], b_eq=g[j: j + 1],
                  bounds=[(None, None)] * d + [(0, diam)])
        if res.status == 0 and res.x[d] > FACET_TOL * diam:
            out.append((j, res.x[:d], float(res.x[d])))
    return out, len(rows)


def _facets_qhull(B, g, norms, rows, centre, diam: float):
    """Facets among ``rows`` from the region's vertices (Qhull's halfspace intersection about the interior
    point): a row is a facet when at least d vertices lie on its hyperplane; its point is their centroid,
    its margin the centroid's distance to every row not through it.  Rows whose margin is too thin to
    trust go back to :func:`_facets_lp`.  Raises QhullError on degenerate input."""
    d = B.shape[1]
    hs = HalfspaceIntersection(np.hstack([B / norms[:, None], -(g / norms)[:, None]]), centre)
    V = hs.intersections
    slack = (g[:, None] - B @ V.T) / norms[:, None]  # [rows, vertices], ≥ 0 inside
    tol = 1e-9 * diam
    on = np.abs(slack) <= tol
    out, retry = [], []
    for j in rows:
        if on[j].sum() < d:
            continue
        xf = V[on[j]].mean(0)
        other = (g - B @ xf) / norms
        other = other[np.abs(other) > tol]
        t = float(other.min()) if len(other) else diam
        if t > FACET_TOL * diam * 1e3:
            out.append((j, xf, t))
        else:
            retry.append(j)
    if retry:
        more, _ = _facets_lp(B, g, norms, retry, diam)
        out.extend(more)
    return out, len(retry), V


def _slack(B, g, norms, x) -> np.ndarray:
    """Distance from x to each row's hyperplane, positive inside; [m]."""
    return (g - B @ x) / norms


def _push_inside(B, g, norms, x, u, diam: float) -> tuple[np.ndarray, float]:
    """From x (just across a facet) along u (the facet's normal, into the region) to the point of the ray
    farthest from every row (the least slack maximised over 49 step lengths, 0 and 1e-9 … ½ × diam)."""
    alphas = np.r_[0.0, diam * np.geomspace(1e-9, 0.5, 48)]
    slack = _slack(B, g, norms, x)[None] - alphas[:, None] * ((B @ u) / norms)[None]
    best = int(np.argmax(slack.min(1)))
    return x + alphas[best] * u, float(slack[best].min())


def walk(pieces: Pieces, domain: Domain, *, start: np.ndarray | None = None, counter: list | None = None,
         facets: str = "vertices") -> Iterator[Region]:
    """Every linear region of ``pieces`` inside ``domain``, breadth first from the region of ``start``
    (default: a point within 1e-6 of the box's centre); a generator, so a caller can stop whenever it has what it needs.

    counter : a list whose first entry counts the LPs solved
    facets : "vertices" (Qhull, LPs where it cannot) or "lp" (one Chebyshev LP per region and one LP per
        unit: the plain method, kept as the benchmark's baseline)
    """
    if facets not in ("vertices", "lp"):
        raise GenniError(f"unknown facet method '{facets}' (choose from: vertices, lp)")
    if pieces.in_dim != domain.dim:
        raise GenniError(f"the domain has dimension {domain.dim}; the network takes {pieces.in_dim} inputs")
    counter = counter if counter is not None else [0]
    diam = float(np.linalg.norm(domain.width))
    if start is None:  # the centre, nudged off any hyperplane through it (bias-free units all cross 0)
        u = np.random.default_rng(0).standard_normal(domain.dim)
        start = domain.centre + STEP * domain.width * u / np.linalg.norm(u)
    x0 = np.asarray(start, dtype=np.float64)
    first = pieces.pattern(x0[None])[0]
    queue = deque([(x0, None, first)])
    seen = {first.tobytes()}
    d = domain.dim
    while queue:
        x, u, pattern = queue.popleft()
        A, c = pieces.affine(pattern)
        B, g, norms, units = halfspaces(A, c, pattern, domain)
        rows = np.flatnonzero(units >= 0)
        found = None
        if d >= 2 and facets == "vertices":  # an interior point with room to spare, then the vertices about it
            if u is None:
                inside, room = chebyshev(B, g, norms)
                counter[0] += 1
            else:
                inside, room = _push_inside(B, g, norms, x, u, diam)
            if room > FACET_TOL * diam * 1e3:
                try:
                    found, lps, V = _facets_qhull(B, g, norms, rows, inside, diam)
                    point = V.mean(0)  # the vertices' centroid: inside, well away from the facets
                    radius = float(_slack(B, g, norms, point).min())
                except (QhullError, ValueError):
                    found = None
        if found is None:
            point, radius = chebyshev(B, g, norms)
            found, lps = _facets_lp(B, g, norms, rows, diam)
            lps += 1
            if not np.isfinite(point).all() or radius <= 0:
                point, radius = x, 0.0
        counter[0] += lps
        yield Region(pattern, point, radius, A, c)
        for j, xf, t in found:
            n = B[j] / norms[j]
            xn = xf + min(t / 2, STEP * diam) * n
            key = pieces.pattern(xn[None])[0]
            if key[units[j]] == pattern[units[j]]:
                continue
            k = key.tobytes()
            if k not in seen:
                seen.add(k)
                queue.append((xn, n, key))


def enumerate_regions(pieces: Pieces, domain: Domain, *, max_regions: int | None = None,
                      max_seconds: float | None = None, progress: bool = False, facets: str = "vertices") -> Walk:
    """Walk every linear region of ``pieces`` inside ``domain`` (:func:`walk`) within a budget.

    max_regions, max_seconds : stop after this many regions / seconds (None: no limit); the result then
    says "incomplete after R regions" and which budget ended it.
    """
    out = Walk(domain)
    t0 = time.perf_counter()
    counter = [0]
    with bar(progress=progress, desc="linear regions", unit=" regions") as pb, threadpool_limits(1, user_api="blas"):
        gen = walk(pieces, domain, counter=counter, facets=facets)
        for region in gen:
            out.patterns.append(region.pattern)
            out.points.append(region.point)
            out.radii.append(region.radius)
            pb.update(1)
            if max_regions is not None and out.n_regions >= max_regions:
                out.status = f"incomplete after {out.n_regions} regions: region budget"
                break
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                out.status = f"incomplete after {out.n_regions} regions: time budget"
                break
        else:
            out.complete, out.status = True, "complete"
        gen.close()
    out.seconds, out.lps = time.perf_counter() - t0, counter[0]
    return out


def sampled_regions(pieces: Pieces, domain: Domain, n: int, *, seed: int = 0, batch: int = 65_536) -> int:
    """How many distinct activation patterns ``n`` uniform points of ``domain`` meet: a lower bound on the
    number of linear regions inside it (each pattern met is a region; regions no point falls in are missed).

    Where a walk stops on its budget, this says how far the box's region count exceeds what was walked.
    """
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    for start in range(0, int(n), batch):
        X = domain.sample(min(batch, int(n) - start), rng)
        packed = np.packbits(pieces.pattern(X), axis=1)
        seen.update(packed[i].tobytes() for i in range(len(packed)))
    return len(seen)
