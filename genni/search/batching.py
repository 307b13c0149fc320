"""Element by element or batched: how the search runs the products that touch one element's data.

On the CPU every product that involves one element's data runs on that element alone
(a loop over rows): batched BLAS calls may round differently for different batch sizes,
and element i's θ must not depend on which other elements share its batch (resuming,
``indices=``).  On the CPU this costs ~5-15 % against batched calls (measured: JᵀJ of
64 × [512, 337] 0.21 s vs 0.19 s); on a GPU, where a Python loop over rows would
serialise tiny kernels, the same maths runs batched (torch.vmap / batched linalg) and
results are reproducible for a given batch composition only.
"""

from __future__ import annotations

import torch

from ..discrepancy import discrepancy
from ..models.base import Model


def batched(t: torch.Tensor) -> bool:
    """Whether products on t run batched (off the CPU) rather than row by row."""
    return t.device.type != "cpu"


def rowwise(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """torch.stack([fn(t_1[i], t_2[i], ...) for every row i]), each row a fresh (aligned) copy:
    BLAS kernels (MKL) may round differently depending on the address alignment of a row.
    Off the CPU: ``torch.vmap(fn)`` over the rows."""
    if batched(tensors[0]):
        return torch.vmap(fn)(*tensors)
    return torch.stack([fn(*(t[i].clone() for t in tensors)) for i in range(tensors[0].shape[0])])


def discrepancy_rows(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖² for each row of θ [N, P] → [N], each row on its own on the CPU."""
    if batched(theta):
        return discrepancy(model, theta, X, Y)
    return rowwise(lambda t: discrepancy(model, t[None], X, Y)[0], theta)


def each_row(fn, rows: torch.Tensor, device_batched: bool) -> None:
    """fn(rows) once for all rows off the CPU, else once per row (an element's bits must not depend
    on its batch-mates)."""
    if device_batched:
        fn(rows)
    else:
        for r in rows:
            fn(r[None])


__all__ = ["batched", "rowwise", "each_row", "discrepancy_rows"]
