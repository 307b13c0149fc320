"""kind = "mlp": a fully connected network ``Linear, act, …, Linear`` and everything about it.

- :mod:`.layout` — where each layer's weight and bias live in θ (``parameters_to_vector`` of the
  equivalent ``torch.nn.Sequential``);
- :mod:`.closed_form` — the batched forward pass, the exact output Jacobian, J·v / Jᵀ·u products,
  diag(JᵀJ), the hidden pre-activations' Jacobian (relu faces for walks), dead-unit revival;
- :mod:`.regions` — the relu / leaky_relu output Jacobian reduced along the linear regions of the inputs
  (a few rows per activation pattern, the same JᵀJ);
- :mod:`.symmetry` — the exact symmetry group (permutations; positive rescaling for relu / leaky_relu;
  sign flips for tanh, and for sigmoid with biases), :attr:`MLP.symmetry`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ...errors import ConfigError
from ..activations import ACTIVATIONS, PIECEWISE_LINEAR, activation_module
from ..base import Model
from . import closed_form, layout, regions
from .symmetry import MLPSymmetry


@dataclass(frozen=True)
class MLP(Model):
    """A fully connected network ``Linear, act, ..., Linear`` (no activation on the output).

    widths : (w_0, ..., w_L): input size, hidden widths, output size
    activation : one of :data:`~genni.models.activations.ACTIVATIONS`
    negative_slope : slope of leaky_relu for z < 0 (torch's default 0.01)
    bias : layers with biases (``Linear(bias=False)`` when false, as GENNI's toy network)
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    kind: str = "mlp"
    negative_slope: float = 0.01
    bias: bool = True

    symmetry_class = MLPSymmetry
    thread_safe = True  # closed forms: pure tensor functions of θ and X
    CONFIG_KEYS = ("widths", "activation", "negative_slope", "bias")

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.kind != "mlp":
            raise ConfigError(f"unknown model kind '{self.kind}' (supported: mlp)")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation '{self.activation}' (choose from: {', '.join(ACTIVATIONS)})")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ConfigError(f"model widths must be at least two positive integers, got {list(self.widths)}")

    # --- description ----------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """P = Σ_l (w_l · w_{l-1} + w_l) (without the w_l terms for bias-free layers)."""
        return layout.n_params(self.widths, self.bias)

    @property
    def n_layers(self) -> int:
        """L, the number of Linear layers."""
        return len(self.widths) - 1

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.widths[1:-1]

    @property
    def in_dim(self) -> int:
        return self.widths[0]

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def describe(self) -> str:
        return f"{self.activation} MLP {list(self.widths)}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    def to_json(self) -> str:
        """JSON holding ``kind``, ``widths``, ``activation`` (and the slope, and ``bias``)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> MLP:
        known = {"widths", "activation", "kind", "negative_slope", "bias"}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> MLP:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int, input_shape=None) -> MLP:
        widths = m.get("widths")
        if widths is None:
            widths = [d_in, 16, 16, d_out]
        if (not isinstance(widths, (list, tuple)) or len(widths) < 2
                or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)):
            raise ConfigError(f"config: [model] widths must be a list of at least two positive integers, got {widths!r}")
        if widths[0] != d_in:
            raise ConfigError(f"config: [model] widths[0] = {widths[0]} but the data set has {d_in} input features")
        kw = {k: m[k] for k in ("activation", "negative_slope", "bias") if m.get(k) is not None}
        return cls(tuple(widths), **kw)

    def module(self, theta: torch.Tensor | None = None) -> torch.nn.Sequential:
        """The equivalent ``torch.nn.Sequential`` in float64, optionally loaded with θ (shape [P])."""
        layers: list[torch.nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            if i > 0:
                layers.append(activation_module(self.activation, self.negative_slope))
            layers.append(torch.nn.Linear(d_in, d_out, bias=self.bias, dtype=torch.float64))
        return self._loaded(torch.nn.Sequential(*layers), theta)

    # --- the model interface in closed form (genni.models.mlp.closed_form) ----------------------------
    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return closed_form.forward(self, theta, X)

    def layers(self, theta: torch.Tensor, X: torch.Tensor, preactivations: bool = False):
        return closed_form.forward(self, theta, X, layers=True, preactivations=preactivations)

    def layer_names(self, preactivations: bool = False) -> list[str]:
        return closed_form.layer_names(self, preactivations)

    def forward_combination(self, stack: torch.Tensor, coeffs: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return closed_form.forward_combination(self, stack, coeffs, X)

    def jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return closed_form.jvp(self, theta, X, v)

    def forward_jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return closed_form.jvp(self, theta, X, v, outputs=True)

    def vjp(self, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return closed_form.vjp(self, theta, X, u)

    def jvp_at(self, theta: torch.Tensor, X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return closed_form.jvp(self, theta.expand(V.shape[0], -1), X, V)  # cheap with θ batched

    def vjp_at(self, theta: torch.Tensor, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        return closed_form.vjp(self, theta.expand(U.shape[0], -1), X, U)

    def products(self, theta: torch.Tensor, X: torch.Tensor):
        cache = closed_form.forward_cache(self, theta, X)
        return (lambda v: closed_form.jvp(self, theta, X, v, cache=cache)), \
            (lambda u: closed_form.vjp(self, theta, X, u, cache=cache))

    def jacobian(self, theta: torch.Tensor, X: torch.Tensor, out: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return closed_form.jacobian(self, theta, X, out)

    def jtj_diagonal(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return closed_form.jtj_diagonal(self, theta, X)

    def reduced_jacobian(self, theta: torch.Tensor, X: torch.Tensor, residual: torch.Tensor | None = None):
        """relu / leaky_relu: J reduced along the linear regions (:func:`.regions.reduced_jacobian`);
        otherwise J itself."""
        if self.activation not in PIECEWISE_LINEAR:
            return super().reduced_jacobian(theta, X, residual)
        dsig = [d[0] for d in closed_form.forward_cache(self, theta[None], X)[2]]
        return regions.reduced_jacobian(self, theta, X, dsig, residual)

    def init_theta(self, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        return closed_form.init_theta(self, n, generator, scale)

    def filter_groups(self) -> list:
        return [(s.weight, s.shape[0], s.bias if self.bias else None)
                for s in layout.layer_slices(self.widths, self.bias)]

    def expected_rank(self, n_rows: int | None = None) -> int:
        """relu / leaky_relu: P − (number of hidden units); otherwise P (generic full rank); ≤ n·K rows."""
        bound = self.n_params - (sum(self.hidden_widths) if self.activation in PIECEWISE_LINEAR else 0)
        return bound if n_rows is None else min(bound, n_rows)

    # --- piecewise-linear structure: dead units, relu faces -------------------------------------------
    @property
    def revivable(self) -> bool:  # relu with at least one hidden layer: dead units can be re-drawn
        return self.activation == "relu" and self.n_layers >= 2

    def dead_units(self, theta: np.ndarray, X: np.ndarray) -> list[int]:
        """Per hidden layer, units whose post-activation is constant on every input (zero for relu)."""
        with torch.no_grad():
            _, reps = closed_form.forward(self, torch.as_tensor(theta), torch.as_tensor(X), layers=True)
        return [int((h.std(0) == 0).sum()) for h in reps[1:-1]]

    def dead_mask(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return closed_form.dead_mask(self, theta, X)

    def may_have_dead_units(self, J: torch.Tensor) -> bool:
        """A dead hidden unit j (σ'(z_j(x)) = 0 on every input) has ∂f/∂b_j(x) = (W_{l+1}ᵀ G_{l+1})_j·σ'(z_j(x))
        = 0 exactly on every row of J: False when every hidden unit's bias column has a nonzero entry
        (bias-free networks: True, :meth:`dead_mask` decides)."""
        if not self.bias:
            return True
        cols = [c for s in layout.layer_slices(self.widths, self.bias)[:-1] for c in range(s.bias.start, s.bias.stop)]
        return bool((J[:, cols] == 0).all(0).any())

    def revive(self, theta: torch.Tensor, dead: torch.Tensor, gens: list) -> torch.Tensor:
        return closed_form.revive(self, theta, dead, gens)

    def activation_pattern(self, theta: np.ndarray, X: torch.Tensor) -> np.ndarray | None:
        if self.activation not in PIECEWISE_LINEAR:
            return None
        with torch.no_grad():
            _, reps = closed_form.forward(self, torch.as_tensor(theta), X, layers=True, preactivations=True)
        return np.concatenate([(z > 0).numpy().ravel() for z in reps[1:-1:2]])

    def preactivation_jacobian(self, theta: np.ndarray, X: torch.Tensor):
        if self.activation not in PIECEWISE_LINEAR:
            return None
        return closed_form.preactivation_jacobian(self, theta, X)

    def kinks(self, theta: torch.Tensor, X: torch.Tensor):
        if self.activation not in PIECEWISE_LINEAR:
            return None
        return closed_form.kinks(self, theta, X)


__all__ = ["MLP", "MLPSymmetry", "closed_form", "layout"]
