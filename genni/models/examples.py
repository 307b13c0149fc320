"""Small ``torch.nn.Module`` factories for ``[model] kind = "module"`` (tests, docs, experiments).

- :class:`TinyConvNet` — Conv2d → ReLU → MaxPool2d(2) → Flatten → Linear → Tanh → Linear; it declares no
  symmetries, so genni assumes none;
- :class:`ScaledMLP` — d_in → relu hidden layer → out, declaring its positive-rescaling symmetry through
  the ``genni_*`` methods :mod:`genni.models.module` looks for.

Use them as ``module = "genni.models.examples:TinyConvNet"`` (with ``kwargs = {...}``).
"""

from __future__ import annotations

import numpy as np
import torch


class TinyConvNet(torch.nn.Sequential):
    """[n, in_channels, side, side] → ``out`` logits: a 3×3 convolution (padding 1) with ``channels`` filters,
    relu, 2×2 max pooling, then a tanh hidden layer of width ``hidden``."""

    def __init__(self, in_channels: int = 1, side: int = 8, channels: int = 4, hidden: int = 16, out: int = 10):
        pooled = side // 2
        super().__init__(
            torch.nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(channels * pooled * pooled, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, out),
        )


class ScaledMLP(torch.nn.Module):
    """x → fc2(relu(fc1(x))): one relu hidden layer.  Declares its exact continuous symmetry: for each hidden
    unit u and a > 0, row u of fc1.weight and fc1.bias[u] × a, column u of fc2.weight × 1/a.

    θ (``parameters_to_vector`` order): fc1.weight [hidden, d_in], fc1.bias [hidden], fc2.weight [out, hidden],
    fc2.bias [out]."""

    def __init__(self, d_in: int = 2, hidden: int = 8, out: int = 1):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, hidden)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))

    def _split(self, theta: np.ndarray):
        """Views (W1 [h, d], b1 [h], W2 [o, h], b2 [o]) into a copy of θ, and that copy."""
        h, d = self.fc1.weight.shape
        o = self.fc2.weight.shape[0]
        th = np.array(theta, dtype=np.float64, copy=True)
        sizes = np.cumsum([h * d, h, o * h])
        W1, b1, W2, b2 = np.split(th, sizes)
        return W1.reshape(h, d), b1, W2.reshape(o, h), b2, th

    # --- the genni declarations ---------------------------------------------------------------------------
    def genni_symmetry_tangents(self, theta: np.ndarray) -> np.ndarray:
        """[P, hidden]: d/dt at t = 0 of rescaling unit u by a = 1 + t."""
        W1, b1, W2, _, th = self._split(theta)
        cols = []
        for u in range(W1.shape[0]):
            T1, t1, T2, t2, t = self._split(np.zeros_like(th))
            T1[u], t1[u], T2[:, u] = W1[u], b1[u], -W2[:, u]
            cols.append(t)
        return np.stack(cols, axis=1)

    def genni_sample_symmetries(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """n random positive factors per hidden unit, e^{N(0, 0.5²)}."""
        h = self.fc1.weight.shape[0]
        return [np.exp(rng.normal(0.0, 0.5, h)) for _ in range(n)]

    def genni_act(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g·θ for factors g [hidden]: incoming row and bias × g[u], outgoing column × 1/g[u]."""
        W1, b1, W2, _, th = self._split(theta)
        a = np.asarray(g, dtype=np.float64)
        W1 *= a[:, None]
        b1 *= a
        W2 /= a[None, :]
        return th

    def genni_align(self, theta: np.ndarray, theta_ref: np.ndarray) -> np.ndarray:
        """θ rescaled unit by unit so each incoming vector (row of W1, b1) has θ_ref's norm (same function)."""
        W1, b1, *_ = self._split(theta)
        R1, r1, *_ = self._split(theta_ref)
        return self.genni_act(theta, np.sqrt((R1 ** 2).sum(1) + r1 ** 2) / np.sqrt((W1 ** 2).sum(1) + b1 ** 2))


__all__ = ["TinyConvNet", "ScaledMLP"]
