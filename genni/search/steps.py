r"""One step of each method on the active batch, for every element independently.

Objective of every method, per element:

    L(θ) = (1/n) Σ_{x ∈ X} ‖f_θ(x) − f_θ*(x)‖²        (probe set X, n inputs)

The state of the batch is a dict of [B, ...] tensors (θ, L and the method's own: r, J, JᵀJ, Jᵀr, D,
μ, ν for LM; Adam's moments); ``*_prepare`` (re)computes the derived entries for given rows after θ
changed, ``*_step`` advances every row once.

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

How the direct step is computed, per element (m = nK residuals, P parameters):

* J once per accepted step: a rejected row keeps r, J, JᵀJ, Jᵀr and D, only its μ changes, and the
  next step refactors JᵀJ + μD (the driver re-prepares accepted rows only);
* one triangle of A = JᵀJ (:func:`gram_lower`): BLAS syrk on the CPU (m·P·(P + 1) flops, half the full
  product's), panel GEMMs on a batch;
* M = A + μD by Cholesky (LAPACK's potrf on the column-major lower triangle), δ and the acceleration
  by two triangular solves each; a row whose M is not numerically positive definite (the factorisation
  reports it per row) takes no step and counts as rejected, so its μ grows;
* the predicted reduction from ‖Jδ‖² (δᵀAδ without A's upper triangle), J·δ and Jᵀ·r_vv as products
  with the stored J.

On the CPU every element runs these alone and single-threaded, the elements spread over worker
threads (:class:`~genni.search.batching.RowRunner`); off the CPU the whole batch runs at once
(batched GEMMs, batched Cholesky).

Precision.  r, J, Jᵀr, J·δ, the losses and the gain ratio are float64 always.  JᵀJ and the factorisation
of M = JᵀJ + μD are float32 for a row whose damping bounds M's condition number well enough
(:func:`single_precision`; ``precision = "mixed"``, the default): κ(M) ≤ 1 + λ_max(JᵀJ)/(μ·d̄) ≤ 1 + P/μ
with identity damping (λ_max ≤ trace(JᵀJ) = P·d̄; Marquardt's scaling obeys the same bound for the
equilibrated M, which is what Cholesky's accuracy depends on), so the step's relative error is about
κ(M)·ε₃₂ ≤ (1 + P/μ)·ε₃₂ ≤ ``SINGLE_STEP_ERROR`` = 4·10⁻³: far from a solution, where μ is large.  Such
a step is still judged in float64 (acceptance, gain ratio).  Near a solution μ is small and the step is
float64: J's singular values fall smoothly from ~10² to ~10⁻¹⁴ (a converging tanh 2-16-16-1 element at
relative L ~4·10⁻⁹: 15 % of the residual's norm lies along singular values 10⁻⁵…10⁻⁹ of the largest,
i.e. eigenvalues of JᵀJ 10⁻¹⁰…10⁻¹⁸ of its largest), and the certificate L ≤ tol = 10⁻¹⁰ is a relative
3·10⁻¹² of the output power: float32 (ε ≈ 6·10⁻⁸) resolves neither those eigenvalues nor that residual.
A row's precision is chosen when its JᵀJ is built, from its μ then: μ only grows until the next
accepted step rebuilds JᵀJ, so a float32 JᵀJ is never factored with a μ below the bound.

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
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..discrepancy import discrepancy
from ..models.base import Model
from . import batching
from .problem import Problem
from .settings import MU_MIN

SINGLE_STEP_ERROR = 4e-3
"""Bound on κ(JᵀJ + μD)·ε₃₂ under which a row's JᵀJ and its factorisation are float32 (module docstring)."""

GRAM_PANEL = 96
"""Columns per panel of :func:`gram_lower` (narrower panels skip more of the upper triangle, wider ones
run the GEMM closer to its peak)."""


def gram_lower(J: torch.Tensor, panel: int = GRAM_PANEL, out: torch.Tensor | None = None) -> torch.Tensor:
    r"""The lower triangle (diagonal included) of A = JᵀJ for every element, in column-major order: the
    result's rows hold A's columns (row-major storage of Aᵀ, i.e. A's upper triangle as stored), so
    ``gram_lower(J).mT`` is A's lower triangle as LAPACK reads it.

    Objective: A_ij = Σ_x J_xi J_xj for i ≥ j.

    * One element on the CPU: BLAS ``syrk`` (numpy's product of a matrix with its own transpose computes
      one triangle, m·P·(P + 1) flops, and mirrors it, so the whole symmetric A is returned); numpy
      releases the GIL in it, so elements on worker threads overlap.
    * A batch, or off the CPU: with column panels [s, e) of width w, the block (A[s:, s:e])ᵀ =
      J[:, s:e]ᵀ J[:, s:] is one batched GEMM, so k = ⌈P / w⌉ panels cost m·P²·(k + 1)/(2k) multiply-adds
      instead of the full product's m·P² (5/8 of it at P = 337, w = 96); the diagonal blocks are computed
      whole, the blocks beyond them in the other triangle are left at 0.

    Only the lower triangle is read downstream (Cholesky, diag(A)).
    In J's precision: float32 only where the damping makes it enough (:func:`single_precision`).

    J : Tensor, shape [B, m, P], float64 or float32
    out : Tensor, shape [B, P, P], contiguous, J's dtype, or None (a new tensor)
    returns : Tensor, shape [B, P, P] (Aᵀ's storage: the entries A_ij, i ≥ j, at [j, i])
    """
    B, _, P = J.shape
    if B == 1 and J.device.type == "cpu" and (out is None or out.is_contiguous()):
        At = J.new_empty(1, P, P) if out is None else out
        Jn = J[0].numpy()
        np.matmul(Jn.T, Jn, out=At[0].numpy())
        return At
    At = J.new_zeros(B, P, P) if out is None else out.zero_()
    for s in range(0, P, panel):
        e = min(P, s + panel)
        At[:, s:e, s:] = torch.bmm(J[:, :, s:e].transpose(1, 2), J[:, :, s:])
    return At


def gram_flops(m: int, P: int, one_element: bool = True, panel: int = GRAM_PANEL) -> int:
    """Floating-point operations of :func:`gram_lower` per element: m·P·(P + 1) by ``syrk`` (one element on
    the CPU), Σ_panels 2·m·w·(P − s) by panel GEMMs otherwise."""
    if one_element:
        return m * P * (P + 1)
    return sum(2 * m * (min(P, s + panel) - s) * (P - s) for s in range(0, P, panel))


def single_precision(mu: torch.Tensor, P: int) -> torch.Tensor:
    """Rows whose JᵀJ and factorisation may be float32: (1 + P/μ)·ε₃₂ ≤ ``SINGLE_STEP_ERROR``, i.e.
    μ ≥ P·ε₃₂ / (``SINGLE_STEP_ERROR`` − ε₃₂) (about 0.01 at P = 337).

    mu : Tensor, shape [k];  returns : Tensor, shape [k], bool"""
    eps = torch.finfo(torch.float32).eps
    return mu >= P * eps / (SINGLE_STEP_ERROR - eps)


def _low(st: dict, idx, P: int, mixed: bool) -> torch.Tensor:
    """The rows of ``idx`` stepped in float32: :func:`single_precision` of their μ (``mixed``), or none."""
    mu = st["mu"][idx]
    return single_precision(mu, P) if mixed else torch.zeros(mu.shape, dtype=torch.bool, device=mu.device)


def _split(low: torch.Tensor):
    """The row groups of one precision each: [(rows, dtype)] for the rows marked ``low`` (float32) and
    the rest (float64), empty groups left out."""
    groups = [(low, torch.float32), (~low, torch.float64)]
    return [(sel, dt) for sel, dt in groups if bool(sel.any())]


def _matvec(J: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """J·v for every element: J [B, m, P], v [B, P] → [B, m]."""
    return torch.bmm(J, v.unsqueeze(2)).squeeze(2)


def _rmatvec(J: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Jᵀ·u for every element: J [B, m, P], u [B, m] → [B, P]."""
    return torch.bmm(u.unsqueeze(1), J).squeeze(1)


def _residual_jacobian(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor,
                       out: torch.Tensor | None = None):
    """r = vec(f_θ(X) − Y) : [B, nK] and J = ∂r/∂θ : [B, nK, P] (written into ``out`` [B, nK, P], contiguous,
    when given)."""
    B = theta.shape[0]
    f, J = model.jacobian(theta, X, out=None if out is None else out.view(B, *Y.shape, -1))
    r = (f - Y).reshape(B, -1)
    return r, J.reshape(B, r.shape[1], -1)


def _residuals(problem: Problem, theta: torch.Tensor) -> torch.Tensor:
    """r(θ) = vec(f_θ(X) − Y) for every row: θ [B, P] → [B, nK]."""
    return (problem.model.forward(theta, problem.X) - problem.Y).reshape(theta.shape[0], -1)


def _mean_square(r: torch.Tensor, n: int) -> torch.Tensor:
    """L = ‖r‖²/n per row: r [B, nK] → [B]."""
    return (r * r).sum(1) / n


def lm_prepare_rows(problem: Problem, st: dict, idx, damping: str, mixed: bool = True) -> None:
    """(Re)compute r, J, loss, the lower triangle of JᵀJ (float32 products for the rows
    :func:`single_precision` allows at their current μ when ``mixed``, stored in float64), Jᵀr and the
    damping scale D for the rows ``idx`` of the batch (a LongTensor, or ``slice(i, i + 1)`` for one row on
    the CPU, whose float64 JᵀJ goes straight into the batch's storage), in the calling thread."""
    model, X, Y, n = problem.model, problem.X, problem.Y, problem.X.shape[0]
    one = isinstance(idx, slice)  # one row on the CPU: J and JᵀJ written into the batch's storage
    r, J = _residual_jacobian(model, st["theta"][idx], X, Y, out=st["J"][idx] if one else None)
    low = _low(st, idx, J.shape[2], mixed)
    if one:
        if bool(low[0]):
            st["A"][idx].copy_(gram_lower(J.to(torch.float32)))
        else:
            gram_lower(J, out=st["A"][idx])
    else:
        A = torch.empty_like(st["A"][idx])
        for sel, dt in _split(low):
            A[sel] = gram_lower(J[sel].to(dt)).to(torch.float64)
        st["A"][idx] = A
    d = st["A"][idx].diagonal(dim1=1, dim2=2)
    mean = d.mean(1, keepdim=True).clamp_min(1e-30)
    st["D"][idx] = torch.maximum(d, 1e-6 * mean) if damping == "marquardt" else mean.expand_as(d)
    st["r"][idx] = r
    if not one:
        st["J"][idx] = J
    st["g"][idx] = _rmatvec(J, r)
    st["loss"][idx] = _mean_square(r, n)


def lm_prepare(problem: Problem, st: dict, rows: torch.Tensor, damping: str, runner: batching.RowRunner,
               mixed: bool = True) -> None:
    """:func:`lm_prepare_rows` for the given rows of the batch (``runner``: all at once, or row by row on
    worker threads)."""
    runner(lambda idx: lm_prepare_rows(problem, st, idx, damping, mixed), rows)


def _chol_solve(L: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x with L Lᵀ x = b by two triangular solves: L [B, P, P] lower, b [B, P] → [B, P]."""
    y = torch.linalg.solve_triangular(L, b.unsqueeze(2), upper=False)
    return torch.linalg.solve_triangular(L.mT, y, upper=True).squeeze(2)


def lm_trial(problem: Problem, st: dict, idx, damping: str, geodesic: float, mixed: bool = True):
    """The LM step s of the rows ``idx`` (a LongTensor, or a slice) from their stored r, J, JᵀJ, Jᵀr, D and
    μ, and what deciding on it needs; nothing in ``st`` changes.  M = JᵀJ + μD is factored in float32 for
    the rows :func:`single_precision` allows when ``mixed``, in float64 otherwise.  A row whose M is not
    numerically positive definite (the Cholesky factorisation reports it per row) takes no step.

    returns : (trial θ + s : [k, P], L(θ + s) : [k], predicted reduction L(θ) − L_GN(θ + δ) : [k],
        whether the step is allowed : [k] bool)"""
    n = problem.X.shape[0]
    theta, r, J, g = st["theta"][idx], st["r"][idx], st["J"][idx], st["g"][idx]
    low = _low(st, idx, J.shape[2], mixed)
    if isinstance(idx, slice) or bool(low.all()) or not bool(low.any()):
        dt = torch.float32 if bool(low[0]) else torch.float64
        # column-major lower triangle of JᵀJ (:func:`gram_lower`), a copy in the factorisation's precision
        M = st["A"][idx].to(dt, copy=True)
        M.diagonal(dim1=1, dim2=2).add_((st["mu"][idx, None] * st["D"][idx]).to(dt))
        L, info = torch.linalg.cholesky_ex(M.mT)

        def solve(b):
            return _chol_solve(L, b.to(dt)).to(torch.float64)
    else:  # a batch with rows of both precisions: each group factored in its own
        parts = []
        for sel, dt in _split(low):
            M = st["A"][idx][sel].to(dt, copy=True)
            M.diagonal(dim1=1, dim2=2).add_((st["mu"][idx][sel, None] * st["D"][idx][sel]).to(dt))
            parts.append((sel, dt, *torch.linalg.cholesky_ex(M.mT)))
        info = torch.empty(len(low), dtype=parts[0][3].dtype, device=low.device)
        for sel, _, _, inf in parts:
            info[sel] = inf

        def solve(b):
            x = torch.empty_like(b)
            for sel, dt, L, _ in parts:
                x[sel] = _chol_solve(L, b[sel].to(dt)).to(torch.float64)
            return x
    ok = info == 0
    zero = torch.zeros_like(g)
    delta = torch.where(ok[:, None], -solve(g), zero)
    Jd = _matvec(J, delta)
    step = delta
    if geodesic > 0:
        # second directional derivative of r along δ by a finite difference, then the
        # acceleration a = −(JᵀJ + μD)⁻¹ Jᵀ r_vv; the step is δ + a/2 (Transtrum & Sethna)
        h = 0.1
        r_vv = (2.0 / h) * ((_residuals(problem, theta + h * delta) - r) / h - Jd)
        acc = -solve(_rmatvec(J, r_vv))
        acc = torch.where(torch.isfinite(acc) & ok[:, None], acc, zero)
        norm = torch.linalg.vector_norm
        ok = ok & (2 * norm(acc, dim=1) / norm(delta, dim=1).clamp_min(1e-300) <= geodesic)
        step = delta + 0.5 * acc
    trial = theta + step
    new_loss = _mean_square(_residuals(problem, trial), n)
    # L(θ) − L_GN(θ+δ) = (‖r‖² − ‖r + Jδ‖²)/n = −(2 gᵀδ + ‖Jδ‖²)/n
    predicted = -(2 * (g * delta).sum(1) + (Jd * Jd).sum(1)) / n
    return trial, new_loss, predicted, ok


def lm_trial_one(problem: Problem, st: dict, i: int, geodesic: float, mixed: bool = True
                 ) -> tuple[torch.Tensor, float, float, bool]:
    """:func:`lm_trial` for row i alone on the CPU, in the calling thread: the same step and decision
    quantities with half the tensor operations (matrix-vector products, one LAPACK ``potrs`` for both
    triangular solves, scalars as Python floats); agrees with :func:`lm_trial` to rounding.

    returns : (trial θ + s : [P], L(θ + s), predicted reduction L(θ) − L_GN(θ + δ), whether the step is
        allowed)"""
    n = problem.X.shape[0]
    theta, r, J, g = st["theta"][i], st["r"][i], st["J"][i], st["g"][i]
    mu = float(st["mu"][i])
    dt = torch.float32 if mixed and bool(single_precision(st["mu"][i], J.shape[1])) else torch.float64
    M = st["A"][i].to(dt, copy=True)  # Aᵀ's storage: the column-major lower triangle of JᵀJ
    M.diagonal().add_((mu * st["D"][i]).to(dt))
    L, info = torch.linalg.cholesky_ex(M.mT)
    if int(info) != 0:
        return theta, math.nan, math.nan, False

    def solve(b):  # (JᵀJ + μD)⁻¹ b
        return torch.cholesky_solve(b.to(dt)[:, None], L)[:, 0].to(torch.float64)

    delta = solve(g).neg_()
    Jd = J @ delta
    step, ok = delta, True
    if geodesic > 0:  # as in lm_trial
        h = 0.1
        r_vv = (_residuals(problem, (theta + h * delta)[None])[0] - r).div_(h).sub_(Jd).mul_(2.0 / h)
        acc = solve(r_vv @ J).neg_()
        acc = torch.where(torch.isfinite(acc), acc, 0.0)
        ok = 2 * float(acc.norm()) / max(float(delta.norm()), 1e-300) <= geodesic
        step = delta + 0.5 * acc
    trial = theta + step
    rt = _residuals(problem, trial[None])[0]
    predicted = -(2 * float(g @ delta) + float(Jd @ Jd)) / n
    return trial, float(rt @ rt) / n, predicted, ok


def lm_step(problem: Problem, st: dict, damping: str, geodesic: float, runner: batching.RowRunner,
            mixed: bool = True) -> torch.Tensor:
    """One LM step for every row (``runner``: the whole batch at once, or row by row on worker threads):
    :func:`lm_trial`, then :func:`lm_accept`; returns the mask of accepted rows (their J, A, g not yet
    updated)."""
    trial = torch.empty_like(st["theta"])
    new_loss, predicted = torch.empty_like(st["loss"]), torch.empty_like(st["loss"])
    allowed = torch.empty_like(st["loss"], dtype=torch.bool)

    def part(idx):
        trial[idx], new_loss[idx], predicted[idx], allowed[idx] = lm_trial(problem, st, idx, damping, geodesic, mixed)

    runner(part, torch.arange(st["theta"].shape[0], device=st["theta"].device))
    return lm_accept(st, slice(None), trial, new_loss, predicted, allowed)


def lm_accept(st: dict, idx, trial: torch.Tensor, new_loss: torch.Tensor, predicted: torch.Tensor,
              ok: torch.Tensor) -> torch.Tensor:
    """Accept θ + s where L falls, for the rows ``idx`` of ``st`` (in place); Nielsen's μ update from the
    gain ratio (module docstring).  returns : the accepted rows' mask, [k] bool

    The CPU's row-by-row driver takes :func:`lm_accept_one` instead: the same IEEE operations on Python
    floats (a dozen tensor operations cost more than the arithmetic of one row)."""
    mu, nu, loss = st["mu"][idx], st["nu"][idx], st["loss"][idx]
    rho = (loss - new_loss) / predicted.clamp_min(1e-300)
    accept = ok & torch.isfinite(new_loss) & (new_loss < loss)
    st["theta"][idx] = torch.where(accept[:, None], trial, st["theta"][idx])
    u = 2 * rho - 1  # (no **: vectorised and scalar pow may round differently)
    shrink = torch.clamp(1 - u * u * u, min=1 / 3)
    st["mu"][idx] = torch.where(accept, (mu * shrink).clamp_min(MU_MIN), mu * nu)
    st["nu"][idx] = torch.where(accept, torch.full_like(nu, 2.0), nu * 2)
    st["loss"][idx] = torch.where(accept, new_loss, loss)
    return accept


def lm_accept_one(st: dict, i: int, trial: torch.Tensor, new_loss: float, predicted: float, ok: bool) -> bool:
    """:func:`lm_accept` for row i alone, in Python floats (float64, the same operations in the same order,
    hence the same bits; ``max(x, c)`` keeps a NaN x as ``clamp`` does)."""
    loss, mu, nu = float(st["loss"][i]), float(st["mu"][i]), float(st["nu"][i])
    rho = (loss - new_loss) / max(predicted, 1e-300)
    accept = ok and math.isfinite(new_loss) and new_loss < loss
    if accept:
        u = 2 * rho - 1
        st["theta"][i] = trial
        st["mu"][i] = max(mu * max(1 - u * u * u, 1 / 3), MU_MIN)
        st["nu"][i] = 2.0
        st["loss"][i] = new_loss
    else:
        st["mu"][i] = mu * nu
        st["nu"][i] = nu * 2
    return accept


def cg_prepare(problem: Problem, st: dict, rows: torch.Tensor, damping: str) -> None:
    """Matrix-free counterpart of :func:`lm_prepare`: r, Jᵀr, loss, diag(JᵀJ) and D, no J."""
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

    batching.each_row(one, rows, batching.batched(X))


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


def cg_step(problem: Problem, st: dict, tol: float, maxiter: int) -> torch.Tensor:
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

    batching.each_row(one, torch.arange(B, device=st["theta"].device), batching.batched(X))
    trial = st["theta"] + delta
    new_loss = batching.discrepancy_rows(model, trial, X, Y)
    return lm_accept(st, slice(None), trial, new_loss, predicted, torch.isfinite(delta).all(1))


def adam_prepare(problem: Problem, st: dict, rows: torch.Tensor) -> None:
    if rows.numel() == 0:
        return
    with torch.no_grad():
        st["loss"][rows] = discrepancy(problem.model, st["theta"][rows], problem.X, problem.Y)


def adam_step(problem: Problem, st: dict, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
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


__all__ = ["SINGLE_STEP_ERROR", "gram_lower", "gram_flops", "single_precision", "lm_prepare_rows", "lm_prepare",
           "lm_trial", "lm_trial_one", "lm_step", "lm_accept", "lm_accept_one", "cg_prepare", "cg_step", "adam_prepare",
           "adam_step"]
