r"""Objectives of the function θ computes, compared with the reference θ\*: the relative discrepancy on a
chosen input set and the layer-path distance under a representational metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..discrepancy import mean_squared, output_power
from ..errors import ConfigError, GenniError
from ..geometry.metrics import DEFAULT_FLOOR, DIFFERENTIABLE, METRICS, torch_distance
from ..models.base import Model
from .base import Objective, as_theta

__all__ = ["relative_discrepancy", "layer_distance"]


def relative_discrepancy(model: Model, theta_ref, X) -> Objective:
    """D(θ) = mean_x ‖f_θ(x) − f_θ\\*(x)‖² / mean_x ‖f_θ\\*(x)‖² over the given inputs X' [n, d_in]
    (:func:`genni.discrepancy.mean_squared` over :func:`genni.discrepancy.output_power`): 0 on the
    class when X' is the probe set, and how far θ's function has moved elsewhere when X' is another
    set (held-out or far inputs).  Invariant under every exact symmetry (f_{g·θ} = f_θ).
    A reference with zero output power on X' is refused (D would be undefined).

    theta_ref : [P];  X : [n, d_in]
    """
    X = torch.as_tensor(X, dtype=torch.float64)
    ref = as_theta(theta_ref, "theta_ref").detach()
    with torch.no_grad():
        Y = model.forward(ref, X)
    power = output_power(Y)
    if not power > 0:
        raise GenniError("the reference's output power on these inputs is 0: a relative discrepancy is undefined")
    return Objective("relative_discrepancy", lambda theta: mean_squared(model.forward(theta, X) - Y) / power, True,
                     "mean‖f_θ(x) − f_θ*(x)‖² / mean‖f_θ*(x)‖² on X'")


def layer_distance(model: Model, theta_ref, X, metric: str = "angular_procrustes",
                   layers: Sequence[str] | None = None, floor: float = DEFAULT_FLOOR) -> Objective:
    """The layer-path distance to θ\\*: D(θ) = Σ_{ℓ ∈ layers} d(h_ℓ(θ; X), h_ℓ(θ\\*; X)), with h_ℓ the
    representation of the inputs X [n, d_in] at layer ℓ (``model.layers``, named by
    ``model.layer_names()``) and d the representational metric ``metric``
    (:func:`~genni.geometry.metrics.differentiable.torch_distance`, equal to
    :func:`genni.geometry.distance`).  ``layers`` defaults to every layer but the input (which θ does
    not change).

    Differentiable metrics: angular_cka, angular_procrustes, procrustes, zscore_procrustes (gradient 0
    where a layer coincides with θ\\*'s up to the metric's invariances); ``zscore_permutation`` is
    refused with a one-line :class:`~genni.errors.ConfigError` (its unit matching is discrete).
    Invariant when the metric is invariant to everything the exact symmetries do to the hidden
    representations (``model.symmetry.invariances``): e.g. zscore_procrustes for relu, any metric
    here for tanh; angular CKA and Procrustes are not rescaling-invariant.

    theta_ref : [P];  X : [n, d_in];  layers : names from ``model.layer_names()``
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric '{metric}' (choose from: {', '.join(METRICS)})")
    if metric not in DIFFERENTIABLE:
        raise ConfigError(f"metric '{metric}' is not differentiable: its unit matching is a discrete choice "
                          f"(differentiable metrics: {', '.join(DIFFERENTIABLE)})")
    names = list(model.layer_names())
    chosen = names[1:] if layers is None else list(layers)
    unknown = [n for n in chosen if n not in names]
    if unknown or not chosen:
        raise ConfigError(f"unknown layer(s) {', '.join(map(str, unknown)) or '(none chosen)'} "
                          f"(layers of {model.describe()}: {', '.join(names)})")
    index = [names.index(n) for n in chosen]
    X = torch.as_tensor(X, dtype=torch.float64)
    with torch.no_grad():
        ref_reps = model.layers(as_theta(theta_ref, "theta_ref").detach(), X)[1]
    ref = [ref_reps[i] for i in index]

    def fn(theta: torch.Tensor) -> torch.Tensor:
        reps = model.layers(theta, X)[1]
        return sum((torch_distance(reps[i], r, metric, floor) for i, r in zip(index, ref)), theta.new_zeros(()))

    invariant = all(s in METRICS[metric].invariances for s in model.symmetry.invariances)
    return Objective("layer_distance", fn, invariant,
                     f"Σ_ℓ {metric}(h_ℓ(θ), h_ℓ(θ*)) over {', '.join(chosen)}")
