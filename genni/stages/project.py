"""Stage ``project``: a subspace through the equivalence class, the discrepancy on a grid in it, and paths.

For a subspace with origin o [P] and orthonormal basis B [k, P] the grid holds
L(o + Σ_a c_a B_a) = mean_x ‖f(x) − f_θ*(x)‖² at every grid point c (probe and held-out inputs);
paths θ* → element are straight and quadratic Bézier curves (the control point fitted to minimise the
mean discrepancy along the curve), their barrier the largest discrepancy along them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import discrepancy, models, projection, report, store
from ..errors import ConfigError, GenniError
from ..progress import bar
from .common import Log, Result, device, need_choice, need_int, need_positive, quiet, writes

WRITE_EVERY = 0.5
"""Seconds of grid work between two writes of a project's grid (a kill loses at most this much)."""

STRAIGHT_BARRIER_NOTE = ("straight-line barriers: two elements share a component when a chain of straight segments "
                         "stays below ε; different components are an upper bound on separation only (a curved path "
                         "inside the class may still join them)")


@dataclass(frozen=True)
class ProjectOptions:
    """What ``project`` draws.

    subspace : pca | plane | null | random;  dims : 2 or 3
    resolution : grid points per axis (None: 101 in 2-D, 41 in 3-D)
    elements : element rows (0-based rows of /equivalents) spanning the plane subspace, ``dims`` of them,
        distinct (None: the first converged ones); the other subspaces refuse them
    epsilon_rel : ε for the equivalence mask and paths, relative to the output power
    margin : the grid reaches this fraction beyond the elements' coordinates
    paths : paths θ* → element to compute (0: none);  batch : grid points evaluated together
    device : torch device for the grids and paths (None: the run's ``search.device`` when it is available
        here, else the CPU)
    """

    subspace: str = "pca"
    dims: int = 2
    resolution: int | None = None
    elements: tuple[int, ...] | None = None
    epsilon_rel: float = 1e-6
    margin: float = 0.25
    paths: int = 8
    batch: int = projection.DEFAULT_BATCH
    device: str | None = None

    def __post_init__(self):
        need_choice("subspace", self.subspace, projection.KINDS)
        if self.dims not in (2, 3):
            raise ConfigError(f"--dims must be 2 or 3, got {self.dims}")
        if self.resolution is not None:
            need_int("--resolution", self.resolution, 3)
        need_positive("--epsilon-rel", self.epsilon_rel)
        if not (self.margin >= 0 and np.isfinite(self.margin)):
            raise ConfigError(f"project margin must be a number ≥ 0, got {self.margin}")
        need_int("--paths", self.paths, 0)
        need_int("project batch", self.batch, 1)
        if self.elements is not None:
            object.__setattr__(self, "elements", tuple(self.elements))
            if self.subspace != "plane":
                raise ConfigError(f"--elements choose the rows spanning the plane subspace; --subspace "
                                  f"{self.subspace} does not use them")
            if len(self.elements) != self.dims:
                raise ConfigError(f"--elements: the plane subspace in {self.dims}-D needs {self.dims} element rows, "
                                  f"got {len(self.elements)}")
            for i in self.elements:
                need_int("--elements", i, 0)
            if len(set(self.elements)) != len(self.elements):
                raise ConfigError(f"--elements must be distinct rows, got {list(self.elements)}")
        if self.device is not None:
            device(self.device)

    @property
    def grid_resolution(self) -> int:
        """Grid points per axis."""
        return self.resolution or (101 if self.dims == 2 else 41)

    @property
    def name(self) -> str:
        """The group under /projections: the subspace's kind, with ``_3d`` in 3-D."""
        return self.subspace if self.dims == 2 else f"{self.subspace}_3d"


@dataclass(frozen=True, repr=False)
class ProjectResult(Result):
    """The projection stored: its group name, kind, dims, grid resolution, ε, the elements' median distance
    to the subspace, how the elements were prepared; with paths, their count, the largest straight and
    Bézier barriers, and the components of the straight-barrier and certified graphs."""

    headline = staticmethod(report.format_project)

    optional = ("n_paths", "components", "components_rest_on", "certified_with_reference", "n_elements",
                "certified_epsilon", "max_linear_barrier", "max_bezier_barrier")

    name: str
    kind: str
    dims: int
    resolution: int
    epsilon: float
    median_residual: float
    elements: str
    n_paths: int | None = None
    components: int | None = None
    components_rest_on: str | None = None
    certified_with_reference: int | None = None
    n_elements: int | None = None
    certified_epsilon: float | None = None
    max_linear_barrier: float | None = None
    max_bezier_barrier: float | None = None


def done(run: store.RunData) -> bool:
    """The run holds a projection."""
    return bool(run.projections)


@writes("project")
def run(path: str | Path, options: ProjectOptions = ProjectOptions(), *, progress: bool = False,
        log: Log = quiet) -> ProjectResult:
    """A subspace through the equivalence class, the discrepancy on a grid in it, and paths.

    Stores ``/projections/<subspace>`` (2-D) or ``/projections/<subspace>_3d`` (3-D) with the
    basis [k, P], origin [P] (θ*; for relu its minimum-norm rescaling, the same function), every
    element's coordinates [N, k] and residual [N], the grid axes [k, R] and the probe and held-out
    discrepancy on the grid [R]*k (NaN-prefilled, filled chunk by chunk: an interrupted run
    resumes), and ``/projections/barriers``: the discrepancy along straight and Bézier paths
    from θ* to the ``paths`` elements of lowest probe discrepancy, the pairwise
    straight-path barrier matrix between them and θ*, and the connected components of the
    graph "path stays below ε".  ε = epsilon_rel × output power of the reference.
    """
    subspace, dims, elements = options.subspace, options.dims, options.elements
    resolution, margin = options.grid_resolution, options.margin
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    if stored.n_equivalents == 0:
        raise GenniError(f"{path} holds no equivalents yet: run genni find first")
    name = options.device
    if name is None:
        name = stored.config.get("search", {}).get("device", "cpu")
        name = name if name == "cpu" or torch.cuda.is_available() else "cpu"
    dev = device(name)
    ref, thetas, how = _elements_for_picture(model, stored)
    conv = np.flatnonzero(stored.equivalents["converged"])
    if subspace == "pca":
        if len(thetas) < max(2, dims):
            raise GenniError(f"PCA needs at least {max(2, dims)} elements, the file has {len(thetas)}")
        sub = projection.pca_subspace(thetas, origin=ref, k=dims)
    elif subspace == "plane":
        pool = conv if len(conv) >= dims else np.arange(len(thetas))
        chosen = tuple(elements) if elements else tuple(int(i) for i in pool[:dims])
        if len(chosen) != dims or any(not 0 <= i < len(thetas) for i in chosen):
            raise GenniError(f"--elements {' '.join(map(str, chosen))}: the plane subspace needs {dims} element rows in "
                             f"0..{len(thetas) - 1} (the file holds {len(thetas)} elements)")
        sub = projection.plane_subspace(ref, thetas[chosen[0]], thetas[chosen[1]], thetas,
                                        c=thetas[chosen[2]] if dims == 3 else None)
    elif subspace == "null":
        if "null_basis" not in stored.identifiability:
            raise GenniError("the null subspace needs the Jacobian null space: run genni identify first")
        sub = projection.null_subspace(stored.identifiability["null_basis"], ref, thetas, k=dims)
    else:
        sub = projection.random_subspace(model, ref, thetas, k=dims, seed=int(stored.attrs.get("seed", 0)))
    axes = projection.grid_axes(sub.coords, resolution=resolution, margin=margin)
    power = float(stored.reference.get("output_power") or discrepancy.output_power(stored.Y))
    eps = projection.default_epsilon(power, options.epsilon_rel)
    signature = json.dumps({"kind": subspace, "k": dims, "resolution": resolution, "margin": margin,
                            "elements": how, "n": len(thetas), "chosen": list(elements or ()),
                            "basis_sha": float(np.round(sub.basis.sum(), 12))}, sort_keys=True)
    arrays = {"basis": sub.basis, "origin": sub.origin, "coords": sub.coords, "residuals": sub.residuals, "axes": axes}
    if sub.explained is not None:
        arrays["explained"] = sub.explained
    done_mask = store.prepare_projection(
        path, options.name, arrays=arrays, grid_shape=(resolution,) * dims,
        attrs={"signature": signature, "kind": subspace, "epsilon": eps, "epsilon_rel": options.epsilon_rel,
               "elements": how, "output_power": power, "resolution": resolution})
    for which, X, Y in (("values", stored.X, stored.Y), ("values_heldout", stored.X_heldout, stored.Y_heldout)):
        pending, last = [], time.monotonic()
        for idx, vals in projection.iter_grid(model, X, Y, sub.origin, sub.basis, axes, batch=options.batch,
                                              done_mask=done_mask[which], progress=progress, device=dev):
            pending.append((idx, vals))
            if time.monotonic() - last >= WRITE_EVERY:  # each write copies the file: not after every chunk
                store.write_grid_runs(path, options.name, which, pending)
                pending, last = [], time.monotonic()
        store.write_grid_runs(path, options.name, which, pending)
    info = {}
    if options.paths > 0:
        best = np.argsort(stored.equivalents["discrepancy"], kind="stable")[:options.paths]  # converged ones first
        info = _paths(path, model, stored, ref, thetas[best], best, eps, progress, dev)
    return ProjectResult(name=options.name, kind=subspace, dims=dims, resolution=resolution, epsilon=eps,
                         median_residual=float(np.median(sub.residuals)), elements=how, **info)


def _elements_for_picture(model: models.Model, stored: store.RunData) -> tuple[np.ndarray, np.ndarray, str]:
    """(origin [P], elements [N, P], how) for the pictures.  Elements are aligned to θ* when `identify` has
    run (symmetry copies then collapse onto the reference), else as found; for relu every
    network, θ* included, is moved to the minimum-norm point of its rescaling orbit
    (``model.balance``: the same function), so that units that are almost
    switched off do not dominate distances with huge compensating weights."""
    eq = stored.equivalents
    thetas, how = (eq["aligned_theta"], "aligned") if "aligned_theta" in eq else (eq["theta"], "as found")
    if model.symmetry.kinds.get("rescaling"):
        return (model.symmetry.balance(stored.theta_ref), np.stack([model.symmetry.balance(t) for t in thetas]),
                how + ", balanced")
    return stored.theta_ref, thetas, how


def _paths(path, model: models.Model, stored: store.RunData, ref: np.ndarray, chosen: np.ndarray, rows: np.ndarray,
           eps: float, progress: bool, dev: torch.device) -> dict:
    """Straight and Bézier paths θ* → element (chosen [m, P]), and the straight-path barrier graph, into
    ``/projections/barriers``; returns the result's path fields."""
    t = np.linspace(0.0, 1.0, 33)
    linear, bezier = [], []
    for theta in bar(chosen, progress=progress, desc="paths", unit="path", leave=False):
        linear.append(projection.path_discrepancy(model, stored.X, stored.Y, projection.linear_path(ref, theta, len(t)),
                                                  device=dev))
        control = projection.fit_bezier(model, stored.X, stored.Y, ref, theta, steps=150, device=dev)
        bezier.append(projection.path_discrepancy(model, stored.X, stored.Y,
                                                  projection.bezier_path(ref, theta, control, len(t)), device=dev))
    points = np.concatenate([ref[None], chosen])
    barriers, n_comp, labels = projection.barrier_graph(model, stored.X, stored.Y, points, eps, device=dev)
    # certified joins: walk segments (parent → row) and certified /paths_between, each ≤ its own ε
    cert_labels, cert_comp, cert_eps = certified_components(stored)
    store.write_group(path, "projections/barriers",
                      {"t": t, "linear": np.array(linear), "bezier": np.array(bezier), "elements": rows,
                       "barriers": barriers, "labels": labels, "components": n_comp,
                       "certified_labels": cert_labels, "certified_components": cert_comp},
                      {"epsilon": eps, "note": "row 0 of barriers/labels is the reference, then the listed elements",
                       "components_rest_on": STRAIGHT_BARRIER_NOTE,
                       "certified_rest_on": f"certified segments (walk parent links, genni connect paths), each with "
                                            f"relative discrepancy ≤ {cert_eps:g} along it: elements in one certified "
                                            "component are joined inside the class; certified_labels [N + 1]: row 0 θ*, "
                                            "then every /equivalents row"})
    lin_b = [projection.barrier(v) for v in linear]
    bez_b = [projection.barrier(v) for v in bezier]
    return {"n_paths": len(chosen), "components": int(n_comp), "components_rest_on": STRAIGHT_BARRIER_NOTE,
            "certified_with_reference": int((cert_labels[1:] == cert_labels[0]).sum()),
            "n_elements": stored.n_equivalents, "certified_epsilon": cert_eps,
            "max_linear_barrier": float(max(lin_b)), "max_bezier_barrier": float(max(bez_b))}


def certified_components(stored: store.RunData) -> tuple[np.ndarray, int, float]:
    """Connected components of θ* and every element under certified joins: walk segments parent → row with
    ``segment_max`` ≤ the run's ``segment_epsilon``, and certified ``/paths_between``.

    returns : (labels [N + 1] (0 = θ*, then rows), number of components, ε)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = stored.n_equivalents
    eq = stored.equivalents
    eps = float(stored.equivalents_attrs.get("segment_epsilon", np.nan))
    edges = []
    if n:
        ok = (eq["chain"] >= 0) & (eq["segment_max"] <= eps)
        edges += [(int(eq["parent"][r]) + 1, r + 1) for r in np.flatnonzero(ok)]
    for name, g in store.read_family(stored.path, "paths_between").items():
        if bool(g["attrs"].get("certified")):
            i, j = (int(v) for v in name.split("_"))
            edges.append((i, j))
    if edges:
        a, b = np.array(edges).T
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n + 1, n + 1))
    else:
        graph = coo_matrix((n + 1, n + 1))
    k, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64), int(k), eps


def arguments(parser) -> None:
    """``genni project``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--subspace", default="pca", help="pca | plane | null | random (default pca)")
    parser.add_argument("--dims", type=int, default=2, help="2 (default) or 3")
    parser.add_argument("--resolution", type=int, help="grid points per axis (default 101 in 2-D, 41 in 3-D)")
    parser.add_argument("--elements", type=int, nargs="+", metavar="ROW",
                        help="--subspace plane only: the element rows (0-based rows of /equivalents) spanning it "
                             "(default: the first converged ones)")
    parser.add_argument("--epsilon-rel", type=float, default=1e-6,
                        help="ε for the equivalence mask and paths, relative to the output power (default 1e-6)")
    parser.add_argument("--paths", type=int, default=8, help="paths θ* → element to compute (0: none)")
    parser.add_argument("--device", help="torch device for the grids and paths (default: the run's search.device if "
                                         "present)")


def from_args(args) -> tuple[str, ProjectOptions]:
    return args.run, ProjectOptions(subspace=args.subspace, dims=args.dims, resolution=args.resolution,
                                    elements=tuple(args.elements) if args.elements else None,
                                    epsilon_rel=args.epsilon_rel, paths=args.paths, device=args.device)
