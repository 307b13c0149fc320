"""Stage ``ricci``: Ricci flow along the layers (Baptista et al. 2024) of the reference and its equivalents.

For every network m and layer l the kNN graph G_{m,l} of the same inputs; Ric_{m,l} = total edge
curvature, g_{m,l} = Wiener index (Σ of hop counts over pairs), η_{m,l} = g_{m,l+1} − g_{m,l}, and the
Ricci flow coefficient ρ_m = Pearson(Ric_{m,·}, η_{m,·}) over the layer pairs of ``pairing``
(:mod:`genni.geometry.ricci`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import models, report, store
from ..errors import ConfigError, GenniError
from ..geometry import ricci as R
from ..progress import bar
from .common import Log, Result, need_choice, need_int, networks, quiet, writes

SUFFIX_DEFAULTS = (("connectivity", "mst"), ("mode", "or"), ("pairing", "forward"), ("inputs", "probe"))
"""Options named in the group's name only when they differ from these."""


def parse_k(k) -> int | float:
    """``k`` as a neighbour count (a whole number ≥ 1) or a fraction of the points (in (0, 1))."""
    try:
        v = float(k)
    except (TypeError, ValueError):
        raise ConfigError(f"--k must be a neighbour count (e.g. 10) or a fraction of the points (e.g. 0.02), "
                          f"got '{k}'") from None
    if v >= 1 and v == int(v):
        return int(v)
    if 0 < v < 1:
        return v
    raise ConfigError(f"--k must be a whole count ≥ 1 or a fraction in (0, 1), got '{k}'")


@dataclass(frozen=True)
class RicciOptions:
    """What ``ricci`` computes.

    k : neighbours, a count (10) or a fraction of the points (0.02), as a number or text
    mode : kNN symmetrisation (:data:`genni.geometry.ricci.MODES`)
    curvature : forman | augmented | ollivier;  alpha : Ollivier idleness in [0, 1) (required with ollivier)
    connectivity : mst | none | harmonic;  pairing : forward | shifted | same
    include_output : the output layer is part of the layer sequence
    inputs : probe | heldout;  max_networks : the reference + up to max_networks − 1 converged elements
    max_inputs : points per graph;  n_boot : bootstrap resamples for the intervals
    """

    k: int | float | str = 10
    mode: str = "or"
    curvature: str = "forman"
    alpha: float | None = None
    connectivity: str = "mst"
    pairing: str = "forward"
    include_output: bool = True
    inputs: str = "probe"
    max_networks: int = 32
    max_inputs: int = 512
    n_boot: int = 1000

    def __post_init__(self):
        need_choice("mode", self.mode, R.MODES)
        need_choice("curvature", self.curvature, R.CURVATURES)
        need_choice("connectivity", self.connectivity, R.CONNECTIVITY)
        need_choice("pairing", self.pairing, R.PAIRINGS)
        need_choice("inputs", self.inputs, ("probe", "heldout"))
        if R.CURVATURES[self.curvature].needs_alpha and self.alpha is None:
            raise ConfigError("Ollivier curvature needs --alpha (0 = uniform on the neighbours, 0.5 = lazy random walk)")
        if self.alpha is not None and not 0 <= self.alpha < 1:
            raise ConfigError(f"--alpha must lie in [0, 1), got {self.alpha}")
        if self.alpha is not None and not R.CURVATURES[self.curvature].needs_alpha:
            raise ConfigError(f"--alpha is the Ollivier idleness: it applies to --curvature ollivier, not "
                              f"{self.curvature}")
        need_int("--max-networks", self.max_networks, 1)
        need_int("--max-inputs", self.max_inputs, 4)
        need_int("--bootstrap", self.n_boot, 0)
        parse_k(self.k)

    @property
    def neighbours(self) -> int | float:
        """``k`` parsed: a count or a fraction of the points."""
        return parse_k(self.k)

    def name(self, k_used: int) -> str:
        """The group under /ricci: ``<curvature>_k<k>`` and each option that differs from its default."""
        suffix = "".join(f"_{getattr(self, o)}" for o, d in SUFFIX_DEFAULTS if getattr(self, o) != d)
        return f"{self.curvature}_k{k_used}{suffix}" + ("" if self.include_output else "_nooutput")

    def attrs(self) -> dict:
        """The options as the group's attributes, with the definitions of the choices."""
        return {"k_requested": str(self.k), "mode": self.mode, "curvature": self.curvature,
                "alpha": float("nan") if self.alpha is None else float(self.alpha), "connectivity": self.connectivity,
                "pairing": self.pairing, "inputs": self.inputs, "n_boot": self.n_boot,
                "curvature_definition": R.CURVATURES[self.curvature].definition,
                "connectivity_definition": R.CONNECTIVITY[self.connectivity],
                "pairing_definition": R.PAIRINGS[self.pairing]}


@dataclass(frozen=True, repr=False)
class RicciResult(Result):
    """The headline of ``ricci``: the group name, k used, the choices, layers, networks M and inputs n,
    the flow sign, the reference's coefficient (ρ, pairs, reason, interval) with its per-layer curvature,
    Wiener index, graph components and mean local ρ, the pooled coefficient over the networks, how many
    networks have ρ defined, their median ρ and the most graph components anywhere."""

    headline = staticmethod(report.format_ricci)

    name: str
    k: int
    curvature: str
    connectivity: str
    mode: str
    pairing: str
    layers: list
    n_networks: int
    n_inputs: int
    flow_sign: float
    reference: dict
    pooled: dict
    rho_defined: int
    median_rho: float
    max_components: int


def done(run: store.RunData) -> bool:
    """The run holds a Ricci flow result."""
    return bool(run.ricci)


def _coefficient(c: R.Coefficient) -> dict:
    return {"rho": c.rho, "n": c.n, "reason": c.reason, "ci": list(c.ci)}


@writes("ricci")
def run(path: str | Path, options: RicciOptions = RicciOptions(), *, progress: bool = False,
        log: Log = quiet) -> RicciResult:
    """Ricci flow along the layers into ``/ricci/<name>`` (:meth:`RicciOptions.name`).

    For every network m and layer l (input, each hidden post-activation, the output unless
    ``include_output`` is False) the kNN graph G_{m,l} of the same ``max_inputs`` probe (or held-out)
    points; ρ_m over the pairs of ``pairing``; pooled ρ over all (layer, network) pairs; local ρ(x) per
    point; every coefficient with its count and a bootstrap interval.  Stored: ``curvature``, ``wiener``,
    ``components``, ``n_edges`` [M, L]; ``eta`` [M, L−1]; ``rho``, ``rho_n`` [M], ``rho_ci`` [M, 2],
    ``rho_reason`` [M] (bytes); ``local_rho`` [M, n]; ``local_mean`` [M], ``local_ci`` [M, 2]; ``layer_rho``
    [M, P] with ``pairs`` [P, 2]; for drawing: ``positions`` [n, 2] (the inputs, or their first two principal
    components), the reference's graphs ``ref_edges`` [E, 3] (layer, i, j) and ``ref_edge_curvature`` [E];
    attributes name every choice and the pooled coefficient.
    """
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    rows, thetas = networks(stored, options.max_networks)
    X = (stored.X if options.inputs == "probe" else stored.X_heldout)[:options.max_inputs]
    n = len(X)
    try:
        k_used = R.resolve_k(options.neighbours, n)
    except ValueError as exc:
        raise GenniError(str(exc)) from None
    with torch.no_grad():
        _, reps = model.layers(torch.as_tensor(thetas), torch.as_tensor(X))
    reps = [r.numpy() for r in (reps if options.include_output else reps[:-1])]
    if not all(np.isfinite(r).all() for r in reps):
        raise GenniError("a representation is not finite (NaN or inf): cannot build kNN graphs")
    names = model.layer_names()[: len(reps)]
    M = len(thetas)
    nets = bar([[r[m] for r in reps] for m in range(M)], progress=progress,
               desc=f"ricci ({options.curvature}, k={k_used})", unit="net")
    pooled_all = R.ricci_pooled(nets, k_used, mode=options.mode, curvature=options.curvature, alpha=options.alpha,
                                connectivity=options.connectivity, pairing=options.pairing, n_boot=options.n_boot,
                                seed=int(stored.attrs.get("seed", 0)))
    results, pooled, used = pooled_all.results, pooled_all.coefficient, pooled_all.used
    ref = results[0]
    edges = [np.column_stack([np.full(len(e), l), e]) for l, (e, _) in enumerate(ref.edges)]
    if X.shape[1] == 2:
        positions = X
    else:
        from sklearn.decomposition import PCA
        positions = PCA(n_components=2).fit_transform(X) if X.shape[1] > 2 else np.column_stack([X[:, 0], np.zeros(n)])
    coef = [r.coefficient for r in results]
    arrays = {
        "curvature": pooled_all.curvature, "wiener": pooled_all.wiener, "components": pooled_all.components,
        "n_edges": np.stack([r.n_edges for r in results]),
        "eta": np.stack([r.eta for r in results]),
        "rho": np.array([c.rho for c in coef]), "rho_n": np.array([c.n for c in coef]),
        "rho_ci": np.array([c.ci for c in coef]), "rho_reason": np.array([c.reason for c in coef], dtype="S"),
        "local_rho": np.stack([r.local_rho for r in results]),
        "local_reason": np.stack([r.local_reason for r in results]).astype("S"),
        "local_mean": np.array([r.local_summary.rho for r in results]),
        "local_ci": np.array([r.local_summary.ci for r in results]),
        "layer_rho": np.array([[c.rho for c in r.layer_rho] for r in results]).reshape(M, -1),
        "pairs": ref.pairs, "elements": rows, "positions": positions, "pooled_used": used,
        "ref_edges": np.concatenate(edges).astype(np.int64),
        "ref_edge_curvature": np.concatenate([v for _, v in ref.edges]),
        "ref_node_curvature": ref.node_curvature,
    }
    name = options.name(k_used)
    attrs = {**options.attrs(), "k": k_used, "layers": json.dumps(names), "n_inputs": n, "n_networks": M,
             "flow_sign": ref.flow_sign, "level": pooled.level,
             **{f"pooled_{k}": v for k, v in _coefficient(pooled).items()}, "pooled_networks": int(used.sum()),
             "note": "row m is network m (0 = the reference θ*, then the listed elements); column l is layer l"}
    _write(path, name, arrays, attrs)
    rho = arrays["rho"]
    return RicciResult(
        name=name, k=k_used, curvature=options.curvature, connectivity=options.connectivity, mode=options.mode,
        pairing=options.pairing, layers=names, n_networks=M, n_inputs=n, flow_sign=ref.flow_sign,
        reference={**_coefficient(ref.coefficient), "rho": ref.rho, "reason": ref.reason,
                   "curvature": ref.curvature.tolist(), "wiener": ref.wiener.tolist(),
                   "components": ref.components.tolist(), "local_mean": ref.local_summary.rho},
        pooled={**_coefficient(pooled), "networks": int(used.sum())},
        rho_defined=int(np.isfinite(rho).sum()),
        median_rho=float(np.nanmedian(rho)) if np.isfinite(rho).any() else float("nan"),
        max_components=int(arrays["components"].max()))


def _write(path: str | Path, name: str, arrays: dict, attrs: dict) -> None:
    """The Ricci flow result into ``/ricci/<name>``."""
    store.write_group(path, f"ricci/{name}", arrays, attrs)


def arguments(parser) -> None:
    """``genni ricci``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--k", default="10",
                        help="neighbours: a count (10) or a fraction of the points (0.02); default 10")
    parser.add_argument("--mode", default="or", help="kNN symmetrisation: or (default) | and | directed")
    parser.add_argument("--curvature", default="forman", help="forman (default) | augmented | ollivier")
    parser.add_argument("--alpha", type=float, help="Ollivier idleness (required with ollivier: 0 uniform, 0.5 lazy)")
    parser.add_argument("--connectivity", default="mst",
                        help="mst (default: kNN ∪ Euclidean MST) | none (the published recipe; ρ undefined if a graph "
                             "falls apart) | harmonic (Σ 1/γ)")
    parser.add_argument("--pairing", default="forward",
                        help="forward (default: Ric_l with g_{l+1} − g_l) | shifted | same")
    parser.add_argument("--no-output", action="store_true", help="leave the output layer out of the layer sequence")
    parser.add_argument("--inputs", default="probe", help="probe (default) | heldout")
    parser.add_argument("--max-networks", type=int, default=32, help="reference + up to N−1 converged elements")
    parser.add_argument("--max-inputs", type=int, default=512, help="points per graph")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")


def from_args(args) -> tuple[str, RicciOptions]:
    return args.run, RicciOptions(k=args.k, mode=args.mode, curvature=args.curvature, alpha=args.alpha,
                                  connectivity=args.connectivity, pairing=args.pairing,
                                  include_output=not args.no_output, inputs=args.inputs,
                                  max_networks=args.max_networks, max_inputs=args.max_inputs, n_boot=args.bootstrap)
