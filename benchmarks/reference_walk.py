"""The reference walk step, kept side by side with :mod:`genni.walk` so benchmarks measure the ratio in one process.

This is the dense step genni's walks are measured against: at every step the full output Jacobian J [n·K, P],
its full SVD for the class's tangent space, the full pre-activation Jacobian G [n·H, P] of every (unit, input)
pair, an SVD of the active constraints per round (full_matrices), a Gauss–Newton retraction by
``numpy.linalg.lstsq`` on the full J, and the certificate by ``torch.func.jvp`` at the segment's sample points.
The walk loop (chains one after another, streams restarted at every stored state) is the same as
:func:`genni.walk.walk`'s.  Used by ``benchmarks/bench_walk.py`` and as an oracle in the tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from genni.discrepancy import SEGMENT_POINTS, SEGMENT_SUBDIVISIONS, discrepancy, output_power
from genni.models.base import Model
from genni.walk import ChainLog, Start, Stored, WalkSettings


@dataclass
class _Chain:
    """One chain's state (as :func:`genni.walk.walk` keeps it)."""

    chain: int
    theta: np.ndarray
    stored_theta: np.ndarray
    parent_row: int
    start_step: int
    remaining: int
    seed: int
    log: ChainLog
    max_rows: int | None = None
    rows: int = 0
    h: float = 0.0
    direction: np.ndarray | None = None
    since: int = 0
    cert: float = 0.0
    attempts: int = 0
    rng: np.random.Generator | None = None

    @property
    def step(self) -> int:
        return self.start_step + self.log.accepted

    def restart_stream(self, settings: WalkSettings) -> None:
        self.rng = np.random.default_rng([self.seed, 0x3A1C, self.chain, self.step])
        self.h, self.direction, self.since = settings.step_size, None, 0


def dense_preactivation_jacobian(model: Model, theta: np.ndarray, X: torch.Tensor):
    """(z [n·H], G [n·H, P]): every hidden pre-activation and its gradient in θ, as a dense matrix (relu MLPs;
    ``None`` for other kinds).  Hidden layer l's pre-activations are the outputs of the truncated network
    widths[:l+2], whose parameters are a prefix of θ."""
    from dataclasses import replace

    from genni.models.activations import PIECEWISE_LINEAR
    from genni.models.mlp import MLP, closed_form

    if not isinstance(model, MLP) or model.activation not in PIECEWISE_LINEAR:
        return None
    zs, Gs = [], []
    th = torch.as_tensor(theta, dtype=torch.float64)
    for l in range(len(model.hidden_widths)):
        sub = replace(model, widths=model.widths[: l + 2])
        f, J = closed_form.jacobian(sub, th[: sub.n_params][None], X)
        zs.append(f[0].reshape(-1).numpy())
        G = np.zeros((J.shape[1] * J.shape[2], model.n_params))
        G[:, : sub.n_params] = J[0].reshape(-1, sub.n_params).numpy()
        Gs.append(G)
    return np.concatenate(zs), np.concatenate(Gs)


def segment_max(model: Model, a: np.ndarray, b: np.ndarray, X: torch.Tensor, Y: torch.Tensor, power: float) -> float:
    """max over t ∈ [0, 1] of L(a + t(b − a)) / P*: residuals and ``torch.func.jvp`` derivatives at 9 points,
    cubic Hermite interpolation at 8 points between neighbours."""
    from torch.func import jvp

    a_t, b_t = (torch.as_tensor(v, dtype=torch.float64) for v in (a, b))
    t = torch.linspace(0, 1, SEGMENT_POINTS, dtype=torch.float64)
    d = b_t - a_t
    thetas = a_t[None] + t[:, None] * d[None]
    f, df = jvp(lambda th: model.forward(th, X), (thetas,), (d.expand_as(thetas).contiguous(),))
    r = (f - Y).reshape(SEGMENT_POINTS, -1)
    dr = df.reshape(SEGMENT_POINTS, -1) / (SEGMENT_POINTS - 1)
    n = X.shape[0]
    worst = float(((r * r).sum(-1) / n).max())
    s = torch.linspace(0, 1, SEGMENT_SUBDIVISIONS + 2, dtype=torch.float64)[1:-1, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    for i in range(SEGMENT_POINTS - 1):
        p = h00 * r[i] + h10 * dr[i] + h01 * r[i + 1] + h11 * dr[i + 1]
        worst = max(worst, float(((p * p).sum(-1) / n).max()))
    return worst / power


def class_tangents(J: np.ndarray, T: np.ndarray, null_rtol: float = 1e-6, horizontal: bool = True) -> np.ndarray:
    """Orthonormal basis [P, m] of N = {v : Jv ≈ 0} (right singular vectors of J with σ ≤ null_rtol·σ_max),
    with ``horizontal`` its part orthogonal to the orbit tangents T [P, H]."""
    _, s, Vt = np.linalg.svd(J, full_matrices=True)
    smax = s[0] if len(s) else 0.0
    rank = int((s > null_rtol * smax).sum())
    N = Vt[rank:].T
    if not horizontal or T.shape[1] == 0 or N.shape[1] == 0:
        return N
    U, st, _ = np.linalg.svd(T, full_matrices=False)
    Q = U[:, st > 1e-12 * max(st[0], 1e-300)]
    M = N - Q @ (Q.T @ N)
    Um, sm, _ = np.linalg.svd(M, full_matrices=False)
    return Um[:, sm > 0.5]


def face_direction(H: np.ndarray, v: np.ndarray, z: np.ndarray, G: np.ndarray, length: float,
                   rounds: int = 4) -> tuple[np.ndarray, int]:
    """u ∈ span(H) nearest v with G_A u = 0 for every pair the step of ``length`` would carry across its kink
    (z·(z + length·G u) < 0), in up to ``rounds`` rounds, by an SVD of G_A H.  returns (u [P], |A|)"""
    active = np.zeros(len(z), bool)
    basis = H
    u = basis @ (basis.T @ v)
    for _ in range(rounds):
        nu = np.linalg.norm(u)
        if nu == 0:
            break
        u = u / nu
        dz = length * (G @ u)
        block = (z * (z + dz) < 0) & ~active
        if not block.any():
            return u, int(active.sum())
        active |= block
        C = G[active] @ H
        _, s, Vt = np.linalg.svd(C, full_matrices=True)
        keep = int((s > 1e-10 * max(s[0], 1e-300)).sum()) if len(s) else 0
        basis = H @ Vt[keep:].T
        u = basis @ (basis.T @ v)
    nu = np.linalg.norm(u)
    return (u / nu if nu > 0 else u), int(active.sum())


def class_basis(model: Model, theta: np.ndarray, J: torch.Tensor, settings: WalkSettings) -> np.ndarray:
    T = model.symmetry.tangents(theta) if settings.horizontal else np.zeros((model.n_params, 0))
    return class_tangents(J.reshape(-1, model.n_params).numpy(), T, settings.null_rtol, settings.horizontal)


def direction(model: Model, theta: np.ndarray, X: torch.Tensor, H: np.ndarray, v: np.ndarray, length: float,
              settings: WalkSettings) -> np.ndarray:
    kinks = dense_preactivation_jacobian(model, theta, X) if settings.faces else None
    if kinks is not None:
        return face_direction(H, v, *kinks, length)[0]
    u = H @ (H.T @ v)
    return u / max(np.linalg.norm(u), 1e-300)


def retract(model: Model, theta: np.ndarray, X: torch.Tensor, Y: torch.Tensor, tol: float,
            iters: int = 12, rcond: float = 1e-6) -> tuple[np.ndarray, float, bool]:
    """Gauss–Newton θ ← θ − J(θ)⁺ r(θ) (``numpy.linalg.lstsq`` on the full J, rcond), halved up to 4 times
    until L falls, until L(θ) ≤ tol.  returns (θ [P], L(θ), success)"""
    th = torch.as_tensor(theta, dtype=torch.float64)
    with torch.no_grad():
        L = float(discrepancy(model, th, X, Y))
    for _ in range(iters):
        if L <= tol:
            return th.numpy(), L, True
        f, J = model.jacobian(th[None], X)
        r = (f[0] - Y).reshape(-1).numpy()
        delta = torch.as_tensor(np.linalg.lstsq(J[0].reshape(len(r), -1).numpy(), r, rcond=rcond)[0])
        for _ in range(4):
            trial = th - delta
            with torch.no_grad():
                Lt = float(discrepancy(model, trial, X, Y))
            if Lt < L:
                break
            delta = 0.5 * delta
        if not Lt < L:
            return th.numpy(), L, False
        th, L = trial, Lt
    return th.numpy(), L, L <= tol


def walk(model: Model, theta_ref: np.ndarray, X: np.ndarray, starts: list[Start], settings: WalkSettings, *,
         tol: float, seed: int, first_row: int, logs: list | None = None) -> Iterator[Stored]:
    """The chains of ``starts`` walked with the reference step, one chain after another per round; yields
    stored states as :func:`genni.walk.walk` does."""
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    with torch.no_grad():
        Y = model.forward(torch.as_tensor(np.asarray(theta_ref, dtype=np.float64)), x)
    power = output_power(Y)
    scale = float(np.linalg.norm(theta_ref))
    chains = []
    for st in starts:
        th = np.asarray(st.theta, dtype=np.float64)
        c = _Chain(st.chain, th.copy(), th.copy(), st.row, st.step, st.steps, seed, ChainLog(st.chain), st.max_rows)
        c.restart_stream(settings)
        chains.append(c)
    if logs is not None:
        logs.extend(c.log for c in chains)
    next_row = first_row
    out: list[tuple] = []

    def store(c: _Chain, cert: float) -> None:
        nonlocal next_row
        with torch.no_grad():
            L = float(discrepancy(model, torch.as_tensor(c.theta), x, Y))
        out.append((c.theta.copy(), L, c.chain, c.step, c.parent_row, cert))
        c.parent_row, c.stored_theta = next_row, c.theta.copy()
        next_row += 1
        c.rows += 1
        c.restart_stream(settings)
        if c.max_rows is not None and c.rows >= c.max_rows:
            c.remaining = 0

    while True:
        active = [c for c in chains if c.remaining > 0 and c.log.stopped == "done"]
        if not active:
            break
        for c in active:
            started = time.monotonic()
            Jc = model.jacobian(torch.as_tensor(c.theta)[None], x)[1][0]
            c.attempts += 1
            H = class_basis(model, c.theta, Jc, settings)
            if H.shape[1] == 0:
                c.log.stopped = "no vertical directions"
            else:
                xi = c.rng.standard_normal(model.n_params)
                v = (1 - settings.persistence) * xi / np.linalg.norm(xi)
                if c.direction is not None:
                    v = v + settings.persistence * c.direction
                u = direction(model, c.theta, x, H, v, c.h * scale, settings)
                cand, _, ok = retract(model, c.theta + c.h * scale * u, x, Y, tol, settings.retract_iters,
                                      settings.null_rtol)
                cert = segment_max(model, c.stored_theta, cand, x, Y, power) if ok else np.inf
                if not ok:
                    c.log.refused["retraction_failed"] += 1
                    c.h *= 0.5
                elif cert > settings.segment_epsilon and c.since > 0:
                    store(c, c.cert)
                    c.log.forced_stores += 1
                elif cert > settings.segment_epsilon:
                    c.log.refused["certificate_failed"] += 1
                    c.h *= 0.5
                else:
                    before, after = model.activation_pattern(c.theta, x), model.activation_pattern(cand, x)
                    if before is not None and not np.array_equal(before, after):
                        c.log.pattern_changes += 1
                    c.theta, c.direction, c.cert = cand, u, cert
                    c.h = min(c.h * 1.5, settings.max_step)
                    c.since += 1
                    c.remaining -= 1
                    c.log.accepted += 1
                    if c.since >= settings.thin or c.remaining == 0:
                        store(c, cert)
                if c.h < settings.min_step:
                    c.log.stopped = "step size collapsed"
                elif c.attempts >= settings.attempts and c.remaining > 0:
                    c.log.stopped = "out of attempts"
            if c.log.stopped != "done" and c.since > 0:
                store(c, c.cert)
            c.log.final_step = c.h
            c.log.seconds += time.monotonic() - started
        if out:
            yield Stored(theta=np.stack([o[0] for o in out]), discrepancy=np.array([o[1] for o in out]),
                         chain=np.array([o[2] for o in out], np.int64), step=np.array([o[3] for o in out], np.int64),
                         parent=np.array([o[4] for o in out], np.int64), segment_max=np.array([o[5] for o in out]))
            out.clear()
