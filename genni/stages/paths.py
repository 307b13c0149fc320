"""Stage ``paths``: each network's layers as a path through a metric space of representations.

A network m with representations X_0 (the input), X_1, …, X_{L−1} (the output) of the same n inputs is
the path (X_0, …, X_{L−1}) under a shape metric d (:mod:`genni.geometry`); its length is
Σ_l d(X_l, X_{l+1}), its straightness d(X_0, X_{L−1}) / length, its interior angles come from log maps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import geometry, models, report, store
from ..errors import ConfigError
from ..progress import bar
from .common import Log, Result, need_choice, need_int, networks, quiet, writes


@dataclass(frozen=True)
class PathsOptions:
    """What ``paths`` measures.

    metric : a name in :data:`genni.geometry.METRICS`
    max_networks : the reference + up to max_networks − 1 converged elements
    max_inputs : probe inputs used for the representations
    preactivations : put each hidden pre-activation before its activation
    cache : store the representations under /representations (reused when they match)
    floor : z-score metrics drop units whose variance is below floor × the layer's largest
        (None: :data:`genni.geometry.DEFAULT_FLOOR`)
    """

    metric: str = "angular_procrustes"
    max_networks: int = 32
    max_inputs: int = 512
    preactivations: bool = False
    cache: bool = False
    floor: float | None = None

    def __post_init__(self):
        need_choice("metric", self.metric, geometry.METRICS)
        need_int("--max-networks", self.max_networks, 1)
        need_int("--max-inputs", self.max_inputs, 2)
        if self.floor is not None and not 0 <= self.floor < 1:
            raise ConfigError(f"--floor must lie in [0, 1), got {self.floor}")
        if self.floor is not None and not geometry.METRICS[self.metric].floored:
            floored = ", ".join(m for m, spec in geometry.METRICS.items() if spec.floored)
            raise ConfigError(f"--floor applies to the z-score metrics ({floored}), not --metric {self.metric}")

    @property
    def unit_floor(self) -> float:
        """The floor used."""
        return geometry.DEFAULT_FLOOR if self.floor is None else float(self.floor)


@dataclass(frozen=True, repr=False)
class PathsResult(Result):
    """The headline of ``paths``: metric, networks M × layers L (and the layers' names), the metric's
    warning about symmetries it does not quotient, median length and straightness, the largest distance
    between networks at each layer, the reference's distances to the one-hot labels by layer (None without
    labels) and its position along the input → output geodesic by layer."""

    headline = staticmethod(report.format_paths)

    metric: str
    n_networks: int
    n_layers: int
    layers: list
    warning: str | None
    median_length: float
    median_straightness: float
    max_spread_per_layer: list
    reference_to_labels: list | None
    reference_geodesic_t: list


def done(run: store.RunData) -> bool:
    """The run holds layer paths under some metric."""
    return bool(run.layer_paths)


@writes("paths")
def run(path: str | Path, options: PathsOptions = PathsOptions(), *, progress: bool = False,
        log: Log = quiet) -> PathsResult:
    """Each network's layers as a path through representation space, into ``/paths/<metric>``.

    Networks: the reference (row 0) and up to ``max_networks − 1`` converged elements; their
    representations (input, every hidden post-activation — with ``preactivations`` also the
    pre-activation before it — and the output) on the first ``max_inputs`` probe inputs.
    Stored: ``distances`` [M·L, M·L] between all (network, layer) points (index m·L + l),
    ``steps`` [M, L−1], ``angles`` [M, L−2] (interior angle at each layer, π = straight, from
    log maps), ``straightness`` [M] = d(first, last) / length, ``length`` [M], ``embedding``
    [M·L, 2] (metric MDS of the distances) with attributes ``stress`` (raw, scikit-learn's) and
    ``stress_1`` (Kruskal's, √(stress / Σ_{i<j} d_ij²): 0 = distances kept exactly); progress along the
    path: ``to_output`` [M, L] = d(X_l, f) (the network's own output), ``to_labels`` [M, L] =
    d(X_l, one-hot labels) when the run has labels, and ``geodesic_t``, ``geodesic_off``
    [M, L]: each layer projected onto the geodesic from the input (t = 0) to the output
    (t = 1), its position along it and distance off it (NaN under zscore_permutation, which
    has no geodesics).  The z-score metrics count every unit above the floor equally, so nearly dead
    units weigh as much as busy ones unless the floor removes them.
    """
    metric, floor = options.metric, options.unit_floor
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    if options.preactivations and model.layer_names(True) == model.layer_names(False):
        raise ConfigError(f"--pre-activations: {model.describe()} has no pre-activations apart from its "
                          "representations (MLPs with hidden layers have)")
    rows, thetas = networks(stored, options.max_networks)
    n_inputs = min(options.max_inputs, len(stored.X))
    reps = _representations(path, stored, model, thetas, rows, n_inputs, options.preactivations, options.cache)
    names = model.layer_names(options.preactivations)
    M, L = len(thetas), len(reps)
    points = [reps[l][m] for m in range(M) for l in range(L)]
    D = geometry.pairwise(points, metric, floor)
    idx = np.arange(M)[:, None] * L
    steps = D[idx + np.arange(L - 1), idx + np.arange(1, L)]
    length = steps.sum(1)
    straightness = np.where(length > 0, D[idx[:, 0], idx[:, 0] + L - 1] / np.where(length > 0, length, 1), np.nan)
    to_output = D[idx + np.arange(L), idx + L - 1]
    labels = None if stored.labels is None else _one_hot(stored.labels[:n_inputs])
    angles = np.full((M, max(L - 2, 0)), np.nan)
    geo_t, geo_off, to_labels = np.full((M, L), np.nan), np.full((M, L), np.nan), np.full((M, L), np.nan)
    for m in bar(range(M), progress=progress, desc=f"angles ({metric})", unit="net", leave=False):
        P = points[m * L:(m + 1) * L]
        for l in range(1, L - 1):
            angles[m, l - 1] = geometry.angle(P[l - 1], P[l], P[l + 1], metric, floor)
        if metric != "zscore_permutation" and D[m * L, m * L + L - 1] > 1e-12:
            for l in range(L):
                geo_t[m, l], geo_off[m, l] = geometry.project_onto_geodesic(P[l], P[0], P[-1], metric, floor)
        if labels is not None:
            to_labels[m] = [geometry.distance(P[l], labels, metric, floor) for l in range(L)]
    embedding, stress = geometry.mds(D, seed=int(stored.attrs.get("seed", 0)))
    warning = geometry.warn_missing_symmetries(metric, model.symmetry.invariances, model.describe())
    arrays = {"distances": D, "steps": steps, "angles": angles, "straightness": straightness, "length": length,
              "embedding": embedding, "elements": rows, "to_output": to_output, "geodesic_t": geo_t,
              "geodesic_off": geo_off}
    if labels is not None:
        arrays["to_labels"] = to_labels
    _write(path, metric, arrays,
           {"metric": metric, "invariances": json.dumps(list(geometry.METRICS[metric].invariances)), "n_networks": M,
            "n_layers": L, "layers": json.dumps(names), "n_inputs": n_inputs, "stress": stress,
            "stress_1": float(np.sqrt(stress / max((D ** 2).sum() / 2, 1e-300))),
            "floor": floor, "warning": warning or "", "note": "point m·L + l is network m (0 = reference) at layer l"})
    ref_labels = to_labels[0] if labels is not None else None
    return PathsResult(
        metric=metric, n_networks=M, n_layers=L, layers=names, warning=warning,
        median_length=float(np.median(length)), median_straightness=float(np.nanmedian(straightness)),
        max_spread_per_layer=[float(D[idx[:, 0] + l][:, idx[:, 0] + l].max()) for l in range(L)],
        reference_to_labels=None if ref_labels is None else ref_labels.tolist(),
        reference_geodesic_t=geo_t[0].tolist())


def _write(path: str | Path, metric: str, arrays: dict, attrs: dict) -> None:
    """The layer paths under ``metric`` into ``/paths/<metric>``."""
    store.write_group(path, f"paths/{metric}", arrays, attrs)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels [n] → one-hot [n, C] (the targets as a representation)."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(int(labels.max()) + 1)[labels]


def _representations(path, stored: store.RunData, model: models.Model, thetas: np.ndarray, rows: np.ndarray,
                     n_inputs: int, preactivations: bool, cache: bool) -> list[np.ndarray]:
    """Every network's representations, a list over layers of [M, n, w_l]: read from
    /representations when it holds these networks on these inputs, else computed (and stored
    there when ``cache``)."""
    names = model.layer_names(preactivations)
    arrays, attrs = store.read_group(path, "representations")
    if (attrs.get("layers") == json.dumps(names) and attrs.get("n_inputs") == n_inputs
            and np.array_equal(arrays.get("elements", np.zeros(0, int)), rows)):
        return [arrays[f"layer_{l:02d}"] for l in range(len(names))]
    with torch.no_grad():
        _, reps = model.layers(torch.as_tensor(thetas), torch.as_tensor(stored.X[:n_inputs]),
                               preactivations=preactivations)
    reps = [r.numpy() for r in reps]
    if cache:
        store.write_group(path, "representations",
                          {"elements": rows, **{f"layer_{l:02d}": r for l, r in enumerate(reps)}},
                          {"layers": json.dumps(names), "n_inputs": n_inputs,
                           "note": "layer_LL [M, n, w]: network m (0 = reference, then the listed elements) at layer LL"})
    return reps


def arguments(parser) -> None:
    """``genni paths``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--metric", default="angular_procrustes",
                        help="angular_cka | angular_procrustes | procrustes | zscore_procrustes | zscore_permutation")
    parser.add_argument("--max-networks", type=int, default=32, help="reference + up to N−1 converged elements")
    parser.add_argument("--max-inputs", type=int, default=512, help="probe inputs used for the representations")
    parser.add_argument("--pre-activations", action="store_true",
                        help="put each hidden pre-activation before its activation")
    parser.add_argument("--cache", action="store_true",
                        help="store the representations under /representations (reused later)")
    parser.add_argument("--floor", type=float, help="z-score metrics: drop units with variance < floor × the layer's "
                                                   "largest (default 1e-8)")


def from_args(args) -> tuple[str, PathsOptions]:
    return args.run, PathsOptions(metric=args.metric, max_networks=args.max_networks, max_inputs=args.max_inputs,
                                  preactivations=args.pre_activations, cache=args.cache, floor=args.floor)
