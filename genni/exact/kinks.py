"""Inputs that find the rank of J for relu / leaky-relu MLPs: points on both sides of each unit's kink.

On the region R_s of an activation pattern s, f is affine in x and so is the parameter Jacobian
J(x) = ∂f_θ(x)/∂θ; its rows at points of R_s span at most what d + 1 affinely independent points of R_s
span.  The rank of J over a set of inputs therefore grows only with the number of *different* patterns
those inputs visit, and the patterns that i.i.d. data rarely visits sit next to the boundaries
{z_j(x) = 0} of the units.  Here every unit's boundary inside a domain box D is located exactly along
random lines (as parameter-extraction attacks do: Carlini, Jagielski & Mironov 2020), and inputs are
placed on both sides of each kink.

Along a line x(t) = p + t·u (‖u‖ = 1) clipped to D, t ∈ [t₀, t₁], every pre-activation is piecewise
linear in t.  Starting at t₀, the pattern s on (t, t + ε) is read off the forward pass at x(t) (a unit
at z_j = 0 takes the side its directional derivative points to); on that piece

    z(t') = z(t) + (t' − t)·ż,    ż = A_s u,

so the piece ends at the first zero t* = t − z_j/ż_j over the units moving toward zero; t* is a kink of
that unit, and the walk starts again at x(t*) with a fresh forward pass (no drift).  Each kink at t_k
gives the pair x(t_k ∓ δ), δ = min(offset · diam D, a third of the distance to the neighbouring kinks or
ends of the line), one point on each side of the kink inside the two pieces it separates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import GenniError
from ..models import Model
from .domain import Domain
from .pieces import Network

DEFAULT_OFFSET = 1e-3
"""δ, the distance of a pair's points from their kink, as a fraction of the domain's diameter ‖hi − lo‖
(never more than a third of the distance to the neighbouring kinks on the line)."""

DEFAULT_LINES = 16
"""Lines walked at a time when more kinks are needed."""

DEFAULT_STEP = 0.05
"""How far a followed kink moves before the next line through it, as a fraction of the box's widths."""

ZERO_TOL = 1e-11
"""|z_j| ≤ ZERO_TOL · (|W_j|·|h| + |b_j|) counts as z_j = 0 (the unit sits on its kink): it takes the side
its derivative along the line points to."""


@dataclass(frozen=True)
class Lines:
    """Lines x(t) = p + t·u clipped to a box.

    P [L, d] a point of each line in the box;  U [L, d] unit directions;  t0, t1 [L]: the line is in the box
    exactly for t ∈ [t0, t1] (t0 ≤ 0 ≤ t1)
    """

    P: np.ndarray
    U: np.ndarray
    t0: np.ndarray
    t1: np.ndarray

    def at(self, line: np.ndarray, t: np.ndarray) -> np.ndarray:
        """x(t) on the given lines: line [k] int, t [k] -> [k, d]."""
        return self.P[line] + np.asarray(t)[:, None] * self.U[line]


@dataclass(frozen=True)
class Kinks:
    """Every kink of every hidden unit along some lines, in order along each line.

    lines : the :class:`Lines`;  line [k] int: which line;  t [k]: where on it (sorted within a line);
    unit [k] int: the hidden unit (layer by layer, 0 … H − 1) whose pre-activation is zero there
    """

    lines: Lines
    line: np.ndarray
    t: np.ndarray
    unit: np.ndarray

    @property
    def points(self) -> np.ndarray:
        """The kinks themselves, shape [k, d] (z_unit = 0 at each row, up to rounding)."""
        return self.lines.at(self.line, self.t)

    def pairs(self, domain: Domain, offset: float = DEFAULT_OFFSET) -> tuple[np.ndarray, np.ndarray]:
        """One point on each side of every kink: rows 2i and 2i + 1 lie at t_i − δ_i and t_i + δ_i on kink
        i's line, δ_i = min(offset · ‖hi − lo‖, (t_i − t_prev)/3, (t_next − t_i)/3) with t_prev, t_next the
        neighbouring kinks or ends of the line, so they lie in the two pieces the kink separates.

        returns : (X [2k, d] inside the domain, unit [k] each pair's unit)
        """
        if not offset > 0:
            raise GenniError(f"the kink offset must be positive, got {offset!r}")
        k = len(self.t)
        if k == 0:
            return np.zeros((0, domain.dim)), np.zeros(0, np.int64)
        first = np.r_[True, self.line[1:] != self.line[:-1]]
        last = np.r_[self.line[1:] != self.line[:-1], True]
        prev = np.where(first, self.lines.t0[self.line], np.r_[0.0, self.t[:-1]])
        nxt = np.where(last, self.lines.t1[self.line], np.r_[self.t[1:], 0.0])
        delta = np.minimum(offset * float(np.linalg.norm(domain.width)),
                           np.minimum(self.t - prev, nxt - self.t) / 3)
        ts = np.stack([self.t - delta, self.t + delta], axis=1).ravel()
        X = self.lines.at(np.repeat(self.line, 2), ts)
        return np.clip(X, domain.lo, domain.hi), self.unit.copy()


def random_lines(domain: Domain, n: int, rng: np.random.Generator) -> Lines:
    """n lines through points uniform in the box, with directions uniform on the sphere, clipped to the box."""
    P = domain.sample(n, rng)
    U = rng.standard_normal((int(n), domain.dim))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return clip_lines(domain, P, U)


def clip_lines(domain: Domain, P: np.ndarray, U: np.ndarray) -> Lines:
    """The lines x(t) = p + t·u through the rows of P [L, d] (in the box) along the rows of U [L, d]
    (non-zero, normalised here), with the interval [t0, t1] on which each stays in the box."""
    P = np.asarray(P, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    if P.ndim != 2 or P.shape != U.shape or P.shape[1] != domain.dim:
        raise GenniError(f"lines need points and directions of shape [L, {domain.dim}], got {P.shape} and {U.shape}")
    if not domain.contains(P).all():
        raise GenniError("every line needs a point inside the domain")
    norm = np.linalg.norm(U, axis=1, keepdims=True)
    if not (norm > 0).all():
        raise GenniError("every line needs a non-zero direction")
    U = U / norm
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (domain.lo - P) / U
        b = (domain.hi - P) / U
    moving = U != 0
    t0 = np.where(moving, np.minimum(a, b), -np.inf).max(axis=1)
    t1 = np.where(moving, np.maximum(a, b), np.inf).min(axis=1)
    return Lines(P, U, np.minimum(t0, 0.0), np.maximum(t1, 0.0))


def _right_side(net: Network, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activations Z [L, H] at the rows of X [L, d] and their derivatives Ż [L, H] along the rows of
    V [L, d], on the piece just after X (t → t⁺): a unit at its kink takes the side Ż points to."""
    h, dh = X, V
    Zs, dZs = [], []
    for W, b in net.layers[:-1]:
        z, dz = h @ W.T + b, dh @ W.T
        scale = np.abs(h) @ np.abs(W).T + np.abs(b)
        on = np.where(np.abs(z) > ZERO_TOL * scale, z > 0, dz > 0)
        slope = np.where(on, 1.0, net.alpha)
        Zs.append(np.where(np.abs(z) > ZERO_TOL * scale, z, 0.0))
        dZs.append(dz)
        h, dh = slope * z, slope * dz
    return np.concatenate(Zs, axis=1), np.concatenate(dZs, axis=1)


def line_kinks(net: Network, lines: Lines, max_pieces: int | None = None) -> Kinks:
    """Every kink of every hidden unit along the lines, exactly (see the module's docstring).

    All lines are walked together, one piece per step; a line whose next kink lies past t1 is done.
    net : the network (:meth:`Network.of`);  max_pieces : at most this many pieces per line (default
    64·H + 64; a :class:`GenniError` beyond it)
    returns : :class:`Kinks`, sorted by line then t
    """
    H = net.n_hidden
    limit = int(max_pieces) if max_pieces is not None else 64 * H + 64
    found_line, found_t, found_unit = [], [], []
    t = lines.t0.copy()
    alive = np.flatnonzero(lines.t1 > lines.t0) if H else np.zeros(0, np.int64)
    steps = 0
    while alive.size:
        steps += 1
        if steps > limit:
            raise GenniError(f"a line crossed more than {limit} pieces; the network's kinks are too dense to walk")
        ta = t[alive]
        Z, dZ = _right_side(net, lines.at(alive, ta), lines.U[alive])
        toward = ((Z > 0) & (dZ < 0)) | ((Z < 0) & (dZ > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(toward, -Z / dZ, np.inf)
        unit = step.argmin(axis=1)
        tn = np.maximum(ta + step[np.arange(len(alive)), unit], np.nextafter(ta, np.inf))  # always move on
        inside = tn < lines.t1[alive]
        found_line.append(alive[inside])
        found_t.append(tn[inside])
        found_unit.append(unit[inside])
        t[alive[inside]] = tn[inside]
        alive = alive[inside]
    line = np.concatenate(found_line) if found_line else np.zeros(0, np.int64)
    tt = np.concatenate(found_t) if found_t else np.zeros(0)
    unit = np.concatenate(found_unit) if found_unit else np.zeros(0, np.int64)
    order = np.lexsort((tt, line))
    return Kinks(lines, line[order].astype(np.int64), tt[order], unit[order].astype(np.int64))


class KinkStream:
    """Fresh inputs on both sides of the units' kinks in a domain, spread over the units: a ``draw``
    (callable n -> X [n, d], float64) for :func:`genni.identifiability.rank_growth`.

    Pairs are given round robin over the hidden units whose boundary has been met (layer by layer, deeper
    layers included): one pair straddling a kink of the first unit, one of the next, and so on, so every
    unit is crossed equally often however rarely random lines meet its boundary.  A round starts, when
    fewer pairs wait than there are units, by walking ``lines`` random lines through the box
    (:func:`random_lines`, :func:`line_kinks`), which finds the units and refills their queues.  A unit
    whose queue is still empty is then *followed along its boundary*: ``lines`` lines through its known
    kinks moved by N(0, (step · (hi − lo))²) per coordinate, in random directions, cross that boundary near
    the known kinks and so find new kinks of it (a random walk along the boundary, as parameter-extraction
    attacks follow a unit's hyperplane).  Each unit keeps at most ``cap`` pairs waiting.  A unit whose
    boundary misses every line (dead or always active on D) is never given.  The same network, domain and
    seed give the same points for the same sequence of calls, however the draws are cut.

    model, theta : a relu / leaky-relu MLP (kind mlp) and its parameters [P];  domain : the box D;
    seed : an int, a numpy SeedSequence or Generator;  offset : δ as a fraction of the domain's diameter
    (:meth:`Kinks.pairs`);  lines : lines walked at a time;  step : the moves of a followed kink, as a
    fraction of the box's widths;  cap : pairs kept waiting per unit;  max_lines : a :class:`GenniError`
    when this many lines in a row have given no pair (no unit changes state on D)
    """

    def __init__(self, model: Model, theta: np.ndarray, domain: Domain, seed=0, *, offset: float = DEFAULT_OFFSET,
                 lines: int = DEFAULT_LINES, step: float = DEFAULT_STEP, cap: int = 64, max_lines: int = 4096):
        self.net = Network.of(model, theta)
        if domain.dim != self.net.in_dim:
            raise GenniError(f"a domain in R^{domain.dim} for a network with {self.net.in_dim} inputs")
        for name, v in (("offset", offset), ("step", step)):
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise GenniError(f"the kink {name} must be a positive number, got {v!r}")
        if int(lines) < 1 or int(cap) < 1:
            raise GenniError(f"kinks need at least one line at a time and one pair per unit, got {lines!r}, {cap!r}")
        self.domain, self.offset, self.lines, self.step = domain, float(offset), int(lines), float(step)
        self.cap, self.max_lines = int(cap), int(max_lines)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        H = self.net.n_hidden
        self.queues = [deque() for _ in range(H)]   # pairs (x⁻, x⁺) waiting, per unit
        self.anchors = [[] for _ in range(H)]       # kinks found, per unit: where to follow its boundary from
        self.seen = np.zeros(H, bool)               # units with a kink on some line so far
        self.cursor = 0
        self.pending: deque = deque()               # the second point of a pair cut by the end of a draw
        self.lines_walked = 0
        self.idle = 0                               # lines walked since the last pair given

    def _walk(self, lines: Lines) -> None:
        """Walk the lines; queue every pair (up to ``cap`` per unit) and keep the kinks as anchors."""
        self.lines_walked += len(lines.t0)
        self.idle += len(lines.t0)
        if self.idle > self.max_lines:
            raise GenniError(f"no hidden unit changes state along {self.idle} lines through the domain: "
                             "kink inputs need units whose boundary meets it")
        kinks = line_kinks(self.net, lines)
        X, unit = kinks.pairs(self.domain, self.offset)
        X = X.reshape(len(unit), 2, self.domain.dim)
        points = kinks.points
        self.seen[unit] = True
        order = np.argsort(unit, kind="stable")
        units, starts = np.unique(unit[order], return_index=True)
        for j, rows in zip(units, np.split(order, starts[1:])):
            q = self.queues[j]
            q.extend(X[rows[: max(self.cap - len(q), 0)]])
            a = np.concatenate([self.anchors[j], points[rows]]) if len(self.anchors[j]) else points[rows]
            self.anchors[j] = a if len(a) <= self.cap else a[self.rng.choice(len(a), self.cap, replace=False)]

    def _explore(self) -> None:
        """``lines`` random lines through the box; until some unit is seen, more of them."""
        self._walk(random_lines(self.domain, self.lines, self.rng))
        while not self.seen.any():
            self._walk(random_lines(self.domain, self.lines, self.rng))

    def _follow(self, units: np.ndarray) -> None:
        """``lines`` lines for each of the units, through its known kinks moved at random, in random
        directions (all walked together)."""
        P = np.concatenate([a[self.rng.integers(len(a), size=self.lines)]
                            for a in (self.anchors[j] for j in units)])
        P = P + self.step * self.domain.width * self.rng.standard_normal(P.shape)
        P = np.clip(P, self.domain.lo, self.domain.hi)
        U = self.rng.standard_normal(P.shape)
        U /= np.linalg.norm(U, axis=1, keepdims=True)
        self._walk(clip_lines(self.domain, P, U))

    def __call__(self, n: int) -> np.ndarray:
        """The next n inputs, shape [n, d]."""
        n = int(n)
        if n < 0:
            raise GenniError(f"cannot draw {n} inputs")
        out = []
        while self.pending and len(out) < n:
            out.append(self.pending.popleft())
        H = len(self.queues)
        while len(out) < n:
            if self.cursor == 0:  # a new round: find units, refill the queues that ran dry
                if not self.seen.any() or sum(map(len, self.queues)) < self.seen.sum():
                    self._explore()
                dry = np.flatnonzero(self.seen & np.array([not q for q in self.queues]))
                if dry.size:
                    self._follow(dry)
            j = self.cursor
            self.cursor = (self.cursor + 1) % H
            if self.queues[j]:
                a, b = self.queues[j].popleft()
                self.idle = 0
                out.append(a)
                (out if len(out) < n else self.pending).append(b)
        return np.array(out, dtype=np.float64).reshape(n, self.domain.dim)


def kink_inputs(model: Model, theta: np.ndarray, domain: Domain, n: int, rng=0, *,
                offset: float = DEFAULT_OFFSET) -> np.ndarray:
    """n inputs in the box on both sides of the hidden units' kinks, round robin over the units
    (the first n of a :class:`KinkStream`): rows 2i, 2i + 1 straddle one kink of one unit.

    model, theta : a relu / leaky-relu MLP and its parameters [P];  domain : the box D;  rng : an int seed
    or a numpy Generator
    returns : ndarray, shape [n, d_in], float64, every row in D
    """
    return KinkStream(model, theta, domain, rng, offset=offset)(n)


def kink_stream(model: Model, theta: np.ndarray, domain: Domain, seed: int = 0, *,
                offset: float = DEFAULT_OFFSET) -> KinkStream:
    """A seeded ``draw`` (n -> X [n, d_in]) of kink inputs: :class:`KinkStream`."""
    return KinkStream(model, theta, domain, seed, offset=offset)


__all__ = ["DEFAULT_OFFSET", "DEFAULT_LINES", "DEFAULT_STEP", "Lines", "Kinks", "KinkStream", "random_lines",
           "clip_lines", "line_kinks", "kink_inputs", "kink_stream"]
