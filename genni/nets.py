"""Architecture specs and the batched forward pass over many parameter vectors.

An :class:`MLPSpec` names an MLP ``Linear, act, Linear, act, ..., Linear`` by its
widths ``(w_0, ..., w_L)`` and activation.  :func:`forward` evaluates N parameter
vectors at once (θ of shape ``[N, P]``, layout of :mod:`genni.params`) as one
tensor program of batched matrix products, and :func:`jacobian` gives the exact
output Jacobian ∂f_θ(x)/∂θ in closed form, layer by layer, for all N at once.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from . import params
from .errors import ConfigError
from .models.base import Model

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class MLPSpec(Model):
    """A fully connected network ``Linear, act, ..., Linear`` (no activation on the output).

    widths : (w_0, ..., w_L): input size, hidden widths, output size
    activation : one of :data:`ACTIVATIONS`
    negative_slope : slope of leaky_relu for z < 0 (torch's default 0.01)
    bias : layers with biases (``Linear(bias=False)`` when false, as GENNI's toy network)
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    kind: str = "mlp"
    negative_slope: float = 0.01
    bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.kind != "mlp":
            raise ConfigError(f"unknown model kind '{self.kind}' (supported: mlp)")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation '{self.activation}' (choose from: {', '.join(ACTIVATIONS)})")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ConfigError(f"model widths must be at least two positive integers, got {list(self.widths)}")

    @property
    def n_params(self) -> int:
        """P, the length of θ."""
        return params.n_params(self.widths, self.bias)

    @property
    def n_layers(self) -> int:
        """L, the number of Linear layers."""
        return len(self.widths) - 1

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.widths[1:-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    def to_json(self) -> str:
        """JSON holding ``kind``, ``widths``, ``activation`` (and the slope, and ``bias``)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> MLPSpec:
        known = {"widths", "activation", "kind", "negative_slope", "bias"}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> MLPSpec:
        return cls.from_dict(json.loads(text))

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    # the model interface (genni.models.base.Model) in closed form
    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return forward(self, theta, X)

    def jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return jvp(self, theta, X, v)

    def jvp_at(self, theta: torch.Tensor, X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return jvp(self, theta.expand(V.shape[0], -1), X, V)  # the closed form is cheap with θ batched

    def vjp_at(self, theta: torch.Tensor, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        return vjp(self, theta.expand(U.shape[0], -1), X, U)

    def vjp(self, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return vjp(self, theta, X, u)

    def jacobian(self, theta: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return jacobian(self, theta, X)

    def jtj_diagonal(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return jtj_diagonal(self, theta, X)

    @property
    def revivable(self) -> bool:  # relu with at least one hidden layer: dead units can be re-drawn
        return self.activation == "relu" and self.n_layers >= 2

    def init_theta(self, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        return init_theta(self, n, generator, scale)

    def products(self, theta: torch.Tensor, X: torch.Tensor):
        cache = forward_cache(self, theta, X)
        return (lambda v: jvp(self, theta, X, v, cache=cache)), (lambda u: vjp(self, theta, X, u, cache=cache))

    def symmetry_kinds(self) -> dict[str, bool]:
        from . import symmetries

        return symmetries.symmetry_kinds(self)

    def sample_symmetries(self, n: int, rng: np.random.Generator) -> list:
        from . import symmetries

        return symmetries.sample(self, n, rng)

    def act(self, theta: np.ndarray, g) -> np.ndarray:
        from . import symmetries

        return symmetries.act(self, theta, g)

    def symmetry_tangents(self, theta: np.ndarray) -> np.ndarray:
        """Positive rescaling of each hidden unit (relu, leaky_relu); none otherwise."""
        from . import identifiability

        if self.activation not in ("relu", "leaky_relu"):
            return np.zeros((self.n_params, 0))
        return identifiability.rescaling_directions(self, theta)

    CONFIG_KEYS = ("widths", "activation", "negative_slope", "bias")

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int, input_shape=None) -> MLPSpec:
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

    @property
    def in_dim(self) -> int:
        return self.widths[0]

    def describe(self) -> str:
        return f"{self.activation} MLP {list(self.widths)}"

    def layers(self, theta: torch.Tensor, X: torch.Tensor, preactivations: bool = False):
        return forward(self, theta, X, layers=True, preactivations=preactivations)

    def layer_names(self, preactivations: bool = False) -> list[str]:
        return layer_names(self, preactivations)

    def forward_combination(self, stack: torch.Tensor, coeffs: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return forward_combination(self, stack, coeffs, X)

    def filter_groups(self) -> list:
        return [(s.weight, s.shape[0], s.bias if self.bias else None)
                for s in params.layer_slices(self.widths, self.bias)]

    aligns = True

    def align(self, theta: np.ndarray, theta_ref: np.ndarray):
        from . import symmetries

        return symmetries.align(self, theta, theta_ref)

    def balance(self, theta: np.ndarray) -> np.ndarray:
        from . import symmetries

        return symmetries.balance(self, theta)

    def expected_rank(self, n_rows: int | None = None) -> int:
        """relu / leaky_relu: P − (number of hidden units); otherwise P (generic full rank); ≤ n·K rows."""
        bound = self.n_params - (sum(self.hidden_widths) if self.activation in ("relu", "leaky_relu") else 0)
        return bound if n_rows is None else min(bound, n_rows)

    def dead_units(self, theta: np.ndarray, X: np.ndarray) -> list[int]:
        """Per hidden layer, units whose post-activation is constant on every input (zero for relu)."""
        with torch.no_grad():
            _, reps = forward(self, torch.as_tensor(theta), torch.as_tensor(X), layers=True)
        return [int((h.std(0) == 0).sum()) for h in reps[1:-1]]

    def dead_mask(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return dead_mask(self, theta, X)

    def revive(self, theta: torch.Tensor, dead: torch.Tensor, gens: list) -> torch.Tensor:
        return revive(self, theta, dead, gens)

    def activation_pattern(self, theta: np.ndarray, X: torch.Tensor) -> np.ndarray | None:
        if self.activation not in ("relu", "leaky_relu"):
            return None
        with torch.no_grad():
            _, reps = forward(self, torch.as_tensor(theta), X, layers=True, preactivations=True)
        return np.concatenate([(z > 0).numpy().ravel() for z in reps[1:-1:2]])

    def preactivation_jacobian(self, theta: np.ndarray, X: torch.Tensor):
        if self.activation not in ("relu", "leaky_relu"):
            return None
        return preactivation_jacobian(self, theta, X)

    def load_state_dict(self, path) -> np.ndarray:
        """θ* from a state_dict whose tensors have, in order, the Sequential's shapes (any key names, so a
        custom module with the same layers loads too); one-line errors name what does not fit."""
        from pathlib import Path

        from .errors import GenniError
        from .models.base import read_state_dict

        p = Path(path)
        theta = params.state_dict_to_theta(read_state_dict(p), self.widths, self.bias)
        if not torch.isfinite(theta).all():
            raise GenniError(f"reference file {p} contains NaN or infinite weights")
        return theta.numpy()

    def module(self, theta: torch.Tensor | None = None) -> torch.nn.Sequential:
        """The equivalent ``torch.nn.Sequential`` in float64, optionally loaded with θ (shape [P])."""
        layers: list[torch.nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            if i > 0:
                layers.append(_module_activation(self))
            layers.append(torch.nn.Linear(d_in, d_out, bias=self.bias, dtype=torch.float64))
        net = torch.nn.Sequential(*layers)
        if theta is not None:
            params.theta_to_module_(theta, net)
        return net


def _module_activation(spec: MLPSpec) -> torch.nn.Module:
    return {
        "relu": torch.nn.ReLU,
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
        "gelu": torch.nn.GELU,
    }.get(spec.activation, lambda: torch.nn.LeakyReLU(spec.negative_slope))()


def activate(spec: MLPSpec, z: torch.Tensor) -> torch.Tensor:
    """σ(z) elementwise, exactly as the torch.nn module computes it."""
    a = spec.activation
    if a == "relu":
        return torch.relu(z)
    if a == "leaky_relu":
        return torch.nn.functional.leaky_relu(z, spec.negative_slope)
    if a == "tanh":
        return torch.tanh(z)
    if a == "sigmoid":
        return torch.sigmoid(z)
    return torch.nn.functional.gelu(z)


def activate_with_derivative(spec: MLPSpec, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ(z), σ'(z)); at the ReLU kink z = 0 the derivative is taken as 0, as autograd does."""
    a = spec.activation
    if a == "relu":
        pos = z > 0
        return torch.relu(z), pos.to(z.dtype)
    if a == "leaky_relu":
        s = spec.negative_slope
        d = torch.full_like(z, s).masked_fill_(z > 0, 1.0)
        return torch.nn.functional.leaky_relu(z, s), d
    if a == "tanh":
        t = torch.tanh(z)
        return t, 1.0 - t * t
    if a == "sigmoid":
        s = torch.sigmoid(z)
        return s, s * (1.0 - s)
    cdf = 0.5 * (1.0 + torch.erf(z * _SQRT_HALF))
    pdf = torch.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return z * cdf, cdf + z * pdf


def _as_batch(theta: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if theta.dim() == 1:
        return theta.unsqueeze(0), True
    if theta.dim() != 2:
        raise ValueError(f"theta must have shape [P] or [N, P], got {tuple(theta.shape)}")
    return theta, False


def _linear(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # h : [n, in] (shared by all N) or [N, n, in]; W : [N, out, in]; b : [N, out] -> [N, n, out]
    return torch.baddbmm(b.unsqueeze(1), h.expand(W.shape[0], *h.shape[-2:]), W.transpose(1, 2))


def forward(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor, *, layers: bool = False,
            preactivations: bool = False):
    """Outputs of N networks on the same inputs.

    theta : Tensor, shape [N, P] (or [P], giving outputs of shape [n, w_L])
    X : Tensor, shape [n, w_0]
    returns : Tensor, shape [N, n, w_L]; with ``layers=True`` also the list of
        post-activation representations ``[X, h_1, ..., h_{L-1}, f]``, each [N, n, w_l];
        with ``preactivations=True`` as well, every hidden pre-activation z_l = W_l h_{l−1} + b_l
        goes before its h_l: ``[X, z_1, h_1, ..., z_{L-1}, h_{L-1}, f]`` (names from
        :func:`layer_names`)
    """
    th, single = _as_batch(theta)
    h = X
    reps = [X.expand(th.shape[0], *X.shape)] if layers else None
    Ws = params.unflatten(th, spec.widths, spec.bias)
    for i, (W, b) in enumerate(Ws):
        z = _linear(h, W, b)
        h = z if i == len(Ws) - 1 else activate(spec, z)
        if layers:
            if preactivations and i < len(Ws) - 1:
                reps.append(z)
            reps.append(h)
    out = h[0] if single else h
    if layers:
        return out, ([r[0] for r in reps] if single else reps)
    return out


def forward_combination(spec: MLPSpec, stack: torch.Tensor, coeffs: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Outputs of the networks θ_i = Σ_j coeffs[i, j] · stack[j] (e.g. points of an affine
    subspace: stack = [origin; basis], coeffs = [1, a_1, …, a_k]) without forming each θ_i.

    Every layer's parameters are linear in θ, so W_l(θ_i) = Σ_j c_ij W_l^j.  The first layer
    uses that its input is shared: z_1(θ_i) = Σ_j c_ij (X W_1^jᵀ + b_1^j), with the J products
    computed once; each later layer forms its m weight matrices by one [m, J]·[J, in·out]
    product and applies them in a batched GEMM.  Equal to :func:`forward` at θ_i up to
    float rounding (the sums are taken in a different order).

    stack : Tensor, shape [J, P];  coeffs : Tensor, shape [m, J];  X : Tensor, shape [n, w_0]
    returns : Tensor, shape [m, n, w_L]
    """
    J, m = stack.shape[0], coeffs.shape[0]
    if coeffs.dim() != 2 or coeffs.shape[1] != J:
        raise ValueError(f"coeffs must have shape [m, {J}], got {tuple(coeffs.shape)}")
    layers = params.unflatten(stack, spec.widths, spec.bias)
    W1, b1 = layers[0]
    z1 = torch.matmul(X, W1.transpose(1, 2)) + b1.unsqueeze(1)  # [J, n, w_1]
    z = torch.matmul(coeffs, z1.reshape(J, -1)).reshape(m, X.shape[0], -1)
    for W, b in layers[1:]:
        h = activate(spec, z)
        Wt = torch.matmul(coeffs, W.transpose(1, 2).reshape(J, -1)).reshape(m, W.shape[2], W.shape[1])
        z = torch.baddbmm(torch.matmul(coeffs, b).unsqueeze(1), h, Wt)
    return z


def layer_names(spec: MLPSpec, preactivations: bool = False) -> list[str]:
    """Names of the representations :func:`forward` returns with ``layers=True``:
    ``input``, ``z1``/``h1``, …, ``output``."""
    hidden = range(1, len(spec.widths) - 1)
    mid = [n for l in hidden for n in ((f"z{l}", f"h{l}") if preactivations else (f"h{l}",))]
    return ["input", *mid, "output"]


def jacobian(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and their exact Jacobian with respect to θ, for N networks at once.

    With z_l = W_l h_{l-1} + b_l, h_l = σ(z_l), f = z_L, the sensitivity of output k,
    G_l = ∂f_k/∂z_l, obeys G_L = e_k and G_{l-1} = (W_lᵀ G_l) ⊙ σ'(z_{l-1}); then
    ∂f_k/∂W_l = G_l h_{l-1}ᵀ (an outer product) and ∂f_k/∂b_l = G_l.

    theta : Tensor, shape [N, P]
    X : Tensor, shape [n, w_0]
    returns : (f, J) with f : shape [N, n, w_L] and J : shape [N, n, w_L, P]
    """
    th, single = _as_batch(theta)
    N, n, K = th.shape[0], X.shape[0], spec.widths[-1]
    Ws, hs, dsig = forward_cache(spec, th, X)
    h = _linear(hs[-1], *Ws[-1])
    J = th.new_empty(N, n, K, th.shape[1])
    G = torch.eye(K, dtype=th.dtype, device=th.device).expand(N, n, K, K)
    for l, s in reversed(list(enumerate(params.layer_slices(spec.widths, spec.bias)))):
        if spec.bias:
            J[..., s.bias] = G
        J[..., s.weight] = (G.unsqueeze(-1) * hs[l].unsqueeze(2).unsqueeze(2)).reshape(N, n, K, -1)
        if l > 0:
            G = torch.matmul(G, Ws[l][0].unsqueeze(1)) * dsig[l - 1].unsqueeze(2)
    if single:
        return h[0], J[0]
    return h, J


def preactivation_jacobian(spec: MLPSpec, theta: np.ndarray, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Every hidden pre-activation z_lj(x) on the inputs and its gradient in θ.

    Hidden layer l's pre-activations are the outputs of the truncated network widths[:l+2] (no
    activation on its last layer), whose parameters are a prefix of θ, so the closed-form output
    Jacobian of :func:`jacobian` gives them.
    theta : [P];  X : [n, w_0]
    returns : (z : [n·H] (input-major within each layer, layers concatenated), G : [n·H, P])
    """
    zs, Gs = [], []
    th = torch.as_tensor(theta, dtype=torch.float64)
    for l in range(len(spec.hidden_widths)):
        sub = MLPSpec(spec.widths[: l + 2], spec.activation, negative_slope=spec.negative_slope, bias=spec.bias)
        f, J = jacobian(sub, th[: sub.n_params][None], X)
        zs.append(f[0].reshape(-1).numpy())
        G = np.zeros((J.shape[1] * J.shape[2], spec.n_params))
        G[:, : sub.n_params] = J[0].reshape(-1, sub.n_params).numpy()
        Gs.append(G)
    return np.concatenate(zs), np.concatenate(Gs)


def dead_mask(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """dead[b, u] for every hidden unit u (layers concatenated): z_u(x) ≤ 0 on all of X."""
    Ws = params.unflatten(theta, spec.widths, spec.bias)
    h, out = X, []
    for W, b in Ws[:-1]:
        z = torch.baddbmm(b.unsqueeze(1), h.expand(W.shape[0], *h.shape[-2:]), W.transpose(1, 2))
        out.append(~(z > 0).any(1))
        h = torch.relu(z)
    return torch.cat(out, 1)


def revive(spec: MLPSpec, theta: torch.Tensor, dead: torch.Tensor, gens: list) -> torch.Tensor:
    """θ with every dead unit re-drawn (incoming row and bias) and its outgoing column zeroed."""
    theta = theta.clone()
    slices = params.layer_slices(spec.widths, spec.bias)
    for b, g in enumerate(gens):
        if g is None:
            continue
        fresh = init_theta(spec, 1, g)[0].to(theta.device)
        off = 0
        for l, w in enumerate(spec.hidden_widths):
            s_in, s_out = slices[l], slices[l + 1]
            Wi = theta[b, s_in.weight].view(s_in.shape)
            Wo = theta[b, s_out.weight].view(s_out.shape)
            Fi = fresh[s_in.weight].view(s_in.shape)
            for j in torch.nonzero(dead[b, off:off + w]).flatten().tolist():
                Wi[j] = Fi[j]
                if spec.bias:
                    theta[b, s_in.bias.start + j] = fresh[s_in.bias.start + j]
                Wo[:, j] = 0.0
            off += w
    return theta


def forward_cache(spec: MLPSpec, th: torch.Tensor, X: torch.Tensor):
    """Layers (W_l, b_l), inputs h_{l−1} of every layer and σ'(z_l) of every hidden layer."""
    Ws = params.unflatten(th, spec.widths, spec.bias)
    hs, dsig, h = [X.expand(th.shape[0], *X.shape)], [], X
    for W, b in Ws[:-1]:
        h, d = activate_with_derivative(spec, _linear(h, W, b))
        hs.append(h)
        dsig.append(d)
    return Ws, hs, dsig


def jvp(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor, cache=None) -> torch.Tensor:
    """J·v without forming J: the directional derivative of the outputs along v (forward mode,
    layer by layer: dz_l = dW_l h_{l−1} + W_l dh_{l−1} + db_l, dh_l = σ'(z_l) ⊙ dz_l, dh_0 = 0).

    theta, v : Tensor, shape [N, P];  X : Tensor, shape [n, w_0]
    cache : :func:`forward_cache` of (θ, X), reused across many products at one θ
    returns : Tensor, shape [N, n, w_L]
    """
    Ws, hs, dsig = cache or forward_cache(spec, theta, X)
    dWs = params.unflatten(v, spec.widths, spec.bias)
    dh = None
    for l, ((W, _), (dW, db)) in enumerate(zip(Ws, dWs)):
        dz = _linear(hs[l], dW, db)
        if dh is not None:
            dz = dz + torch.bmm(dh, W.transpose(1, 2))
        dh = dz * dsig[l] if l < len(Ws) - 1 else dz
    return dh


def vjp(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor, cache=None) -> torch.Tensor:
    """Jᵀ·u without forming J (reverse mode, layer by layer: G_L = u, ∂/∂W_l = Σ_x G_l h_{l−1}ᵀ,
    ∂/∂b_l = Σ_x G_l, G_{l−1} = (G_l W_l) ⊙ σ'(z_{l−1})).

    theta : Tensor, shape [N, P];  X : Tensor, shape [n, w_0];  u : Tensor, shape [N, n, w_L]
    cache : :func:`forward_cache` of (θ, X)
    returns : Tensor, shape [N, P]
    """
    Ws, hs, dsig = cache or forward_cache(spec, theta, X)
    out = theta.new_zeros(theta.shape)
    G = u
    for l, s in reversed(list(enumerate(params.layer_slices(spec.widths, spec.bias)))):
        out[:, s.weight] = torch.bmm(G.transpose(1, 2), hs[l]).reshape(theta.shape[0], -1)
        if spec.bias:
            out[:, s.bias] = G.sum(1)
        if l > 0:
            G = torch.bmm(G, Ws[l][0]) * dsig[l - 1]
    return out


def jtj_diagonal(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """diag(JᵀJ) without forming J: for W_l[i, j], Σ_x Σ_k G_l[x, k, i]² h_{l−1}[x, j]²; for b_l[i],
    Σ_x Σ_k G_l[x, k, i]² (G_l[x, k] = ∂f_k(x)/∂z_l, one row per output k).

    theta : Tensor, shape [N, P];  X : Tensor, shape [n, w_0]
    returns : Tensor, shape [N, P]
    """
    Ws, hs, dsig = forward_cache(spec, theta, X)
    N, n, K = theta.shape[0], X.shape[0], spec.widths[-1]
    out = theta.new_zeros(theta.shape)
    G = torch.eye(K, dtype=theta.dtype, device=theta.device).expand(N, n, K, K)  # [N, n, K, w_l]
    for l, s in reversed(list(enumerate(params.layer_slices(spec.widths, spec.bias)))):
        g2 = (G * G).sum(2)  # [N, n, w_l]
        out[:, s.weight] = torch.bmm(g2.transpose(1, 2), hs[l] * hs[l]).reshape(N, -1)
        if spec.bias:
            out[:, s.bias] = g2.sum(1)
        if l > 0:
            G = torch.matmul(G, Ws[l][0].unsqueeze(1)) * dsig[l - 1].unsqueeze(2)
    return out


def init_theta(spec: MLPSpec, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Random θ as ``torch.nn.Linear`` initialises them, times ``scale``.

    Every weight and bias of layer l is uniform on ±scale/√w_{l-1} (float64).
    returns : Tensor, shape [n, P]
    """
    theta = torch.empty(n, spec.n_params, dtype=torch.float64)
    for s in params.layer_slices(spec.widths, spec.bias):
        bound = scale / math.sqrt(s.shape[1])
        for sl in (s.weight, s.bias):
            theta[:, sl] = (torch.rand(n, sl.stop - sl.start, generator=generator, dtype=torch.float64) * 2 - 1) * bound
    return theta


def element_generator(seed: int, *key: int) -> tuple[torch.Generator, int]:
    """A torch generator seeded reproducibly from ``(seed, *key)``; returns it and its 63-bit seed."""
    s = int(np.random.SeedSequence([int(seed), *map(int, key)]).generate_state(1, dtype=np.uint64)[0]) >> 1
    g = torch.Generator()
    g.manual_seed(s)
    return g, s


__all__ = ["ACTIVATIONS", "MLPSpec", "activate", "forward", "forward_combination", "layer_names", "jacobian", "jvp",
           "vjp", "forward_cache", "jtj_diagonal", "init_theta", "element_generator"]

