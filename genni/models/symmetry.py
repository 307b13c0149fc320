"""A kind's exact symmetry group acting on its parameter space, as one object (``model.symmetry``).

In the words of fibre bundles: the parameter space is fibred by the function map θ ↦ f_θ, and the exact
symmetry group G acts inside each fibre.  At θ,

- the **vertical** space is spanned by :meth:`Symmetry.tangents` (tangents of the continuous symmetries,
  which the output Jacobian annihilates);
- the **horizontal** part of a displacement is what :meth:`Symmetry.horizontal` leaves after removing
  its component along the vertical space;
- :meth:`Symmetry.align` moves θ along its orbit (the discrete symmetries, then the continuous ones) as
  close to a reference as the group allows; :meth:`Symmetry.balance` picks the **canonical** point of θ's
  continuous orbit (the section);
- :attr:`Symmetry.invariances` names what the symmetries do to the hidden representations, which is
  what a representational metric must be invariant to for equivalent networks to coincide.

This base class is the trivial group (no declared symmetry); every kind with symmetries subclasses it.
Every registered kind passes ``tests/contracts/test_symmetry_contract.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .base import Model


@dataclass(frozen=True)
class GroupElement:
    """One element of a kind's symmetry group (every kind uses this one type).

    perms : per hidden layer ℓ (units, channels or a block's hidden units), int array [w_ℓ]: new unit j is
        old unit ``perms[ℓ][j]``
    factors : per hidden layer ℓ, float array [w_ℓ] applied after the permutation: positive scales
        (rescaling), ±1 (sign flips) or ones
    extra : what else a kind's group holds (the residual MLP's stream map ``A`` [w, w] and translations
        ``shifts``; a module kind's own element under ``"module"``), empty otherwise
    """

    perms: tuple[np.ndarray, ...] = ()
    factors: tuple[np.ndarray, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


_REPRESENTATION = {"permutation": "permutation", "rescaling": "per_unit_scaling", "sign_flip": "sign_flip"}


class Symmetry:
    """The exact symmetry group of one model (the trivial group here; see the module docstring)."""

    aligns: ClassVar[bool] = False
    """True when :meth:`align` undoes every declared symmetry (a planted g·θ_ref aligns back to θ_ref)."""

    def __init__(self, model: Model):
        self.model = model

    def __repr__(self) -> str:
        kinds = [k for k, v in self.kinds.items() if v]
        return f"{type(self).__name__}({self.model.describe()}: {', '.join(kinds) or 'no declared symmetries'})"

    @property
    def kinds(self) -> dict[str, bool]:
        """Which exact symmetries the architecture admits (name -> present)."""
        return {}

    @property
    def invariances(self) -> tuple[str, ...]:
        """What the symmetries do to the hidden representations of ``model.layers`` (what a path metric
        must be invariant to): permutation → permutation, rescaling → per_unit_scaling,
        sign_flip → sign_flip."""
        k = self.kinds
        return tuple(v for key, v in _REPRESENTATION.items() if k.get(key))

    def identity(self) -> GroupElement:
        """The identity element."""
        return GroupElement()

    def sample(self, n: int, rng: np.random.Generator) -> list[GroupElement]:
        """n random elements of the group (the identity when none is declared)."""
        return [self.identity() for _ in range(n)]

    def act(self, theta: np.ndarray, g: GroupElement) -> np.ndarray:
        """g·θ: the same function, other parameters.  theta : ndarray, shape [P] → [P]"""
        return np.array(theta, dtype=np.float64, copy=True)

    def tangents(self, theta: np.ndarray) -> np.ndarray:
        """The vertical space at θ: tangents of the continuous symmetries as columns, shape [P, m]
        (m = 0: none)."""
        return np.zeros((self.model.n_params, 0))

    def horizontal(self, theta: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """δ − Π_V δ for each row of delta [N, P] → [N, P]: a displacement at θ [P] without its vertical
        part (V the span of :meth:`tangents` at θ, by an SVD with relative cut-off 1e-12).

        A canonical section (alignment and balancing) need not meet the orbit at a right angle (only the
        relu MLP's minimum-norm gauge does): a CNN's unit-norm filters or a residual stream aligned by
        least squares leave δ a first-order component along V, which is a symmetry, not a displacement.
        What remains is the horizontal part to first order (the orbit's curvature leaves O(‖δ‖²))."""
        delta = np.atleast_2d(np.asarray(delta, dtype=np.float64))
        T = np.asarray(self.tangents(np.asarray(theta, dtype=np.float64)), dtype=np.float64)
        if T.size == 0 or not len(delta):
            return delta.copy()
        U, s, _ = np.linalg.svd(T, full_matrices=False)
        V = U[:, s > s[0] * 1e-12] if s.size and s[0] > 0 else U[:, :0]
        return delta - (delta @ V) @ V.T

    def align(self, theta: np.ndarray, theta_ref: np.ndarray) -> tuple[np.ndarray, GroupElement | list | None]:
        """(g·θ as close to θ_ref as the declared symmetries allow, g); the trivial group: θ unchanged.
        theta, theta_ref : ndarray, shape [P]"""
        return np.array(theta, dtype=np.float64, copy=True), None

    def balance(self, theta: np.ndarray) -> np.ndarray:
        """The canonical point of θ's orbit under the continuous symmetries (the section); default θ.
        theta : ndarray, shape [P] → [P]"""
        return np.array(theta, dtype=np.float64, copy=True)


def match_cost(A: np.ndarray, B: np.ndarray, signs: bool, unsigned_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cost of giving reference unit i the candidate unit j: ‖B_i − s A_j‖², minimised over
    s ∈ {±1} when ``signs`` (with ``unsigned_last`` the last feature is not flipped).
    A, B : [w, d] unit features.  returns (cost [w, w], best sign [w, w])."""
    plus = ((B[:, None, :] - A[None, :, :]) ** 2).sum(-1)
    if not signs:
        return plus, np.ones_like(plus)
    flip = np.ones(A.shape[1])
    if A.shape[1] > 0 and unsigned_last:
        flip[-1] = -1.0  # the outgoing norm does not change sign with the unit
    minus = ((B[:, None, :] + flip * A[None, :, :]) ** 2).sum(-1)
    return np.minimum(plus, minus), np.where(minus < plus, -1.0, 1.0)


__all__ = ["GroupElement", "Symmetry", "match_cost"]
