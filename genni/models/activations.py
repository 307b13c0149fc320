"""The activation functions every kind uses: one table, the torch module, the closed forms with derivatives.

``activate`` and ``activate_with_derivative`` compute exactly what the torch module of the same name
computes (the MLP's closed-form forward pass and Jacobian are checked against the module).
"""

from __future__ import annotations

import math

import torch

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
"""Every activation genni knows; a kind may accept a subset."""

PIECEWISE_LINEAR = ("relu", "leaky_relu")
"""Positively homogeneous, σ(cz) = cσ(z) for c > 0: each hidden unit admits a positive rescaling."""

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def activation_module(name: str, negative_slope: float = 0.01) -> torch.nn.Module:
    """The ``torch.nn`` module of activation ``name`` (``negative_slope``: leaky_relu's slope for z < 0)."""
    if name == "leaky_relu":
        return torch.nn.LeakyReLU(negative_slope)
    return {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}[name]()


def activate(name: str, z: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """σ(z) elementwise, exactly as the torch.nn module computes it."""
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(z, negative_slope)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    return torch.nn.functional.gelu(z)


def activate_with_derivative(name: str, z: torch.Tensor, negative_slope: float = 0.01
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ(z), σ'(z)); at the relu kink z = 0 the derivative is taken as 0, as autograd does.
    gelu: σ(z) = z·Φ(z), σ'(z) = Φ(z) + z·φ(z)."""
    if name == "relu":
        pos = z > 0
        return torch.relu(z), pos.to(z.dtype)
    if name == "leaky_relu":
        d = torch.full_like(z, negative_slope).masked_fill_(z > 0, 1.0)
        return torch.nn.functional.leaky_relu(z, negative_slope), d
    if name == "tanh":
        t = torch.tanh(z)
        return t, 1.0 - t * t
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s, s * (1.0 - s)
    cdf = 0.5 * (1.0 + torch.erf(z * _SQRT_HALF))
    pdf = torch.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return z * cdf, cdf + z * pdf


__all__ = ["ACTIVATIONS", "PIECEWISE_LINEAR", "activation_module", "activate", "activate_with_derivative"]
