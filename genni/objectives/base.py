"""The objective interface, a user's own callable wrapped into it, and objectives modulo the symmetries.

An :class:`Objective` is a scalar function J(θ) of one parameter vector θ (Tensor, shape [P], float64)
with everything else it needs bound in, differentiable by autograd (``torch.autograd.grad`` and the
``torch.func`` transforms ``grad``, ``jvp``, ``hessian``), with its name, a one-line formula and whether
J(g·θ) = J(θ) for every element g of the model's exact symmetry group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import GenniError
from ..models.base import Model

__all__ = ["Objective", "Change", "from_callable", "canonical_point", "at_canonical", "split_change",
           "acts_orthogonally", "evaluate"]


def as_theta(theta, what: str = "theta") -> torch.Tensor:
    """θ as a float64 tensor of shape [P] (numpy arrays are copied); GenniError for any other shape."""
    t = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(np.asarray(theta, dtype=np.float64))
    if t.dim() != 1:
        raise GenniError(f"{what} must be one parameter vector of shape [P], got shape {list(t.shape)}")
    return t.to(torch.float64)


@dataclass(frozen=True)
class Objective:
    """A scalar objective J(θ) along the equivalence class.

    name : what it is called (``sharpness``, ``path_norm``, a user's name, ...)
    fn : θ (Tensor, shape [P]) -> 0-d Tensor, differentiable by autograd
    invariant : True when J(g·θ) = J(θ) for every exact symmetry g of the model it was built for
    formula : the definition, one line
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    invariant: bool
    formula: str = ""

    def __call__(self, theta) -> torch.Tensor:
        """J(θ), a 0-d tensor (differentiable when θ requires grad or is traced by ``torch.func``).
        theta : Tensor or ndarray, shape [P]"""
        return self.fn(as_theta(theta))

    def value_and_grad(self, theta) -> tuple[torch.Tensor, torch.Tensor]:
        """(J(θ), ∇_θ J(θ)) by reverse mode, both detached: a 0-d tensor and a tensor of shape [P].
        A J that does not depend on some coordinates has gradient 0 there."""
        t = as_theta(theta).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            value = self.fn(t)
            (g,) = torch.autograd.grad(value, t, allow_unused=True)
        return value.detach(), (torch.zeros_like(t) if g is None else g.detach())

    def __repr__(self) -> str:
        return f"Objective({self.name}: {self.formula}{'; invariant' if self.invariant else ''})"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def from_callable(fn: Callable[[torch.Tensor], torch.Tensor], theta, name: str = "user",
                  invariant: bool = False, formula: str = "a user's callable") -> Objective:
    """A user's own ``fn(theta) -> scalar tensor`` as an :class:`Objective`, checked once at ``theta``.

    The check evaluates fn at θ (Tensor, shape [P]) and differentiates it once: fn must return a
    torch tensor with one element (shape [] or [1]), finite, computed from θ by operations autograd
    can differentiate, with a finite gradient.  Anything else is a one-line
    :class:`~genni.errors.GenniError` naming what is wrong (a vector, NaN, a Python float, a value
    detached from θ, an exception raised inside fn).  ``invariant`` is the user's claim; it is not checked.

    fn : callable, θ [P] -> scalar tensor;  theta : Tensor or ndarray, shape [P] (e.g. θ\\*)
    """
    if not callable(fn):
        raise GenniError(f"objective '{name}' is not callable (got a {type(fn).__name__})")
    t = as_theta(theta).detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = fn(t)
    except Exception as exc:  # the user's code may raise anything
        raise GenniError(f"objective '{name}' failed at θ: {_first_line(exc)}") from None
    if not isinstance(out, torch.Tensor):
        raise GenniError(f"objective '{name}' must return a scalar torch tensor computed from θ, "
                         f"got a {type(out).__name__}")
    if out.numel() != 1:
        raise GenniError(f"objective '{name}' must return a scalar, got a tensor of shape {list(out.shape)}")
    if not bool(torch.isfinite(out.detach()).all()):
        raise GenniError(f"objective '{name}' is not finite at θ (got {float(out.detach().reshape(()))})")
    if not out.requires_grad:
        raise GenniError(f"objective '{name}' is not differentiable: its value carries no autograd graph from θ")
    try:
        (g,) = torch.autograd.grad(out.reshape(()), t, allow_unused=True)
    except Exception as exc:
        raise GenniError(f"objective '{name}' is not differentiable: {_first_line(exc)}") from None
    if g is not None and not bool(torch.isfinite(g).all()):
        raise GenniError(f"objective '{name}' has a non-finite gradient at θ")

    def wrapped(th: torch.Tensor) -> torch.Tensor:
        return fn(th).reshape(())

    return Objective(name, wrapped, bool(invariant), formula)


def acts_orthogonally(model: Model) -> bool:
    """True when every declared exact symmetry of ``model`` acts on θ by an orthogonal linear map:
    permutations, and sign flips that negate parameters only (tanh).  Then ‖g·θ‖ = ‖θ‖ and the loss
    Hessian transforms as H(g·θ) = A H(θ) Aᵀ with A orthogonal, so its spectrum and trace are invariant.
    Positive rescaling (relu, leaky_relu), sigmoid's flip (which adds the outgoing column to the next
    bias), a residual stream's invertible map, or a symmetry a module declares are not orthogonal."""
    kinds = {k for k, v in model.symmetry.kinds.items() if v}
    if kinds - {"permutation", "sign_flip", "sign_flip_channels", "sign_flip_dense"}:
        return False
    return "sign_flip" not in kinds or getattr(model, "activation", None) == "tanh"


def canonical_point(model: Model, theta, reference=None) -> np.ndarray:
    """The canonical point of θ's symmetry orbit, by the model's own section (``model.symmetry``):
    with a ``reference``, θ is first aligned to it (:meth:`~genni.models.Symmetry.align`: the
    permutations and sign flips that bring it closest), then moved to the balanced point of its
    continuous orbit (:meth:`~genni.models.Symmetry.balance`: for relu the minimum-norm point of the
    rescaling orbit; θ itself for kinds whose symmetry defines no balance).  The function is unchanged.

    theta, reference : ndarray or Tensor, shape [P];  returns : ndarray, shape [P]
    """
    th = as_theta(theta).detach().numpy().astype(np.float64)
    if reference is not None:
        th = model.symmetry.align(th, as_theta(reference, "reference").detach().numpy().astype(np.float64))[0]
    return np.asarray(model.symmetry.balance(th), dtype=np.float64)


def at_canonical(objective: Objective, model: Model, theta, reference=None) -> torch.Tensor:
    """J at the canonical point of θ's orbit (:func:`canonical_point`), a detached 0-d tensor.

    For a J that permutations leave unchanged (every objective here but the Hutchinson estimate with
    random probes), J(canonical(θ)) is blind to rescalings: a change of J(θ) that
    J(canonical(θ)) does not share is a change of gauge, not a move along the class (Dinh et al.,
    *Sharp minima can generalize for deep nets*, ICML 2017: rescaling a relu network changes its
    sharpness at will).  For a J that also depends on the order of units, pass a ``reference`` so
    that the permutation is fixed by alignment to it.

    theta, reference : shape [P]
    """
    return objective(torch.as_tensor(canonical_point(model, theta, reference))).detach()


def evaluate(objective: Objective, thetas, model: Model | None = None, canonical: bool = False,
             reference=None) -> np.ndarray:
    """J at each row of ``thetas`` ([N, P] or [P]): J(θ_i), or with ``canonical`` J at the canonical point
    of each θ_i's orbit (:func:`at_canonical`, which needs the ``model``; ``reference`` as there).  The
    values of one objective over many networks (the found equivalents, a teleport's states,
    independently trained networks), raw and modulo the symmetries.  An objective that declares itself
    invariant (``objective.invariant``) equals J at the canonical point by definition: it is evaluated once,
    at θ_i.  returns : ndarray [N], float64"""
    rows = np.atleast_2d(np.asarray(thetas.detach().numpy() if isinstance(thetas, torch.Tensor) else thetas,
                                    dtype=np.float64))
    if canonical and model is None:
        raise GenniError("evaluate(canonical=True) needs the model whose symmetry defines the canonical point")
    out = np.empty(len(rows))
    moved = canonical and not objective.invariant  # an invariant J has its own value at the canonical point
    with torch.no_grad():
        for i, th in enumerate(rows):
            out[i] = float(at_canonical(objective, model, th, reference) if moved else objective(th))
    return out


@dataclass(frozen=True)
class Change:
    """How an objective changes from θ_a to θ_b, split by the symmetries.

    total : J(θ_b) − J(θ_a)
    along_class : J(canonical(θ_b)) − J(canonical(θ_a)), what the move along the class changed
    gauge : total − along_class, what the change of gauge (rescaling) alone accounts for
    """

    total: float
    along_class: float
    gauge: float


def split_change(objective: Objective, model: Model, theta_a, theta_b, reference=None) -> Change:
    """:class:`Change` of J from θ_a to θ_b: the total, the part that survives at the canonical points
    (:func:`at_canonical`), and the rest, which a rescaling alone produces.  theta_a, theta_b : [P]"""
    with torch.no_grad():
        total = float(objective(theta_b)) - float(objective(theta_a))
    along = float(at_canonical(objective, model, theta_b, reference)) - float(
        at_canonical(objective, model, theta_a, reference))
    return Change(total, along, total - along)
