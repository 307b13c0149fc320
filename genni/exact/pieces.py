"""The piecewise-linear structure of a relu / leaky-relu MLP, in float64 numpy.

With z_l = W_l h_{l−1} + b_l and h_l = σ(z_l), every hidden unit is *active* (z > 0, slope 1) or
*inactive* (z ≤ 0, slope α: 0 for relu, the negative slope for leaky relu).  An activation
*pattern* s ∈ {0, 1}^H (H hidden units, layer by layer) fixes every slope, so on its region
R_s = {x : pattern(x) = s} every pre-activation and the output are affine in x:

    z(x) = A_s x + c_s  (A_s [H, d], c_s [H]),    f(x) = F_s x + g_s  (F_s [K, d], g_s [K]),

and the region is the polytope {x : z_j(x) > 0 for s_j = 1, z_j(x) ≤ 0 for s_j = 0}.  Several
networks on one input (θ and θ*, say) stack into one :class:`Pieces` whose pattern is the
concatenation: its regions are the common refinement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import GenniError
from ..models import Model
from ..models.activations import PIECEWISE_LINEAR
from ..models.mlp import MLP, layout


def negative_slope(model: Model) -> float:
    """α, the slope of an inactive unit: 0 for relu, the negative slope for leaky relu."""
    return 0.0 if model.activation == "relu" else float(model.negative_slope)


def check_piecewise_linear(model: Model) -> None:
    """Raise a one-line :class:`GenniError` unless ``model`` is a relu / leaky-relu MLP."""
    if not isinstance(model, MLP) or getattr(model, "activation", None) not in PIECEWISE_LINEAR:
        what = model.describe() if hasattr(model, "describe") else type(model).__name__
        raise GenniError(f"exact answers need a relu or leaky_relu MLP (kind mlp), got {what}")


@dataclass(frozen=True)
class Network:
    """One relu / leaky-relu MLP at one parameter: its layers as float64 arrays.

    layers : [(W_l [w_l, w_{l−1}], b_l [w_l])] (b_l zeros for bias-free layers);  alpha : slope of
    inactive units;  bias : whether θ holds the biases (the Jacobian's columns follow θ's layout)
    """

    layers: tuple
    alpha: float
    bias: bool = True

    @classmethod
    def of(cls, model: Model, theta: np.ndarray) -> Network:
        check_piecewise_linear(model)
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (model.n_params,):
            raise GenniError(f"parameter vector of shape {theta.shape}; {model.describe()} needs ({model.n_params},)")
        layers = tuple((np.array(W), np.array(b)) for W, b in layout.unflatten(theta, model.widths, model.bias))
        return cls(layers, negative_slope(model), bool(model.bias))

    @property
    def in_dim(self) -> int:
        return self.layers[0][0].shape[1]

    @property
    def out_dim(self) -> int:
        return self.layers[-1][0].shape[0]

    @property
    def n_hidden(self) -> int:
        return sum(W.shape[0] for W, _ in self.layers[:-1])

    def preactivations(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z [m, H] every hidden pre-activation, f [m, K] the outputs) at the rows of X [m, d]."""
        h, zs = np.asarray(X, dtype=np.float64), []
        for W, b in self.layers[:-1]:
            z = h @ W.T + b
            zs.append(z)
            h = np.where(z > 0, z, self.alpha * z)
        W, b = self.layers[-1]
        return (np.concatenate(zs, axis=1) if zs else np.zeros((len(h), 0))), h @ W.T + b

    def slopes(self, pattern: np.ndarray) -> np.ndarray:
        """Slope of each hidden unit under ``pattern`` (bool [..., H]): 1 active, α inactive."""
        return np.where(pattern, 1.0, self.alpha)

    def affine(self, pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The affine maps on the region of ``pattern`` (bool [H]): (A [H, d], c [H], F [K, d], g [K])
        with z(x) = A x + c and f(x) = F x + g."""
        d = self.in_dim
        M, v = np.eye(d), np.zeros(d)  # h_{l−1} = M x + v
        As, cs, start = [], [], 0
        s = self.slopes(np.asarray(pattern, bool))
        for W, b in self.layers[:-1]:
            A, c = W @ M, W @ v + b
            As.append(A)
            cs.append(c)
            k = slice(start, start + W.shape[0])
            M, v = s[k, None] * A, s[k] * c
            start = k.stop
        W, b = self.layers[-1]
        A = np.vstack(As) if As else np.zeros((0, d))
        c = np.concatenate(cs) if cs else np.zeros(0)
        return A, c, W @ M, W @ v + b

    def pattern_jacobian(self, pattern: np.ndarray, X: np.ndarray) -> np.ndarray:
        """∂f/∂θ at the rows of X with every slope fixed by ``pattern`` (bool [H]), in θ's layout.

        On the region of ``pattern`` this is the network's Jacobian; since it is affine in x there,
        its rows at d + 1 affinely independent points span every row the region contributes.
        X : [m, d];  returns : [m, K, P]
        """
        s = self.slopes(np.asarray(pattern, bool))
        X = np.asarray(X, dtype=np.float64)
        hs, start = [X], 0
        for W, b in self.layers[:-1]:
            k = slice(start, start + W.shape[0])
            hs.append((hs[-1] @ W.T + b) * s[k])
            start = k.stop
        m, K = len(X), self.out_dim
        blocks = []
        G = np.broadcast_to(np.eye(K), (m, K, K))  # ∂f/∂z_l, [m, K, w_l]
        stops = np.cumsum([W.shape[0] for W, _ in self.layers[:-1]])
        for l in range(len(self.layers) - 1, -1, -1):
            W, _ = self.layers[l]
            part = [(G[..., :, None] * hs[l][:, None, None, :]).reshape(m, K, -1)]
            if self.bias:
                part.append(G)
            blocks.append(part)
            if l > 0:
                G = (G @ W) * s[stops[l - 1] - W.shape[1]: stops[l - 1]]
        return np.concatenate([p for part in reversed(blocks) for p in part], axis=2)


@dataclass(frozen=True)
class Pieces:
    """One or more networks on one input, as one piecewise-linear map: the pattern is the concatenation
    of the networks' patterns, so its regions are their common refinement."""

    networks: tuple

    @classmethod
    def of(cls, model: Model, thetas: Sequence[np.ndarray]) -> Pieces:
        return cls(tuple(Network.of(model, t) for t in thetas))

    @property
    def in_dim(self) -> int:
        return self.networks[0].in_dim

    @property
    def n_hidden(self) -> int:
        return sum(n.n_hidden for n in self.networks)

    def preactivations(self, X: np.ndarray) -> np.ndarray:
        """Every hidden pre-activation of every network, shape [m, H]."""
        return np.concatenate([n.preactivations(X)[0] for n in self.networks], axis=1)

    def pattern(self, X: np.ndarray) -> np.ndarray:
        """Activation pattern (z > 0) at the rows of X, bool [m, H]."""
        return self.preactivations(X) > 0

    def affine(self, pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A [H, d], c [H]): every pre-activation as an affine function of x on the region of ``pattern``."""
        parts, start = [], 0
        for n in self.networks:
            A, c, _, _ = n.affine(pattern[start: start + n.n_hidden])
            parts.append((A, c))
            start += n.n_hidden
        return np.vstack([a for a, _ in parts]), np.concatenate([c for _, c in parts])

    def split(self, pattern: np.ndarray) -> list[np.ndarray]:
        """The pattern cut into one piece per network."""
        cuts = np.cumsum([n.n_hidden for n in self.networks])[:-1]
        return np.split(np.asarray(pattern, bool), cuts)


__all__ = ["Network", "Pieces", "negative_slope", "check_piecewise_linear"]
