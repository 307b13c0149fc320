"""The interface every architecture ("kind") implements; every stage talks to a model through it.

A model is a frozen description (JSON-serialisable, stored as the ``architecture`` attribute of
``/reference/theta``) of a torch module whose parameters, flattened as
``torch.nn.utils.parameters_to_vector`` lays them out, are θ (shape [P]).  It provides

- ``module(theta)`` — the equivalent ``torch.nn.Module`` in float64 (the oracle for everything else);
- ``forward(theta, X)`` — outputs of N parameter vectors at once (θ [N, P] → [N, n, K]);
- ``jvp`` / ``vjp`` / ``jacobian`` / ``jtj_diagonal`` — output-Jacobian products J·v, Jᵀ·u, the full J
  (small P) and diag(JᵀJ), for the matrix-free and direct LM steps and the functional dimension;
- ``kinks`` — the pre-activations at relu kinks and products with their Jacobian (walks on the faces);
- ``symmetry`` — the exact symmetry group as one object (:mod:`genni.models.symmetry`): which
  symmetries exist, random group elements, their action on θ, the tangents of the continuous ones at θ
  (the vertical space that J annihilates), alignment and the canonical section;
- ``to_dict`` / ``from_dict`` — the JSON description.

:class:`Model` implements the Jacobian products generically through ``torch.func`` (``functional_call``
of ``module()`` with ``vmap``, ``jvp``, ``vjp``), so a new kind needs only ``module``, ``n_params``, its
JSON and its symmetry class; a kind with a faster closed form (the MLP) overrides them.  Every registered
kind must pass the model and symmetry contracts in ``tests/contracts/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import GenniError
from .symmetry import Symmetry


@dataclass(frozen=True)
class Kinks:
    """The pre-activations at the kinks of a piecewise-linear activation at one θ, and products with their
    Jacobian G = ∂z/∂θ without forming it (one row per (unit, input) pair, in :meth:`Model.preactivation_jacobian`'s
    order).

    z : Tensor, shape [M]
    jvp : v ↦ G·v, Tensor [P] → [M] (forward mode)
    rows : idx ↦ G[idx], Tensor [k] (int64) → [k, P] (only the rows asked for)
    unit_rows_of : idx ↦ :meth:`unit_rows` in a kind's closed form (None: from ``rows``)
    """

    z: torch.Tensor
    jvp: Callable[[torch.Tensor], torch.Tensor]
    rows: Callable[[torch.Tensor], torch.Tensor]
    unit_rows_of: Callable[[torch.Tensor], torch.Tensor] | None = None

    def unit_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """C [m, P] with CᵀC = Σ_{i ∈ idx} g_i g_iᵀ / ‖g_i‖², the Gram matrix of the rows g_i = G[i] scaled to unit
        length (rows of norm 0 left out): those rows themselves, or fewer in a kind's closed form (the MLP's:
        a few per unit and linear region).  idx : Tensor, shape [k] (int64, distinct)"""
        if self.unit_rows_of is not None:
            return self.unit_rows_of(idx)
        G = self.rows(idx)
        norms = torch.linalg.vector_norm(G, dim=1, keepdim=True)
        return G / torch.where(norms > 0, norms, torch.ones_like(norms))


class Model:
    """Base of every architecture kind (see the module docstring).  Subclasses are frozen dataclasses."""

    kind: ClassVar[str] = ""

    # --- what every kind must provide ---------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """P, the length of θ (default: from :meth:`_shapes`)."""
        return sum(int(np.prod(sh)) for _, sh in self._shapes())

    @staticmethod
    def _loaded(net: torch.nn.Module, theta=None) -> torch.nn.Module:
        """``net`` with θ [P] copied into its parameters (unchanged when θ is None)."""
        if theta is not None:
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(torch.as_tensor(theta, dtype=torch.float64), net.parameters())
        return net

    @property
    def out_dim(self) -> int:
        """K, outputs per input."""
        raise NotImplementedError

    def module(self, theta: torch.Tensor | None = None) -> torch.nn.Module:
        """The equivalent torch module in float64, optionally loaded with θ (shape [P])."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-ready description including ``kind``."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        raise NotImplementedError

    symmetry_class: ClassVar[type[Symmetry]] = Symmetry
    """The kind's symmetry group (:class:`~genni.models.symmetry.Symmetry` subclass: the trivial group here)."""

    @property
    def symmetry(self) -> Symmetry:
        """The exact symmetry group acting on θ, as one object: sample, act, tangents (the vertical space),
        horizontal projection, align, balance (the canonical section), invariances."""
        return self.symmetry_class(self)

    # --- what a kind may provide (generic defaults below) ---------------------------------------------
    @property
    def in_dim(self) -> int:
        """d_in, input features per example as stored (images flattened C·H·W, row-major)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short phrase for logs, reports and plot titles, e.g. ``relu MLP [2, 16, 16, 1]``."""
        return f"{self.kind} model, {self.n_params} parameters"

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int, input_shape: tuple[int, ...] | None = None) -> Model:
        """The model a resolved ``[model]`` table describes, for d_in input features (``input_shape`` when
        the data are images) and d_out outputs; raises ``ConfigError`` naming a key that does not fit."""
        raise NotImplementedError

    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ()
    """The ``[model]`` keys (besides ``kind``) this kind reads; another kind's keys are refused."""

    def representation_points(self) -> list[tuple[str, str]]:
        """(name, submodule path) pairs whose outputs are the hidden representations, in order (the input
        and the output are added by :meth:`layers`).  Default: every top-level child but the last."""
        names = [k for k, _ in self.module().named_children()]
        return [(k, k) for k in names[:-1]]

    def layer_names(self, preactivations: bool = False) -> list[str]:
        """Names of the representations :meth:`layers` returns: ``input``, hidden ones, ``output``."""
        return ["input", *[n for n, _ in self.representation_points()], "output"]

    def layers(self, theta: torch.Tensor, X: torch.Tensor, preactivations: bool = False):
        """Outputs and every representation along the way (paths, Ricci), each flattened per input.

        theta : Tensor, shape [N, P] (or [P]);  X : Tensor, shape [n, d_in]
        returns : (out [N, n, K], list of [N, n, d_l], one per :meth:`layer_names`) ([P]: without N)

        Generic: forward hooks on :meth:`representation_points` inside ``functional_call`` under
        ``vmap``; the hooked outputs are returned from the vmapped function, so nothing leaks out of it.
        """
        from torch.func import functional_call

        net = self.module()
        subs = dict(net.named_modules())
        points = [subs[path] for _, path in self.representation_points()]
        shapes = [(k, tuple(p.shape)) for k, p in net.named_parameters()]

        def f(th):
            got: list = []
            hooks = [m.register_forward_hook(lambda _m, _i, o: got.append(o.reshape(o.shape[0], -1)))
                     for m in points]
            try:
                out = functional_call(net, split_theta(th, shapes), (X,))
            finally:
                for h in hooks:
                    h.remove()
            return (out, *got)

        res = f(theta) if theta.dim() == 1 else torch.vmap(f)(theta)
        out, reps = res[0], list(res[1:])
        inp = X.reshape(X.shape[0], -1)
        inp = inp if theta.dim() == 1 else inp.expand(theta.shape[0], *inp.shape)
        return out, [inp, *reps, out]

    def forward_combination(self, stack: torch.Tensor, coeffs: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Outputs of θ_i = Σ_j coeffs[i, j]·stack[j] (points of an affine subspace).
        stack : [J, P];  coeffs : [m, J];  X : [n, d_in] → [m, n, K].  Generic: forms each θ_i."""
        return self.forward(coeffs @ stack, X)

    def filter_groups(self) -> list[tuple[slice, int, slice | None]]:
        """(weight slice, number of filters, bias slice or None) per weight tensor, for filter-normalised
        directions (one filter = one output unit or channel: a row of the weight reshaped [out, -1]).
        Generic: from ``named_parameters``; a bias is the 1-D tensor right after its weight."""
        out, o = [], 0
        items = [(k, p.shape) for k, p in self.module().named_parameters()]
        offs = []
        for _, sh in items:
            offs.append(o)
            o += int(np.prod(sh)) if len(sh) else 1
        for i, (_k, sh) in enumerate(items):
            if len(sh) < 2:
                continue
            ws = slice(offs[i], offs[i] + int(np.prod(sh)))
            bs = None
            if i + 1 < len(items) and len(items[i + 1][1]) == 1 and items[i + 1][1][0] == sh[0]:
                bs = slice(offs[i + 1], offs[i + 1] + sh[0])
            out.append((ws, int(sh[0]), bs))
        return out

    def centre_biases(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """θ [P] with the bias of every weighted layer but the last shifted so that each of its output units
        (a channel, for a convolution: over inputs and positions) has pre-activation median 0 on X [n, d_in].

        Layer by layer in θ's order (each shift changes what the next layer sees); a relu unit is then
        active on about half of X, so a random teacher has no dead and no always-on units.  Generic: a
        forward hook on the module owning each weight of :meth:`filter_groups` (a module called twice:
        its first call).  Weights are unchanged, so only the biases move."""
        theta = torch.as_tensor(theta, dtype=torch.float64).clone()
        X = torch.as_tensor(X, dtype=torch.float64)
        owner, o = {}, 0
        for name, p in self.module().named_parameters():
            owner[o] = name.rpartition(".")[0]
            o += p.numel()
        for ws, n_out, bs in self.filter_groups()[:-1]:
            if bs is None:
                continue
            net = self.module(theta)
            got: list[torch.Tensor] = []
            hook = dict(net.named_modules())[owner[ws.start]].register_forward_hook(
                lambda _m, _i, out, got=got: got.append(out))
            try:
                with torch.no_grad():
                    net(X)
            finally:
                hook.remove()
            z = got[0].transpose(0, 1).reshape(n_out, -1)  # [units, n·positions]
            theta[bs] -= z.median(dim=1).values
        return theta.numpy()

    def expected_rank(self, n_rows: int | None = None) -> int:
        """Upper bound on rank J at a generic θ: P minus the rank of the declared tangents at a random
        θ (so a kind declaring nothing gets P), capped by the number of rows n·K."""
        g = torch.Generator().manual_seed(0)
        T = self.symmetry.tangents(self.init_theta(1, g)[0].numpy())
        r = int(np.linalg.matrix_rank(T)) if T.shape[1] else 0
        bound = self.n_params - r
        return bound if n_rows is None else min(bound, n_rows)

    def dead_units(self, theta: np.ndarray, X: np.ndarray) -> list[int]:
        """Per hidden layer, units (or channels) that are zero on every input; default: none known."""
        return []

    def preactivation_jacobian(self, theta: np.ndarray, X: torch.Tensor):
        """(z [M], G [M, P]): every pre-activation at a kink of a piecewise-linear activation and its
        gradient in θ, as a dense matrix (the oracle of :meth:`kinks`); ``None`` when the kind has none."""
        return None

    def kinks(self, theta: torch.Tensor, X: torch.Tensor) -> Kinks | None:
        """The pre-activations z [M] at θ [P] of every (unit, input) pair of a piecewise-linear activation and
        products with their Jacobian G = ∂z/∂θ [M, P] (:class:`Kinks`), for walks that stay on the relu
        faces; ``None`` when the kind has none."""
        return None

    def _state_target(self) -> torch.nn.Module:
        """The module a state_dict is loaded into (its buffers stay there)."""
        return self.module()

    def load_state_dict(self, state: str | Path | Mapping) -> np.ndarray:
        """θ [P] (float64) from a state_dict, in memory or in a file saved with ``torch.save`` (a plain
        state_dict, or a dict holding it under ``"state_dict"``, loaded with ``weights_only=True``);
        buffers are set on :meth:`_state_target`.

        Matched by key, strictly (a ``module.`` prefix from DataParallel is dropped).  When the keys differ
        but the module holds parameters only and the state_dict's tensors have, in order, exactly the
        module's shapes (a custom module with the same layers), they are taken by position.  Otherwise
        ``GenniError`` with one line naming what does not fit (missing, unexpected or misshapen keys), as
        for NaN or infinite weights."""
        source = "state_dict"
        if isinstance(state, (str, Path)):
            source = f"state_dict {state}"
            state = read_state_dict(Path(state))
        state = dict(state)
        net = self._state_target()
        want = net.state_dict()
        if set(state) != set(want) and all(k.startswith("module.") for k in state) \
                and {k[len("module."):] for k in state} == set(want):  # saved from DataParallel
            state = {k[len("module."):]: v for k, v in state.items()}
        n_params = sum(1 for _ in net.parameters())
        if set(state) != set(want) and len(want) == n_params == len(state) \
                and all(isinstance(v, torch.Tensor) for v in state.values()) \
                and [tuple(v.shape) for v in state.values()] == [tuple(v.shape) for v in want.values()]:
            state = dict(zip(want, state.values()))  # by position: same layers under other names
        missing = [k for k in want if k not in state]
        extra = [k for k in state if k not in want]
        misshapen = [k for k in want if k in state and isinstance(want[k], torch.Tensor)
                     and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(want[k].shape))]

        def few(keys, show=lambda k: k):
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            return ", ".join(show(k) for k in keys[:3]) + more

        problems = []
        if missing:
            problems.append(f"missing key(s) {few(missing)}")
        if extra:
            problems.append(f"unexpected key(s) {few(extra)}")
        if misshapen:
            def show(k):
                got = _shape(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
                return f"{k} {got} where the module has {_shape(want[k].shape)}"
            problems.append(f"wrong shape(s) {few(misshapen, show)}")
        if problems:
            raise GenniError(f"{source} does not fit {self.describe()}: {'; '.join(problems)}")
        conv = {k: (v.detach().to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                for k, v in state.items()}
        try:
            with torch.no_grad():
                net.load_state_dict(conv, strict=True)
        except Exception as exc:
            raise GenniError(f"{source} does not fit {self.describe()}: {_first_line(exc)}") from None
        theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone().numpy()
        if not np.isfinite(theta).all():
            raise GenniError(f"{source} contains NaN or infinite weights")
        return theta

    def activation_pattern(self, theta: np.ndarray, X: torch.Tensor) -> np.ndarray | None:
        """Which side of its kink every piecewise-linear pre-activation is on (bool, flattened), to count
        the walk's pattern changes; ``None`` when the kind does not say."""
        return None

    thread_safe: ClassVar[bool] = False
    """True when :meth:`forward` and :meth:`jacobian` may run in several threads at once (they share no
    mutable state); the search then evaluates its elements on worker threads (:mod:`genni.search.batching`)."""

    revivable: ClassVar[bool] = False
    """True when the search may re-draw dead units (:meth:`dead_mask`, :meth:`revive`; the relu MLP)."""

    def dead_mask(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """dead[b, u] : [N, H] for every revivable unit u: inactive on all of X (H = 0 by default)."""
        return torch.zeros(theta.shape[0], 0, dtype=torch.bool, device=theta.device)

    def may_have_dead_units(self, J: torch.Tensor) -> bool:
        """From the output Jacobian J [n·K, P] at θ: False only where no unit can be dead (a dead unit's
        parameters get no gradient, so some columns of J are exactly 0); True where :meth:`dead_mask` must
        decide.  Default: True."""
        return True

    def revive(self, theta: torch.Tensor, dead: torch.Tensor, gens: list) -> torch.Tensor:
        """θ [N, P] with every dead unit re-drawn from its row's generator in ``gens`` (None: untouched)."""
        return theta

    # --- generic implementations through torch.func -------------------------------------------------
    def init_theta(self, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        """n random θ [n, P] drawn as ``torch.nn.Linear`` / ``Conv`` initialise by default, times ``scale``:
        every weight and the bias after it uniform on ±scale/√fan_in (fan_in of that weight)."""
        theta = torch.empty(n, self.n_params, dtype=torch.float64)
        o, fan_in = 0, 1
        for _, p in self.module().named_parameters():
            if p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:]))
            m = p.numel()
            bound = scale / np.sqrt(fan_in)
            theta[:, o:o + m] = (torch.rand(n, m, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            o += m
        return theta

    def products(self, theta: torch.Tensor, X: torch.Tensor):
        """(v ↦ J·v, u ↦ Jᵀ·u) at a fixed θ [N, P], for many products at one point (the matrix-free LM
        step); a kind may share work between them (the MLP caches its forward pass)."""
        return (lambda v: self.jvp(theta, X, v)), (lambda u: self.vjp(theta, X, u))

    def _functional_module(self) -> torch.nn.Module:
        """The module ``functional_call`` runs (a kind holding a cached module returns that, uncopied)."""
        return self.module()

    def _functional(self, X: torch.Tensor):
        """θ [P] -> outputs [n, K] through ``functional_call`` of :meth:`_functional_module`."""
        from torch.func import functional_call

        net = self._functional_module()
        shapes = [(k, tuple(p.shape)) for k, p in net.named_parameters()]
        return lambda th: functional_call(net, split_theta(th, shapes), (X,))

    def _shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every parameter tensor in θ's order (``named_parameters`` of the module)."""
        return [(k, tuple(p.shape)) for k, p in self.module().named_parameters()]

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named float64 copies of the tensors in θ [P]."""
        return {k: np.array(v, dtype=np.float64) for k, v in split_theta(np.asarray(theta), self._shapes()).items()}

    def flatten(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """θ [P] from named tensors (the inverse of :meth:`unflatten`)."""
        return np.concatenate([np.asarray(parts[k]).reshape(-1) for k, _ in self._shapes()])

    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """theta : Tensor, shape [N, P] (or [P]);  X : Tensor, shape [n, ...]
        returns : Tensor, shape [N, n, K] (or [n, K])"""
        f = self._functional(X)
        return f(theta) if theta.dim() == 1 else torch.vmap(f)(theta)

    def jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """J·v.  theta, v : [N, P] → [N, n, K]"""
        from torch.func import jvp

        f = self._functional(X)
        return torch.vmap(lambda t, u: jvp(f, (t,), (u,))[1])(theta, v)

    def forward_jvp(self, theta: torch.Tensor, X: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, J·v) from one pass.  theta, v : [N, P] → ([N, n, K], [N, n, K])"""
        from torch.func import jvp

        f = self._functional(X)
        return torch.vmap(lambda t, u: jvp(f, (t,), (u,)))(theta, v)

    def vjp(self, theta: torch.Tensor, X: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Jᵀ·u.  theta : [N, P], u : [N, n, K] → [N, P]"""
        from torch.func import vjp

        f = self._functional(X)
        return torch.vmap(lambda t, w: vjp(f, t)[1](w)[0])(theta, u)

    def jvp_at(self, theta: torch.Tensor, X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """J·v for many v at one θ.  theta : [P];  V : [b, P] → [b, n, K].  Generic: vmap over the tangents
        only, so the weights stay unbatched (a convolution's batched tangent folds into its channels; with θ
        batched too it becomes a grouped convolution, about 2× slower at LeNet size)."""
        from torch.func import jvp

        f = self._functional(X)
        return torch.vmap(lambda u: jvp(f, (theta,), (u,))[1])(V)

    def vjp_at(self, theta: torch.Tensor, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """Jᵀ·u for many u at one θ.  theta : [P];  U : [b, n, K] → [b, P].  Generic: one forward pass,
        its pullback vmapped over the cotangents."""
        from torch.func import vjp

        _, pull = vjp(self._functional(X), theta)
        return torch.vmap(lambda w: pull(w)[0])(U)

    #: rows of J (inputs × outputs) per reverse-mode pass in :meth:`jacobian` and :meth:`jtj_diagonal`
    JACOBIAN_CHUNK_ROWS = 64

    def _jacobian_chunks(self, theta: torch.Tensor, X: torch.Tensor):
        """J [N, c, K, P] for consecutive chunks of c = ⌈64 / K⌉ inputs (reverse mode), or one J over all
        inputs by forward mode when P ≤ c·K.  Chunking matters: one reverse pass over all n inputs carries
        n·K cotangents through a batch of n inputs (work ∝ n²), and forward mode through float64 CPU
        convolutions is slow; at the LeNet default size (P = 1,322, 160 inputs, K = 10) the full J takes
        0.3 s for 4 networks where one unchunked ``jacfwd`` took 12–18 s.  The chunks are exact: each
        input's rows depend on that input only (genni evaluates modules in ``eval`` mode; a module that
        couples the inputs of a batch is not supported)."""
        from torch.func import jacfwd, jacrev

        K = self.out_dim
        c = max(1, -(-self.JACOBIAN_CHUNK_ROWS // K))
        if theta.shape[-1] <= c * K:
            yield torch.vmap(jacfwd(self._functional(X)))(theta)
            return
        for i in range(0, X.shape[0], c):
            yield torch.vmap(jacrev(self._functional(X[i:i + c])))(theta)

    def jacobian(self, theta: torch.Tensor, X: torch.Tensor, out: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(f [N, n, K], J [N, n, K, P]), assembled from :meth:`_jacobian_chunks`; J written into ``out``
        (contiguous, [N, n, K, P]) when given."""
        chunks = list(self._jacobian_chunks(theta, X))
        return self.forward(theta, X), (torch.cat(chunks, dim=1) if out is None else torch.cat(chunks, dim=1, out=out))

    def reduced_jacobian(self, theta: torch.Tensor, X: torch.Tensor, residual: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(C [m, P], b [m]): the output Jacobian J [n·K, P] at θ [P] as J = U C for some U [n·K, m] with
        orthonormal columns, and b = Uᵀ r for the residual r [n, K] (None: b is None).  Then CᵀC = JᵀJ and
        ‖Jδ − r‖² = ‖Cδ − b‖² + ‖r − UUᵀr‖²: C has J's singular values and right singular vectors, and least
        squares in C solves the one in J.  A kind may make m < n·K (the relu MLP: a few rows per linear
        region); default: C = J, b = r."""
        J = self.jacobian(theta[None], X)[1][0]
        return J.reshape(-1, J.shape[-1]), (None if residual is None else residual.reshape(-1))

    def jtj_diagonal(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """diag(JᵀJ) [N, P] = Σ_rows J², accumulated chunk by chunk (memory N·c·K·P, never the whole J)."""
        d = torch.zeros_like(theta)
        for J in self._jacobian_chunks(theta, X):
            d += (J * J).sum((1, 2))
        return d


def module_to_theta(module: torch.nn.Module) -> torch.Tensor:
    """θ of a torch module (a detached copy of ``parameters_to_vector``), shape [P]."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def split_theta(theta, shapes: list[tuple[str, tuple[int, ...]]]) -> dict:
    """Named views into θ [P] (tensor or array), tensor by tensor in ``shapes`` order."""
    parts, o = {}, 0
    for k, sh in shapes:
        n = int(np.prod(sh)) if len(sh) else 1
        parts[k] = theta[o:o + n].reshape(sh)
        o += n
    return parts


def read_state_dict(p: Path) -> dict:
    """The state_dict a ``torch.save`` file holds (a plain one, or a dict holding it under
    ``"state_dict"``), loaded with ``weights_only=True``; ``GenniError`` with one line otherwise."""
    if not p.is_file():
        raise GenniError(f"reference file not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or refused file
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        first = (text.strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:200]
        why = re.search(r"Unsupported global: GLOBAL (\S+)", text)  # torch's refusal runs on for paragraphs
        first += f" (it pickles {why.group(1)}, which weights_only=True refuses)" if why else ""
        raise GenniError(f"cannot load reference state_dict from {p}: {first}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise GenniError(f"reference file {p} does not hold a state_dict (got a {type(state).__name__})")
    return state


def _shape(t) -> str:
    return "[" + ", ".join(str(int(s)) for s in t) + "]"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    msg = lines[0] if lines else ""
    return f"{type(exc).__name__}: {msg}"[:240] if msg else type(exc).__name__


__all__ = ["Kinks", "Model", "module_to_theta", "read_state_dict", "split_theta"]
