r"""Teleports: walks along the equivalence class directed by an objective.

Given an objective J(θ) (:mod:`genni.objectives`: sharpness, a norm, a distance to θ\*'s layers, the
discrepancy on other inputs, a user's callable), a teleport solves, from a start θ_0 on the class,

    minimise (or maximise) J(θ)  over  {θ : L(θ) ≤ tol},

L the mean squared probe discrepancy, by projected gradient steps with retraction: it moves θ along the
class, so that the function on the probe set stays θ\*'s, in the direction in which J falls (rises)
fastest.  Each step from the state θ_k (with P\* the reference's output power, s = −1 to minimise, +1 to
maximise):

1. **Gradient.**  (J(θ_k), g) = ``objective.value_and_grad``(θ_k).
2. **Tangent space** (the walk's, :func:`genni.walk.normal_frame`): H = the class's tangent space at θ_k,
   the directions the output Jacobian J = ∂r/∂θ leaves unconstrained (σ ≤ ν·σ_max), with the orbit
   tangents of the exact symmetries (``model.symmetry.tangents``) removed when ``horizontal`` (the
   default).  ``horizontal = False`` keeps the vertical directions: a norm or the sharpness of a relu
   network changes under rescaling alone (Dinh et al., *Sharp minima can generalize for deep nets*,
   ICML 2017), and only the vertical directions reach its balanced point.  dim H = 0 stops the
   teleport ("no tangent directions").
3. **Stationarity.**  a = P_H(s·g).  When ‖a‖ ≤ ``stationary_rtol``·‖g‖ (or g = 0) the state is
   stationary along the class to first order.  Then the best second-order direction is looked for:
   the top eigenvector w of P_H (s·∇²J) P_H (Lanczos on Hessian-vector products of J,
   :func:`~genni.objectives.lanczos_top`).  Its eigenvalue λ > 0 means J still improves along ±w
   (a saddle, or θ\* itself for the discrepancy on held-out inputs, where g = 0 exactly); the step
   takes ±w (the sign that does not oppose a).  λ ≤ 0 stops the teleport ("stationary along the class").
4. **Direction.**  u = the unit direction in H nearest a (or w), restricted for relu to the faces where
   the probe points' kinks sit (:func:`genni.walk.face_direction`, as walks do): u = Πa/‖Πa‖ with Π the
   orthogonal projection onto a subspace of H, so ⟨u, s·g⟩ = ⟨Πa, a⟩/‖Πa‖ = ‖Πa‖ ≥ 0, an ascent
   direction of s·J (a Π that leaves nothing of a refuses the step: "no face direction").
5. **Step and retraction.**  θ' = θ_k + h‖θ\*‖·u, h relative to ‖θ\*‖, then the Gauss–Newton
   retraction :func:`genni.walk.retract` back to L(θ') ≤ tol.
6. **Certificate.**  The straight segment from the last *stored* state θ_s to θ' must satisfy
   max_{t∈[0,1]} L(θ_s + t(θ' − θ_s)) / P\* ≤ ε (``segment_epsilon``,
   :func:`genni.discrepancy.segment_max`).
7. **Improvement.**  Accepted only if s·(J(θ') − J(θ_k)) > ``improve_rtol``·|J(θ_k)| + ``improve_atol``:
   J improves by more than its own evaluation noise (rounding; the Lanczos estimate of the sharpness;
   the retraction, which moves θ within the class's tolerance), so the stored values are strictly
   monotone.  ``improve_atol`` is 0 but for objectives that the class's own tolerance moves (the stage
   sets it to tol/P\* for the relative discrepancy: inside {L ≤ tol} a change below that is no change
   of function).
8. Accepted: θ_{k+1} = θ', h ← min(1.5 h, h_max).  Refused (retraction failed, certificate failed, J
   not improved, no direction left on the faces): h ← h/2; when the certificate fails but an
   accepted state is not stored yet, that state is stored and the teleport goes on from it (every stored
   segment stays certified).  h < ``min_step`` stops ("step size collapsed", with the projected
   gradient's size then), as do the step budget ("done") and the attempt budget ("out of attempts").

Every ``thin``-th accepted state (and the last one, and any a certificate needs) is stored; J after
every accepted step is kept in the trace.  The arithmetic runs on one thread
(:func:`~genni.linalg.one_thread`) and draws nothing at random: the same inputs give bitwise the same
trajectory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.func import grad, jvp

from .discrepancy import discrepancy, output_power, segment_max
from .linalg import one_thread
from .models.base import Model
from .objectives import Objective, lanczos_top
from .progress import bar
from .walk import Stored, WalkSettings, _direction, normal_frame, retract

GOALS = ("min", "max")
"""What a teleport does with its objective."""

REFUSALS = ("not_improved", "retraction_failed", "certificate_failed", "no_face_direction")
"""Why a step was refused (counted per teleport)."""

STOPS = {
    "done": "every step taken",
    "stationary": "stationary along the class",
    "step size collapsed": "step size collapsed",
    "no tangent directions": "the class has no tangent directions here",
    "out of attempts": "out of attempts",
    "interrupted": "interrupted (Ctrl-C)",
}
"""Why a teleport stops (the code stored with it → the start of its reason)."""


@dataclass(frozen=True)
class TeleportSettings:
    """How a teleport steps (the module docstring's steps 1–8).

    steps : accepted steps;  thin : store every thin-th accepted state (and the last);  step_size : initial
    h, relative to ‖θ*‖;  max_step : largest h;  min_step : h below it stops the teleport;
    segment_epsilon : ε of the certificates, relative to the output power;  horizontal : drop the symmetry
    orbits' tangents;  null_rtol : ν of the tangent space and the retraction;  retract_iters : Gauss–Newton
    corrections per step;  max_attempts : step attempts before it stops (default 4·steps + 40);  faces :
    relu, leaky_relu: keep the probe points' kinks on their faces;  improve_rtol, improve_atol : a step must
    improve J by more than improve_rtol·|J(θ_k)| + improve_atol;  stationary_rtol : ‖P_H g‖ ≤ this·‖g‖ is
    stationary;  lanczos : Lanczos iterations of the second-order look at a stationary state (0: none)
    """

    steps: int = 50
    thin: int = 1
    step_size: float = 0.01
    max_step: float = 0.1
    min_step: float = 1e-6
    segment_epsilon: float = 1e-5
    horizontal: bool = True
    null_rtol: float = 1e-6
    retract_iters: int = 12
    max_attempts: int | None = None
    faces: bool = True
    improve_rtol: float = 1e-9
    improve_atol: float = 0.0
    stationary_rtol: float = 1e-6
    lanczos: int = 40

    def __post_init__(self):
        for name in ("steps", "thin", "retract_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"teleport {name} must be a whole number ≥ 1, got {v!r}")
        for name in ("step_size", "max_step", "min_step", "segment_epsilon", "null_rtol", "improve_rtol",
                     "stationary_rtol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and v > 0 and np.isfinite(v)):
                raise ValueError(f"teleport {name} must be a positive number, got {v!r}")
        if not (self.improve_atol >= 0 and np.isfinite(self.improve_atol)):
            raise ValueError(f"teleport improve_atol must be ≥ 0, got {self.improve_atol!r}")
        if self.lanczos < 0:
            raise ValueError(f"teleport lanczos must be ≥ 0, got {self.lanczos}")

    @property
    def attempts(self) -> int:
        return self.max_attempts or 4 * self.steps + 40

    def walk_settings(self) -> WalkSettings:
        """The walk's settings that its frame, faces and retraction read."""
        return WalkSettings(steps=self.steps, thin=self.thin, step_size=self.step_size, max_step=self.max_step,
                            min_step=self.min_step, segment_epsilon=self.segment_epsilon, horizontal=self.horizontal,
                            null_rtol=self.null_rtol, retract_iters=self.retract_iters, faces=self.faces)


@dataclass
class Teleport:
    """What a teleport did.

    stored : the stored states (:class:`genni.walk.Stored`, k rows: θ [k, P], ``parent`` the row of the previous
        stored state, the start's row for the first);  values : J at the start and at each stored state [k + 1];
    steps : accepted steps at the start (0) and at each stored state [k + 1];  trace_value : J at the start and
        after every accepted step [accepted + 1];  accepted;  refused : reason -> count (:data:`REFUSALS`);
    forced_stores : states stored early for a certificate;  stopped : the code (:data:`STOPS`);  reason : one
        line;  gradient_ratio : ‖P_H g‖ / ‖g‖ at the last state where it was computed;  escapes : second-order
        steps taken from stationary states;  seconds;  final_step : h at the end
    """

    stored: Stored
    values: np.ndarray
    steps: np.ndarray
    trace_value: np.ndarray
    accepted: int = 0
    refused: dict = field(default_factory=lambda: {r: 0 for r in REFUSALS})
    forced_stores: int = 0
    stopped: str = "done"
    reason: str = ""
    gradient_ratio: float = float("nan")
    escapes: int = 0
    seconds: float = 0.0
    final_step: float = 0.0

    @property
    def final_theta(self) -> np.ndarray:
        """The last stored state [P] (None when nothing was stored)."""
        return self.stored.theta[-1] if len(self.stored.theta) else None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a teleport, carrying what it did up to then (``teleport``, a :class:`Teleport` whose
    ``stopped`` is "interrupted"; every state it reports stored was handed to the callback)."""

    def __init__(self, teleport: Teleport):
        super().__init__("teleport interrupted")
        self.teleport = teleport


def _hvp(objective: Objective, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """∇²J(θ) v by forward-over-reverse.  theta, v : [P] -> [P]"""
    return jvp(grad(objective.fn), (theta,), (v,))[1].detach()


def second_order(objective: Objective, theta: np.ndarray, frame, sign: float, iterations: int) -> tuple[float, np.ndarray | None]:
    """(λ, w): the top eigenpair of P_H (s·∇²J(θ)) P_H (Lanczos, ``iterations`` steps from a fixed start), w [P]
    unit; (nan, None) when J has no Hessian-vector products (an exception inside them)."""
    th = torch.as_tensor(theta, dtype=torch.float64)
    P = len(th)

    def matvec(v):
        w = frame.tangent(v)
        return frame.tangent(sign * _hvp(objective, th, w))

    start = frame.tangent(torch.ones(P, dtype=torch.float64) + torch.arange(P, dtype=torch.float64) / P)
    if float(start.norm()) == 0:
        return float("nan"), None
    try:
        top = lanczos_top(matvec, P, iterations, start=start)
    except Exception:  # a user's objective without second derivatives
        return float("nan"), None
    return top.value, frame.tangent(top.vector).numpy()


def _oriented(w: np.ndarray, a: torch.Tensor) -> np.ndarray:
    """±w, the sign that does not oppose the (tiny) projected gradient a [P] to first order."""
    return -w if float(np.dot(w, a.numpy())) < 0 else w


def teleport(model: Model, theta_ref: np.ndarray, X: np.ndarray, start_theta: np.ndarray, objective: Objective,
             goal: str, settings: TeleportSettings, *, tol: float, chain: int = 0, start_row: int = -1,
             first_row: int = 0, start_step: int = 0, progress: bool = False,
             callback: Callable[[Stored], None] | None = None) -> Teleport:
    """Move along the class from ``start_theta`` so that ``objective`` falls (``goal="min"``) or rises
    (``"max"``): projected gradient steps with retraction and certified segments (the module docstring).

    model : the run's model;  theta_ref : θ* [P];  X : probe inputs [n, w_0] (Y = f_θ*(X) and P* are computed
    here);  start_theta : [P], on the class (L ≤ tol);  objective : J (:class:`~genni.objectives.Objective`);
    tol : the class's tolerance on L;  chain, start_row, first_row, start_step : what the stored rows record
    (their ``chain``; the start's row, −1 = θ*; the run file's row count before this teleport, which the first
    stored state takes; the accepted steps counted at the start);  callback : receives each stored state as
    it comes (a :class:`~genni.walk.Stored` of one row)

    returns : :class:`Teleport`.  Ctrl-C raises :class:`Interrupted` (a KeyboardInterrupt) carrying the
    teleport up to then.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    with one_thread():
        return _teleport(model, theta_ref, X, start_theta, objective, goal, settings, tol=tol, chain=chain,
                         start_row=start_row, first_row=first_row, start_step=start_step, progress=progress,
                         callback=callback)


def _teleport(model, theta_ref, X, start_theta, objective, goal, settings, *, tol, chain, start_row, first_row,
              start_step, progress, callback) -> Teleport:
    t0 = time.monotonic()
    sign = -1.0 if goal == "min" else 1.0
    wset = settings.walk_settings()
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    with torch.no_grad():
        Y = model.forward(torch.as_tensor(np.asarray(theta_ref, dtype=np.float64)), x)
    power = output_power(Y)
    scale = float(np.linalg.norm(theta_ref))
    theta = np.asarray(start_theta, dtype=np.float64).copy()
    value, g = objective.value_and_grad(theta)
    value, g = float(value), g.numpy()
    rows: list[tuple] = []
    values, steps, trace = [value], [start_step], [value]
    log = Teleport(stored=None, values=None, steps=None, trace_value=None)  # filled at the end
    stored_theta, parent, next_row = theta.copy(), start_row, first_row
    since, cert_now, h, attempts = 0, 0.0, settings.step_size, 0
    geometry = None  # (frame, kinks, a, ratio, escape) at θ, kept while refused steps leave θ unchanged
    pbar = bar(total=settings.steps, progress=progress, desc=f"teleport {goal} {objective.name}", unit="step")

    def store(cert: float) -> None:
        nonlocal stored_theta, parent, next_row, since
        with torch.no_grad():
            L = float(discrepancy(model, torch.as_tensor(theta), x, Y))
        row = (theta.copy(), L, chain, start_step + log.accepted, parent, cert)
        if callback is not None:  # first: a state counts as stored once the callback has it
            callback(_stored([row]))
        rows.append(row)
        values.append(value)
        steps.append(start_step + log.accepted)
        stored_theta, parent, since = theta.copy(), next_row, 0
        next_row += 1

    try:
        while log.accepted < settings.steps:
            if attempts >= settings.attempts:
                log.stopped = "out of attempts"
                break
            attempts += 1
            if geometry is None:
                th = torch.as_tensor(theta)
                frame = normal_frame(model, theta, model.jacobian(th[None], x)[1][0], wset)
                kinks = model.kinks(th, x)
                gn = float(np.linalg.norm(g))
                a = frame.tangent(torch.as_tensor(sign * g)) if frame.tangent_dim else None
                ratio = float(torch.linalg.vector_norm(a)) / gn if a is not None and gn > 0 else 0.0
                geometry = [frame, kinks, a, ratio, None]
            frame, kinks, a, ratio, escape = geometry
            log.gradient_ratio = ratio
            if frame.tangent_dim == 0:
                log.stopped = "no tangent directions"
                break
            if ratio <= settings.stationary_rtol:
                if escape is None:
                    lam, w = (second_order(objective, theta, frame, sign, settings.lanczos) if settings.lanczos
                              else (float("nan"), None))
                    escape = geometry[4] = (lam, w)
                lam, w = escape
                if w is None or not lam > 0:
                    log.stopped = "stationary"
                    break
                v = _oriented(w, a)
            else:
                v = a.numpy()
            u = _direction(frame, v, kinks, h * scale, wset)
            if not np.linalg.norm(u) > 0:
                log.refused["no_face_direction"] += 1
                h *= 0.5
            else:
                cand, _, ok = retract(model, theta + h * scale * u, x, Y, tol, settings.retract_iters,
                                      settings.null_rtol)
                cert = segment_max(model, stored_theta, cand, x, Y, power) if ok else np.inf
                if not ok:
                    log.refused["retraction_failed"] += 1
                    h *= 0.5
                elif cert > settings.segment_epsilon and since > 0:
                    store(cert_now)  # the chord from the last stored state leaves the class: store, go on from here
                    log.forced_stores += 1
                elif cert > settings.segment_epsilon:
                    log.refused["certificate_failed"] += 1
                    h *= 0.5
                else:
                    vc, gc = objective.value_and_grad(cand)
                    vc = float(vc)
                    if not sign * (vc - value) > settings.improve_rtol * abs(value) + settings.improve_atol:
                        log.refused["not_improved"] += 1
                        h *= 0.5
                    else:
                        if ratio <= settings.stationary_rtol:
                            log.escapes += 1
                        theta, value, g, cert_now, geometry = cand, vc, gc.numpy(), cert, None
                        log.accepted += 1
                        trace.append(value)
                        since += 1
                        h = min(1.5 * h, settings.max_step)
                        pbar.update(1)
                        pbar.set_postfix(J=f"{value:.4g}", refresh=False)
                        if since >= settings.thin or log.accepted == settings.steps:
                            store(cert)
            if h < settings.min_step:
                log.stopped = "step size collapsed"
                break
    except KeyboardInterrupt:
        log.stopped = "interrupted"
    finally:
        pbar.close()
    if since > 0 and log.stopped != "interrupted":  # keep the accepted steps of a teleport that stops
        store(cert_now)
    log.stored = _stored(rows, len(theta))
    log.values, log.steps, log.trace_value = np.array(values), np.array(steps, np.int64), np.array(trace)
    log.final_step, log.seconds = h, time.monotonic() - t0
    log.reason = _reason(log, settings)
    if log.stopped == "interrupted":
        raise Interrupted(log)
    return log


def _stored(rows: list[tuple], P: int = 0) -> Stored:
    if not rows:
        return Stored(np.zeros((0, P)), np.zeros(0), *(np.zeros(0, np.int64) for _ in range(3)), np.zeros(0))
    return Stored(theta=np.stack([r[0] for r in rows]), discrepancy=np.array([r[1] for r in rows]),
                  chain=np.array([r[2] for r in rows], np.int64), step=np.array([r[3] for r in rows], np.int64),
                  parent=np.array([r[4] for r in rows], np.int64), segment_max=np.array([r[5] for r in rows]))


def _reason(log: Teleport, settings: TeleportSettings) -> str:
    """One line: why the teleport stopped, with the numbers behind it."""
    where = "horizontal " if settings.horizontal else ""
    r = log.gradient_ratio
    if log.stopped == "no tangent directions":
        extra = (" (the class is locally just the symmetry orbit: --vertical moves along it)" if settings.horizontal
                 else " (θ is locally identifiable on the probe set)")
        return f"the class has no {where}tangent directions here{extra}"
    if log.stopped == "stationary":
        return (f"stationary along the class: the {where}projected gradient is {r:.2g} of ‖∇J‖ (≤ "
                f"{settings.stationary_rtol:g}) and no second-order direction improves J")
    if log.stopped == "step size collapsed" and r <= settings.stationary_rtol:
        return (f"stationary along the class: the {where}projected gradient is {r:.2g} of ‖∇J‖ and no step along the "
                f"best second-order direction improved J beyond the tolerance before the step size collapsed "
                f"below {settings.min_step:g} of ‖θ*‖")
    if log.stopped == "step size collapsed":
        return (f"step size collapsed below {settings.min_step:g} of ‖θ*‖ (projected gradient {r:.2g} of ‖∇J‖; "
                f"refused: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in log.refused.items() if v) + ")")
    if log.stopped == "interrupted":
        return f"interrupted (Ctrl-C) after {log.accepted} accepted steps; the states stored until then are kept"
    if log.stopped == "out of attempts":
        return f"out of attempts ({settings.attempts}) after {log.accepted} accepted steps"
    return f"every one of the {settings.steps} steps taken (projected gradient {r:.2g} of ‖∇J‖ at the last one)"


def settings_with(settings: TeleportSettings, **overrides) -> TeleportSettings:
    """``settings`` with the overrides that are not None."""
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


__all__ = ["GOALS", "REFUSALS", "STOPS", "Interrupted", "Teleport", "TeleportSettings", "second_order", "settings_with",
           "teleport"]
