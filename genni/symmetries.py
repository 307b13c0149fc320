"""Exact symmetries of MLPs: group actions on θ, sampling, canonical forms, alignment.

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
tanh/sigmoid, ones for gelu); :func:`act` applies it to θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import params
from .nets import MLPSpec

_RESCALING = ("relu", "leaky_relu")


def symmetry_kinds(spec: MLPSpec) -> dict[str, bool]:
    """Which exact symmetries the architecture admits."""
    # sigmoid's flip σ(−z) = 1 − σ(z) moves the outgoing column into the next bias: exact only with biases
    flips = spec.activation == "tanh" or (spec.activation == "sigmoid" and spec.bias)
    return {"permutation": True, "rescaling": spec.activation in _RESCALING, "sign_flip": flips}


@dataclass(frozen=True)
class GroupElement:
    """One element of the architecture's symmetry group.

    perms : per hidden layer l, int array [w_l]: new unit j is old unit perms[l][j]
    factors : per hidden layer l, float array [w_l] applied after the permutation:
        positive scales (relu, leaky_relu), ±1 signs (tanh, sigmoid), ones (gelu)
    """

    perms: tuple[np.ndarray, ...]
    factors: tuple[np.ndarray, ...]


def identity(spec: MLPSpec) -> GroupElement:
    return GroupElement(tuple(np.arange(w) for w in spec.hidden_widths),
                        tuple(np.ones(w) for w in spec.hidden_widths))


def act(spec: MLPSpec, theta: np.ndarray, g: GroupElement) -> np.ndarray:
    """θ transformed by the group element g; f_{act(θ)}(x) = f_θ(x) for every x.

    theta : ndarray, shape [P] or [N, P] (the same g for every row)
    returns : ndarray, same shape
    """
    theta = np.asarray(theta, dtype=np.float64)
    layers = [(W.copy(), b.copy()) for W, b in params.unflatten(theta, spec.widths, spec.bias)]
    for l, (perm, c) in enumerate(zip(g.perms, g.factors)):
        (Win, bin_), (Wout, bout) = layers[l], layers[l + 1]
        Win = Win[..., perm, :] * c[:, None]
        bin_ = bin_[..., perm] * c
        Wp = Wout[..., :, perm]
        if spec.activation in _RESCALING:
            Wout = Wp / c
        else:
            if spec.activation == "sigmoid":
                bout = bout + (Wp * (c < 0)).sum(-1)
            Wout = Wp * c
        layers[l], layers[l + 1] = (Win, bin_), (Wout, bout)
    return params.flatten(layers, spec.bias)


def sample(spec: MLPSpec, n: int, rng: np.random.Generator, log_scale: float = 1.0) -> list[GroupElement]:
    """n random group elements: uniform permutations; for relu scales exp(U(−log_scale, log_scale));
    for tanh/sigmoid uniform random signs."""
    out = []
    for _ in range(n):
        perms, factors = [], []
        for w in spec.hidden_widths:
            perms.append(rng.permutation(w))
            if spec.activation in _RESCALING:
                factors.append(np.exp(rng.uniform(-log_scale, log_scale, w)))
            elif symmetry_kinds(spec)["sign_flip"]:
                factors.append(rng.choice([-1.0, 1.0], w))
            else:
                factors.append(np.ones(w))
        out.append(GroupElement(tuple(perms), tuple(factors)))
    return out


def canonical_scales(spec: MLPSpec, theta: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per hidden layer, the scales c (shape [..., w_l]) that make every unit's incoming
    vector (weights and bias) unit-norm, layer after layer (relu, leaky_relu; ones otherwise).
    Units with a zero incoming vector keep scale 1."""
    theta = np.asarray(theta, dtype=np.float64)
    if spec.activation not in _RESCALING:
        return tuple(np.ones(theta.shape[:-1] + (w,)) for w in spec.hidden_widths)
    layers = params.unflatten(theta, spec.widths, spec.bias)
    scales = []
    carry = None  # scales of the previous layer's units, applied to this layer's input columns
    for l in range(len(spec.hidden_widths)):
        W, b = layers[l]
        if carry is not None:
            W = W / carry[..., None, :]
        norm = np.sqrt((W * W).sum(-1) + b * b)
        c = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 1.0)
        scales.append(c)
        carry = c
    return tuple(scales)


def canonicalise(spec: MLPSpec, theta: np.ndarray) -> np.ndarray:
    """The representative of θ modulo the continuous symmetries: for relu/leaky_relu every
    hidden unit's incoming vector has unit norm (its scale pushed downstream); otherwise θ.

    theta : ndarray, shape [P] (or [N, P], canonicalised row by row)
    """
    theta = np.asarray(theta, dtype=np.float64)
    if spec.activation not in _RESCALING:
        return theta.copy()
    if theta.ndim == 2:
        return np.stack([canonicalise(spec, t) for t in theta])
    c = canonical_scales(spec, theta)
    return act(spec, theta, GroupElement(tuple(np.arange(w) for w in spec.hidden_widths), c))


def _incoming(spec: MLPSpec, theta: np.ndarray, l: int) -> np.ndarray:
    W, b = params.unflatten(theta, spec.widths, spec.bias)[l]
    return np.concatenate([W, b[:, None]], axis=1)


def _unit_features(spec: MLPSpec, theta: np.ndarray, l: int) -> np.ndarray:
    """What identifies hidden unit j of layer l (0-based) up to the known group: its incoming
    vector (weights, bias) and the norm of its outgoing column.  The norm is invariant to the
    next layer's permutation and tells apart units that share an incoming direction."""
    W_out = params.unflatten(theta, spec.widths, spec.bias)[l + 1][0]
    return np.concatenate([_incoming(spec, theta, l), np.linalg.norm(W_out, axis=0)[:, None]], axis=1)


def match_cost(A: np.ndarray, B: np.ndarray, signs: bool, unsigned_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cost of giving reference unit i the candidate unit j: ‖B_i − s A_j‖², minimised over
    s ∈ {±1} when ``signs`` (with ``unsigned_last`` the last feature is not flipped).
    A, B : [w, d] unit features.  returns (cost [w, w], best sign [w, w])."""
    plus = ((B[:, None, :] - A[None, :, :]) ** 2).sum(-1)
    if not signs:
        return plus, np.ones_like(plus)
    flip = np.ones(A.shape[1])
    if A.shape[1] > 0 and unsigned_last:
        flip[-1] = -1.0  # the outgoing norm does not change sign with the unit
    minus = ((B[:, None, :] + flip * A[None, :, :]) ** 2).sum(-1)
    return np.minimum(plus, minus), np.where(minus < plus, -1.0, 1.0)


def align(spec: MLPSpec, theta: np.ndarray, theta_ref: np.ndarray) -> tuple[np.ndarray, GroupElement]:
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
    ref_c = canonicalise(spec, theta_ref)
    c_theta = canonical_scales(spec, theta)
    c_ref = canonical_scales(spec, theta_ref)
    cur = canonicalise(spec, theta)
    signs = symmetry_kinds(spec)["sign_flip"]
    perms, factors = [], []
    for l, w in enumerate(spec.hidden_widths):
        cost, best = match_cost(_unit_features(spec, cur, l), _unit_features(spec, ref_c, l), signs,
                                unsigned_last=True)
        rows, cols = linear_sum_assignment(cost)
        perm = cols[np.argsort(rows)]
        sign = best[np.arange(w), perm]
        step = [np.arange(k) for k in spec.hidden_widths]
        unit = [np.ones(k) for k in spec.hidden_widths]
        step[l], unit[l] = perm, sign
        cur = act(spec, cur, GroupElement(tuple(step), tuple(unit)))
        perms.append(perm)
        # total factor for new unit j: canonical scale of old unit perm[j], sign, then the reference's gauge
        factors.append(c_theta[l][perm] * sign / c_ref[l])
    g = GroupElement(tuple(perms), tuple(factors))
    return act(spec, theta, g), g


def balance(spec: MLPSpec, theta: np.ndarray, sweeps: int = 200, tol: float = 1e-13) -> np.ndarray:
    """The point of θ's rescaling orbit closest to the origin (relu, leaky_relu; θ otherwise).

    Minimises ‖act(θ, c)‖² over positive per-unit scales c by block-coordinate sweeps: for
    each hidden layer in turn, c_j = (‖out_j‖ / ‖in_j‖)^½ balances unit j's incoming vector
    (weights and bias) against its outgoing column; the objective is strictly convex in
    log c, so the sweeps converge (stopping when every |log c_j| < tol).  Units with a zero
    incoming or outgoing vector are left as they are.

    theta : ndarray, shape [P]
    """
    theta = np.asarray(theta, dtype=np.float64).copy()
    if spec.activation not in _RESCALING:
        return theta
    ident = [np.arange(w) for w in spec.hidden_widths]
    for _ in range(sweeps):
        worst = 0.0
        for l, w in enumerate(spec.hidden_widths):
            n_in = np.linalg.norm(_incoming(spec, theta, l), axis=1)
            n_out = np.linalg.norm(params.unflatten(theta, spec.widths, spec.bias)[l + 1][0], axis=0)
            ok = (n_in > 0) & (n_out > 0)
            c = np.where(ok, np.sqrt(np.where(ok, n_out, 1.0) / np.where(ok, n_in, 1.0)), 1.0)
            factors = [np.ones(k) for k in spec.hidden_widths]
            factors[l] = c
            theta = act(spec, theta, GroupElement(tuple(ident), tuple(factors)))
            worst = max(worst, float(np.abs(np.log(c)).max()) if w else 0.0)
        if worst < tol:
            break
    return theta


def distance_to_reference(spec: MLPSpec, aligned: np.ndarray, theta_ref: np.ndarray) -> np.ndarray:
    """‖bal(aligned) − bal(θ*)‖ / ‖bal(θ*)‖ for each row of ``aligned`` ([N, P] → [N]).

    Measured at the minimum-norm point of each rescaling orbit (:func:`balance`), where a
    unit that is almost switched off has small incoming *and* outgoing weights and so
    contributes little; in θ*'s own gauge such a unit's weights could dominate the distance."""
    ref = balance(spec, theta_ref)
    rows = np.stack([balance(spec, t) for t in np.atleast_2d(aligned)])
    return np.linalg.norm(rows - ref, axis=1) / max(np.linalg.norm(ref), 1e-300)


def align_batch(spec: MLPSpec, thetas: np.ndarray, theta_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Align every row; returns (aligned : [N, P], :func:`distance_to_reference` : [N])."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    aligned = np.stack([align(spec, t, theta_ref)[0] for t in thetas]) if len(thetas) else thetas.copy()
    return aligned, distance_to_reference(spec, aligned, theta_ref)
