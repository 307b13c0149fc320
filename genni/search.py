r"""The equivalence search: many parameter sets θ with f_θ(X) = f_θ*(X), found together.

Objective (for every element independently):

    L(θ) = (1/n) Σ_{x ∈ X} ‖f_θ(x) − f_θ*(x)‖²        (probe set X, n inputs)

All active candidates advance together, in lock-step, as one batch θ of shape [B, P]
(on a GPU as batched tensor operations; on the CPU the per-element linear algebra
loops over rows, which costs ~5-15 % and makes every element's bits independent of
its batch-mates, see below).  Finished elements (converged, or out of attempts) leave the
batch and are replaced by new ones from the queue, so memory is set by the batch
size, not by how many elements are asked for, and results stream out as they finish.

Methods
-------
``lm`` (default): Levenberg–Marquardt on the residuals r(θ) = vec(f_θ(X) − Y) ∈ R^{nK}
with the exact Jacobian J = ∂r/∂θ (closed form, layer by layer):

    (JᵀJ + μ·D) δ = −Jᵀr,

with D = mean diag(JᵀJ)·I (``damping = "identity"``, the default) or Marquardt's
scaling D = diag(max(diag(JᵀJ), 10⁻⁶·mean diag(JᵀJ))) (``damping = "marquardt"``).
With geodesic acceleration (``geodesic = α > 0``, Transtrum & Sethna) the step also
follows the curvature of the residual along δ:

    r_vv ≈ (2/h)·[(r(θ + hδ) − r(θ))/h − Jδ]   (h = 0.1),
    (JᵀJ + μ·D) a = −Jᵀ r_vv,    step s = δ + a/2,  allowed only if 2‖a‖ ≤ α‖δ‖,

which costs one forward pass and one triangular solve more and cuts the steps through
the narrow curved valleys of these sloppy fits several-fold.  θ ← θ + s if L(θ + s) < L(θ).
μ is per element (Nielsen's rule): with the gain ratio ρ = (L(θ) − L(θ+s)) / (L(θ) − L_GN(θ+δ)),
where L_GN(θ+δ) = ‖r + Jδ‖²/n, an accepted step sets μ ← max(μ_min, μ·max(1/3, 1 − (2ρ − 1)³)),
ν ← 2; a rejected one μ ← μ·ν, ν ← 2ν.

Matrix-free LM (``solver = "cg"``, or ``"auto"`` when P > 4096): the same step, objective and
acceptance rule, without ever forming J ([nK, P]) or JᵀJ ([P, P]).  The normal equations

    (JᵀJ + μ·D) δ = −Jᵀr

are solved by conjugate gradients preconditioned with M = diag(JᵀJ) + μ·D, each iteration one
J·v (forward mode, layer by layer) and one Jᵀ·u (reverse mode); diag(JᵀJ) is computed in closed form
(Σ_x Σ_k (∂f_k/∂z)² h², no J).  Inner stopping rule: the relative residual
‖(JᵀJ + μD)δ + Jᵀr‖ ≤ ``cg_tol``·‖Jᵀr‖ (default 10⁻⁶), or ``cg_max`` iterations (default 250),
whichever comes first; the predicted reduction uses ‖Jδ‖² (one more J·v).  Memory per element is
O(P + n·K·width) instead of O(P² + nKP).  No geodesic acceleration on this path.

``adam``: first-order Adam on L (the baseline method of the GENNI code, batched).

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
touches one element's data runs on that element alone, so on a given machine element i's
θ is bitwise the same whatever else is requested, already stored, or the batch size (lm).

ReLU: random initialisations meet the ReLU landscape's spurious minima and kink
"chattering" (pattern flips at probe points near kinks): on the 2-16-16-1 moons
reference they stall at a relative discrepancy ~1e-4..1e-6.  ``init = "perturb"`` with
a small ``init_scale`` (~0.01) plus hops converges; see the project notes for numbers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .discrepancy import discrepancy, output_power, relative_discrepancy
from .models.base import Model
from .progress import bar
from .seeds import element_generator

STATUS = ("converged", "stalled", "max_steps", "diverged", "dead_units")
"""Why an element finished; ``/equivalents/status`` stores the index into this tuple."""

DEFAULT_MAX_STEPS = {"lm": 400, "adam": 5000}
DEFAULT_PATIENCE = {"lm": 40, "adam": 500}
_MU0, _MU_MIN, _MU_MAX = 1e-3, 1e-15, 1e12
CG_AUTO_P = 4096
"""``solver = "auto"`` takes the matrix-free step above this many parameters (one element's JᵀJ is
then 128 MB or more in float64)."""
_REVIVE_EVENT, _HOP_EVENT = 1 << 20, 1 << 21


@dataclass(frozen=True)
class SearchSettings:
    """How to search (the ``[search]`` section of a config).

    n : elements requested;  tol : converged when L ≤ tol (absolute, mean squared)
    method : "lm" | "adam";  max_steps : steps per attempt (None: method default)
    batch_size : elements advanced together;  restarts : extra attempts per element
    init : "random" (torch.nn.Linear's init × init_scale) | "perturb" (θ* + a random
        init × init_scale);  lr : Adam's learning rate;  device : torch device
    patience, stall_factor : an attempt stalls when L has not fallen to stall_factor·L
        within ``patience`` steps (None: method default)
    memory_mb : cap on the batch's Jacobian working memory (shrinks the batch if needed)
    damping : "marquardt" | "identity" (LM's D, see the module docstring)
    revive : re-draw dead ReLU units (f unchanged) instead of losing them
    hops, hop_scale : perturbations of a stalled element before it restarts
    mu0 : initial μ;  geodesic : α of geodesic acceleration (0: off; direct solver only)
    solver : "direct" (Cholesky of JᵀJ + μD, forms J and JᵀJ) | "cg" (matrix-free: preconditioned
        conjugate gradients with J·v and Jᵀ·u) | "auto" (cg when P > CG_AUTO_P, resolved by
        :func:`resolve_solver`);  cg_tol, cg_max : the inner solver's stopping rule
    """

    n: int = 64
    tol: float = 1e-10
    method: str = "lm"
    max_steps: int | None = None
    batch_size: int = 64
    init: str = "random"
    init_scale: float = 1.0
    restarts: int = 4
    lr: float = 1e-2
    device: str = "cpu"
    patience: int | None = None
    memory_mb: float = 1024.0
    damping: str = "identity"
    revive: bool = True
    hops: int = 3
    hop_scale: float = 0.003
    stall_factor: float = 0.5
    mu0: float = 1e-3
    geodesic: float = 0.75
    solver: str = "auto"
    cg_tol: float = 1e-6
    cg_max: int = 250

    @property
    def matrix_free(self) -> bool:
        """The LM step by conjugate gradients (``solver = "cg"``, or ``"auto"`` above :data:`CG_AUTO_P`)."""
        return self.method == "lm" and self.solver == "cg"

    @classmethod
    def from_config(cls, section: dict) -> SearchSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in names})

    @property
    def steps_per_attempt(self) -> int:
        return self.max_steps or DEFAULT_MAX_STEPS[self.method]

    @property
    def stall_window(self) -> int:
        return self.patience or DEFAULT_PATIENCE[self.method]


@dataclass(frozen=True)
class Problem:
    """What to match: the reference's outputs on probe and held-out inputs.

    X : Tensor, shape [n, w_0];  Y : Tensor, shape [n, w_L] (f_θ*(X))
    X_heldout : Tensor, shape [m, w_0];  Y_heldout : Tensor, shape [m, w_L]
    theta_ref : Tensor, shape [P]
    """

    model: Model
    theta_ref: torch.Tensor
    X: torch.Tensor
    Y: torch.Tensor
    X_heldout: torch.Tensor
    Y_heldout: torch.Tensor

    @classmethod
    def from_arrays(cls, model, theta_ref, X, X_heldout, device="cpu") -> Problem:
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731
        th, Xp, Xh = t(theta_ref), t(X), t(X_heldout)
        with torch.no_grad():
            return cls(model, th, Xp, model.forward(th, Xp), Xh, model.forward(th, Xh))

    @property
    def output_power(self) -> float:
        """P* = mean_x ‖f_θ*(x)‖² on the probe set (the denominator of the relative discrepancy)."""
        return output_power(self.Y)

    @property
    def output_power_heldout(self) -> float:
        """mean_x ‖f_θ*(x)‖² on the held-out inputs."""
        return output_power(self.Y_heldout)


@dataclass(frozen=True)
class Found:
    """A chunk of finished elements (numpy, on the CPU); every array has length k first.

    status : index into :data:`STATUS`;  dead_units : hidden units of the final θ that are
    inactive on every probe input (ReLU only, else 0);  hops : perturbations used
    """

    index: np.ndarray
    theta: np.ndarray
    discrepancy: np.ndarray
    discrepancy_heldout: np.ndarray
    relative_discrepancy: np.ndarray
    relative_discrepancy_heldout: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    restarts: np.ndarray
    init_seed: np.ndarray
    status: np.ndarray
    dead_units: np.ndarray
    hops: np.ndarray
    chain: np.ndarray | None = None
    """walk elements only (:mod:`genni.walk`): chain, accepted steps since its start, row of the
    previous stored state (−1 = θ*), certificate of the segment from it; None for searched elements"""
    step: np.ndarray | None = None
    parent: np.ndarray | None = None
    segment_max: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def concat(chunks: Sequence[Found]) -> Found:
        def cat(name):
            parts = [getattr(c, name) for c in chunks]
            return None if any(p is None for p in parts) else np.concatenate(parts)
        return Found(**{f.name: cat(f.name) for f in fields(Found)})


# --- residuals, Jacobian and dead units
#
# On the CPU every product that involves one element's data runs on that element alone
# (a loop over rows): batched BLAS calls may round differently for different batch sizes,
# and element i's θ must not depend on which other elements share its batch (resuming,
# ``indices=``).  On the CPU this costs ~5-15 % against batched calls (measured: JᵀJ of
# 64 × [512, 337] 0.21 s vs 0.19 s); on a GPU, where a Python loop over rows would
# serialise tiny kernels, the same maths runs batched (torch.vmap / batched linalg) and
# results are reproducible for a given batch composition only.


def _batched(t: torch.Tensor) -> bool:
    return t.device.type != "cpu"


def _rowwise(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """torch.stack([fn(t_1[i], t_2[i], ...) for every row i]), each row a fresh (aligned) copy:
    BLAS kernels (MKL) may round differently depending on the address alignment of a row.
    Off the CPU: ``torch.vmap(fn)`` over the rows."""
    if _batched(tensors[0]):
        return torch.vmap(fn)(*tensors)
    return torch.stack([fn(*(t[i].clone() for t in tensors)) for i in range(tensors[0].shape[0])])


def _discrepancy_rows(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    if _batched(theta):
        return discrepancy(model, theta, X, Y)
    return _rowwise(lambda t: discrepancy(model, t[None], X, Y)[0], theta)


def count_dead_units(model: Model, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Hidden units inactive on every input of X, per row of θ (0 where the model does not revive)."""
    if not model.revivable:
        return torch.zeros(theta.shape[0], dtype=torch.long, device=theta.device)
    return model.dead_mask(theta, X).sum(1)


def _residual_jacobian(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor):
    """r = vec(f_θ(X) − Y) : [B, nK] and J = ∂r/∂θ : [B, nK, P]."""
    f, J = model.jacobian(theta, X)
    B = theta.shape[0]
    r = (f - Y).reshape(B, -1)
    return r, J.reshape(B, r.shape[1], -1)


# --- one step of each method on the active batch; state is a dict of [B, ...] tensors


def _lm_prepare(problem: Problem, st: dict, rows: torch.Tensor, damping: str) -> None:
    """(Re)compute r, J, loss, JᵀJ, Jᵀr and the damping scale D for the given rows of the batch."""
    if rows.numel() == 0:
        return
    model, X, Y = problem.model, problem.X, problem.Y
    if _batched(X):
        r, J = _residual_jacobian(model, st["theta"][rows], X, Y)
    else:
        rJ = [_residual_jacobian(model, t[None].clone(), X, Y) for t in st["theta"][rows]]
        r = torch.cat([a for a, _ in rJ])
        J = torch.cat([b for _, b in rJ])
    n = problem.X.shape[0]
    A = _rowwise(lambda j: j.T @ j, J)
    d = torch.diagonal(A, dim1=1, dim2=2)
    mean = _rowwise(torch.mean, d)[:, None].clamp_min(1e-30)
    if damping == "marquardt":
        D = torch.maximum(d, 1e-6 * mean)
    else:
        D = mean.expand_as(d)
    st["r"][rows] = r
    st["J"][rows] = J
    st["A"][rows] = A
    st["D"][rows] = D
    st["g"][rows] = _rowwise(lambda j, v: j.T @ v, J, r)
    st["loss"][rows] = _rowwise(torch.dot, r, r) / n


def _residuals(problem: Problem, theta: torch.Tensor) -> torch.Tensor:
    if _batched(theta):
        return (problem.model.forward(theta, problem.X) - problem.Y).reshape(theta.shape[0], -1)
    return _rowwise(lambda t: (problem.model.forward(t, problem.X) - problem.Y).reshape(-1), theta)


def _chol_solve(b: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return _rowwise(lambda v, f: torch.cholesky_solve(v[:, None], f)[:, 0], b, L)


def _lm_step(problem: Problem, st: dict, damping: str, geodesic: float = 0.0) -> torch.Tensor:
    """One LM step for every row; returns the mask of accepted rows (their J, A, g not yet updated)."""
    A, g, mu, D = st["A"], st["g"], st["mu"], st["D"]
    n = problem.X.shape[0]
    M = A.clone()
    M.diagonal(dim1=1, dim2=2).add_(mu[:, None] * D)
    if _batched(M):
        L, info = torch.linalg.cholesky_ex(M)
    else:
        fac = [torch.linalg.cholesky_ex(m.clone()) for m in M]
        L = torch.stack([f[0] for f in fac])
        info = torch.stack([f[1] for f in fac])
    ok = info == 0
    delta = -_chol_solve(g, L)
    delta = torch.where(ok[:, None], delta, torch.zeros_like(delta))
    step = delta
    if geodesic > 0:
        # second directional derivative of r along δ by a finite difference, then the
        # acceleration a = −(JᵀJ + μD)⁻¹ Jᵀ r_vv; the step is δ + a/2 (Transtrum & Sethna)
        h = 0.1
        Jd = _rowwise(torch.mv, st["J"], delta)
        r_h = _residuals(problem, st["theta"] + h * delta)
        r_vv = (2.0 / h) * ((r_h - st["r"]) / h - Jd)
        acc = -_chol_solve(_rowwise(lambda j, v: j.T @ v, st["J"], r_vv), L)
        acc = torch.where(torch.isfinite(acc) & ok[:, None], acc, torch.zeros_like(acc))
        ratio = 2 * _rowwise(torch.linalg.vector_norm, acc) / _rowwise(torch.linalg.vector_norm, delta).clamp_min(1e-300)
        ok = ok & (ratio <= geodesic)
        step = delta + 0.5 * acc
    trial = st["theta"] + step
    new_loss = _discrepancy_rows(problem.model, trial, problem.X, problem.Y)
    # L(θ) − L_GN(θ+δ) = −(2 gᵀδ + δᵀAδ)/n
    predicted = -_rowwise(lambda a, u, v: 2 * torch.dot(u, v) + v @ (a @ v), A, g, delta) / n
    return _lm_accept(st, trial, new_loss, predicted, ok)


def _lm_accept(st: dict, trial: torch.Tensor, new_loss: torch.Tensor, predicted: torch.Tensor,
               ok: torch.Tensor) -> torch.Tensor:
    """Accept θ + s where L falls; Nielsen's μ update from the gain ratio (module docstring)."""
    mu = st["mu"]
    rho = (st["loss"] - new_loss) / predicted.clamp_min(1e-300)
    accept = ok & torch.isfinite(new_loss) & (new_loss < st["loss"])
    st["theta"] = torch.where(accept[:, None], trial, st["theta"])
    st["loss"] = torch.where(accept, new_loss, st["loss"])
    u = 2 * rho - 1  # (no **: vectorised and scalar pow may round differently)
    shrink = torch.clamp(1 - u * u * u, min=1 / 3)
    st["mu"] = torch.where(accept, (mu * shrink).clamp_min(_MU_MIN), mu * st["nu"])
    st["nu"] = torch.where(accept, torch.full_like(st["nu"], 2.0), st["nu"] * 2)
    return accept


def _each_row(fn, rows: torch.Tensor, device_batched: bool) -> None:
    """fn(rows) once for all rows off the CPU, else once per row (an element's bits must not depend
    on its batch-mates)."""
    if device_batched:
        fn(rows)
    else:
        for r in rows:
            fn(r[None])


def _cg_prepare(problem: Problem, st: dict, rows: torch.Tensor, damping: str) -> None:
    """Matrix-free counterpart of :func:`_lm_prepare`: r, Jᵀr, loss, diag(JᵀJ) and D, no J."""
    if rows.numel() == 0:
        return
    model, X, Y = problem.model, problem.X, problem.Y
    n = X.shape[0]

    def one(idx):
        th = st["theta"][idx]
        _, pull = model.products(th, X)
        r = model.forward(th, X) - Y
        d = model.jtj_diagonal(th, X)
        mean = d.mean(1, keepdim=True).clamp_min(1e-30)
        st["r"][idx] = r.reshape(len(idx), -1)
        st["g"][idx] = pull(r)
        st["d"][idx] = d
        st["D"][idx] = torch.maximum(d, 1e-6 * mean) if damping == "marquardt" else mean.expand_as(d)
        st["loss"][idx] = (r * r).reshape(len(idx), -1).sum(1) / n

    _each_row(one, rows, _batched(X))


def _pcg(apply, b: torch.Tensor, precond: torch.Tensor, tol: float, maxiter: int) -> tuple[torch.Tensor, int]:
    """Solve M x = b row by row (M symmetric positive definite, given as ``apply``) by preconditioned
    conjugate gradients; a row stops when ‖b − M x‖ ≤ tol·‖b‖.  precond : [B, P] the diagonal of the
    preconditioner.  returns (x [B, P], iterations of the slowest row)."""
    x = torch.zeros_like(b)
    res = b.clone()
    z = res / precond
    p = z.clone()
    rz = (res * z).sum(1)
    bnorm = torch.linalg.vector_norm(b, dim=1)
    active = bnorm > 0
    it = 0
    while it < maxiter and bool(active.any()):
        it += 1
        Ap = apply(p)
        pAp = (p * Ap).sum(1)
        alpha = torch.where(active & (pAp > 0), rz / pAp.clamp_min(1e-300), torch.zeros_like(rz))
        x = x + alpha[:, None] * p
        res = res - alpha[:, None] * Ap
        active = active & (pAp > 0) & (torch.linalg.vector_norm(res, dim=1) > tol * bnorm)
        z = res / precond
        rz_new = (res * z).sum(1)
        beta = torch.where(active, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
        p = z + beta[:, None] * p
        rz = rz_new
    return x, it


def _cg_step(problem: Problem, st: dict, tol: float, maxiter: int) -> torch.Tensor:
    """One matrix-free LM step for every row (see the module docstring); returns the accepted rows."""
    model, X, Y = problem.model, problem.X, problem.Y
    n = X.shape[0]
    B = st["theta"].shape[0]
    delta = torch.zeros_like(st["theta"])
    predicted = torch.zeros(B, dtype=st["theta"].dtype, device=st["theta"].device)

    def one(idx):
        th, mu, D = st["theta"][idx], st["mu"][idx], st["D"][idx]
        push, pull = model.products(th, X)

        def apply(v):  # (JᵀJ + μD) v
            return pull(push(v)) + mu[:, None] * D * v

        g = st["g"][idx]
        dl, _ = _pcg(apply, -g, st["d"][idx] + mu[:, None] * D, tol, maxiter)
        Jd = push(dl).reshape(len(idx), -1)
        delta[idx] = dl
        predicted[idx] = -(2 * (g * dl).sum(1) + (Jd * Jd).sum(1)) / n

    _each_row(one, torch.arange(B, device=st["theta"].device), _batched(X))
    trial = st["theta"] + delta
    new_loss = _discrepancy_rows(model, trial, X, Y)
    return _lm_accept(st, trial, new_loss, predicted, torch.isfinite(delta).all(1))


def _adam_prepare(problem: Problem, st: dict, rows: torch.Tensor) -> None:
    if rows.numel() == 0:
        return
    with torch.no_grad():
        st["loss"][rows] = discrepancy(problem.model, st["theta"][rows], problem.X, problem.Y)


def _adam_step(problem: Problem, st: dict, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    theta = st["theta"].detach().requires_grad_(True)
    loss = discrepancy(problem.model, theta, problem.X, problem.Y)
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    with torch.no_grad():
        st["t"] = st["t"] + 1
        st["m"] = b1 * st["m"] + (1 - b1) * grad
        st["v"] = b2 * st["v"] + (1 - b2) * grad * grad
        mhat = st["m"] / (1 - b1 ** st["t"])[:, None]
        vhat = st["v"] / (1 - b2 ** st["t"])[:, None]
        st["theta"] = theta.detach() - lr * mhat / (vhat.sqrt() + eps)
        st["loss"] = discrepancy(problem.model, st["theta"], problem.X, problem.Y)


# --- the driver

_META = ("index", "attempt", "steps", "attempt_steps", "since", "seed", "hops", "events")


class _Batch:
    """The active elements: per-row bookkeeping plus the method's state tensors."""

    def __init__(self, problem: Problem, settings: SearchSettings, seed: int, starts: dict | None = None):
        self.problem, self.s, self.seed, self.starts = problem, settings, seed, starts
        self.dev = problem.X.device
        self.P = problem.model.n_params
        self.st: dict[str, torch.Tensor] = {}
        self.meta: dict[str, np.ndarray] = {k: np.zeros(0, np.int64) for k in _META}
        self.best = np.zeros(0)
        self.can_die = problem.model.revivable

    def __len__(self) -> int:
        return len(self.meta["index"])

    def _gen(self, row: int, event: int) -> torch.Generator:
        g, _ = element_generator(self.seed, int(self.meta["index"][row]), int(self.meta["attempt"][row]), event)
        return g

    def _init_theta(self, index: int, attempt: int) -> tuple[torch.Tensor, int]:
        g, s = element_generator(self.seed, index, attempt)
        if attempt == 0 and self.starts is not None and index in self.starts:
            return torch.as_tensor(self.starts[index], dtype=torch.float64).clone(), s
        theta = self.problem.model.init_theta(1, g, self.s.init_scale)[0]
        if self.s.init == "perturb":
            theta = self.problem.theta_ref.cpu() + theta
        return theta, s

    def _fresh_state(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        k = theta.shape[0]
        z = lambda *shape: torch.zeros(k, *shape, dtype=torch.float64, device=self.dev)  # noqa: E731
        st = {"theta": theta.to(self.dev), "loss": z()}
        if self.s.matrix_free:
            m = self.problem.X.shape[0] * self.problem.model.out_dim
            st.update(r=z(m), g=z(self.P), d=z(self.P), D=z(self.P), mu=z() + self.s.mu0, nu=z() + 2.0)
        elif self.s.method == "lm":
            m = self.problem.X.shape[0] * self.problem.model.out_dim
            st.update(r=z(m), J=z(m, self.P), A=z(self.P, self.P), g=z(self.P), D=z(self.P), mu=z() + self.s.mu0, nu=z() + 2.0)
        else:
            st.update(m=z(self.P), v=z(self.P), t=z())
        return st

    def _prepare(self, rows: torch.Tensor) -> None:
        if rows.numel() and self.can_die and self.s.revive:
            self._revive(rows)
        if self.s.matrix_free:
            _cg_prepare(self.problem, self.st, rows, self.s.damping)
        elif self.s.method == "lm":
            _lm_prepare(self.problem, self.st, rows, self.s.damping)
        else:
            _adam_prepare(self.problem, self.st, rows)

    def _revive(self, rows: torch.Tensor) -> None:
        dead = self.problem.model.dead_mask(self.st["theta"][rows], self.problem.X)
        has = dead.any(1)
        if not bool(has.any()):
            return
        sel = rows[has]
        sel_np = sel.cpu().numpy()
        gens = []
        for r in sel_np:
            self.meta["events"][r] += 1
            gens.append(self._gen(r, _REVIVE_EVENT + int(self.meta["events"][r])))
        self.st["theta"][sel] = self.problem.model.revive(self.st["theta"][sel], dead[has], gens)

    def add(self, indices: list[int]) -> None:
        inits = [self._init_theta(i, 0) for i in indices]
        fresh = self._fresh_state(torch.stack([t for t, _ in inits]))
        start = len(self)
        self.st = fresh if not self.st else {k: torch.cat([self.st[k], fresh[k]]) for k in self.st}
        k = len(indices)
        self.meta["index"] = np.concatenate([self.meta["index"], indices]).astype(np.int64)
        self.meta["seed"] = np.concatenate([self.meta["seed"], [s for _, s in inits]]).astype(np.int64)
        for key in _META:
            if key not in ("index", "seed"):
                self.meta[key] = np.concatenate([self.meta[key], np.zeros(k, np.int64)])
        self._prepare(torch.arange(start, start + k, device=self.dev))
        self.best = np.concatenate([self.best, self.st["loss"][start:].cpu().numpy()])

    def _reset_rows(self, rows: np.ndarray, thetas: list[torch.Tensor]) -> None:
        fresh = self._fresh_state(torch.stack(thetas))
        t = torch.as_tensor(rows, device=self.dev)
        for k in self.st:
            self.st[k][t] = fresh[k]
        self.meta["since"][rows] = 0
        self._prepare(t)
        self.best[rows] = self.st["loss"][t].cpu().numpy()

    def restart(self, rows: np.ndarray) -> None:
        thetas = []
        for r in rows:
            self.meta["attempt"][r] += 1
            theta, s = self._init_theta(int(self.meta["index"][r]), int(self.meta["attempt"][r]))
            thetas.append(theta)
            self.meta["seed"][r] = s
        self.meta["attempt_steps"][rows] = 0
        self.meta["hops"][rows] = 0
        self.meta["events"][rows] = 0
        self._reset_rows(rows, thetas)

    def hop(self, rows: np.ndarray) -> None:
        thetas = []
        for r in rows:
            self.meta["hops"][r] += 1
            g = self._gen(r, _HOP_EVENT + int(self.meta["hops"][r]))
            xi = self.problem.model.init_theta(1, g, self.s.hop_scale)[0]
            thetas.append(self.st["theta"][r].cpu() + xi)
        self._reset_rows(rows, thetas)

    def step(self) -> None:
        if self.s.matrix_free:
            accept = _cg_step(self.problem, self.st, self.s.cg_tol, self.s.cg_max)
            self._prepare(accept.nonzero().squeeze(1))
        elif self.s.method == "lm":
            accept = _lm_step(self.problem, self.st, self.s.damping, self.s.geodesic)
            self._prepare(accept.nonzero().squeeze(1))
        else:
            _adam_step(self.problem, self.st, self.s.lr)
        for key in ("steps", "attempt_steps", "since"):
            self.meta[key] += 1

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


def _measured(problem: Problem, theta: torch.Tensor, tol: float, status: np.ndarray, **fields_) -> Found:
    """A :class:`Found` for θ [k, P]: discrepancies on probe and held-out inputs (absolute and relative),
    convergence (L ≤ tol; a converged element's status becomes 0, an unconverged one with dead units
    "dead_units" unless it diverged) and dead units; ``fields_`` gives the rest (index, steps, …)."""
    with torch.no_grad():
        d = _discrepancy_rows(problem.model, theta, problem.X, problem.Y).cpu().numpy()
        dh = _discrepancy_rows(problem.model, theta, problem.X_heldout, problem.Y_heldout).cpu().numpy()
        dead = count_dead_units(problem.model, theta, problem.X).cpu().numpy().astype(np.int32)
    conv = d <= tol
    code = np.where(conv, 0, np.where((status != 3) & (dead > 0), STATUS.index("dead_units"), status)).astype(np.int8)
    return Found(theta=theta.cpu().numpy(), discrepancy=d, discrepancy_heldout=dh,
                 relative_discrepancy=relative_discrepancy(d, problem.output_power),
                 relative_discrepancy_heldout=relative_discrepancy(dh, problem.output_power_heldout),
                 converged=conv, status=code, dead_units=dead, **fields_)


def _finish(problem: Problem, parts: list[dict], status: list[np.ndarray], tol: float) -> Found:
    cat = lambda k: np.concatenate([p[k] for p in parts])  # noqa: E731
    return _measured(problem, torch.cat([p["theta"] for p in parts]), tol, np.concatenate(status).astype(np.int8),
                     index=cat("index"), steps=cat("steps"), restarts=cat("attempt"), init_seed=cat("seed"),
                     hops=cat("hops").astype(np.int32))


def describe(problem: Problem, theta: np.ndarray, index: np.ndarray, tol: float, **extra) -> Found:
    """A :class:`Found` for parameter sets found some other way (walks): discrepancies on probe and
    held-out inputs, convergence, dead units; ``extra`` fills the walk columns.

    theta : [k, P];  index : [k]
    """
    k = len(theta)
    th = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=problem.X.device)
    zeros = np.zeros(k, np.int64)
    return _measured(problem, th, tol, np.full(k, STATUS.index("stalled"), np.int8), index=np.asarray(index, np.int64),
                     steps=np.asarray(extra.get("step", zeros), np.int64), restarts=zeros, init_seed=zeros,
                     hops=np.zeros(k, np.int32), **extra)


def resolve_solver(settings: SearchSettings, n_params: int) -> SearchSettings:
    """``solver = "auto"`` made concrete: "cg" when P > :data:`CG_AUTO_P`, else "direct"."""
    if settings.solver not in ("auto", "direct", "cg"):
        raise ValueError(f"solver must be auto, direct or cg, got {settings.solver!r}")
    if settings.solver != "auto":
        return settings
    return replace(settings, solver="cg" if n_params > CG_AUTO_P else "direct")


def batch_capacity(model: Model, n_probe: int, settings: SearchSettings) -> int:
    """Elements advanced together: ``batch_size``, shrunk so that the LM working set
    (J : [B, nK, P] and JᵀJ : [B, P, P] in float64) fits in ``memory_mb``."""
    if settings.method != "lm" or settings.matrix_free:
        return settings.batch_size
    P, m = model.n_params, n_probe * model.out_dim
    per_element = 8 * (m * P + 3 * P * P + 4 * m)
    return max(1, min(settings.batch_size, int(settings.memory_mb * 2**20 // per_element)))


def search(problem: Problem, settings: SearchSettings, *, seed: int, indices: Sequence[int] | None = None,
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
    at least once (now hopping or restarting).
    yields : :class:`Found` with ``theta`` of shape [k, P]
    """
    settings = resolve_solver(settings, problem.model.n_params)
    queue = deque(range(settings.n) if indices is None else indices)
    cap = batch_capacity(problem.model, problem.X.shape[0], settings)
    batch = _Batch(problem, settings, seed, starts)
    parts: list[dict] = []
    status: list[np.ndarray] = []
    n_done = n_conv = 0
    last = time.monotonic()
    pbar = bar(total=len(queue), progress=progress, unit="el",
               desc=f"search ({'lm, matrix-free' if settings.matrix_free else settings.method})")
    window, max_steps = settings.stall_window, settings.steps_per_attempt
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
            loss = batch.st["loss"].cpu().numpy()
            improved = loss < settings.stall_factor * batch.best
            batch.best = np.where(improved, loss, batch.best)
            batch.meta["since"][improved] = 0
            conv = loss <= settings.tol
            mu_dead = (batch.st["mu"].cpu().numpy() > _MU_MAX) if "mu" in batch.st else np.zeros_like(conv)
            diverged = ~np.isfinite(loss)
            stalled = (batch.meta["since"] >= window) | mu_dead
            out_of_steps = batch.meta["attempt_steps"] >= max_steps
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
        pbar.close()


def run_search(problem: Problem, settings: SearchSettings, *, seed: int, **kw) -> Found:
    """All of :func:`search` in memory, as one :class:`Found` (sorted by element index)."""
    chunks = list(search(problem, settings, seed=seed, **kw))
    if not chunks:
        raise ValueError("no elements requested")
    f = Found.concat(chunks)
    order = np.argsort(f.index, kind="stable")
    return Found(**{k.name: None if getattr(f, k.name) is None else getattr(f, k.name)[order] for k in fields(Found)})


__all__ = ["STATUS", "SearchSettings", "Problem", "Found", "search", "run_search",
           "batch_capacity", "count_dead_units", "describe"]
