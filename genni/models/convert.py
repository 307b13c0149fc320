"""A ``torch.nn.Module`` object as a genni model: the model description and θ* its parameters are.

- An ``nn.Sequential`` of ``Linear`` layers with one supported activation between each two (the same one
  throughout: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``GELU``) and a linear output is the native
  :class:`~genni.models.mlp.MLP` kind: widths, activation and bias read off the layers, θ* in the MLP's
  layout (which is ``parameters_to_vector`` of that very Sequential), so a run file rebuilds it and every
  stage works, the exact answers for relu included.  The conversion is checked: the MLP's outputs on the
  given rows must equal the module's (float64) to :data:`AGREEMENT` relative to their size, else the
  module is taken as it is, below.
- Any other module is the ``module`` kind held in memory (:meth:`TorchModule.from_memory`): a private
  copy in this process, recorded in the description by a token, its class, repr and parameter shapes.

The caller's module is never changed: every check runs on a float64 deep copy on the CPU.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..errors import ConfigError
from .base import Model, _first_line, _shape, module_to_theta
from .mlp import MLP
from .module import TorchModule

AGREEMENT = 1e-12
"""The converted MLP's outputs must match the module's to this, relative to max(1, max |output|)."""

_ACTIVATIONS = {torch.nn.ReLU: "relu", torch.nn.LeakyReLU: "leaky_relu", torch.nn.Tanh: "tanh",
                torch.nn.Sigmoid: "sigmoid", torch.nn.GELU: "gelu"}
"""Activation module types (exactly these classes) and genni's names for them."""


def mlp_of(net: torch.nn.Module) -> MLP | None:
    """The :class:`MLP` that ``net`` is, when it is a plain ``nn.Sequential`` ``Linear, act, Linear, …, Linear``
    (one activation throughout, every Linear with or every one without bias, no hooks), else None."""
    if type(net) is not torch.nn.Sequential:
        return None
    layers = list(net)  # every position, a module used twice (an activation) included
    if not layers or len(layers) % 2 == 0 or any(_hooked(m) for m in (net, *layers)):
        return None
    linears, acts = layers[::2], layers[1::2]
    if any(type(m) is not torch.nn.Linear for m in linears) or any(type(a) not in _ACTIVATIONS for a in acts):
        return None
    if len({id(m) for m in linears}) != len(linears):  # a Linear used twice shares its weights: not an MLP
        return None
    if any(a.in_features != b.out_features for b, a in zip(linears, linears[1:])):
        return None
    if len({m.bias is not None for m in linears}) != 1:
        return None
    names = {_ACTIVATIONS[type(a)] for a in acts}
    slopes = {float(a.negative_slope) for a in acts if isinstance(a, torch.nn.LeakyReLU)}
    if len(names) > 1 or len(slopes) > 1 or any(isinstance(a, torch.nn.GELU) and a.approximate != "none" for a in acts):
        return None
    widths = (linears[0].in_features, *(m.out_features for m in linears))
    kw = {"activation": names.pop()} if names else {}
    if slopes:
        kw["negative_slope"] = slopes.pop()
    return MLP(widths, bias=linears[0].bias is not None, **kw)


def _hooked(m: torch.nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


def from_module(net: torch.nn.Module, X: np.ndarray) -> tuple[Model, np.ndarray]:
    """The genni model a module object is on inputs X, and θ* (float64).

    net : the module (left unchanged);  X : ndarray, shape [n, d_in] or [n, *input_shape] (images: [n, C, H, W])
    returns : (model, θ* [P]); the model maps rows of n·d_in flat features (C·H·W, row-major) to K outputs

    ``ConfigError`` in one line when ``net`` is not a module, has no parameters or non-finite ones, cannot be
    deep-copied, fails on X's rows, or maps them to anything but an [n, K] tensor.
    """
    if not isinstance(net, torch.nn.Module):
        raise ConfigError(f"explore: the model must be a torch.nn.Module (or a genni Model with theta=), got a "
                          f"{type(net).__name__}")
    params = list(net.parameters())
    if not params:
        raise ConfigError(f"explore: the module {type(net).__qualname__} has no parameters")
    if not all(torch.isfinite(p.detach()).all() for p in params):
        raise ConfigError(f"explore: the module {type(net).__qualname__} holds NaN or infinite parameters")
    try:
        local = copy.deepcopy(net).cpu().double().eval()
    except Exception as exc:
        raise ConfigError(f"explore: the module {type(net).__qualname__} cannot be deep-copied "
                          f"({_first_line(exc)})") from None
    mlp = mlp_of(local)
    if mlp is not None and X.ndim == 2 and X.shape[1] != mlp.in_dim:
        raise ConfigError(f"explore: X has {X.shape[1]} features per row but the model's first Linear takes "
                          f"{mlp.in_dim}")
    batch = torch.as_tensor(X[:2], dtype=torch.float64)
    try:
        with torch.no_grad():
            out = local(batch)
    except Exception as exc:
        raise ConfigError(f"explore: the model fails on rows of X (a batch of shape {_shape(batch.shape)}): "
                          f"{_first_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != len(batch):
        got = _shape(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise ConfigError(f"explore: the model maps a batch of shape {_shape(batch.shape)} to {got}; genni needs "
                          f"outputs of shape [{len(batch)}, K] (K outputs per input)")
    theta = module_to_theta(local).numpy()
    if mlp is not None and X.ndim == 2 and _agrees(mlp, theta, local, X):
        return mlp, theta
    d_in = int(np.prod(X.shape[1:]))
    shape = tuple(int(s) for s in X.shape[1:]) if X.ndim > 2 else None
    return TorchModule.from_memory(net, d_in, int(out.shape[1]), shape), theta


def _agrees(mlp: MLP, theta: np.ndarray, local: torch.nn.Module, X: np.ndarray) -> bool:
    """The MLP at θ computes what the module computes on (up to 256 of) the rows X."""
    Xt = torch.as_tensor(X[:256], dtype=torch.float64)
    with torch.no_grad():
        want = local(Xt)
        got = mlp.forward(torch.as_tensor(theta), Xt)
    scale = max(1.0, float(want.abs().max()))
    return bool((got - want).abs().max() <= AGREEMENT * scale)


__all__ = ["AGREEMENT", "from_module", "mlp_of"]
