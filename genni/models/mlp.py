"""kind = "mlp": ``Linear, act, …, Linear`` with the closed-form forward pass, Jacobian and products of
:mod:`genni.nets`, and the symmetries of :mod:`genni.symmetries` (permutations, positive rescaling for
relu/leaky_relu, sign flips for tanh/sigmoid)."""

from __future__ import annotations

from ..nets import MLPSpec as MLP

__all__ = ["MLP"]
