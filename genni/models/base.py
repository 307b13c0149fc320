"""The interface every architecture ("kind") implements; every stage talks to a model through it.

A model is a frozen description (JSON-serialisable, stored as the ``architecture`` attribute of
``/reference/theta``) of a torch module whose parameters, flattened as
``torch.nn.utils.parameters_to_vector`` lays them out, are θ (shape [P]).  It provides

- ``module(theta)`` — the equivalent ``torch.nn.Module`` in float64 (the oracle for everything else);
- ``forward(theta, X)`` — outputs of N parameter vectors at once (θ [N, P] → [N, n, K]);
- ``jvp`` / ``vjp`` / ``jacobian`` / ``jtj_diagonal`` — output-Jacobian products J·v, Jᵀ·u, the full J
  (small P) and diag(JᵀJ), for the matrix-free and direct LM steps and the functional dimension;
- ``symmetry_kinds``, ``sample_symmetries``, ``act`` and ``symmetry_tangents`` — the exact symmetry
  group: which symmetries exist, random group elements, their action on θ, and the tangents of the
  continuous ones at θ (vertical directions that J annihilates);
- ``to_dict`` / ``from_dict`` — the JSON description.

:class:`Model` implements the Jacobian products generically through ``torch.func`` (``functional_call``
of ``module()`` with ``vmap``, ``jvp``, ``vjp``), so a new kind needs only ``module``, ``n_params``, its
JSON and its symmetries; a kind with a faster closed form (the MLP) overrides them.  Every registered
kind must pass the contract in ``tests/test_model_contract.py``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch


class Model:
    """Base of every architecture kind (see the module docstring).  Subclasses are frozen dataclasses."""

    kind: ClassVar[str] = ""

    # --- what every kind must provide ---------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """P, the length of θ."""
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        """K, outputs per input."""
        raise NotImplementedError

    def module(self, theta: torch.Tensor | None = None) -> torch.nn.Module:
        """The equivalent torch module in float64, optionally loaded with θ (shape [P])."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-ready description including ``kind``."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        raise NotImplementedError

    def symmetry_kinds(self) -> dict[str, bool]:
        """Which exact symmetries the architecture admits (name -> present)."""
        return {}

    def sample_symmetries(self, n: int, rng: np.random.Generator) -> list:
        """n random elements of the exact symmetry group (the identity when none is declared)."""
        return [None] * n

    def act(self, theta: np.ndarray, g) -> np.ndarray:
        """g·θ: the same function, other parameters.  theta : [P] → [P]"""
        return np.array(theta, dtype=np.float64, copy=True)

    def symmetry_tangents(self, theta: np.ndarray) -> np.ndarray:
        """Tangents at θ of the continuous symmetries, as columns [P, m] (m = 0: none)."""
        return np.zeros((self.n_params, 0))

    revivable: ClassVar[bool] = False
    """True when the search may re-draw dead units (only the relu MLP so far: genni.search's revival
    reads its layers)."""

    # --- generic implementations through torch.func -------------------------------------------------
    def init_theta(self, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        """n random θ [n, P] drawn as ``torch.nn.Linear`` / ``Conv`` initialise by default, times ``scale``:
        every weight and the bias after it uniform on ±scale/√fan_in (fan_in of that weight)."""
        theta = torch.empty(n, self.n_params, dtype=torch.float64)
        o, fan_in = 0, 1
        for _, p in self.module().named_parameters():
            if p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:]))
            m = p.numel()
            bound = scale / np.sqrt(fan_in)
            theta[:, o:o + m] = (torch.rand(n, m, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            o += m
        return theta

    def products(self, theta: torch.Tensor, X: torch.Tensor):
        """(v ↦ J·v, u ↦ Jᵀ·u) at a fixed θ [N, P], for many products at one point (the matrix-free LM
        step); a kind may share work between them (the MLP caches its forward pass)."""
        return (lambda v: self.jvp(theta, X, v)), (lambda u: self.vjp(theta, X, u))

    def _functional(self, X: torch.Tensor):
        """θ [P] -> outputs [n, K] through ``functional_call`` of :meth:`module`."""
        from torch.func import functional_call

        net = self.module()
        shapes = [(k, p.shape) for k, p in net.named_parameters()]

        def f(th: torch.Tensor) -> torch.Tensor:
            parts, o = {}, 0
            for k, sh in shapes:
                m = int(np.prod(sh)) if len(sh) else 1
                parts[k] = th[o:o + m].reshape(sh)
                o += m
            return functional_call(net, parts, (X,))
        return f

    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """theta : Tensor, shape [N, P] (or [P]);  X : Tensor, shape [n, ...]
        returns : Tensor, shape [N, n, K] (or [n, K])"""
        f = self._functional(X)
        return f(theta) if theta.dim() == 1 else torch.vmap(f)(theta)

    def jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """J·v.  theta, v : [N, P] → [N, n, K]"""
        from torch.func import jvp

        f = self._functional(X)
        return torch.vmap(lambda t, u: jvp(f, (t,), (u,))[1])(theta, v)

    def vjp(self, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Jᵀ·u.  theta : [N, P], u : [N, n, K] → [N, P]"""
        from torch.func import vjp

        f = self._functional(X)
        return torch.vmap(lambda t, w: vjp(f, t)[1](w)[0])(theta, u)

    def jacobian(self, theta: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f [N, n, K], J [N, n, K, P]), reverse mode over the outputs."""
        from torch.func import jacrev

        f = self._functional(X)
        return self.forward(theta, X), torch.vmap(jacrev(f))(theta)

    def jtj_diagonal(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """diag(JᵀJ) [N, P] (generic: from the full J; kinds with large P override it)."""
        _, J = self.jacobian(theta, X)
        return (J * J).sum((1, 2))


__all__ = ["Model"]
