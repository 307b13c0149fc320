r"""The batch driver: elements enter a batch of at most :func:`batch_capacity`, advance together one
step at a time (:mod:`genni.search.steps`), stall, hop, restart, finish and leave, replaced from the
queue; :func:`stream` yields them in chunks as they finish, :func:`run_search` collects them.

Dead units (ReLU)
-----------------
A ReLU unit j of layer l with z_lj(x) ≤ 0 on every probe input is *dead*: it adds
nothing to f and no gradient flows through it, so the element has lost a unit of
capacity for good.  With ``revive`` the search re-draws such a unit's incoming
weights and bias from the initial distribution and zeroes its outgoing weights,

    W_l[j, :], b_l[j] ← fresh draw,    W_{l+1}[:, j] ← 0,

which leaves f_θ(X), hence L, exactly unchanged while giving the unit back a gradient.
An element that ends unconverged with a dead unit reports status ``dead_units``.

Attempts, restarts and hops
---------------------------
An attempt ends when L ≤ tol (converged), after ``max_steps`` steps, or when it
stalls: L fails to fall to ``stall_factor``·L over ``patience`` steps, or μ exceeds
10¹² (no descent direction at the current point: a local minimum or a ReLU kink).
A stalled element first *hops* (up to ``hops`` times per attempt): θ ← θ + σ·ξ with
ξ a fresh draw of the initialisation and σ = ``hop_scale``; then it restarts from a
fresh seeded initialisation, up to ``restarts`` times.

Element i's attempt a starts from a generator seeded by (seed, i, a); hops and
revivals draw from generators seeded by (seed, i, a, event), and every product that
touches one element's data runs on that element alone, single-threaded, so on a given machine
element i's θ is bitwise the same whatever else is requested, already stored, the batch size or
the thread count (lm).

ReLU: random initialisations meet the ReLU landscape's spurious minima and kink
"chattering" (pattern flips at probe points near kinks): on the 2-16-16-1 moons
reference they stall at a relative discrepancy ~1e-4..1e-6.  ``init = "perturb"`` with
a small ``init_scale`` (~0.01) plus hops converges.  Near tol such an element can still sit at a
kink minimum (L ~1e-10..1e-7: a few probe inputs on the other side of a unit's kink than under θ*,
which the Gauss–Newton model, linear through the kink, does not see) until it stalls and hops; the
default experiment stalls after ``patience = 20`` steps for that reason (docs/method.md).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import fields

import numpy as np
import torch

from ..models.base import Model
from ..progress import bar
from ..seeds import element_generator
from . import batching
from .batching import RowRunner
from .problem import Found, Problem, measured
from .settings import MU_MAX, SearchSettings, resolve_solver
from .steps import (
    adam_prepare,
    adam_step,
    cg_prepare,
    cg_step,
    lm_accept_one,
    lm_prepare,
    lm_prepare_rows,
    lm_step,
    lm_trial_one,
)

_REVIVE_EVENT, _HOP_EVENT = 1 << 20, 1 << 21
ROUND_STEPS = 8
"""LM on the CPU: steps a row takes in one task before the driver looks at the batch again (fewer when it
converges, stalls or runs out of steps sooner); its J and JᵀJ stay in the core's cache between them."""
_META = ("index", "attempt", "steps", "attempt_steps", "since", "seed", "hops", "events")


def _runner(problem: Problem) -> RowRunner:
    return RowRunner(problem.X.device, rows_batched=batching.batched(problem.X),
                     thread_safe=bool(getattr(problem.model, "thread_safe", False)))


class _Batch:
    """The active elements: per-row bookkeeping plus the method's state tensors."""

    def __init__(self, problem: Problem, settings: SearchSettings, seed: int, starts: dict | None = None,
                 runner: RowRunner | None = None):
        self.problem, self.s, self.seed, self.starts = problem, settings, seed, starts
        self.runner = runner or _runner(problem)
        self.dev = problem.X.device
        self.P = problem.model.n_params
        self.st: dict[str, torch.Tensor] = {}
        self.meta: dict[str, np.ndarray] = {k: np.zeros(0, np.int64) for k in _META}
        self.best = np.zeros(0)
        self.can_die = problem.model.revivable
        self.mixed = settings.precision == "mixed"

    def __len__(self) -> int:
        return len(self.meta["index"])

    def _gen(self, row: int, event: int) -> torch.Generator:
        g, _ = element_generator(self.seed, int(self.meta["index"][row]), int(self.meta["attempt"][row]), event)
        return g

    def _init_theta(self, index: int, attempt: int) -> tuple[torch.Tensor, int, float]:
        """(θ, its seed, the attempt's initial μ) of element ``index``'s attempt."""
        g, s = element_generator(self.seed, index, attempt)
        if attempt == 0 and self.starts is not None and index in self.starts:
            return torch.as_tensor(self.starts[index], dtype=torch.float64).clone(), s, self.s.initial_mu(False)
        theta = self.problem.model.init_theta(1, g, self.s.init_scale)[0]
        if self.s.init == "perturb":
            theta = self.problem.theta_ref.cpu() + theta
        return theta, s, self.s.initial_mu(self.s.init == "random")

    def _fresh_state(self, theta: torch.Tensor, mu: list[float]) -> dict[str, torch.Tensor]:
        k = theta.shape[0]
        z = lambda *shape: torch.zeros(k, *shape, dtype=torch.float64, device=self.dev)  # noqa: E731
        mu0 = torch.tensor(mu, dtype=torch.float64, device=self.dev)
        st = {"theta": theta.to(self.dev), "loss": z()}
        if self.s.matrix_free:
            m = self.problem.X.shape[0] * self.problem.model.out_dim
            st.update(r=z(m), g=z(self.P), d=z(self.P), D=z(self.P), mu=mu0, nu=z() + 2.0)
        elif self.s.method == "lm":
            m = self.problem.X.shape[0] * self.problem.model.out_dim
            st.update(r=z(m), J=z(m, self.P), A=z(self.P, self.P), g=z(self.P), D=z(self.P), mu=mu0, nu=z() + 2.0)
        else:
            st.update(m=z(self.P), v=z(self.P), t=z())
        return st

    def _prepare(self, rows: torch.Tensor) -> None:
        if rows.numel() and self.can_die and self.s.revive:
            self._revive(rows)
        if self.s.matrix_free:
            cg_prepare(self.problem, self.st, rows, self.s.damping)
        elif self.s.method == "lm":
            lm_prepare(self.problem, self.st, rows, self.s.damping, self.runner, self.mixed)
        else:
            adam_prepare(self.problem, self.st, rows)

    @property
    def rowwise_lm(self) -> bool:
        """Direct LM with rows visited one by one (on the CPU): each row advances in its own task."""
        return self.s.method == "lm" and not self.s.matrix_free and not self.runner.batched

    def _revive(self, rows: torch.Tensor) -> bool:
        """Re-draw the dead units of the given rows (driver docstring); returns whether any row changed."""
        dead = self.problem.model.dead_mask(self.st["theta"][rows], self.problem.X)
        has = dead.any(1)
        if not bool(has.any()):
            return False
        sel = rows[has]
        sel_np = sel.cpu().numpy()
        gens = []
        for r in sel_np:
            self.meta["events"][r] += 1
            gens.append(self._gen(r, _REVIVE_EVENT + int(self.meta["events"][r])))
        self.st["theta"][sel] = self.problem.model.revive(self.st["theta"][sel], dead[has], gens)
        return True

    def add(self, indices: list[int]) -> None:
        inits = [self._init_theta(i, 0) for i in indices]
        fresh = self._fresh_state(torch.stack([t for t, _, _ in inits]), [m for _, _, m in inits])
        start = len(self)
        self.st = fresh if not self.st else {k: torch.cat([self.st[k], fresh[k]]) for k in self.st}
        k = len(indices)
        self.meta["index"] = np.concatenate([self.meta["index"], indices]).astype(np.int64)
        self.meta["seed"] = np.concatenate([self.meta["seed"], [s for _, s, _ in inits]]).astype(np.int64)
        for key in _META:
            if key not in ("index", "seed"):
                self.meta[key] = np.concatenate([self.meta[key], np.zeros(k, np.int64)])
        self._prepare(torch.arange(start, start + k, device=self.dev))
        self.best = np.concatenate([self.best, self.st["loss"][start:].cpu().numpy()])

    def _reset_rows(self, rows: np.ndarray, thetas: list[torch.Tensor], mu: list[float]) -> None:
        fresh = self._fresh_state(torch.stack(thetas), mu)
        t = torch.as_tensor(rows, device=self.dev)
        for k in self.st:
            self.st[k][t] = fresh[k]
        self.meta["since"][rows] = 0
        self._prepare(t)
        self.best[rows] = self.st["loss"][t].cpu().numpy()

    def restart(self, rows: np.ndarray) -> None:
        thetas, mu = [], []
        for r in rows:
            self.meta["attempt"][r] += 1
            theta, s, m = self._init_theta(int(self.meta["index"][r]), int(self.meta["attempt"][r]))
            thetas.append(theta)
            mu.append(m)
            self.meta["seed"][r] = s
        self.meta["attempt_steps"][rows] = 0
        self.meta["hops"][rows] = 0
        self.meta["events"][rows] = 0
        self._reset_rows(rows, thetas, mu)

    def hop(self, rows: np.ndarray) -> None:
        thetas = []
        for r in rows:
            self.meta["hops"][r] += 1
            g = self._gen(r, _HOP_EVENT + int(self.meta["hops"][r]))
            xi = self.problem.model.init_theta(1, g, self.s.hop_scale)[0]
            thetas.append(self.st["theta"][r].cpu() + xi)
        self._reset_rows(rows, thetas, [self.s.initial_mu(False)] * len(rows))

    def step(self) -> None:
        """Advance every row: one step of the whole batch, or on the CPU (direct LM) up to
        :data:`ROUND_STEPS` steps of each row in its own task, a row stopping early at its first
        :meth:`flags` event.  Each step updates the row's counters, best loss and steps since it last
        improved."""
        if self.rowwise_lm:
            self.runner(self._advance_row, torch.arange(len(self), device=self.dev))
            return
        if self.s.matrix_free:
            accept = cg_step(self.problem, self.st, self.s.cg_tol, self.s.cg_max)
            self._prepare(accept.nonzero().squeeze(1))
        elif self.s.method == "lm":
            accept = lm_step(self.problem, self.st, self.s.damping, self.s.geodesic, self.runner, self.mixed)
            self._prepare(accept.nonzero().squeeze(1))
        else:
            adam_step(self.problem, self.st, self.s.lr)
        self._count(slice(None), self.st["loss"].cpu().numpy())

    def _count(self, rows, loss: np.ndarray) -> None:
        for key in ("steps", "attempt_steps", "since"):
            self.meta[key][rows] += 1
        improved = loss < self.s.stall_factor * self.best[rows]
        self.best[rows] = np.where(improved, loss, self.best[rows])
        self.meta["since"][rows] = np.where(improved, 0, self.meta["since"][rows])

    def _advance_row(self, idx: slice) -> None:
        """Up to :data:`ROUND_STEPS` LM steps of row ``idx.start`` in the calling thread (a worker's task),
        by :func:`~genni.search.steps.lm_trial_one` and :func:`~genni.search.steps.lm_accept_one`; the row's
        bits depend on its own data only, not on how its steps are grouped."""
        i, s, st = idx.start, self.s, self.st
        for _ in range(ROUND_STEPS):
            if lm_accept_one(st, i, *lm_trial_one(self.problem, st, i, s.geodesic, self.mixed)):
                lm_prepare_rows(self.problem, st, idx, s.damping, self.mixed)
                # revive after preparing, where J rules out dead units cheaply; a revived row is prepared
                # again, so the row ends as revive-then-prepare leaves it
                if (self.can_die and s.revive and self.problem.model.may_have_dead_units(st["J"][i])
                        and self._revive(torch.arange(i, i + 1, device=self.dev))):
                    lm_prepare_rows(self.problem, st, idx, s.damping, self.mixed)
            self._count(idx, st["loss"][idx].numpy())
            if self.flags(idx)["event"][0]:
                return

    def flags(self, rows=slice(None)) -> dict[str, np.ndarray]:
        """Per row: ``conv`` (L ≤ tol), ``diverged`` (L not finite), ``stalled`` (no improvement by the
        stall factor over the stall window, or μ > 10¹²), ``out_of_steps`` (the attempt's step budget
        spent) and ``event`` (any of them: the driver acts)."""
        loss = self.st["loss"][rows].cpu().numpy()
        mu_dead = (self.st["mu"][rows].cpu().numpy() > MU_MAX) if "mu" in self.st else np.zeros(loss.shape, bool)
        f = {"conv": loss <= self.s.tol, "diverged": ~np.isfinite(loss),
             "stalled": (self.meta["since"][rows] >= self.s.stall_window) | mu_dead,
             "out_of_steps": self.meta["attempt_steps"][rows] >= self.s.steps_per_attempt}
        f["event"] = f["conv"] | f["diverged"] | f["stalled"] | f["out_of_steps"]
        return f

    def remove(self, rows: np.ndarray) -> dict:
        keep = np.ones(len(self), bool)
        keep[rows] = False
        kt = torch.as_tensor(keep, device=self.dev)
        out = {"theta": self.st["theta"][~kt], "loss": self.st["loss"][~kt]}
        out.update({k: v[rows] for k, v in self.meta.items()})
        self.st = {k: v[kt] for k, v in self.st.items()}
        self.meta = {k: v[keep] for k, v in self.meta.items()}
        self.best = self.best[keep]
        return out


def _finish(problem: Problem, parts: list[dict], status: list[np.ndarray], tol: float) -> Found:
    cat = lambda k: np.concatenate([p[k] for p in parts])  # noqa: E731
    return measured(problem, torch.cat([p["theta"] for p in parts]), tol, np.concatenate(status).astype(np.int8),
                    index=cat("index"), steps=cat("steps"), restarts=cat("attempt"), init_seed=cat("seed"),
                    hops=cat("hops").astype(np.int32))


def batch_capacity(model: Model, n_probe: int, settings: SearchSettings) -> int:
    """Elements advanced together: ``batch_size``, shrunk so that the LM working set
    (J : [B, nK, P] and JᵀJ : [B, P, P] in float64) fits in ``memory_mb``."""
    if settings.method != "lm" or settings.matrix_free:
        return settings.batch_size
    P, m = model.n_params, n_probe * model.out_dim
    per_element = 8 * (m * P + 3 * P * P + 4 * m)
    return max(1, min(settings.batch_size, int(settings.memory_mb * 2**20 // per_element)))


def stream(problem: Problem, settings: SearchSettings, *, seed: int, indices: Sequence[int] | None = None,
           progress: bool = False, flush_every: int = 16, flush_seconds: float = 5.0,
           callback=None, starts: dict | None = None, on_stall=None) -> Iterator[Found]:
    """Find functional equivalents of ``problem.theta_ref``; yields chunks as elements finish.

    indices : which elements to find (default ``range(settings.n)``); element i is
        reproducible from (seed, i) alone, which is what makes resuming exact.
    callback : called with each :class:`Found` chunk before it is yielded (tests use it
        to simulate an interruption).
    starts : element index -> θ [P] to start its first attempt from (continuation stages); restarts
        draw as usual
    on_stall : called once with a one-line message as soon as every element of the first batch has
        stalled at least once and none has converged (the relu random-start situation)

    Budget: an element that does not converge ends after at most (restarts + 1) × max_steps steps
    (hops happen inside an attempt and do not extend it): 2,000 LM steps with the defaults.  The
    progress bar shows converged / gave up / in flight, and of those in flight how many have stalled
    at least once (those hopping or restarting).
    yields : :class:`Found` with ``theta`` of shape [k, P]
    """
    settings = resolve_solver(settings, problem.model.n_params)
    queue = deque(range(settings.n) if indices is None else indices)
    cap = batch_capacity(problem.model, problem.X.shape[0], settings)
    runner = _runner(problem)
    batch = _Batch(problem, settings, seed, starts, runner)
    parts: list[dict] = []
    status: list[np.ndarray] = []
    n_done = n_conv = 0
    last = time.monotonic()
    pbar = bar(total=len(queue), progress=progress, unit="el",
               desc=f"search ({'lm, matrix-free' if settings.matrix_free else settings.method})")
    warned = on_stall is None
    first_batch: set[int] = set()
    try:
        while queue or len(batch):
            if queue and len(batch) < cap:
                new = [queue.popleft() for _ in range(min(cap - len(batch), len(queue)))]
                if not first_batch:
                    first_batch = set(new)
                batch.add(new)
            batch.step()
            f = batch.flags()
            conv, diverged, stalled, out_of_steps = f["conv"], f["diverged"], f["stalled"], f["out_of_steps"]
            ended = ~conv & (stalled | out_of_steps | diverged)
            hop = ended & stalled & ~diverged & ~out_of_steps & (batch.meta["hops"] < settings.hops)
            if hop.any():
                batch.hop(np.flatnonzero(hop))
            ended &= ~hop
            retry = ended & (batch.meta["attempt"] < settings.restarts)
            if retry.any():
                batch.restart(np.flatnonzero(retry))
            done = conv | (ended & ~retry)
            if not warned:
                rows_first = np.isin(batch.meta["index"], list(first_batch))
                tried = (batch.meta["attempt"] > 0) | (batch.meta["hops"] > 0) | ended
                if n_conv == 0 and not conv.any() and rows_first.any() and tried[rows_first].all():
                    warned = True
                    act = getattr(problem.model, "activation", problem.model.kind)
                    on_stall(f"all {int(rows_first.sum())} elements of the first batch have stalled and none has "
                             f"converged ({act}, init = {settings.init!r}, tol = {settings.tol:g})")
            if done.any():
                rows = np.flatnonzero(done)
                code = np.where(conv[rows], 0, np.where(diverged[rows], 3, np.where(stalled[rows], 1, 2)))
                parts.append(batch.remove(rows))
                status.append(code)
                n_done += len(rows)
                n_conv += int(conv[rows].sum())
            # the counts first, then the update that redraws the bar (else the line shows the previous counts)
            pbar.set_postfix(converged=n_conv, gave_up=n_done - n_conv, in_flight=len(batch),
                             stalled=int(((batch.meta["attempt"] > 0) | (batch.meta["hops"] > 0)).sum()),
                             refresh=False)
            if done.any():
                pbar.update(len(rows))
            pending = sum(len(p["index"]) for p in parts)
            if pending and (pending >= flush_every or not (queue or len(batch))
                            or time.monotonic() - last > flush_seconds):
                chunk = _finish(problem, parts, status, settings.tol)
                parts, status, last = [], [], time.monotonic()
                if callback is not None:
                    callback(chunk)
                yield chunk
    finally:
        runner.close()
        pbar.close()


def run_search(problem: Problem, settings: SearchSettings, *, seed: int, **kw) -> Found:
    """All of :func:`stream` in memory, as one :class:`Found` (sorted by element index)."""
    chunks = list(stream(problem, settings, seed=seed, **kw))
    if not chunks:
        raise ValueError("no elements requested")
    f = Found.concat(chunks)
    order = np.argsort(f.index, kind="stable")
    return Found(**{k.name: None if getattr(f, k.name) is None else getattr(f, k.name)[order] for k in fields(Found)})


__all__ = ["batch_capacity", "stream", "run_search"]
