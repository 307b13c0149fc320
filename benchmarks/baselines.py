"""Pieces the benchmarks' baselines share (plain torch, none of genni's machinery)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def module_residual(net: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """θ ↦ vec(net_θ(X) − Y) through ``torch.func.functional_call``, θ laid out as ``parameters_to_vector(net)``
    (what scipy's least squares and ``torch.func.jacrev`` see).  θ : [P] → [n·K]"""
    from torch.func import functional_call

    named = [(k, p.shape) for k, p in net.named_parameters()]

    def f(th: torch.Tensor) -> torch.Tensor:
        parts, o = {}, 0
        for name, sh in named:
            c = int(np.prod(sh))
            parts[name] = th[o:o + c].reshape(sh)
            o += c
        return (functional_call(net, parts, (X,)) - Y).reshape(-1)

    return f
