"""The exact sup-norm discrepancy of two relu / leaky-relu MLPs over a box, by mixed-integer linear programming.

For one architecture with parameters θ and θ* and a box D, the quantity is

    S(θ, θ*; D) = max_{x ∈ D} max_k |f_θ(x)_k − f_θ*(x)_k|,

the largest per-output absolute difference anywhere on D.  :func:`certified_sup` brackets it as
L ≤ S ≤ U: U is a proven bound, L the value at an input actually found (the witness).

The MILP.  Both networks are encoded on the shared input x (:mod:`genni.exact.encoding`: big-M
constraints with one binary per hidden unit whose bounds straddle 0, plus the paired cuts between the
units of θ and θ*), so Δ(x) = f_θ(x) − f_θ*(x) = G v + g₀ is affine in the variables v.  For each
output k and sign s ∈ {+1, −1} a HiGHS solve (``scipy.optimize.milp``) maximises s·Δ_k (2K solves,
largest bound first), each carrying the cut s·Δ_k ≥ L_best: a direction that cannot beat the best value
found is then infeasible, which proves its maximum ≤ L_best without closing a gap.

The box search.  Big-M bounds computed over all of D are loose, and HiGHS never recomputes them
while branching, so one MILP on D stalls on near-copies (θ close to θ*, the interesting case).  The
search is therefore best-first branch and bound over boxes of D: each box is encoded afresh (its own
bounds, fewer unstable units) and bounded by interval arithmetic and the paired bounds; a box whose
bound cannot beat L_best (up to the gaps) is closed, one with at most ``max_binaries`` unstable units
is solved by the MILPs above, any other is halved along its widest side.  U is the largest bound of a
closed or still-open box.  Samples (uniform, D's centre and corners) and box centres feed L_best.

Tolerances.  U rests on HiGHS's dual bounds and infeasibility proofs, sound up to its tolerances:
integrality 1e-6 (a δ within 1e-6 of 0 or 1 counts as integral), primal feasibility 1e-7 on every
constraint.  HiGHS also closes a node once its bound is within the gaps of its incumbent, so each solve's
bound is raised by max(absolute gap, mip_rel_gap·|bound|): the absolute gap is HiGHS's 1e-6 in its units,
which dividing the objective by σ·abs_gap/1e-6 makes ``abs_gap``·σ (σ the output scale).  A solution
feasible only within tolerance can disagree with the networks, which is why L is recomputed by a plain
float64 forward pass of both networks at the witness (clipped into D, evaluated alone) and never taken
from the solver's objective, and why U and L are reported separately; U is never below L.
"""

from __future__ import annotations

import heapq
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix

from ..errors import GenniError
from ..models import Model
from ..progress import bar
from .domain import Domain
from .encoding import Encoding, encode, interval, joint, pair_units, quiet_solver
from .pieces import Network

SUP_STATUS_CODES = ("optimal", "time_limit", "node_limit", "failed", "budget")
"""Status of one certified sup: ``optimal`` (every box closed: cut off, bounded within the gaps, or solved),
``time_limit`` / ``node_limit`` (the search or a solve stopped at the limit: U is the largest bound of the
boxes left, still sound, only looser), ``failed`` (a solve returned no bound: U falls back to its box's
interval and paired bound), ``budget`` (the batch driver's budget ran out first: no U)."""

_N_SAMPLES = 256
_MAX_CORNER_DIM = 10


@dataclass(frozen=True)
class Sup:
    """The sup-norm discrepancy of f_θ and f_θ* on a box, bracketed: lower ≤ max_{x∈D} max_k |Δf_k(x)| ≤ upper.

    upper : proven upper bound U (box bounds and HiGHS's dual bounds, up to its tolerances);  lower : L, the float64 value
    max_k |f_θ(w)_k − f_θ*(w)_k| at the witness w;  witness : ndarray, shape [d], in D;  gap : U − L ≥ 0;
    status : one of :data:`SUP_STATUS_CODES`;  seconds : wall time;  n_binaries : binaries of the MILP on
    the whole of D;  n_nodes : branch-and-bound nodes over all MILPs;  n_boxes : boxes of the input split;
    n_milps : MILPs solved;  scale : σ, the output scale the objective is divided by
    (the largest |output| of either network on the samples);  method : how U was obtained, in words
    """

    upper: float
    lower: float
    witness: np.ndarray
    gap: float
    status: str
    seconds: float
    n_binaries: int
    n_nodes: int
    n_boxes: int
    n_milps: int
    scale: float
    method: str


def _samples(domain: Domain, n: int, seed: int) -> np.ndarray:
    """n uniform points in D, its centre and (for d ≤ 10) its 2^d corners: shape [m, d]."""
    parts = [domain.sample(n, np.random.default_rng(seed)), domain.centre[None]]
    d = domain.dim
    if d <= _MAX_CORNER_DIM:
        bits = (np.arange(2 ** d)[:, None] >> np.arange(d)) & 1
        parts.append(np.where(bits == 1, domain.hi, domain.lo))
    return np.vstack(parts)


def _difference(net: Network, ref: Network, X: np.ndarray) -> np.ndarray:
    """Δ(X) = f_θ(X) − f_θ*(X), plain float64 forward passes: shape [m, K]."""
    return net.preactivations(X)[1] - ref.preactivations(X)[1]


def _status_of(res, node_limit) -> str:
    """Our status of one scipy ``milp`` result (HiGHS reports a node limit as "Solution limit reached")."""
    if res.status == 0:
        return "optimal"
    msg = str(res.message).lower()
    if "time limit" in msg:
        return "time_limit"
    if "solution limit" in msg or (node_limit is not None and (res.mip_node_count or 0) >= node_limit):
        return "node_limit"
    return "time_limit" if res.status == 1 else "failed"


def _check(model: Model, theta, theta_ref, domain: Domain) -> tuple[Network, Network]:
    if not isinstance(domain, Domain):
        raise GenniError(f"a certified sup needs a Domain box, got {type(domain).__name__}")
    net, ref = Network.of(model, theta), Network.of(model, theta_ref)
    if domain.dim != net.in_dim:
        raise GenniError(f"the domain box has dimension {domain.dim}; {model.describe()} takes {net.in_dim} inputs")
    if net.alpha > 1.0:
        raise GenniError(f"leaky relu with negative slope {net.alpha:g} > 1 is not convex; the big-M encoding needs ≤ 1")
    return net, ref


@dataclass
class _Search:
    """The state of one search: the best value found (lower, at witness), the worst status, counters."""

    lower: float
    witness: np.ndarray
    status: str = "optimal"
    nodes: int = 0
    boxes: int = 0
    milps: int = 0

    def offer(self, X: np.ndarray, values: np.ndarray) -> None:
        i = int(np.argmax(values))
        if values[i] > self.lower:
            self.lower, self.witness = float(values[i]), X[i].copy()

    def worsen(self, status: str) -> None:
        self.status = max(self.status, status, key=SUP_STATUS_CODES.index)


@dataclass(frozen=True)
class _Box:
    """One box of the input split, encoded: its bounds (lo, hi [d]), both networks' encodings on it and the
    box's bounds on Δ_k (d_lo, d_hi [K], from interval arithmetic and the paired bounds); upper = the bound
    on max_k |Δ_k|."""

    lo: np.ndarray
    hi: np.ndarray
    enc: Encoding
    enc_ref: Encoding
    d_lo: np.ndarray
    d_hi: np.ndarray

    @property
    def upper(self) -> float:
        return float(max(self.d_hi.max(), -self.d_lo.min()))

    @property
    def n_binaries(self) -> int:
        return self.enc.n_binaries + self.enc_ref.n_binaries


def _encode_box(net: Network, ref: Network, pairs: list, lo: np.ndarray, hi: np.ndarray, tighten: bool) -> _Box:
    box = Domain(lo, hi)
    enc_ref = encode(ref, box, tighten)
    enc = encode(net, box, tighten, enc_ref, ref, pairs)
    d = box.dim
    G = np.hstack([enc.F[:, :d] - enc_ref.F[:, :d], enc.F[:, d:], -enc_ref.F[:, d:]])
    d_lo, d_hi = interval(G, enc.g - enc_ref.g, np.concatenate([lo, enc.lb, enc_ref.lb]),
                           np.concatenate([hi, enc.ub, enc_ref.ub]))
    d_lo, d_hi = np.maximum(d_lo, enc.out[0]), np.minimum(d_hi, enc.out[1])
    return _Box(lo, hi, enc, enc_ref, d_lo, d_hi)


def _solve_box(box: _Box, net: Network, ref: Network, state: _Search, *, deadline: float, S: float,
               mip_rel_gap: float, node_limit) -> float:
    """max_{x ∈ box} max_k |Δ_k(x)| ≤ the returned bound, by one MILP per output and sign (see the module's
    docstring), each cut at the best value found so far; witnesses update ``state``."""
    d = box.lo.size
    A, lo, hi, lb, ub, integ, G, g0 = joint(box.enc, box.enc_ref, d)
    bounds = Bounds(np.concatenate([box.lo, lb]), np.concatenate([box.hi, ub]))
    integrality = np.concatenate([np.zeros(d, np.int64), integ])
    K = G.shape[0]
    directions = sorted([(box.d_hi[k], k, 1.0) for k in range(K)] + [(-box.d_lo[k], k, -1.0) for k in range(K)],
                        reverse=True)
    upper = -np.inf
    for fallback, k, s in directions:
        cut = state.lower
        if fallback <= cut:
            upper = max(upper, fallback)
            continue
        left = deadline - time.perf_counter()
        if left <= 0:
            state.worsen("time_limit")
            upper = max(upper, fallback)
            continue
        row = csr_matrix((s * G[k] / S)[None])
        cons = [LinearConstraint(A, lo, hi), LinearConstraint(row, (cut - s * g0[k]) / S, np.inf)]
        options = {"time_limit": float(left), "mip_rel_gap": float(mip_rel_gap), "presolve": True}
        if node_limit is not None:
            options["node_limit"] = int(node_limit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with quiet_solver():
                res = milp(-s * G[k] / S, integrality=integrality, bounds=bounds, constraints=cons, options=options)
        state.milps += 1
        state.nodes += int(res.mip_node_count or 0)
        if res.x is not None:
            x = np.clip(res.x[:d], box.lo, box.hi)[None]
            state.offer(x, np.abs(_difference(net, ref, x)).max(axis=1))
        if res.status == 2:  # infeasible with the cut: this direction's maximum is ≤ cut
            bound = cut
        else:
            st = _status_of(res, node_limit)
            db = res.mip_dual_bound if res.mip_dual_bound is not None else (res.fun if res.status == 0 else None)
            if db is not None and np.isfinite(db):  # HiGHS closes a node within its gaps of the incumbent
                bound = -S * float(db) + s * g0[k] + S * max(1e-6, mip_rel_gap * abs(float(db)))
            else:
                bound = np.inf
            if not np.isfinite(bound) and st == "optimal":
                st = "failed"
            state.worsen(st)
            bound = max(cut, bound)
        upper = max(upper, min(bound, fallback))
    return upper


def _search(net: Network, ref: Network, domain: Domain, X: np.ndarray, f_ref: np.ndarray, *, time_limit: float,
            mip_rel_gap: float, abs_gap: float, node_limit, tighten: bool, max_binaries: int | None,
            method: str, start: float) -> Sup:
    """Best-first branch and bound over boxes of D: a box whose bound on |Δ| cannot beat the best value found
    (up to the gaps) is closed; one with at most ``max_binaries`` unstable units (None: any) is solved by MILP;
    any other is halved along its widest side (relative to D).  U = the largest bound of a closed or open box.
    ``start``: the time (time.perf_counter) the limit and the reported seconds count from."""
    deadline = start + time_limit
    f = net.preactivations(X)[1]
    state = _Search(-np.inf, X[0].copy())
    state.offer(X, np.abs(f - f_ref).max(axis=1))
    sigma = float(max(np.abs(f).max(), np.abs(f_ref).max()))
    sigma = sigma if np.isfinite(sigma) and sigma > 0 else 1.0
    S = sigma * abs_gap / 1e-6  # HiGHS's absolute gap 1e-6 in the scaled objective is abs_gap·σ
    pairs = pair_units(net, ref, X)
    root = _encode_box(net, ref, pairs, domain.lo, domain.hi, tighten)
    heap, closed, count = [(-root.upper, 0, root)], -np.inf, 1
    min_width = 1e-9 * domain.width
    while heap:
        box = heap[0][2]
        if box.upper <= state.lower + max(abs_gap * sigma, mip_rel_gap * state.lower):
            break  # every open box is within the gaps of the best value found
        if time.perf_counter() >= deadline:
            state.worsen("time_limit")
            break
        heapq.heappop(heap)
        width = box.hi - box.lo
        if max_binaries is None or box.n_binaries <= max_binaries or (width <= min_width).all():
            closed = max(closed, _solve_box(box, net, ref, state, deadline=deadline, S=S,
                                            mip_rel_gap=mip_rel_gap, node_limit=node_limit))
            continue
        i = int(np.argmax(width / domain.width))
        mid = (box.lo[i] + box.hi[i]) / 2
        for lo, hi in ((box.lo, np.where(np.arange(box.lo.size) == i, mid, box.hi)),
                       (np.where(np.arange(box.lo.size) == i, mid, box.lo), box.hi)):
            child = _encode_box(net, ref, pairs, lo, hi, tighten)
            centre = ((lo + hi) / 2)[None]
            state.offer(centre, np.abs(_difference(net, ref, centre)).max(axis=1))
            heapq.heappush(heap, (-child.upper, count, child))
            count += 1
    state.boxes = count
    lower = float(np.abs(_difference(net, ref, state.witness[None])).max())  # the witness's value, evaluated alone
    upper = max([lower, closed] + [b.upper for _, _, b in heap])
    return Sup(float(upper), lower, state.witness, float(upper - lower), state.status,
               time.perf_counter() - start, int(root.n_binaries), state.nodes, state.boxes, state.milps, sigma, method)


def _method(tighten: bool, max_binaries: int | None) -> str:
    split = ("best-first halving of the input box until a box has at most "
             f"{max_binaries} unstable units, then " if max_binaries is not None else "")
    return (f"{split}MILP with big-M on the unstable units of both networks, bounds by interval arithmetic"
            + (" tightened by one LP per unit" if tighten else "")
            + " and by pairing each unit with its nearest reference unit (|h_j − c_j h*_π(j)| cuts); one HiGHS "
            "solve (scipy.optimize.milp) per output and sign, cut at the best value found; U = the largest box "
            "bound or solver dual bound, L = a float64 forward pass at the witness")


def certified_sup(model: Model, theta: np.ndarray, theta_ref: np.ndarray, domain: Domain, *, time_limit: float = 60.0,
                  mip_rel_gap: float = 1e-6, abs_gap: float = 1e-7, node_limit: int | None = None,
                  max_binaries: int | None = 16, tighten: bool = False, n_samples: int = _N_SAMPLES,
                  seed: int = 0) -> Sup:
    """max_{x ∈ D} max_k |f_θ(x)_k − f_θ*(x)_k| bracketed between a witness value and a proven bound.

    model : a relu or leaky_relu :class:`~genni.models.mlp.MLP` (with or without biases)
    theta, theta_ref : ndarray, shape [P], θ and θ*;  domain : the box D (dimension = the model's input size)
    time_limit : seconds for the whole search;  mip_rel_gap : relative gap at which a MILP or the box search
        stops;  abs_gap : the absolute gap, in units of the output scale σ;  node_limit : branch-and-bound
        nodes per MILP (None: no limit);  max_binaries : a box is solved by MILP once it has at most this many
        unstable units, else halved (None: one MILP on D itself);  tighten : tighten the big-M bounds by LPs;
        n_samples, seed : the uniform samples (plus D's centre and, for d ≤ 10, its corners) whose best
        value starts L
    returns : :class:`Sup` with lower ≤ the true maximum ≤ upper (see the module's docstring for the
        tolerances U holds under)
    """
    net, ref = _check(model, theta, theta_ref, domain)
    start = time.perf_counter()
    X = _samples(domain, n_samples, seed)
    return _search(net, ref, domain, X, ref.preactivations(X)[1], time_limit=time_limit, mip_rel_gap=mip_rel_gap,
                   abs_gap=abs_gap, node_limit=node_limit, tighten=tighten, max_binaries=max_binaries,
                   method=_method(tighten, max_binaries), start=start)


def relative_bound(sup_upper, output_power, K: int):
    """K·U² / P_out: a bound on the mean squared relative discrepancy E‖f_θ(x) − f_θ*(x)‖² / P_out.

    For every x ∈ D, ‖Δf(x)‖² = Σ_k Δf_k(x)² ≤ K·max_k |Δf_k(x)|² ≤ K·U², so the bound holds for the mean
    over any distribution of inputs inside D, with P_out = E‖f_θ*(x)‖² the reference's output power (under
    whichever distribution the relative discrepancy is reported for).
    sup_upper : float or ndarray (U, shape [N]);  output_power : float > 0;  K : the number of outputs
    returns : float or ndarray of sup_upper's shape
    """
    power = float(output_power)
    if not (np.isfinite(power) and power > 0):
        raise GenniError(f"a relative bound needs a positive output power, got {output_power!r}")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise GenniError(f"a relative bound needs the number of outputs K ≥ 1, got {K!r}")
    U = np.asarray(sup_upper, dtype=np.float64)
    out = int(K) * U * U / power
    return float(out) if out.ndim == 0 else out


def certified_sups(model: Model, thetas: np.ndarray, theta_ref: np.ndarray, domain: Domain, *,
                   time_limit_each: float = 60.0, budget_seconds: float | None = None, progress: bool = False,
                   mip_rel_gap: float = 1e-6, abs_gap: float = 1e-7, max_binaries: int | None = 16,
                   tighten: bool = False) -> dict:
    """:func:`certified_sup` for every row of ``thetas`` against one θ*, on one set of samples.

    thetas : ndarray, shape [N, P];  theta_ref : ndarray, shape [P];  time_limit_each : seconds per element;
    budget_seconds : seconds for all of them (None: no budget).  An element not started when the budget is
    spent, or whose search the remaining budget cut short, gets status ``budget`` and a NaN upper bound and
    gap (its lower bound and witness, values actually attained, are kept).
    returns : dict with ``certified_sup`` [N] (U), ``certified_gap`` [N] (U − L), ``certified_lower`` [N] (L),
        ``certified_status`` [N] int8 indices into ``certified_status_codes`` (= :data:`SUP_STATUS_CODES`),
        ``certified_witness`` [N, d], ``certified_seconds`` [N], ``certified_binaries`` [N] (binaries of the
        MILP on the whole of D)
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    if thetas.ndim != 2:
        raise GenniError(f"certified sups need parameter vectors of shape [N, P], got shape {thetas.shape}")
    ref = _check(model, theta_ref, theta_ref, domain)[0]
    N, d = len(thetas), domain.dim
    out = {"certified_sup": np.full(N, np.nan), "certified_gap": np.full(N, np.nan),
           "certified_lower": np.full(N, np.nan),
           "certified_status": np.full(N, SUP_STATUS_CODES.index("budget"), dtype=np.int8),
           "certified_status_codes": list(SUP_STATUS_CODES), "certified_witness": np.full((N, d), np.nan),
           "certified_seconds": np.zeros(N), "certified_binaries": np.zeros(N, dtype=np.int64)}
    start = time.perf_counter()
    X = _samples(domain, _N_SAMPLES, 0)
    f_ref = ref.preactivations(X)[1]
    method = _method(tighten, max_binaries)
    for i in bar(range(N), progress=progress, desc="certified sup", unit="element"):
        left = np.inf if budget_seconds is None else budget_seconds - (time.perf_counter() - start)
        if left <= 0:
            break
        t0 = time.perf_counter()
        net = _check(model, thetas[i], theta_ref, domain)[0]
        sup = _search(net, ref, domain, X, f_ref, time_limit=min(time_limit_each, left), mip_rel_gap=mip_rel_gap,
                      abs_gap=abs_gap, node_limit=None, tighten=tighten, max_binaries=max_binaries, method=method,
                      start=t0)
        out["certified_lower"][i], out["certified_witness"][i] = sup.lower, sup.witness
        out["certified_seconds"][i], out["certified_binaries"][i] = sup.seconds, sup.n_binaries
        if not (sup.status == "time_limit" and left < time_limit_each):
            out["certified_sup"][i], out["certified_gap"][i] = sup.upper, sup.gap
            out["certified_status"][i] = SUP_STATUS_CODES.index(sup.status)
    return out


__all__ = ["Sup", "SUP_STATUS_CODES", "certified_sup", "certified_sups", "relative_bound"]
