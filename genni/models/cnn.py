r"""kind = "cnn": a LeNet-style convolutional network on images stored flat.

Inputs are rows of X [n, d_in] with d_in = C·H·W (row-major); the module reshapes them to [n, C, H, W], then
runs S = ``len(channels)`` stages

    h_s = pool(σ(conv_s(h_{s−1})))          conv_s: Conv2d(c_{s−1} → c_s, k×k, padding p), stride 1
                                            pool: max / avg over pool_size × pool_size windows (stride = size), or none

flattens (channel-major: feature index = c·(H'·W') + y·W' + x), runs the dense hidden layers
u_d = σ(V_d u_{d−1} + a_d) of widths ``dense`` and ends in a linear output layer (no activation).

θ is ``parameters_to_vector`` of :class:`CNNModule`: stages.0.conv.weight [c_1, C, k, k], stages.0.conv.bias,
…, dense.0.fc.weight, dense.0.fc.bias, …, out.weight, out.bias.

Exact symmetries.  Call the S conv channels' groups and the dense hidden layers together the *hidden layers*
ℓ = 1..S+D; unit j of layer ℓ has an incoming tensor (its filter W_ℓ[j] and bias b_ℓ[j], or a row of V and a
bias) and an outgoing slice (the next conv's input channel W_{ℓ+1}[:, j], or the first Linear's columns
j·H'W' … (j+1)·H'W' − 1, or the next Linear's column j).  With new unit j := old unit π(j) times a factor
γ_j (incoming × γ_j, outgoing ÷ γ_j) the function is unchanged when

- γ = 1 (**permutations**, every hidden layer): conv, pointwise σ and pooling act channel by channel, and a
  permutation of channels permutes the flattened features by whole channel blocks;
- γ_j > 0, σ = relu or leaky_relu (**positive rescaling**): σ(γz) = γσ(z) for γ > 0, and both poolings are
  positively homogeneous channel by channel (max(γx) = γ max x for γ > 0; avg is linear), so the channel's
  pooled output is × γ and the next layer's ÷ γ restores it;
- γ_j = −1, σ = tanh (**sign flips**): tanh(−z) = −tanh(z); for a conv channel this is exact only when the
  pooling commutes with negation, i.e. "avg" (linear) or "none" — max(−x) = −min(x) ≠ −max(x), so with max
  pooling the conv channels have no sign flips (the dense hidden units always do).

gelu has the permutations only.  The rescalings are a continuous group of dimension Σ c_s + Σ dense_d (relu,
leaky_relu); their tangents at θ (:meth:`CNNSymmetry.tangents`: incoming +, outgoing −) are annihilated by J,
so the functional dimension (rank of J over many inputs) is at most P − Σ c_s − Σ dense_d.  It can be lower:
max pooling passes one position's gradient per window, tiny images leave a flattened representation of a few
features, dead units lose their whole fan, and activation patterns that random inputs rarely reach hide
some directions.  tests/contracts/test_model_cnn.py measures the bound met exactly for tiny relu CNNs (one stage with
max pooling; two stages without pooling) and missed by 4–19 for a two-stage max-pooled one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .activations import PIECEWISE_LINEAR, activation_module
from .base import Model
from .symmetry import GroupElement, Symmetry

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu")
POOLS = ("max", "avg", "none")


# --- the torch module ---------------------------------------------------------------------------------------
class _Image(torch.nn.Module):
    """[n, C·H·W] (or already [n, C, H, W]) → [n, C, H, W]."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class _Stage(torch.nn.Module):
    """conv → σ → pool; its output is the representation ``conv<s>``."""

    def __init__(self, c_in: int, c_out: int, model: CNN):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, c_out, model.kernel_size, padding=model.padding, dtype=torch.float64)
        self.act = activation_module(model.activation, model.negative_slope)
        if model.pool == "max":
            self.pool = torch.nn.MaxPool2d(model.pool_size, stride=model.pool_size)
        elif model.pool == "avg":
            self.pool = torch.nn.AvgPool2d(model.pool_size, stride=model.pool_size)
        else:
            self.pool = torch.nn.Identity()

    def forward(self, x):
        return self.pool(self.act(self.conv(x)))


class _Dense(torch.nn.Module):
    """Linear → σ; its output is the representation ``dense<d>``."""

    def __init__(self, d_in: int, d_out: int, model: CNN):
        super().__init__()
        self.fc = torch.nn.Linear(d_in, d_out, dtype=torch.float64)
        self.act = activation_module(model.activation, model.negative_slope)

    def forward(self, x):
        return self.act(self.fc(x))


class CNNModule(torch.nn.Module):
    """The torch module of a :class:`CNN` (float64)."""

    def __init__(self, model: CNN):
        super().__init__()
        self.image = _Image(model.input_shape)
        c_in = [model.input_shape[0], *model.channels[:-1]]
        self.stages = torch.nn.ModuleList([_Stage(a, b, model) for a, b in zip(c_in, model.channels)])
        widths = [model.flat_dim, *model.dense]
        self.dense = torch.nn.ModuleList([_Dense(a, b, model) for a, b in zip(widths[:-1], widths[1:])])
        self.out = torch.nn.Linear(widths[-1], model.d_out, dtype=torch.float64)

    def forward(self, x):
        h = self.image(x)
        for s in self.stages:
            h = s(h)
        h = h.flatten(1)
        for d in self.dense:
            h = d(h)
        return self.out(h)


def _positive_int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ConfigError(f"cnn: {name} must be {what}, got {v!r}")
    return int(v)


def _int_tuple(name: str, v, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ConfigError(f"cnn: {name} must be a list of positive integers, got {v!r}")
    out = tuple(_positive_int(f"{name}[{i}]", x) for i, x in enumerate(v))
    if not out and not allow_empty:
        raise ConfigError(f"cnn: {name} must list at least one positive integer")
    return out


# --- the model ----------------------------------------------------------------------------------------------
class CNNSymmetry(Symmetry):
    """The CNN's exact symmetry group (see the module docstring): ``CNN(...).symmetry``."""

    aligns = True  # align() undoes every declared symmetry (tested on planted copies)
    model: CNN

    def _flips(self) -> list[bool]:
        """Per hidden layer, whether its units admit sign flips."""
        if self.model.activation != "tanh":
            return [False] * len(self.model.hidden_widths)
        return [self.model.pool != "max"] * len(self.model.channels) + [True] * len(self.model.dense)

    @property
    def kinds(self) -> dict[str, bool]:
        """permutation: always; rescaling: relu / leaky_relu; sign_flip: tanh, on the conv channels only
        without max pooling (``sign_flip_channels``) and always on dense hidden units (``sign_flip_dense``)."""
        flips = self._flips()
        S = len(self.model.channels)
        return {"permutation": True, "rescaling": self.model.activation in PIECEWISE_LINEAR, "sign_flip": any(flips),
                "sign_flip_channels": any(flips[:S]), "sign_flip_dense": any(flips[S:])}

    def identity(self) -> GroupElement:
        return GroupElement(tuple(np.arange(w) for w in self.model.hidden_widths),
                               tuple(np.ones(w) for w in self.model.hidden_widths))

    def sample(self, n: int, rng: np.random.Generator, log_scale: float = 1.0) -> list[GroupElement]:
        """n random elements: uniform permutations of every hidden layer; factors exp(U(−log_scale, log_scale))
        (relu, leaky_relu), uniform signs where flips hold (tanh), ones otherwise."""
        out = []
        rescale = self.model.activation in PIECEWISE_LINEAR
        for _ in range(n):
            perms, factors = [], []
            for w, flip in zip(self.model.hidden_widths, self._flips()):
                perms.append(rng.permutation(w))
                if rescale:
                    factors.append(np.exp(rng.uniform(-log_scale, log_scale, w)))
                elif flip:
                    factors.append(rng.choice([-1.0, 1.0], w))
                else:
                    factors.append(np.ones(w))
            out.append(GroupElement(tuple(perms), tuple(factors)))
        return out

    def act(self, theta: np.ndarray, g) -> np.ndarray:
        """g·θ: for each hidden layer, new unit j = old unit perms[j] with incoming (filter, bias) × factors[j]
        and outgoing slice ÷ factors[j].  theta : [P] (or [N, P], the same g for every row) → same shape."""
        theta = np.asarray(theta, dtype=np.float64)
        if g is None:
            return theta.copy()
        if theta.ndim == 2:
            return np.stack([self.act(t, g) for t in theta]) if len(theta) else theta.copy()
        p = self.model.unflatten(theta)
        for layer, (perm, c) in enumerate(zip(g.perms, g.factors)):
            perm, c = np.asarray(perm), np.asarray(c, dtype=np.float64)
            wk, bk, ok = self.model._keys(layer)
            W = p[wk]
            p[wk] = (W.reshape(W.shape[0], -1)[perm] * c[:, None]).reshape(W.shape)
            p[bk] = p[bk][perm] * c
            O = self.model._outgoing(p, layer)
            p[ok] = (O[:, perm, :] / c[None, :, None]).reshape(p[ok].shape)
        return self.model.flatten(p)

    def tangents(self, theta: np.ndarray) -> np.ndarray:
        """Columns [P, Σ c_s + Σ dense_d] (relu, leaky_relu; none otherwise): d/dt at t = 0 of unit j's factor
        1 + t, i.e. + its incoming filter and bias, − its outgoing slice."""
        if self.model.activation not in PIECEWISE_LINEAR:
            return np.zeros((self.model.n_params, 0))
        p = self.model.unflatten(theta)
        cols = []
        for layer, w in enumerate(self.model.hidden_widths):
            wk, bk, ok = self.model._keys(layer)
            for j in range(w):
                t = {k: np.zeros_like(v) for k, v in p.items()}
                t[wk][j] = p[wk][j]
                t[bk][j] = p[bk][j]
                self.model._outgoing(t, layer)[:, j, :] = -self.model._outgoing(p, layer)[:, j, :]
                cols.append(self.model.flatten(t))
        return np.stack(cols, axis=1)

    def canonical_scales(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per hidden layer, the factors that make every unit's incoming vector (filter and bias) unit-norm,
        layer after layer (each layer's input side already divided by the previous layer's factors); ones for
        activations without rescaling, and for units whose incoming vector is zero."""
        if self.model.activation not in PIECEWISE_LINEAR:
            return tuple(np.ones(w) for w in self.model.hidden_widths)
        p = self.model.unflatten(theta)
        scales, carry = [], None
        for layer in range(len(self.model.hidden_widths)):
            V = self.model._incoming(p, layer)
            if carry is not None:  # this layer's input side, grouped by the previous layer's units
                prev = self.model.hidden_widths[layer - 1]
                Wp = V[:, :-1].reshape(V.shape[0], prev, -1) / carry[None, :, None]
                V = np.concatenate([Wp.reshape(V.shape[0], -1), V[:, -1:]], axis=1)
            norm = np.linalg.norm(V, axis=1)
            c = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 1.0)
            scales.append(c)
            carry = c
        return tuple(scales)

    def balance(self, theta: np.ndarray) -> np.ndarray:
        """The canonical representative under rescaling (relu, leaky_relu): every channel's / hidden unit's
        incoming vector unit-norm, its factor pushed into the next layer, from the first layer up; θ otherwise.
        theta : [P] (or [N, P])."""
        theta = np.asarray(theta, dtype=np.float64)
        if self.model.activation not in PIECEWISE_LINEAR:
            return theta.copy()
        if theta.ndim == 2:
            return np.stack([self.balance(t) for t in theta]) if len(theta) else theta.copy()
        c = self.canonical_scales(theta)
        return self.act(theta, GroupElement(tuple(np.arange(w) for w in self.model.hidden_widths), c))

    def align(self, theta: np.ndarray, theta_ref: np.ndarray):
        """(g·θ as close to θ_ref as the exact symmetries allow, g).

        Both are balanced (rescaling removed, relu / leaky_relu); then, hidden layer by hidden layer from the
        first conv stage up, θ's units are matched to θ_ref's by ``scipy.optimize.linear_sum_assignment`` on
        the squared distance of unit features — the incoming vector (with the previous layers' matching
        already applied to its input side) and the norm of the outgoing slice — sign-aware where sign flips
        hold.  g composes the balancing, the matching and θ_ref's gauge (for relu, every unit's incoming
        scale equal to θ_ref's), and is applied to the original θ; so act(θ_ref, h) aligns back to θ_ref.

        theta, theta_ref : [P];  returns (aligned [P], GroupElement g with act(θ, g) = aligned)
        """
        from scipy.optimize import linear_sum_assignment

        theta = np.asarray(theta, dtype=np.float64)
        theta_ref = np.asarray(theta_ref, dtype=np.float64)
        c_theta, c_ref = self.canonical_scales(theta), self.canonical_scales(theta_ref)
        cur, ref = self.model.unflatten(self.balance(theta)), self.model.unflatten(self.balance(theta_ref))
        perms, factors = [], []
        for layer, (w, flip) in enumerate(zip(self.model.hidden_widths, self._flips())):
            A, B = self._features(cur, layer), self._features(ref, layer)
            plus = ((B[:, None, :] - A[None, :, :]) ** 2).sum(-1)  # [ref unit i, candidate j]
            sign_of = np.ones_like(plus)
            if flip:
                neg = np.ones(A.shape[1])
                neg[:-1] = -1.0  # the outgoing norm does not change sign with the unit
                minus = ((B[:, None, :] - neg * A[None, :, :]) ** 2).sum(-1)
                sign_of = np.where(minus < plus, -1.0, 1.0)
                plus = np.minimum(plus, minus)
            rows, cols = linear_sum_assignment(plus)
            perm = cols[np.argsort(rows)]
            sign = sign_of[np.arange(w), perm]
            step = self.identity()
            step = GroupElement(tuple(perm if i == layer else q for i, q in enumerate(step.perms)),
                                   tuple(sign if i == layer else f for i, f in enumerate(step.factors)))
            cur = self.model.unflatten(self.act(self.model.flatten(cur), step))
            perms.append(perm)
            factors.append(c_theta[layer][perm] * sign / c_ref[layer])
        g = GroupElement(tuple(perms), tuple(factors))
        return self.act(theta, g), g

    def _features(self, p: dict, layer: int) -> np.ndarray:
        """[w, fan_in + 2]: each unit's incoming vector and the norm of its outgoing slice."""
        out_norm = np.sqrt((self.model._outgoing(p, layer) ** 2).sum((0, 2)))
        return np.concatenate([self.model._incoming(p, layer), out_norm[:, None]], axis=1)



@dataclass(frozen=True)
class CNN(Model):
    """Images [C, H, W] (stored flat) → conv stages ``channels`` → dense hidden ``dense`` → d_out."""

    input_shape: tuple[int, int, int]
    channels: tuple[int, ...]
    kernel_size: int = 5
    padding: int = 0
    pool: str = "max"
    pool_size: int = 2
    dense: tuple[int, ...] = ()
    d_out: int = 1
    activation: str = "relu"
    negative_slope: float = 0.01
    kind: str = "cnn"

    symmetry_class = CNNSymmetry
    CONFIG_KEYS = ("channels", "kernel_size", "padding", "pool", "pool_size", "dense", "activation",
                   "negative_slope", "input_shape")

    def __post_init__(self):
        shape = _int_tuple("input_shape", self.input_shape, allow_empty=False)
        if len(shape) != 3:
            raise ConfigError(f"cnn: input_shape must be [channels, height, width], got {list(shape)}")
        set_ = object.__setattr__
        set_(self, "input_shape", shape)
        set_(self, "channels", _int_tuple("channels", self.channels, allow_empty=False))
        set_(self, "dense", _int_tuple("dense", self.dense, allow_empty=True))
        set_(self, "kernel_size", _positive_int("kernel_size", self.kernel_size))
        set_(self, "padding", _positive_int("padding", self.padding, minimum=0))
        set_(self, "pool_size", _positive_int("pool_size", self.pool_size))
        set_(self, "d_out", _positive_int("d_out", self.d_out))
        if self.pool not in POOLS:
            raise ConfigError(f"cnn: unknown pool '{self.pool}' (choose from: {', '.join(POOLS)})")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"cnn: unknown activation '{self.activation}' (choose from: {', '.join(ACTIVATIONS)})")
        try:
            set_(self, "negative_slope", float(self.negative_slope))
        except (TypeError, ValueError):
            raise ConfigError(f"cnn: negative_slope must be a number, got {self.negative_slope!r}") from None
        self.spatial_sizes()  # raises when an image shrinks below 1×1

    # --- layout -------------------------------------------------------------------------------------------
    def spatial_sizes(self) -> list[tuple[int, int]]:
        """(height, width) after each conv stage's pooling; ConfigError naming the stage when one is < 1."""
        h, w = self.input_shape[1:]
        k, p, q = self.kernel_size, self.padding, self.pool_size
        out = []
        for s in range(len(self.channels)):
            ch, cw = h + 2 * p - k + 1, w + 2 * p - k + 1
            if ch < 1 or cw < 1:
                raise ConfigError(f"cnn: stage {s + 1} conv (kernel {k}, padding {p}) on a {h}×{w} image gives "
                                  f"{ch}×{cw}: the image shrinks below 1×1 (use fewer stages, a smaller "
                                  f"kernel_size or more padding)")
            ph, pw = (ch // q, cw // q) if self.pool != "none" else (ch, cw)
            if ph < 1 or pw < 1:
                raise ConfigError(f"cnn: stage {s + 1} {self.pool} pooling (size {q}) of its {ch}×{cw} conv output "
                                  f"gives {ph}×{pw}: the image shrinks below 1×1 (use fewer stages, a smaller "
                                  f"pool_size or more padding)")
            out.append((ph, pw))
            h, w = ph, pw
        return out

    @property
    def flat_dim(self) -> int:
        """Features after the last stage's flatten: c_S · H' · W'."""
        h, w = self.spatial_sizes()[-1]
        return self.channels[-1] * h * w

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """Units per hidden layer: the conv stages' channels, then the dense hidden widths."""
        return (*self.channels, *self.dense)

    def _shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        k = self.kernel_size
        out = []
        for s, (a, b) in enumerate(zip([self.input_shape[0], *self.channels[:-1]], self.channels)):
            out += [(f"stages.{s}.conv.weight", (b, a, k, k)), (f"stages.{s}.conv.bias", (b,))]
        widths = [self.flat_dim, *self.dense]
        for d, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            out += [(f"dense.{d}.fc.weight", (b, a)), (f"dense.{d}.fc.bias", (b,))]
        return out + [("out.weight", (self.d_out, widths[-1])), ("out.bias", (self.d_out,))]

    def _keys(self, layer: int) -> tuple[str, str, str]:
        """(incoming weight, incoming bias, outgoing weight) keys of hidden layer ``layer`` (0-based)."""
        S = len(self.channels)

        def w(i):
            if i < S:
                return f"stages.{i}.conv"
            return f"dense.{i - S}.fc" if i < S + len(self.dense) else "out"
        return w(layer) + ".weight", w(layer) + ".bias", w(layer + 1) + ".weight"

    def _incoming(self, p: dict, layer: int) -> np.ndarray:
        """[w, fan_in + 1]: each unit's incoming weights (filter flattened) and bias."""
        wk, bk, _ = self._keys(layer)
        W = p[wk]
        return np.concatenate([W.reshape(W.shape[0], -1), p[bk][:, None]], axis=1)

    def _outgoing(self, p: dict, layer: int) -> np.ndarray:
        """[o, w, r]: the next layer's weights grouped by this layer's unit (view of p's array)."""
        O = p[self._keys(layer)[2]]
        return O.reshape(O.shape[0], self.hidden_widths[layer], -1)

    @property
    def out_dim(self) -> int:
        return self.d_out

    @property
    def in_dim(self) -> int:
        C, H, W = self.input_shape
        return C * H * W

    def module(self, theta=None) -> torch.nn.Module:
        return self._loaded(CNNModule(self), theta)

    def describe(self) -> str:
        shape = "×".join(str(v) for v in self.input_shape)
        conv = f"conv{list(self.channels)} k{self.kernel_size}" + (f" p{self.padding}" if self.padding else "")
        conv += f" {self.pool}{self.pool_size}" if self.pool != "none" else " nopool"
        dense = f" → dense{list(self.dense)}" if self.dense else ""
        return f"{self.activation} CNN {shape} → {conv}{dense} → {self.d_out}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "channels": list(self.channels),
                "kernel_size": self.kernel_size, "padding": self.padding, "pool": self.pool,
                "pool_size": self.pool_size, "dense": list(self.dense), "d_out": self.d_out,
                "activation": self.activation, "negative_slope": self.negative_slope}

    @classmethod
    def from_dict(cls, d: dict) -> CNN:
        known = ("input_shape", "channels", "kernel_size", "padding", "pool", "pool_size", "dense", "d_out",
                 "activation", "negative_slope")
        args = {k: d[k] for k in known if k in d}
        for k in ("input_shape", "channels", "dense"):
            if k in args and isinstance(args[k], list):
                args[k] = tuple(args[k])
        return cls(**args)

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int, input_shape: tuple[int, ...] | None = None) -> CNN:
        """The CNN of a resolved ``[model]`` table (keys :attr:`CONFIG_KEYS`; None = not given, the default)."""
        given = {k: m[k] for k in cls.CONFIG_KEYS if m.get(k) is not None}
        shape = given.pop("input_shape", None)
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ConfigError(f"cnn: the data are {d_in} flat features; set [model] input_shape = [C, H, W] "
                              f"(C·H·W = {d_in})")
        if "channels" not in given:
            raise ConfigError("cnn: set [model] channels, the output channels of each conv stage (e.g. [6, 16])")
        dims = list(shape) if isinstance(shape, (list, tuple)) else None
        if dims is not None and len(dims) == 3 and all(isinstance(v, (int, np.integer)) for v in dims):
            C, H, W = (int(v) for v in dims)
            if C * H * W != d_in:  # checked before the stage sizes: a wrong shape explains those too
                raise ConfigError(f"cnn: [model] input_shape {[C, H, W]} has C·H·W = {C}·{H}·{W} = {C * H * W} "
                                  f"features but the data have d_in = {d_in}")
        return cls(input_shape=shape, d_out=d_out, **given)

    # --- representations ----------------------------------------------------------------------------------
    def representation_points(self) -> list[tuple[str, str]]:
        """Each conv stage's pooled output (``conv1``, …) and each dense hidden activation (``dense1``, …)."""
        return ([(f"conv{s + 1}", f"stages.{s}") for s in range(len(self.channels))]
                + [(f"dense{d + 1}", f"dense.{d}") for d in range(len(self.dense))])

    def dead_units(self, theta: np.ndarray, X: np.ndarray) -> list[int]:
        """Per hidden layer (conv stages, then dense hidden layers), the channels / units whose post-activation
        is constant over every input (and, for a channel, every position) of X: zero everywhere for relu."""
        net = self.module(torch.as_tensor(theta, dtype=torch.float64))
        acts = [s.act for s in net.stages] + [d.act for d in net.dense]
        got: list[torch.Tensor] = []
        hooks = [a.register_forward_hook(lambda _m, _i, o: got.append(o)) for a in acts]
        try:
            with torch.no_grad():
                net(torch.as_tensor(X, dtype=torch.float64))
        finally:
            for h in hooks:
                h.remove()
        out = []
        for h in got:
            per_unit = h.transpose(0, 1).reshape(h.shape[1], -1)  # [units, n·positions]
            out.append(int((per_unit.max(1).values == per_unit.min(1).values).sum()))
        return out

    def activation_pattern(self, theta: np.ndarray, X: torch.Tensor) -> np.ndarray | None:
        """The linear piece θ sits on at each input (relu, leaky_relu; None otherwise), as one flat bool array:
        per stage the sign of every conv pre-activation (z > 0) and, with max pooling, which positions win
        their window; then the sign of every dense hidden pre-activation."""
        if self.activation not in PIECEWISE_LINEAR:
            return None
        net = self.module(torch.as_tensor(theta, dtype=torch.float64))
        parts = []
        with torch.no_grad():
            h = net.image(torch.as_tensor(X, dtype=torch.float64))
            for st in net.stages:
                z = st.conv(h)
                parts.append(z > 0)
                a = st.act(z)
                if self.pool == "max":
                    q = self.pool_size
                    h, idx = torch.nn.functional.max_pool2d(a, q, stride=q, return_indices=True)
                    win = torch.zeros_like(a, dtype=torch.bool).flatten(2)
                    win.scatter_(2, idx.flatten(2), True)
                    parts.append(win)
                else:
                    h = st.pool(a)
            h = h.flatten(1)
            for d in net.dense:
                z = d.fc(h)
                parts.append(z > 0)
                h = d.act(z)
        return np.concatenate([t.numpy().ravel() for t in parts])


__all__ = ["CNN", "CNNModule", "CNNSymmetry"]
