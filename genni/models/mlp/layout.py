"""The MLP's parameter layout: where each layer's weight and bias live inside θ.

A parameter vector ``theta`` (shape ``[P]``) or a batch of them (shape ``[N, P]``)
is laid out exactly as :func:`torch.nn.utils.parameters_to_vector` lays out the
equivalent ``torch.nn.Sequential(Linear, act, Linear, act, ..., Linear)``: layer
by layer, the weight (shape ``[out, in]``, row-major) and then the bias
(shape ``[out]``).  Every MLP computation reads and writes θ through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import GenniError


@dataclass(frozen=True)
class LayerSlice:
    """Where one ``Linear`` layer lives inside θ.

    weight : slice into θ of length ``out * in`` (row-major ``[out, in]``)
    bias : slice into θ of length ``out``
    shape : ``(out, in)``
    """

    weight: slice
    bias: slice
    shape: tuple[int, int]


def layer_slices(widths: Sequence[int], bias: bool = True) -> tuple[LayerSlice, ...]:
    """Slices of every layer's weight and bias for an MLP of the given widths (bias-free layers,
    ``bias=False``, get empty bias slices: ``parameters_to_vector`` of ``Linear(bias=False)``)."""
    out: list[LayerSlice] = []
    offset = 0
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        w = slice(offset, offset + d_out * d_in)
        offset = w.stop
        b = slice(offset, offset + (d_out if bias else 0))
        offset = b.stop
        out.append(LayerSlice(w, b, (int(d_out), int(d_in))))
    return tuple(out)


def n_params(widths: Sequence[int], bias: bool = True) -> int:
    """Number of parameters P = Σ_l (w_l · w_{l-1} + w_l) (without the w_l terms for bias-free layers)."""
    return sum(o * i + (o if bias else 0) for i, o in zip(widths[:-1], widths[1:]))


def unflatten(theta: torch.Tensor, widths: Sequence[int], bias: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Views ``(W_l, b_l)`` into θ, layer by layer.

    theta : Tensor or ndarray, shape [..., P]
    returns : list of (W, b) with W : shape [..., out, in], b : shape [..., out]; for bias-free
        layers b is a new array of zeros (writing to it changes nothing)
    """
    P = n_params(widths, bias)
    if theta.shape[-1] != P:
        raise GenniError(f"parameter vector has {theta.shape[-1]} entries; widths {list(widths)} "
                         f"{'' if bias else 'without biases '}need {P}")
    lead = theta.shape[:-1]

    def zeros(k):
        return np.zeros((*lead, k), dtype=theta.dtype) if isinstance(theta, np.ndarray) else theta.new_zeros(*lead, k)
    return [
        (theta[..., s.weight].reshape(*lead, *s.shape), theta[..., s.bias] if bias else zeros(s.shape[0]))
        for s in layer_slices(widths, bias)
    ]


def flatten(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], bias: bool = True) -> torch.Tensor:
    """Inverse of :func:`unflatten`: θ from ``[(W_1, b_1), ...]`` (the b's are left out when not ``bias``).

    layers : W : shape [..., out, in], b : shape [..., out]
    returns : Tensor, shape [..., P]
    """
    parts = []
    for W, b in layers:
        parts.append(W.reshape(*W.shape[:-2], -1))
        if bias:
            parts.append(b)
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=-1)
    return torch.cat(parts, dim=-1)


__all__ = ["LayerSlice", "layer_slices", "n_params", "unflatten", "flatten"]
