"""The MLP's exact symmetry group: its action on θ, sampling, tangents, canonical forms, alignment.

For a hidden layer with incoming weights/bias (W_in, b_in) and outgoing weights
(W_out, b_out), the known exact symmetries are

* **permutation** of the layer's units (every activation): rows of W_in, b_in and
  columns of W_out move together;
* **positive rescaling** (relu, leaky_relu: σ(cz) = cσ(z) for c > 0): unit j's
  incoming row and bias × c_j, its outgoing column × 1/c_j;
* **sign flip** (tanh: σ(−z) = −σ(z)): incoming row, bias and outgoing column × (−1);
  for sigmoid σ(−z) = 1 − σ(z), so the outgoing column is negated *and* the next
  bias gains the old outgoing column: b_out ← b_out + W_out[:, j].

gelu admits permutations only (gelu(−z) = gelu(z) − z, and the linear term is not
representable downstream).  A :class:`GroupElement` holds, per hidden layer, a
permutation and a per-unit factor (positive scales for relu, ±1 signs for
tanh/sigmoid, ones for gelu); :meth:`MLPSymmetry.act` applies it to θ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..activations import PIECEWISE_LINEAR
from ..symmetry import GroupElement, Symmetry, match_cost
from . import layout

if TYPE_CHECKING:  # pragma: no cover
    from . import MLP


class MLPSymmetry(Symmetry):
    """The MLP's exact symmetry group (see the module docstring): ``MLP(...).symmetry``."""

    aligns = True
    model: MLP

    @property
    def kinds(self) -> dict[str, bool]:
        """Which exact symmetries the architecture admits."""
        # sigmoid's flip σ(−z) = 1 − σ(z) moves the outgoing column into the next bias: exact only with biases
        flips = self.model.activation == "tanh" or (self.model.activation == "sigmoid" and self.model.bias)
        return {"permutation": True, "rescaling": self.model.activation in PIECEWISE_LINEAR, "sign_flip": flips}

    def identity(self) -> GroupElement:
        return GroupElement(tuple(np.arange(w) for w in self.model.hidden_widths),
                            tuple(np.ones(w) for w in self.model.hidden_widths))

    def act(self, theta: np.ndarray, g: GroupElement) -> np.ndarray:
        """θ transformed by the group element g; f_{act(θ)}(x) = f_θ(x) for every x.

        theta : ndarray, shape [P] or [N, P] (the same g for every row)
        returns : ndarray, same shape
        """
        theta = np.asarray(theta, dtype=np.float64)
        layers = [(W.copy(), b.copy()) for W, b in layout.unflatten(theta, self.model.widths, self.model.bias)]
        for l, (perm, c) in enumerate(zip(g.perms, g.factors)):
            (Win, bin_), (Wout, bout) = layers[l], layers[l + 1]
            Win = Win[..., perm, :] * c[:, None]
            bin_ = bin_[..., perm] * c
            Wp = Wout[..., :, perm]
            if self.model.activation in PIECEWISE_LINEAR:
                Wout = Wp / c
            else:
                if self.model.activation == "sigmoid":
                    bout = bout + (Wp * (c < 0)).sum(-1)
                Wout = Wp * c
            layers[l], layers[l + 1] = (Win, bin_), (Wout, bout)
        return layout.flatten(layers, self.model.bias)

    def sample(self, n: int, rng: np.random.Generator, log_scale: float = 1.0) -> list[GroupElement]:
        """n random group elements: uniform permutations; for relu scales exp(U(−log_scale, log_scale));
        for tanh/sigmoid uniform random signs."""
        out = []
        for _ in range(n):
            perms, factors = [], []
            for w in self.model.hidden_widths:
                perms.append(rng.permutation(w))
                if self.model.activation in PIECEWISE_LINEAR:
                    factors.append(np.exp(rng.uniform(-log_scale, log_scale, w)))
                elif self.kinds["sign_flip"]:
                    factors.append(rng.choice([-1.0, 1.0], w))
                else:
                    factors.append(np.ones(w))
            out.append(GroupElement(tuple(perms), tuple(factors)))
        return out

    def canonical_scales(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per hidden layer, the scales c (shape [..., w_l]) that make every unit's incoming
        vector (weights and bias) unit-norm, layer after layer (relu, leaky_relu; ones otherwise).
        Units with a zero incoming vector keep scale 1."""
        theta = np.asarray(theta, dtype=np.float64)
        if self.model.activation not in PIECEWISE_LINEAR:
            return tuple(np.ones(theta.shape[:-1] + (w,)) for w in self.model.hidden_widths)
        layers = layout.unflatten(theta, self.model.widths, self.model.bias)
        scales = []
        carry = None  # scales of the previous layer's units, applied to this layer's input columns
        for l in range(len(self.model.hidden_widths)):
            W, b = layers[l]
            if carry is not None:
                W = W / carry[..., None, :]
            norm = np.sqrt((W * W).sum(-1) + b * b)
            c = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 1.0)
            scales.append(c)
            carry = c
        return tuple(scales)

    def canonicalise(self, theta: np.ndarray) -> np.ndarray:
        """The representative of θ modulo the continuous symmetries: for relu/leaky_relu every
        hidden unit's incoming vector has unit norm (its scale pushed downstream); otherwise θ.

        theta : ndarray, shape [P] (or [N, P], canonicalised row by row)
        """
        theta = np.asarray(theta, dtype=np.float64)
        if self.model.activation not in PIECEWISE_LINEAR:
            return theta.copy()
        if theta.ndim == 2:
            return np.stack([self.canonicalise(t) for t in theta])
        c = self.canonical_scales(theta)
        return self.act(theta, GroupElement(tuple(np.arange(w) for w in self.model.hidden_widths), c))

    def _incoming(self, theta: np.ndarray, l: int) -> np.ndarray:
        W, b = layout.unflatten(theta, self.model.widths, self.model.bias)[l]
        return np.concatenate([W, b[:, None]], axis=1)

    def _unit_features(self, theta: np.ndarray, l: int) -> np.ndarray:
        """What identifies hidden unit j of layer l (0-based) up to the known group: its incoming
        vector (weights, bias) and the norm of its outgoing column.  The norm is invariant to the
        next layer's permutation and tells apart units that share an incoming direction."""
        W_out = layout.unflatten(theta, self.model.widths, self.model.bias)[l + 1][0]
        return np.concatenate([self._incoming(theta, l), np.linalg.norm(W_out, axis=0)[:, None]], axis=1)

    def align(self, theta: np.ndarray, theta_ref: np.ndarray) -> tuple[np.ndarray, GroupElement]:
        """Bring θ as close to θ* as the known symmetries allow.

        Both are canonicalised (continuous symmetries), then, hidden layer by hidden layer,
        θ's units are matched to θ*'s by the Hungarian algorithm
        (``scipy.optimize.linear_sum_assignment``) on the squared distance of unit features:
        incoming vector and outgoing-column norm (sign-aware for tanh/sigmoid); finally θ is expressed in θ*'s gauge (for relu,
        each unit's incoming norm equal to the reference's).  If θ = act(θ*, g) exactly, the
        result is θ* itself.

        theta, theta_ref : ndarray, shape [P]
        returns : (aligned θ : [P], the group element g with act(θ, g) = aligned θ)
        """
        theta = np.asarray(theta, dtype=np.float64)
        ref_c = self.canonicalise(theta_ref)
        c_theta = self.canonical_scales(theta)
        c_ref = self.canonical_scales(theta_ref)
        cur = self.canonicalise(theta)
        signs = self.kinds["sign_flip"]
        perms, factors = [], []
        for l, w in enumerate(self.model.hidden_widths):
            cost, best = match_cost(self._unit_features(cur, l), self._unit_features(ref_c, l), signs,
                                    unsigned_last=True)
            rows, cols = linear_sum_assignment(cost)
            perm = cols[np.argsort(rows)]
            sign = best[np.arange(w), perm]
            step = [np.arange(k) for k in self.model.hidden_widths]
            unit = [np.ones(k) for k in self.model.hidden_widths]
            step[l], unit[l] = perm, sign
            cur = self.act(cur, GroupElement(tuple(step), tuple(unit)))
            perms.append(perm)
            # total factor for new unit j: canonical scale of old unit perm[j], sign, then the reference's gauge
            factors.append(c_theta[l][perm] * sign / c_ref[l])
        g = GroupElement(tuple(perms), tuple(factors))
        return self.act(theta, g), g

    def balance(self, theta: np.ndarray, sweeps: int = 200, tol: float = 1e-13) -> np.ndarray:
        """The point of θ's rescaling orbit closest to the origin (relu, leaky_relu; θ otherwise).

        Minimises ‖act(θ, c)‖² over positive per-unit scales c by block-coordinate sweeps: for
        each hidden layer in turn, c_j = (‖out_j‖ / ‖in_j‖)^½ balances unit j's incoming vector
        (weights and bias) against its outgoing column; the objective is strictly convex in
        log c, so the sweeps converge (stopping when every |log c_j| < tol).  Units with a zero
        incoming or outgoing vector are left as they are.

        theta : ndarray, shape [P]
        """
        theta = np.asarray(theta, dtype=np.float64).copy()
        if self.model.activation not in PIECEWISE_LINEAR:
            return theta
        ident = [np.arange(w) for w in self.model.hidden_widths]
        for _ in range(sweeps):
            worst = 0.0
            for l, w in enumerate(self.model.hidden_widths):
                n_in = np.linalg.norm(self._incoming(theta, l), axis=1)
                n_out = np.linalg.norm(layout.unflatten(theta, self.model.widths, self.model.bias)[l + 1][0], axis=0)
                ok = (n_in > 0) & (n_out > 0)
                c = np.where(ok, np.sqrt(np.where(ok, n_out, 1.0) / np.where(ok, n_in, 1.0)), 1.0)
                factors = [np.ones(k) for k in self.model.hidden_widths]
                factors[l] = c
                theta = self.act(theta, GroupElement(tuple(ident), tuple(factors)))
                worst = max(worst, float(np.abs(np.log(c)).max()) if w else 0.0)
            if worst < tol:
                break
        return theta

    def distance_to_reference(self, aligned: np.ndarray, theta_ref: np.ndarray) -> np.ndarray:
        """‖bal(aligned) − bal(θ*)‖ / ‖bal(θ*)‖ for each row of ``aligned`` ([N, P] → [N]).

        Measured at the minimum-norm point of each rescaling orbit (:func:`balance`), where a
        unit that is almost switched off has small incoming *and* outgoing weights and so
        contributes little; in θ*'s own gauge such a unit's weights could dominate the distance."""
        ref = self.balance(theta_ref)
        rows = np.stack([self.balance(t) for t in np.atleast_2d(aligned)])
        return np.linalg.norm(rows - ref, axis=1) / max(np.linalg.norm(ref), 1e-300)

    def align_batch(self, thetas: np.ndarray, theta_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Align every row; returns (aligned : [N, P], :func:`distance_to_reference` : [N])."""
        thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
        aligned = np.stack([self.align(t, theta_ref)[0] for t in thetas]) if len(thetas) else thetas.copy()
        return aligned, self.distance_to_reference(aligned, theta_ref)

    def tangents(self, theta: np.ndarray) -> np.ndarray:
        """The vertical space at θ [P]: the tangent of each hidden unit's positive rescaling, as columns
        [P, H] (relu, leaky_relu; [P, 0] otherwise): d/dc of (incoming row and bias × c, outgoing column
        × 1/c) at c = 1."""
        if self.model.activation not in PIECEWISE_LINEAR:
            return np.zeros((self.model.n_params, 0))
        theta = np.asarray(theta, dtype=np.float64)
        cols = []
        layers = layout.layer_slices(self.model.widths, self.model.bias)
        for l, w in enumerate(self.model.hidden_widths):
            s_in, s_out = layers[l], layers[l + 1]
            W_out = theta[s_out.weight].reshape(s_out.shape)
            for j in range(w):
                v = np.zeros_like(theta)
                d_in = s_in.shape[1]
                v[s_in.weight.start + j * d_in: s_in.weight.start + (j + 1) * d_in] = \
                    theta[s_in.weight.start + j * d_in: s_in.weight.start + (j + 1) * d_in]
                if self.model.bias:
                    v[s_in.bias.start + j] = theta[s_in.bias.start + j]
                rows = s_out.weight.start + np.arange(s_out.shape[0]) * s_out.shape[1] + j
                v[rows] = -W_out[:, j]
                cols.append(v)
        return np.stack(cols, axis=1) if cols else np.zeros((len(theta), 0))


__all__ = ["MLPSymmetry"]
