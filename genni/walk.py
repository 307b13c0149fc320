r"""Walks along the equivalence class, with certified straight segments between stored states.

A *chain* starts on the class {θ : L(θ) ≤ tol} (at θ* or a stored element) and repeats, for its
state θ_k (with L the mean squared probe discrepancy and P* the reference's output power):

1. **Tangent space of the class.**  J = ∂r/∂θ at θ_k, r = vec(f_θ(X) − Y) ∈ R^{nK}.  The right singular
   vectors of J with σ ≤ ν·σ_max (ν = ``null_rtol`` = 1e-6) span N, the directions along which f on
   the probe set does not change to first order (:func:`class_tangents`, the dense definition).  The
   walk takes N's complement R, the directions J constrains, from a pivoted Cholesky factorisation of
   the smaller Gram matrix of C and its Ritz step (:func:`~genni.linalg.row_space`), where C [m, P] is J reduced by an
   orthogonal map of its rows (J = U C, UᵀU = I, so CᵀC = JᵀJ: ``model.reduced_jacobian``; for the relu MLP a
   few rows per linear region of the probe set, m = 104 against n·K = 512 on the default reference): every unit
   w ⊥ R has ‖Jw‖ ≤ 1.01^½·ν·σ_max.
2. **Horizontal part** (``horizontal = True``): the tangents T of the exact symmetry orbits (the
   vertical space of the symmetry group, ``model.symmetry.tangents``: per-unit positive rescalings for
   relu and leaky_relu; the other symmetries are discrete) lie in N (JT = 0); with Q = orth(T) the
   walk uses H = [R, Q]^⊥ (:class:`Frame`), so a chain does not merely slide along rescalings.
   Hᵀt = 0 for every orbit tangent t.
3. **Direction.**  u = P_H (p·u_{k−1} + (1 − p)·ξ/‖ξ‖), normalised, with ξ ~ N(0, I_P) and
   persistence p (``persistence`` = 0.8: a correlated random walk, which spreads ~ linearly in
   the number of steps instead of ~ its square root).
   For relu (``faces``): a random null direction carries hundreds of probe points across kinks
   (measured on the default reference: 336 pattern flips at a step of 0.1 % of ‖θ*‖, which make
   L 1e-8 while the pattern-frozen network moves by 1e-12), so u is further restricted to keep the
   pre-activation of every (unit, input) pair the step would flip fixed to first order
   (:func:`face_direction`, from forward-mode products with the pre-activations' Jacobian and its
   rows at those pairs only, :meth:`~genni.models.base.Model.kinks`): the step slides along the faces
   where those kinks sit.
4. **Step** θ' = θ_k + h‖θ*‖·u, h relative to ‖θ*‖.
5. **Retraction** (Gauss–Newton, minimum-norm correction):

       θ' ← θ' − J(θ')⁺ r(θ'),

   J⁺ the pseudo-inverse with singular values below ν·σ_max left out (the correction uses exactly the
   directions J(θ') constrains; with all of them the sloppiest would turn a small residual into a huge
   move), computed on J(θ')'s row space (:func:`retract`), halved up to 4 times until L falls: each
   correction is the smallest change of θ that zeroes the linearised residual, so θ' returns to the
   class as close as possible to where the step put it.  Up to ``retract_iters`` corrections, until
   L(θ') ≤ tol; a correction that does not lower L ends it (failure).
6. **Certificate.**  The straight segment from the chain's last *stored* state a to θ' must
   satisfy max_{t∈[0,1]} L(a + t(θ' − a)) / P* ≤ ε (``segment_epsilon``), evaluated by
   :func:`genni.discrepancy.segment_max`.
7. Accepted: θ_{k+1} = θ', h ← min(1.5 h, h_max).  Retraction failed: h ← h/2.  Certificate
   failed: if θ_k is not stored yet it is stored now (its own segment is certified, so the stored
   path keeps every segment certified) and the chain goes on from it; otherwise h ← h/2.  A chain
   whose h falls below ``min_step`` stops (reported); its unstored accepted state is stored.

Every ``thin``-th accepted state (or earlier, when step 7 needs it) is stored as an ordinary
element with ``chain``, ``step`` (accepted steps since the chain's start), ``parent`` (row of
the previous stored state of the chain, −1 = θ*) and ``segment_max`` (the certificate of the
segment parent → row).  The chain through its stored rows is then a path inside {L/P* ≤ ε}
from its start to each of its elements.

Each stored segment of a chain is a pure function of (seed, chain, k, stored θ): the chain's
random stream and step size restart at every stored state, so an interrupted walk resumes from
its last stored rows exactly as it would have gone on.  The arithmetic runs on one thread
(:func:`~genni.linalg.one_thread`), so a chain's states are bitwise reproducible whatever the caller's threads.
"""


from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .discrepancy import discrepancy, mean_squared, output_power, segment_max
from .linalg import Complement, column_range, lstsq, one_thread, orth, row_space
from .models.base import Kinks, Model
from .progress import bar

REASONS = ("retraction_failed", "certificate_failed")
"""Why a step was refused (counted per chain)."""

@dataclass(frozen=True)
class WalkSettings:
    """How chains walk (the walk keys of a config's ``[search]`` section).

    chains : chains run together;  steps : accepted steps per chain;  thin : store every thin-th
    accepted state (at most; earlier when a certificate needs it);  step_size : initial h, relative
    to ‖θ*‖;  max_step : largest h;  min_step : a chain whose h falls below it stops;
    segment_epsilon : ε of the certificates, relative to the output power;  horizontal : drop the
    symmetry-orbit tangents;  persistence : p in the direction update;  null_rtol : ν;
    retract_iters : Gauss–Newton corrections per step;  max_attempts : step attempts per chain
    (accepted or not) before it stops;  faces : relu, leaky_relu: slide along the faces of probe points
    whose kink the step would cross (:func:`face_direction`)
    """

    chains: int = 16
    steps: int = 40
    thin: int = 10
    step_size: float = 0.005
    max_step: float = 0.05
    min_step: float = 1e-6
    segment_epsilon: float = 1e-5
    horizontal: bool = True
    persistence: float = 0.8
    null_rtol: float = 1e-6
    retract_iters: int = 12
    max_attempts: int | None = None
    faces: bool = True

    @property
    def attempts(self) -> int:
        return self.max_attempts or 4 * self.steps + 20

    def __post_init__(self):
        for name in ("chains", "steps", "thin", "retract_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"walk {name} must be at least 1, got {getattr(self, name)}")
        for name in ("step_size", "max_step", "min_step", "segment_epsilon", "null_rtol"):
            v = getattr(self, name)
            if not (v > 0 and np.isfinite(v)):
                raise ValueError(f"walk {name} must be a positive number, got {v}")
        if not 0 <= self.persistence < 1:
            raise ValueError(f"walk persistence must lie in [0, 1), got {self.persistence}")

    @classmethod
    def from_config(cls, section: dict, **overrides) -> WalkSettings:
        """From a resolved ``[search]`` section (keys ``chains``, ``thin``, ``step_size``,
        ``segment_epsilon``, ``horizontal``), with keyword overrides."""
        names = {"chains", "thin", "step_size", "segment_epsilon", "horizontal"}
        kw = {k: v for k, v in section.items() if k in names and v is not None}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


@dataclass
class ChainLog:
    """What one chain did: accepted steps, refusals by reason, steps that changed the relu
    activation pattern on the probe set (accepted anyway: the retraction and the certificate
    judge them), states stored early because the chord from the last stored state left the class,
    seconds, why it stopped ("done", "step size collapsed", "out of attempts", "no vertical directions")."""

    chain: int
    accepted: int = 0
    refused: dict = field(default_factory=lambda: {r: 0 for r in REASONS})
    pattern_changes: int = 0
    forced_stores: int = 0
    seconds: float = 0.0
    stopped: str = "done"
    final_step: float = 0.0


@dataclass(frozen=True)
class Stored:
    """Stored walk states (numpy, rows in the order they get written); every array has length k."""

    theta: np.ndarray
    discrepancy: np.ndarray
    chain: np.ndarray
    step: np.ndarray
    parent: np.ndarray
    segment_max: np.ndarray


# --- geometry of one state


def class_tangents(J: np.ndarray, T: np.ndarray, null_rtol: float = 1e-6, horizontal: bool = True) -> np.ndarray:
    """Orthonormal basis [P, m] of the class's tangent space N = {v : Jv ≈ 0} (right singular vectors of
    J [rows, P] with σ ≤ null_rtol·σ_max); with ``horizontal``, its horizontal part: the symmetry orbits'
    tangents T [P, H] (the vertical space, ``model.symmetry.tangents``) projected out.  The dense definition
    (a full SVD); walks use its complement from :func:`normal_frame`."""
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
    return Um[:, sm > 0.5]  # M's singular values are 1 (kept directions) or ≈ 0 (the orbit's)


@dataclass(frozen=True)
class Frame:
    """The class's normal directions at one state θ.

    R : [P, r] orthonormal, the directions J = ∂r/∂θ constrains (σ > ν·σ_max, :func:`~genni.linalg.row_space` of J);
    Q : [P, q] orthonormal, ⊥ R, the symmetry orbits' tangents (horizontal walks; q = 0 otherwise): the walk
        steps in H = [R, Q]^⊥, the class's horizontal tangent space (:func:`class_tangents`' span)
    """

    R: torch.Tensor
    Q: torch.Tensor

    @property
    def tangent_dim(self) -> int:
        """dim H = P − r − q."""
        return self.R.shape[0] - self.R.shape[1] - self.Q.shape[1]

    def tangent(self, v: torch.Tensor) -> torch.Tensor:
        """The projection of v [P] (or [P, k]) onto H: v − R Rᵀ v − Q Qᵀ v."""
        return v - self.R @ (self.R.T @ v) - self.Q @ (self.Q.T @ v)


def normal_frame(model: Model, theta: np.ndarray, J: torch.Tensor, settings: WalkSettings) -> Frame:
    """Steps 1–2 of the module docstring at θ [P] from J [rows, P] (or any C with CᵀC = JᵀJ, ``model.reduced_jacobian``):
    R = :func:`~genni.linalg.row_space` (J, ν, orthonormal), and with
    ``horizontal`` Q an orthonormal basis of the orbit tangents T = ``model.symmetry.tangents(θ)`` (JT = 0, so
    T ⊥ R; its part along R is removed before :func:`~genni.linalg.orth` orthonormalises it, directions of relative size
    ≤ 1e-7 left out)."""
    J = J.reshape(-1, model.n_params)
    R = row_space(J, settings.null_rtol, orthonormal=True)
    T = torch.as_tensor(model.symmetry.tangents(theta), dtype=torch.float64, device=J.device) \
        if settings.horizontal else J.new_zeros(J.shape[1], 0)
    if T.shape[1] == 0:
        return Frame(R, T)
    return Frame(R, orth(T - R @ (R.T @ T), 1e-7)[0])


FACE_ROWS = 128
"""Above this many new active rows, :func:`face_direction` takes their constraints through ``kinks.unit_rows`` and a
pivoted Cholesky factorisation."""


def face_direction(frame: Frame, v: torch.Tensor, kinks: Kinks, length: float, rtol: float = 1e-6,
                   rounds: int = 4) -> tuple[torch.Tensor, int]:
    """A direction in H that moves no probe point across a relu kink, for a step of ``length``.

    Objective: u = argmin ‖u − v‖ over u ∈ H with G_A u = 0, normalised, where G = ∂z/∂θ is the
    pre-activations' Jacobian and A the (unit, input) pairs the step would carry across zero
    (z·(z + length·G u) < 0, to first order); A grows in up to ``rounds`` rounds, each from the previous
    round's u.  G u comes from forward mode (``kinks.jvp``); only the rows G_A are formed, scaled to unit length
    (a constraint does not depend on its row's scale).  With a = (I − RRᵀ − QQᵀ) v, u = a − F Fᵀ a for an
    orthonormal basis F of the constraints in H: the rows' parts ⊥ R and Q, gathered round by round:

    many new rows (> :data:`FACE_ROWS`, 500–1,800 in the first round on the default reference, most in the
        second hidden layer): with C = ``kinks.unit_rows`` (A) (CᵀC = Ĝ_AᵀĜ_A for the unit rows Ĝ_A; the MLP's
        closed form gives a few rows per unit and linear region of the layers below, 110–200 there) and
        B = (I − RRᵀ − QQᵀ) Cᵀ, the rows' parts in H, F spans the pivot columns
        :func:`~genni.linalg.column_range` (B, rtol) picks (pivoted Cholesky of BᵀB): F ⊂ H, and every unit
        w ∈ H ⊥ F has ‖Ĝ_A w‖² ≤ rtol²·λ̂; applied as Householder reflectors (:class:`~genni.linalg.Complement`);
    a few new rows: their parts outside R, Q and F so far, E, join F through their SVD, directions of singular
        value ≤ rtol·λ̂^½ left out (λ̂ the largest eigenvalue of the constraints' Gram matrix so far, ≥ 1):
        an exact deflation, O(k·P·(r + |F|)) for k rows instead of a P × P factorisation.

    The step slides along the faces where those kinks sit: every w ⊥ F moves the unit rows of A by
    ‖G_A w‖² ≤ rounds·rtol²·λ̂ (to first order).
    frame : the state's :class:`Frame`;  v : [P];  kinks : :meth:`Model.kinks` at the state
    returns : (u [P], unit norm, or zeros when no such direction is left;  |A|)
    """
    a = frame.tangent(v)
    u = a
    z = kinks.z
    active = torch.zeros(len(z), dtype=torch.bool, device=z.device)
    first, extra, lam = None, a.new_zeros(len(a), 0), 1.0
    b = a  # a projected off the first round's constraints (computed once: a and F_1 stay fixed)
    for _ in range(rounds):
        nu = float(torch.linalg.vector_norm(u))
        if nu == 0:
            break
        u = u / nu
        block = (z * (z + length * kinks.jvp(u)) < 0) & ~active
        if not bool(block.any()):
            return u, int(active.sum())
        active |= block
        idx = torch.nonzero(block).flatten()
        if first is None and extra.shape[1] == 0 and len(idx) > FACE_ROWS:
            C = kinks.unit_rows(idx).to(a.device)
            F, lam = column_range(frame.tangent(C.T), rtol)
            first, lam = Complement(F), max(lam, 1.0)
            b = first(a)
        else:
            G = kinks.rows(idx).to(a.device)
            G = G / torch.linalg.vector_norm(G, dim=1, keepdim=True).clamp_min(1e-300)
            E = (G - (G @ frame.R) @ frame.R.T).T
            E = E - frame.Q @ (frame.Q.T @ E)
            if first is not None:
                E = first(E)
            E = E - extra @ (extra.T @ E)
            keep, smax = orth(E, rtol, rtol * lam ** 0.5)
            lam = max(lam, smax ** 2)
            keep = keep - extra @ (extra.T @ keep)  # once more against the directions already kept
            extra = torch.cat([extra, torch.linalg.qr(keep)[0]], 1)
        u = frame.tangent(b - extra @ (extra.T @ b))
    nu = float(torch.linalg.vector_norm(u))
    return (u / nu if nu > 0 else u), int(active.sum())


def _direction(frame: Frame, v: np.ndarray, kinks: Kinks | None, length: float, settings: WalkSettings) -> np.ndarray:
    """Step 3: the unit direction in H nearest v, kept on the relu faces (``kinks``: the state's
    :meth:`Model.kinks`) for a step of ``length``."""
    v = torch.as_tensor(v, dtype=torch.float64, device=frame.R.device)
    if kinks is not None and settings.faces:
        return face_direction(frame, v, kinks, length, settings.null_rtol)[0].cpu().numpy()
    u = frame.tangent(v)
    return (u / max(float(torch.linalg.vector_norm(u)), 1e-300)).cpu().numpy()


# --- retraction


def retract(model: Model, theta: np.ndarray, X: torch.Tensor, Y: torch.Tensor, tol: float, iters: int = 12,
            rcond: float = 1e-6) -> tuple[np.ndarray, float, bool]:
    """Gauss–Newton back onto the class: θ ← θ − J(θ)⁺ r(θ) until L(θ) ≤ tol (see the module docstring).

    Objective of each correction: the δ of least norm minimising ‖r(θ) − J(θ) δ‖ over δ in the row space of
    J(θ) with singular values below rcond·σ_max left out, i.e. δ = S a with S = :func:`~genni.linalg.row_space` (J(θ)) and a
    the least-squares solution of J(θ) S a = r(θ) (:func:`~genni.linalg.lstsq`).  Both from the reduced system
    (C, b) = ``model.reduced_jacobian`` (J = U C, b = Uᵀr, UᵀU = I: the same row space, and ‖J δ − r‖² = ‖C δ − b‖²
    + const): a system [m, r] (m ≈ 100 rows, r ≈ 55–100 against n·K = 512, P = 337 on the default reference) and
    a pivoted Cholesky of CCᵀ [m, m] instead of an SVD of J(θ) [n·K, P].
    Halved up to 4 times until L falls; a correction that does not lower L ends it (failure).  Up to
    ``iters`` corrections.
    theta : [P];  X : [n, w_0];  Y : [n, w_L]
    returns : (θ [P], L(θ), success)
    """
    th = torch.as_tensor(theta, dtype=torch.float64, device=X.device)
    with torch.no_grad():
        f = model.forward(th, X)
    L = float(mean_squared(f - Y))
    for _ in range(iters):
        if L <= tol:
            return th.cpu().numpy(), L, True
        C, b = model.reduced_jacobian(th, X, f - Y)
        S = row_space(C, rcond)
        if S.shape[1] == 0:
            return th.cpu().numpy(), L, False
        delta = S @ lstsq(C @ S, b, rcond)
        for _ in range(4):  # backtracking: a full correction can overshoot where J changes fast (relu kinks)
            trial = th - delta
            with torch.no_grad():
                ft = model.forward(trial, X)
            Lt = float(mean_squared(ft - Y))
            if Lt < L:
                break
            delta = 0.5 * delta
        if not Lt < L:
            return th.cpu().numpy(), L, False
        th, f, L = trial, ft, Lt
    return th.cpu().numpy(), L, L <= tol


# --- the chains


@dataclass(frozen=True)
class Start:
    """Where a chain starts: its id, θ [P] (on the class), that state's row in the run file (−1 for θ*),
    the accepted steps the chain had taken there, and how many accepted steps and stored rows to add."""

    chain: int
    theta: np.ndarray
    row: int = -1
    step: int = 0
    steps: int = 40
    max_rows: int | None = None


@dataclass
class _Chain:
    chain: int
    theta: np.ndarray          # current state [P]
    stored_theta: np.ndarray   # last stored state [P]
    parent_row: int            # its row (−1: θ*)
    start_step: int            # accepted steps this chain had taken before this walk call
    remaining: int             # accepted steps still to take
    seed: int
    log: ChainLog
    max_rows: int | None = None
    rows: int = 0
    h: float = 0.0
    direction: np.ndarray | None = None
    since: int = 0             # accepted steps since the last stored state
    cert: float = 0.0          # certificate of the segment last stored state → current state
    attempts: int = 0
    rng: np.random.Generator | None = None
    geometry: tuple | None = None  # (Frame | None, Kinks | None) at theta, kept while refused steps leave it unchanged

    @property
    def step(self) -> int:
        return self.start_step + self.log.accepted

    def restart_stream(self, settings: WalkSettings) -> None:
        """Step size, direction and random stream restart at every stored state, seeded by the chain
        and its accepted-step count there (so a resumed chain goes on exactly as it would have)."""
        self.rng = np.random.default_rng([self.seed, 0x3A1C, self.chain, self.step])
        self.h, self.direction, self.since = settings.step_size, None, 0


def walk(model: Model, theta_ref: np.ndarray, X: np.ndarray, starts: list[Start], settings: WalkSettings, *,
         tol: float, seed: int, first_row: int, progress: bool = False, logs: list | None = None) -> Iterator[Stored]:
    """Run chains from the given starts; yields the stored states as they come, in row order.

    A chain ends after its ``steps`` accepted steps or its ``max_rows`` stored rows, whichever comes
    first, or when it stops (:class:`ChainLog`).  Each chain's arithmetic runs on that chain alone,
    so its states do not depend on which other chains walk beside it.
    first_row : the run file's row count before this walk (``parent`` refers to rows);  logs : a list
    that receives a :class:`ChainLog` per chain;  X : probe inputs [n, w_0] (the reference's outputs
    Y = f_θ*(X) and P* are computed here)
    """
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
    pbar = bar(total=sum(c.remaining for c in chains), progress=progress, desc="walk", unit="step")
    t0 = time.monotonic()
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
            pbar.update(c.remaining)
            c.remaining = 0

    def attempt(c: _Chain) -> None:
        """One step attempt of chain c (steps 1–7 of the module docstring)."""
        started = time.monotonic()
        c.attempts += 1
        if c.geometry is None or c.geometry[0] is None:  # a refused step leaves θ, and its geometry, as they were
            th = torch.as_tensor(c.theta)
            kinks = c.geometry[1] if c.geometry is not None and c.geometry[1] is not None else model.kinks(th, x)
            c.geometry = (normal_frame(model, c.theta, model.reduced_jacobian(th, x)[0], settings), kinks)
        frame, kinks = c.geometry
        if frame.tangent_dim == 0:
            c.log.stopped = "no vertical directions"
        else:
            xi = c.rng.standard_normal(model.n_params)
            v = (1 - settings.persistence) * xi / np.linalg.norm(xi)
            if c.direction is not None:
                v = v + settings.persistence * c.direction
            u = _direction(frame, v, kinks, c.h * scale, settings)
            cand, _, ok = retract(model, c.theta + c.h * scale * u, x, Y, tol, settings.retract_iters,
                                  settings.null_rtol)
            cert = segment_max(model, c.stored_theta, cand, x, Y, power) if ok else np.inf
            if not ok:
                c.log.refused["retraction_failed"] += 1
                c.h *= 0.5
            elif cert > settings.segment_epsilon and c.since > 0:
                # the chord from the last stored state bends off the class: store the
                # current state (its own segment is certified) and go on from there
                store(c, c.cert)
                c.log.forced_stores += 1
            elif cert > settings.segment_epsilon:
                c.log.refused["certificate_failed"] += 1
                c.h *= 0.5
            else:
                if kinks is not None:  # the next state's kinks, kept for its geometry
                    after = model.kinks(torch.as_tensor(cand), x)
                    changed = not torch.equal(kinks.z > 0, after.z > 0)
                else:
                    before, after = model.activation_pattern(c.theta, x), model.activation_pattern(cand, x)
                    changed, after = before is not None and not np.array_equal(before, after), None
                c.log.pattern_changes += int(changed)
                c.theta, c.direction, c.cert, c.geometry = cand, u, cert, (None, after)
                c.h = min(c.h * 1.5, settings.max_step)
                c.since += 1
                c.remaining -= 1
                c.log.accepted += 1
                pbar.update(1)
                if c.since >= settings.thin or c.remaining == 0:
                    store(c, cert)
            if c.h < settings.min_step:
                c.log.stopped = "step size collapsed"
            elif c.attempts >= settings.attempts and c.remaining > 0:
                c.log.stopped = "out of attempts"
        if c.log.stopped != "done" and c.since > 0:  # keep the accepted steps of a chain that stops
            store(c, c.cert)
        c.log.final_step = c.h
        c.log.seconds += time.monotonic() - started

    try:
        while True:
            active = [c for c in chains if c.remaining > 0 and c.log.stopped == "done"]
            if not active:
                break
            with one_thread():
                for c in active:
                    attempt(c)
            if out:
                yield Stored(theta=np.stack([o[0] for o in out]), discrepancy=np.array([o[1] for o in out]),
                             chain=np.array([o[2] for o in out], np.int64), step=np.array([o[3] for o in out], np.int64),
                             parent=np.array([o[4] for o in out], np.int64), segment_max=np.array([o[5] for o in out]))
                out.clear()
            pbar.set_postfix(stored=next_row - first_row, refused=sum(sum(c.log.refused.values()) for c in chains),
                             seconds=f"{time.monotonic() - t0:.0f}", refresh=False)
    finally:
        pbar.close()


@dataclass
class Connection:
    """A path between two points of the class: vertices [K, P] (first = start, last = target), the
    certificate of each straight segment [K − 1], whether every one is ≤ ε, and why it ended."""

    vertices: np.ndarray
    segment_max: np.ndarray
    certified: bool
    reason: str
    steps: int = 0


def connect(model: Model, theta_ref: np.ndarray, X: np.ndarray, a: np.ndarray, b: np.ndarray,
            settings: WalkSettings, *, tol: float, max_steps: int = 200, seed: int = 0) -> Connection:
    """A certified path inside {L/P* ≤ ε} from a to b (both on the class), or an honest failure.

    A walk whose steps lean toward the target: the direction is the projection of b − θ onto the
    class's (horizontal) tangent space at θ (faces kept, as in :func:`walk`), mixed with 20 % of a random
    direction of that space to get round obstacles; step length min(h, ‖b − θ‖); Gauss–Newton retraction;
    each straight segment between consecutive vertices must pass :func:`~genni.discrepancy.segment_max` ≤ ε.  Whenever
    the straight segment from the current vertex to b itself passes, it closes the path.  Fails
    (without raising) when ``max_steps`` step attempts are spent or the step size collapses; the
    reason says which and how close it came.

    a, b : [P] (b already in a's gauge: align it modulo the exact symmetries first)
    """
    with one_thread():
        return _connect(model, theta_ref, X, a, b, settings, tol=tol, max_steps=max_steps, seed=seed)


def _connect(model: Model, theta_ref: np.ndarray, X: np.ndarray, a: np.ndarray, b: np.ndarray,
             settings: WalkSettings, *, tol: float, max_steps: int, seed: int) -> Connection:
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    with torch.no_grad():
        Y = model.forward(torch.as_tensor(np.asarray(theta_ref, dtype=np.float64)), x)
    power = output_power(Y)
    scale = float(np.linalg.norm(theta_ref))
    rng = np.random.default_rng([seed, 0xC0E, 1])
    theta = np.asarray(a, dtype=np.float64).copy()
    b = np.asarray(b, dtype=np.float64)
    vertices, certs = [theta.copy()], []
    h, start_gap = settings.step_size, np.linalg.norm(b - theta)
    for attempt in range(max_steps):
        close = segment_max(model, theta, b, x, Y, power)
        if close <= settings.segment_epsilon:
            vertices.append(b.copy())
            certs.append(close)
            return Connection(np.stack(vertices), np.array(certs), True, "connected", attempt)
        gap = b - theta
        frame = normal_frame(model, theta, model.reduced_jacobian(torch.as_tensor(theta), x)[0], settings)
        if frame.tangent_dim == 0:
            return Connection(np.stack(vertices), np.array(certs), False,
                              "no vertical directions left: the class is locally just the symmetry orbit here", attempt)
        toward = frame.tangent(torch.as_tensor(gap)).numpy()
        xi = frame.tangent(torch.as_tensor(rng.standard_normal(model.n_params))).numpy()
        v = toward / max(np.linalg.norm(toward), 1e-300) + 0.2 * xi / max(np.linalg.norm(xi), 1e-300)
        length = min(h * scale, np.linalg.norm(gap))
        kinks = model.kinks(torch.as_tensor(theta), x)
        u = _direction(frame, v, kinks, length, settings)
        cand, _, ok = retract(model, theta + length * u, x, Y, tol, settings.retract_iters, settings.null_rtol)
        cert = segment_max(model, theta, cand, x, Y, power) if ok else np.inf
        if ok and cert <= settings.segment_epsilon and np.linalg.norm(b - cand) < np.linalg.norm(gap):
            theta = cand
            vertices.append(theta.copy())
            certs.append(cert)
            h = min(1.5 * h, settings.max_step)
        else:
            h *= 0.5
            if h < settings.min_step:
                return Connection(np.stack(vertices), np.array(certs), False,
                                  f"step size collapsed {np.linalg.norm(b - theta) / max(start_gap, 1e-300):.1%} of the "
                                  "way short of the target", attempt + 1)
    return Connection(np.stack(vertices), np.array(certs), False,
                      f"budget of {max_steps} steps spent, {np.linalg.norm(b - theta) / max(start_gap, 1e-300):.1%} of the "
                      "starting gap left", max_steps)


__all__ = ["WalkSettings", "Start", "ChainLog", "Stored", "Connection", "Frame", "connect", "REASONS", "class_tangents",
           "face_direction", "normal_frame", "one_thread", "retract", "walk"]
