r"""Objectives along an equivalence class: scalar functions J(θ) to raise or lower while the function
f_θ stays that of θ\*.

Each is an :class:`Objective`: a function of θ (Tensor, shape [P], float64) with what it needs bound in,
returning a 0-d tensor that ``torch.autograd`` and ``torch.func`` (``grad``, ``jvp``, ``hessian``)
differentiate, with its name, its formula, and whether the model's exact symmetries leave it unchanged
(``invariant``).  By name (:func:`make`, :data:`NAMES`):

``sharpness``
    λ_max of the training loss's Hessian, by Lanczos on Hessian-vector products; gradient by
    Hellmann–Feynman (:func:`~genni.objectives.curvature.sharpness`)
``hessian_trace``
    tr of the training loss's Hessian, by Hutchinson with fixed Rademacher probes, or exactly
    (:func:`~genni.objectives.curvature.hessian_trace`)
``parameter_norm``
    ‖θ‖² (:func:`~genni.objectives.norms.parameter_norm`)
``path_norm``
    Σ over input→output paths of Π |w|^p (MLPs; :func:`~genni.objectives.norms.path_norm`)
``layer_distance``
    Σ over layers of a representational distance to θ\*'s layers
    (:func:`~genni.objectives.function.layer_distance`)
``relative_discrepancy``
    mean‖f_θ − f_θ\*‖² / mean‖f_θ\*‖² on given inputs
    (:func:`~genni.objectives.function.relative_discrepancy`)

A user's own ``fn(theta) -> scalar tensor`` becomes an objective by :func:`from_callable` (checked once).
Modulo the symmetries: :func:`at_canonical` evaluates J at the canonical point of θ's orbit (the kind's
own section, ``model.symmetry``); :func:`evaluate` gives J over many networks, raw or at their
canonical points; :func:`split_change` splits a change of J into the part a rescaling alone makes
and the part a move along the class makes (Dinh et al. 2017).

Everything here works on in-memory tensors; nothing reads or writes a file.
"""

from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..models.base import Model
from .base import Change, Objective, acts_orthogonally, at_canonical, canonical_point, evaluate, from_callable, split_change
from .curvature import TopEigen, hessian_trace, hvp, lanczos_top, sharpness, training_loss
from .function import layer_distance, relative_discrepancy
from .norms import parameter_norm, path_norm

_FACTORIES = {
    "sharpness": sharpness,
    "hessian_trace": hessian_trace,
    "parameter_norm": parameter_norm,
    "path_norm": path_norm,
    "layer_distance": layer_distance,
    "relative_discrepancy": relative_discrepancy,
}

NAMES = tuple(_FACTORIES)
"""The objectives :func:`make` builds by name."""


def make(name: str, model: Model, **bindings) -> Objective:
    """The objective called ``name`` (one of :data:`NAMES`) for ``model``, with ``bindings`` passed to its
    builder: e.g. ``make("sharpness", model, X=X, Y=Y)``, ``make("layer_distance", model,
    theta_ref=theta, X=X, metric="zscore_procrustes")``.  An unknown name, or a missing or unknown
    binding, is a one-line :class:`~genni.errors.ConfigError`."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown objective '{name}' (choose from: {', '.join(NAMES)})")
    factory = _FACTORIES[name]
    try:
        inspect.signature(factory).bind(model, **bindings)
    except TypeError as exc:
        params = [p for p in inspect.signature(factory).parameters if p != "model"]
        raise ConfigError(f"objective '{name}': {exc} (it takes: {', '.join(params) or 'nothing'})") from None
    return factory(model, **bindings)


__all__ = ["NAMES", "Objective", "Change", "make", "from_callable", "at_canonical", "canonical_point", "split_change",
           "acts_orthogonally", "evaluate", "sharpness", "hessian_trace", "parameter_norm", "path_norm", "layer_distance",
           "relative_discrepancy", "training_loss", "hvp", "lanczos_top", "TopEigen"]
