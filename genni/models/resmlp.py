r"""kind = "resmlp": a residual MLP.

    h_0 = W_in x + b_in                                   (width-changing input layer, d_in → w)
    h_b = h_{b−1} + W2_b σ(W1_b h_{b−1} + b1_b) + b2_b    (block b = 1..B, hidden width m)
    f   = W_out h_B + b_out                               (output layer, w → K)

θ is ``parameters_to_vector`` of :class:`ResMLPModule`: in.weight, in.bias, then per block
fc1.weight, fc1.bias, fc2.weight, fc2.bias, then out.weight, out.bias.

Exact symmetries:

- inside each block, the hidden units: permutations (rows of W1, b1 and columns of W2 together),
  positive rescaling for relu / leaky_relu (row of W1 and b1 × c, column of W2 × 1/c) and sign flips
  for tanh (all three × −1);
- the residual stream: because no activation acts on the stream itself, **any** invertible A ∈ GL(w)
  is a symmetry, not only the permutations shared by all blocks:

      W_in → A W_in,  b_in → A b_in,  W1_b → W1_b A⁻¹,  W2_b → A W2_b,  b2_b → A b2_b,  W_out → W_out A⁻¹,

  since then every h_b becomes A h_b and the output is unchanged.  Its tangents (A = I + tE_ij) are
  w² vertical directions;
- translations of the stream: each bias that adds to the stream (b_in and every b2_b) may move by any
  c ∈ R^w if the later blocks and the output absorb it (b1_b' → b1_b' − W1_b' c for every later block b',
  b_out → b_out − W_out c): (B + 1)·w more vertical directions.

So the functional dimension is at most P − w² − (B + 1)·w − (B·m for relu); with d_in ≥ w and
d_out ≥ w it is exactly that at a generic θ (tested); narrower input or output layers lose more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .activations import activation_module
from .base import Model
from .symmetry import GroupElement, Symmetry

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu")


class _Block(torch.nn.Module):
    def __init__(self, width: int, hidden: int, act: torch.nn.Module):
        super().__init__()
        self.fc1 = torch.nn.Linear(width, hidden, dtype=torch.float64)
        self.fc2 = torch.nn.Linear(hidden, width, dtype=torch.float64)
        self.act = act

    def forward(self, h):
        return h + self.fc2(self.act(self.fc1(h)))


class ResMLPModule(torch.nn.Module):
    """The torch module of a :class:`ResMLP` (float64)."""

    def __init__(self, model: ResMLP):
        super().__init__()
        act = activation_module(model.activation, model.negative_slope)
        self.inp = torch.nn.Linear(model.d_in, model.width, dtype=torch.float64)
        self.blocks = torch.nn.ModuleList([_Block(model.width, model.hidden, act) for _ in range(model.blocks)])
        self.out = torch.nn.Linear(model.width, model.d_out, dtype=torch.float64)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.out(h)


class ResMLPSymmetry(Symmetry):
    """The residual MLP's exact symmetry group (see the module docstring): ``ResMLP(...).symmetry``.
    A group element holds the blocks' permutations and factors, and in ``extra`` the stream map ``A``
    [w, w] and the stream translations ``shifts`` ((B + 1) × [w])."""

    aligns = True
    model: ResMLP

    @property
    def invariances(self) -> tuple[str, ...]:
        """The stream h_b moves by any invertible A and by translations (the hidden units inside the blocks
        are not among the representations)."""
        return ("invertible_linear", "translation")

    @property
    def kinds(self) -> dict[str, bool]:
        return {"permutation": True, "rescaling": self.model.activation in ("relu", "leaky_relu"),
                "sign_flip": self.model.activation == "tanh", "stream_linear": True, "stream_translation": True}

    def sample(self, n: int, rng: np.random.Generator) -> list[GroupElement]:
        """Random (A, per-block permutations, per-block factors): A = Q·diag(e^s) with Q orthogonal,
        s ~ N(0, 0.3²) (well conditioned); factors e^{N(0, 0.5²)} (relu), ±1 (tanh), 1 (gelu)."""
        out = []
        for _ in range(n):
            Q, R = np.linalg.qr(rng.normal(size=(self.model.width, self.model.width)))
            A = (Q * np.sign(np.diag(R))) @ np.diag(np.exp(rng.normal(0, 0.3, self.model.width)))
            perms = [rng.permutation(self.model.hidden) for _ in range(self.model.blocks)]
            if self.kinds["rescaling"]:
                factors = [np.exp(rng.normal(0, 0.5, self.model.hidden)) for _ in range(self.model.blocks)]
            elif self.model.activation == "tanh":
                factors = [rng.choice([-1.0, 1.0], self.model.hidden) for _ in range(self.model.blocks)]
            else:
                factors = [np.ones(self.model.hidden) for _ in range(self.model.blocks)]
            shifts = [rng.normal(0, 0.5, self.model.width) for _ in range(self.model.blocks + 1)]
            out.append(GroupElement(tuple(perms), tuple(factors), {"A": A, "shifts": shifts}))
        return out

    def act(self, theta: np.ndarray, g) -> np.ndarray:
        """g·θ for g with perms B × [m], factors B × [m] and extra {"A": [w, w], "shifts": (B + 1) × [w]}
        (``None``, or an element without ``A``: the identity on the stream): the translations, then A, then each
        block's permutation and factors."""
        if g is None:
            return np.array(theta, dtype=np.float64, copy=True)
        p = self.model.unflatten(theta)
        for stage, c in enumerate(g.extra.get("shifts", ())):  # translations first (stage 0: b_in, stage b: b2_b)
            self._translate(p, stage, np.asarray(c, dtype=np.float64))
        A = np.asarray(g.extra.get("A", np.eye(self.model.width)), dtype=np.float64)
        Ainv = np.linalg.inv(A)
        p["inp.weight"], p["inp.bias"] = A @ p["inp.weight"], A @ p["inp.bias"]
        for b, (perm, c) in enumerate(zip(g.perms, g.factors)):
            k = f"blocks.{b}."
            W1, b1, W2 = p[k + "fc1.weight"] @ Ainv, p[k + "fc1.bias"], A @ p[k + "fc2.weight"]
            p[k + "fc1.weight"] = c[:, None] * W1[perm]
            p[k + "fc1.bias"] = c * b1[perm]
            p[k + "fc2.weight"] = W2[:, perm] / c[None, :]
            p[k + "fc2.bias"] = A @ p[k + "fc2.bias"]
        p["out.weight"] = p["out.weight"] @ Ainv
        return self.model.flatten(p)

    def _translate(self, p: dict, stage: int, c: np.ndarray, sign: float = 1.0) -> None:
        """Move the stream bias of ``stage`` by c and absorb it downstream, in place (linear in c)."""
        p["inp.bias" if stage == 0 else f"blocks.{stage - 1}.fc2.bias"] += c
        for b in range(stage, self.model.blocks):
            p[f"blocks.{b}.fc1.bias"] -= p[f"blocks.{b}.fc1.weight"] @ c
        p["out.bias"] -= p["out.weight"] @ c

    def identity(self, **parts) -> GroupElement:
        """The identity; keyword ``A``, ``shifts``, ``perms`` or ``factors`` replace that part of it."""
        g = {"A": np.eye(self.model.width), "perms": [np.arange(self.model.hidden)] * self.model.blocks,
             "factors": [np.ones(self.model.hidden)] * self.model.blocks,
             "shifts": [np.zeros(self.model.width)] * (self.model.blocks + 1)}
        g = {**g, **parts}
        return GroupElement(tuple(g["perms"]), tuple(g["factors"]), {"A": g["A"], "shifts": g["shifts"]})

    def align(self, theta: np.ndarray, theta_ref: np.ndarray):
        """g·θ brought to θ_ref's gauge, stage by stage (if θ = g'·θ_ref exactly, the result is θ_ref):

        1. the stream map: A minimising Σ_b ‖A (h_b − mean h_b) − (h*_b − mean h*_b)‖² over the residual
           stream's states h_0 … h_B on fixed inputs (N(0, I), 4·w of them, seeded): every stream
           symmetry moves h_b to A h_b + a constant, so this is exact for a planted copy and, for any
           other θ, the linear map that best explains its stream by θ_ref's (identity if singular);
        2. the input translation c₀ = b_in* − b_in;
        3. per block b: its hidden units matched to θ_ref's by ``scipy.optimize.linear_sum_assignment`` on
           the distances of their incoming vectors (W1 row, b1), direction only for relu / leaky_relu
           (then scaled to θ_ref's norms), up to sign for tanh; then the block's stream translation
           c_b = b2_b* − b2_b.

        theta, theta_ref : [P];  returns : (aligned θ [P], the list of group elements applied in turn)
        """
        from scipy.optimize import linear_sum_assignment

        w = self.model.width
        cur = np.asarray(theta, dtype=np.float64)
        r = self.model.unflatten(theta_ref)
        x = torch.as_tensor(np.random.default_rng(0).normal(size=(max(64, 4 * w), self.model.d_in)))
        with torch.no_grad():
            H = [self.model.layers(torch.as_tensor(t), x)[1][1:-1] for t in (cur, theta_ref)]
        mine, ref = (np.concatenate([(h - h.mean(0)).numpy() for h in hs]) for hs in H)  # [(B + 1)·n, w]
        A = np.linalg.lstsq(mine, ref, rcond=None)[0].T
        if not np.isfinite(A).all() or np.linalg.cond(A) > 1e12:
            A = np.eye(w)
        applied = [self.identity(A=A)]
        cur = self.act(cur, applied[-1])
        shift = [np.zeros(w)] * (self.model.blocks + 1)
        applied.append(self.identity(shifts=[r["inp.bias"] - self.model.unflatten(cur)["inp.bias"], *shift[1:]]))
        cur = self.act(cur, applied[-1])
        rescale = self.kinds["rescaling"]
        flips = self.kinds["sign_flip"]
        for b in range(self.model.blocks):
            k = f"blocks.{b}."
            p = self.model.unflatten(cur)
            mine = np.column_stack([p[k + "fc1.weight"], p[k + "fc1.bias"]])
            ref = np.column_stack([r[k + "fc1.weight"], r[k + "fc1.bias"]])
            nm, nr = np.linalg.norm(mine, axis=1), np.linalg.norm(ref, axis=1)
            if rescale:
                mine_f = mine / np.maximum(nm, 1e-300)[:, None]
                ref_f = ref / np.maximum(nr, 1e-300)[:, None]
            else:
                mine_f, ref_f = mine, ref
            cost = ((ref_f[:, None, :] - mine_f[None, :, :]) ** 2).sum(-1)  # [ref unit, my unit]
            if flips:
                cost = np.minimum(cost, ((ref_f[:, None, :] + mine_f[None, :, :]) ** 2).sum(-1))
            _, perm = linear_sum_assignment(cost)
            if rescale:
                factors = nr / np.maximum(nm[perm], 1e-300)
            elif flips:
                same = ((ref_f - mine_f[perm]) ** 2).sum(1) <= ((ref_f + mine_f[perm]) ** 2).sum(1)
                factors = np.where(same, 1.0, -1.0)
            else:
                factors = np.ones(self.model.hidden)
            perms = [np.arange(self.model.hidden)] * self.model.blocks
            fac = [np.ones(self.model.hidden)] * self.model.blocks
            perms[b], fac[b] = perm, factors
            applied.append(self.identity(perms=perms, factors=fac))
            cur = self.act(cur, applied[-1])
            sh = [np.zeros(w)] * (self.model.blocks + 1)
            sh[b + 1] = r[k + "fc2.bias"] - self.model.unflatten(cur)[k + "fc2.bias"]
            applied.append(self.identity(shifts=sh))
            cur = self.act(cur, applied[-1])
        return cur, applied

    def tangents(self, theta: np.ndarray) -> np.ndarray:
        """Columns [P, w² + (B + 1)·w (+ B·m for relu)]: d/dt at t = 0 of A = I + tE_ij acting on θ (the
        stream), of each stream translation e_i, then of each hidden unit's rescaling c = 1 + t (relu)."""
        p = self.model.unflatten(theta)
        cols = []
        w = self.model.width
        for i in range(w):
            for j in range(w):
                E = np.zeros((w, w))
                E[i, j] = 1.0
                t = {k: np.zeros_like(v) for k, v in p.items()}
                t["inp.weight"], t["inp.bias"] = E @ p["inp.weight"], E @ p["inp.bias"]
                for b in range(self.model.blocks):
                    k = f"blocks.{b}."
                    t[k + "fc1.weight"] = -p[k + "fc1.weight"] @ E
                    t[k + "fc2.weight"] = E @ p[k + "fc2.weight"]
                    t[k + "fc2.bias"] = E @ p[k + "fc2.bias"]
                t["out.weight"] = -p["out.weight"] @ E
                cols.append(self.model.flatten(t))
        for stage in range(self.model.blocks + 1):  # translations: linear in c, so the tangent is the move itself
            for i in range(w):
                t = {k: np.zeros_like(v) if not k.endswith("weight") else v for k, v in p.items()}
                self._translate(t, stage, np.eye(w)[i])
                cols.append(self.model.flatten({k: (v if not k.endswith("weight") else np.zeros_like(v))
                                          for k, v in t.items()}))
        if self.kinds["rescaling"]:
            for b in range(self.model.blocks):
                k = f"blocks.{b}."
                for u in range(self.model.hidden):
                    t = {key: np.zeros_like(v) for key, v in p.items()}
                    t[k + "fc1.weight"][u] = p[k + "fc1.weight"][u]
                    t[k + "fc1.bias"][u] = p[k + "fc1.bias"][u]
                    t[k + "fc2.weight"][:, u] = -p[k + "fc2.weight"][:, u]
                    cols.append(self.model.flatten(t))
        return np.stack(cols, axis=1)


@dataclass(frozen=True)
class ResMLP(Model):
    """d_in → width, ``blocks`` residual blocks of hidden width ``hidden``, → d_out."""

    d_in: int
    width: int
    hidden: int
    blocks: int
    d_out: int
    activation: str = "relu"
    negative_slope: float = 0.01
    kind: str = "resmlp"

    symmetry_class = ResMLPSymmetry

    def __post_init__(self):
        for k in ("d_in", "width", "hidden", "blocks", "d_out"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"resmlp: {k} must be a positive integer, got {getattr(self, k)!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"resmlp: unknown activation '{self.activation}' (choose from: {', '.join(ACTIVATIONS)})")

    CONFIG_KEYS = ("width", "hidden", "blocks", "activation", "negative_slope")

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int, input_shape=None) -> ResMLP:
        kw = {k: m[k] for k in ("width", "hidden", "blocks", "activation", "negative_slope") if m.get(k) is not None}
        kw.setdefault("width", 16)
        kw.setdefault("hidden", 16)
        kw.setdefault("blocks", 2)
        return cls(d_in=d_in, d_out=d_out, **kw)

    @property
    def in_dim(self) -> int:
        return self.d_in

    def describe(self) -> str:
        return (f"{self.activation} residual MLP {self.d_in} → {self.width} × {self.blocks} blocks "
                f"(hidden {self.hidden}) → {self.d_out}")

    def representation_points(self) -> list[tuple[str, str]]:
        """The residual stream: h_0 after the input layer, then h_b after each block."""
        return [("h0", "inp"), *[(f"h{b + 1}", f"blocks.{b}") for b in range(self.blocks)]]

    def dead_units(self, theta: np.ndarray, X: np.ndarray) -> list[int]:
        """Per block, hidden units whose activation is constant on every input."""
        net = self.module(theta)
        out = []
        with torch.no_grad():
            h = net.inp(torch.as_tensor(X, dtype=torch.float64))
            for blk in net.blocks:
                a = blk.act(blk.fc1(h))
                out.append(int((a.std(0) == 0).sum()))
                h = blk(h)
        return out

    # --- layout -------------------------------------------------------------------------------------
    def _shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        w, m = self.width, self.hidden
        out = [("inp.weight", (w, self.d_in)), ("inp.bias", (w,))]
        for b in range(self.blocks):
            out += [(f"blocks.{b}.fc1.weight", (m, w)), (f"blocks.{b}.fc1.bias", (m,)),
                    (f"blocks.{b}.fc2.weight", (w, m)), (f"blocks.{b}.fc2.bias", (w,))]
        return out + [("out.weight", (self.d_out, w)), ("out.bias", (self.d_out,))]

    @property
    def out_dim(self) -> int:
        return self.d_out

    def module(self, theta=None) -> torch.nn.Module:
        return self._loaded(ResMLPModule(self), theta)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "d_in": self.d_in, "width": self.width, "hidden": self.hidden,
                "blocks": self.blocks, "d_out": self.d_out, "activation": self.activation,
                "negative_slope": self.negative_slope}

    @classmethod
    def from_dict(cls, d: dict) -> ResMLP:
        known = ("d_in", "width", "hidden", "blocks", "d_out", "activation", "negative_slope")
        return cls(**{k: d[k] for k in known if k in d})

__all__ = ["ResMLP", "ResMLPModule", "ResMLPSymmetry"]
