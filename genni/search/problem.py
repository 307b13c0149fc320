"""What the search matches (:class:`Problem`) and what it hands back (:class:`Found`), with the
measurements of a finished θ: discrepancies on probe and held-out inputs, convergence, dead units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..discrepancy import output_power, relative_discrepancy
from ..models.base import Model
from . import batching
from .settings import STATUS


@dataclass(frozen=True)
class Problem:
    """What to match: the reference's outputs on probe and held-out inputs.

    X : Tensor, shape [n, w_0];  Y : Tensor, shape [n, w_L] (f_θ*(X))
    X_heldout : Tensor, shape [m, w_0];  Y_heldout : Tensor, shape [m, w_L]
    theta_ref : Tensor, shape [P]
    """

    model: Model
    theta_ref: torch.Tensor
    X: torch.Tensor
    Y: torch.Tensor
    X_heldout: torch.Tensor
    Y_heldout: torch.Tensor

    @classmethod
    def from_arrays(cls, model, theta_ref, X, X_heldout, device="cpu") -> Problem:
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731
        th, Xp, Xh = t(theta_ref), t(X), t(X_heldout)
        with torch.no_grad():
            return cls(model, th, Xp, model.forward(th, Xp), Xh, model.forward(th, Xh))

    @property
    def output_power(self) -> float:
        """P* = mean_x ‖f_θ*(x)‖² on the probe set (the denominator of the relative discrepancy)."""
        return output_power(self.Y)

    @property
    def output_power_heldout(self) -> float:
        """mean_x ‖f_θ*(x)‖² on the held-out inputs."""
        return output_power(self.Y_heldout)


@dataclass(frozen=True)
class Found:
    """A chunk of finished elements (numpy, on the CPU); every array has length k first.

    status : index into :data:`STATUS`;  dead_units : hidden units of the final θ that are
    inactive on every probe input (ReLU only, else 0);  hops : perturbations used
    """

    index: np.ndarray
    theta: np.ndarray
    discrepancy: np.ndarray
    discrepancy_heldout: np.ndarray
    relative_discrepancy: np.ndarray
    relative_discrepancy_heldout: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    restarts: np.ndarray
    init_seed: np.ndarray
    status: np.ndarray
    dead_units: np.ndarray
    hops: np.ndarray
    chain: np.ndarray | None = None
    """walk elements only (:mod:`genni.walk`): chain, accepted steps since its start, row of the
    previous stored state (−1 = θ*), certificate of the segment from it; None for searched elements"""
    step: np.ndarray | None = None
    parent: np.ndarray | None = None
    segment_max: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def concat(chunks: Sequence[Found]) -> Found:
        def cat(name):
            parts = [getattr(c, name) for c in chunks]
            return None if any(p is None for p in parts) else np.concatenate(parts)
        return Found(**{f.name: cat(f.name) for f in fields(Found)})


def count_dead_units(model: Model, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Hidden units inactive on every input of X, per row of θ (0 where the model does not revive)."""
    if not model.revivable:
        return torch.zeros(theta.shape[0], dtype=torch.long, device=theta.device)
    return model.dead_mask(theta, X).sum(1)


def measured(problem: Problem, theta: torch.Tensor, tol: float, status: np.ndarray, **fields_) -> Found:
    """A :class:`Found` for θ [k, P]: discrepancies on probe and held-out inputs (absolute and relative),
    convergence (L ≤ tol; a converged element's status becomes 0, an unconverged one with dead units
    "dead_units" unless it diverged) and dead units; ``fields_`` gives the rest (index, steps, …)."""
    with torch.no_grad():
        d = batching.discrepancy_rows(problem.model, theta, problem.X, problem.Y).cpu().numpy()
        dh = batching.discrepancy_rows(problem.model, theta, problem.X_heldout, problem.Y_heldout).cpu().numpy()
        dead = count_dead_units(problem.model, theta, problem.X).cpu().numpy().astype(np.int32)
    conv = d <= tol
    code = np.where(conv, 0, np.where((status != 3) & (dead > 0), STATUS.index("dead_units"), status)).astype(np.int8)
    return Found(theta=theta.cpu().numpy(), discrepancy=d, discrepancy_heldout=dh,
                 relative_discrepancy=relative_discrepancy(d, problem.output_power),
                 relative_discrepancy_heldout=relative_discrepancy(dh, problem.output_power_heldout),
                 converged=conv, status=code, dead_units=dead, **fields_)


def as_found(problem: Problem, theta: np.ndarray, index: np.ndarray, tol: float, **extra) -> Found:
    """A :class:`Found` for parameter sets found some other way (walks): discrepancies on probe and
    held-out inputs, convergence, dead units; ``extra`` fills the walk columns.

    theta : [k, P];  index : [k]
    """
    k = len(theta)
    th = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=problem.X.device)
    zeros = np.zeros(k, np.int64)
    return measured(problem, th, tol, np.full(k, STATUS.index("stalled"), np.int8), index=np.asarray(index, np.int64),
                    steps=np.asarray(extra.get("step", zeros), np.int64), restarts=zeros, init_seed=zeros,
                    hops=np.zeros(k, np.int32), **extra)


__all__ = ["Problem", "Found", "count_dead_units", "measured", "as_found"]
