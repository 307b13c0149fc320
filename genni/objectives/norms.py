r"""Norms of θ: the parameter norm ‖θ‖² and the MLP's path norm.

Path norm (Neyshabur, Tomioka & Srebro, *Norm-based capacity control in neural networks*, COLT 2015,
the ℓ_p path norm φ_p; Neyshabur, Salakhutdinov & Srebro, *Path-SGD: path-normalized optimization in
deep neural networks*, NeurIPS 2015, its square γ² for p = 2).  Read an MLP with widths
(w_0, …, w_L) as a layered graph whose edges carry the weights; a bias b_ℓ[j] is the edge into unit j of
layer ℓ from a unit of constant value 1 in layer ℓ − 1.  A path runs from an input unit or a bias unit
to an output unit through one unit per layer, and

    φ_p(θ)^p = Σ_{paths π} Π_{edges e ∈ π} |w_e|^p,

computed in one pass as the output of the network with weights |W_ℓ|^p, biases |b_ℓ|^p and the
identity activation on the all-ones input, summed over the outputs:

    v_0 = 1 ∈ R^{w_0},   v_ℓ = |W_ℓ|^p v_{ℓ−1} + |b_ℓ|^p,   φ_p(θ)^p = 1ᵀ v_L.

Every path crosses a hidden unit through one incoming edge and one outgoing edge (or not at all), so
relu's rescaling (incoming × c, outgoing × 1/c) and sign flips of a whole unit leave every path's
product unchanged: φ_p is invariant under the relu and tanh MLP's exact symmetries.  Sigmoid's flip
adds the outgoing column to the next bias and changes φ_p.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..models.base import Model
from ..models.mlp import MLP, layout
from .base import Objective, acts_orthogonally

__all__ = ["parameter_norm", "path_norm", "path_norm_value"]


def parameter_norm(model: Model) -> Objective:
    """‖θ‖² = Σ_i θ_i², gradient 2θ.  Invariant under orthogonally acting symmetries (permutations, tanh's
    sign flips: :func:`~genni.objectives.base.acts_orthogonally`); relu's rescaling moves it
    (its minimum over a rescaling orbit is the balanced point, ``model.symmetry.balance``)."""
    return Objective("parameter_norm", lambda theta: (theta * theta).sum(), acts_orthogonally(model), "‖θ‖²")


def path_norm_value(model: MLP, theta: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """φ_p(θ)^p = Σ_paths Π |w_e|^p (see the module docstring).  theta : [P] -> 0-d tensor"""
    v = theta.new_ones(model.widths[0])
    for W, b in layout.unflatten(theta, model.widths, model.bias):
        v = W.abs().pow(p) @ v
        if model.bias:
            v = v + b.abs().pow(p)
    return v.sum()


def path_norm(model: Model, p: float = 1.0) -> Objective:
    """The ℓ_p path norm raised to p, φ_p(θ)^p = Σ_paths Π_{e ∈ path} |w_e|^p (biases as edges from a
    constant unit; Neyshabur et al. 2015; the module docstring gives the recursion).  p = 1 (default):
    the sum over input→output paths of the product of |w|; p = 2: the square of the ℓ2 path norm, the
    output on an all-ones input of the network with squared weights.  MLPs only (``kind = "mlp"``).
    Differentiable where no weight is 0 (for p = 1; the gradient of |w| at 0 is taken as 0).
    Invariant under the MLP's exact symmetries except sigmoid's sign flips."""
    if not isinstance(model, MLP):
        raise ConfigError(f"the path norm is defined for MLPs (kind = \"mlp\"), not for {model.describe()}")
    if not p > 0:
        raise ConfigError(f"the path norm needs p > 0, got {p}")
    invariant = not (model.activation == "sigmoid" and model.symmetry.kinds["sign_flip"])
    return Objective("path_norm", lambda theta: path_norm_value(model, theta, p), invariant,
                     f"Σ_paths Π|w|^{p:g} (Neyshabur et al. 2015)")
