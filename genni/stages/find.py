"""Stage ``find``: the reference network, the probe data and N functionally equivalent parameter sets.

The search minimises, for each element θ_i, the absolute mean squared discrepancy
L(θ) = mean_x ‖f_θ(x) − f_θ*(x)‖² over the probe inputs (:func:`genni.search.stream`: batched
Levenberg–Marquardt, matrix-free above a size), or walks along the class from θ*
(``[search] init = "walk"``, :mod:`genni.stages.walk`).  Elements stream into the run file as they finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config as _config
from .. import data as _data
from .. import models, report, search, store, train
from ..errors import ConfigError, GenniError
from . import walk as _walk
from .common import Log, Result, architecture, device, far_inputs, quiet, reference_facts, warn, writes

SECTIONS = ("data", "model", "reference", "search")


@dataclass(frozen=True, eq=False)
class Given:
    """A reference and inputs from memory (:func:`genni.explore`), for a config whose ``[data] dataset`` and
    ``[reference] source`` are ``"given"`` (:func:`genni.config.explore_config`).

    model : the model;  theta : ndarray, shape [P] (θ*);  X : ndarray, shape [n, d_in] (probe inputs, flat rows);
    X_heldout : ndarray, shape [m, d_in]
    """

    model: models.Model
    theta: np.ndarray
    X: np.ndarray
    X_heldout: np.ndarray

    def differences(self, stored: store.RunData) -> list[str]:
        """What of a stored run differs from this: ``architecture``, ``θ*``, ``probe inputs``, ``held-out inputs``."""
        def same(a, b) -> bool:
            return a is not None and np.shape(a) == np.shape(b) and np.array_equal(a, b)
        arch = {k: v for k, v in architecture(self.model).items() if k != "description"}
        stored_arch = {k: v for k, v in stored.architecture.items() if k != "description"}
        return [what for what, ok in (("architecture", arch == stored_arch), ("θ*", same(stored.theta_ref, self.theta)),
                                      ("probe inputs", same(stored.X, self.X)),
                                      ("held-out inputs", same(stored.X_heldout, self.X_heldout))) if not ok]


@dataclass(frozen=True)
class FindOptions:
    """What ``find`` does.

    config : the resolved experiment config (:func:`genni.config.resolve`); ``[search] n`` elements are requested
    reference_only : store the reference, probe data and far inputs and search nothing (a sweep's ``train``)
    given : the reference and inputs, for a config of given ones (``"given"``: :func:`genni.explore`)
    """

    config: dict
    reference_only: bool = False
    given: Given | None = None

    def __post_init__(self):
        if not isinstance(self.config, dict):
            raise ConfigError(f"find: config must be a resolved config (a dict), got {type(self.config).__name__}")
        missing = [s for s in SECTIONS if not isinstance(self.config.get(s), dict)]
        if missing:
            raise ConfigError(f"find: the config has no [{missing[0]}] section")
        if not isinstance(self.reference_only, bool):
            raise ConfigError(f"find: reference_only must be true or false, got {self.reference_only!r}")
        device(self.config["search"].get("device", "cpu"))
        if (self.config["data"].get("dataset") == _config.GIVEN) != (self.given is not None):
            raise ConfigError("find: a config of given inputs (dataset 'given', made by genni.explore) goes with "
                              "the inputs and reference themselves (given=), and only such a config does")


@dataclass(frozen=True, repr=False)
class FindResult(Result):
    """What ``find`` did: the file, whether it was created, elements added and stored, the reference's facts
    (output power on probe and held-out inputs, the degeneracy flag, dead units per hidden layer)."""

    headline = staticmethod(report.format_find)

    path: str
    created: bool
    n_new: int
    n_total: int
    output_power: float
    output_power_heldout: float
    degenerate: bool
    dead_units: list


def done(run: store.RunData) -> bool:
    """The run holds the config's ``[search] n`` elements."""
    return run.n_equivalents >= int(run.config["search"]["n"])


@writes("find", create=True)
def run(path: str | Path, options: FindOptions, *, progress: bool = False, log: Log = quiet,
        callback: Callable | None = None) -> FindResult:
    """Reference + probe data + ``[search] n`` equivalents into ``path``.

    A new file is created; an existing file made with the same config (up to
    :data:`genni.config.RESUMABLE_KEYS`) is resumed: only the missing element
    indices are searched.  A file made with another config is refused untouched.
    ``callback`` sees every chunk of found elements (:class:`genni.search.Found`) as it is stored.
    """
    cfg = options.config
    p = Path(path)
    dev = device(cfg["search"]["device"])
    settings = search.SearchSettings.from_config(cfg["search"])
    if p.exists():
        stored = store.read_config(p)
        diffs = _config.differences(stored, cfg)
        if diffs:
            raise GenniError(f"{p} was made with a different config ({', '.join(diffs)} differ); "
                             "refusing to mix runs: choose another -o file")
        stored_run = store.load_run(p)
        if options.given is not None:
            diffs = options.given.differences(stored_run)
            if diffs:
                raise GenniError(f"{p} holds another run (its {', '.join(diffs)} differ from those given); refusing "
                                 "to mix runs: choose another file")
            model = options.given.model
        else:
            model = models.from_dict(stored_run.architecture)
        theta_ref, X, Xh = stored_run.theta_ref, stored_run.X, stored_run.X_heldout
        ref = ds = None
        log(f"resuming {p}: {stored_run.n_equivalents} elements stored")
    elif options.given is not None:
        model, ref, ds = _given(options.given)
        log(f"reference: given {model.describe()} on {len(ds.X_probe)} given inputs")
        theta_ref, X, Xh = ref.theta, ds.X_probe, ds.X_heldout
    else:
        d = cfg["data"]
        ds = _data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"],
                                n_train=d["n_train"], seed=cfg["seed"], noise=d["noise"], dim=d.get("dim"))
        model = _config.model_of(cfg)
        ref = train.make_reference(cfg, model, ds, progress=progress)
        log(f"reference: {cfg['reference']['source']} {model.describe()} on {ds.name}")
        theta_ref, X, Xh = ref.theta, ds.X_probe, ds.X_heldout
    problem = search.Problem.from_arrays(model, theta_ref, X, Xh, device=dev)
    facts = reference_facts(model, problem, settings.tol)
    created = ref is not None
    if created:
        _create(p, cfg, model, problem, ref, ds, facts, settings)
        if ref.accuracy is not None:
            log(f"reference accuracy (held-out labels): {ref.accuracy:.3f}")
    if facts["degenerate"]:
        warn(f"the reference is nearly the zero function on the probe set (output power "
             f"{facts['output_power']:.3g}, tol {settings.tol:.3g}): 'converged' would not mean equivalent")
    if any(facts["dead_units"]):
        log(f"reference has dead hidden units per layer: {facts['dead_units']}")
    done_rows = set(store.done_indices(p).tolist())
    result = lambda n_new: FindResult(str(p), created, n_new, len(done_rows) + n_new, **facts)  # noqa: E731
    if options.reference_only:
        return result(0)
    store.update_attrs(p, "equivalents", {"n_requested": max(settings.n, len(done_rows))})
    if settings.init == "walk":
        n_new, _ = _walk.walk_find(p, cfg, model, problem, settings, progress=progress, callback=callback, log=log)
        return result(n_new)
    todo = [i for i in range(settings.n) if i not in done_rows]
    n_new = 0
    for chunk in search.stream(problem, settings, seed=cfg["seed"], indices=todo, progress=progress,
                               callback=callback, on_stall=lambda msg: _stalled(msg, model, settings)):
        store.append_equivalents(p, chunk)
        n_new += len(chunk)
    return result(n_new)


def _given(given: Given) -> tuple[models.Model, train.Reference, _data.Dataset]:
    """The model, the reference and the inputs of a run from memory, as ``find`` takes them (no labels)."""
    X, Xh = np.asarray(given.X, dtype=np.float64), np.asarray(given.X_heldout, dtype=np.float64)
    empty = np.zeros((0, X.shape[1]))
    ds = _data.Dataset(name=_config.GIVEN, d_in=X.shape[1], n_classes=0, X_train=empty, y_train=None,
                       X_probe=X, y_probe=None, X_heldout=Xh, y_heldout=None)
    theta = np.asarray(given.theta, dtype=np.float64)
    return given.model, train.Reference(theta=theta, source=_config.GIVEN), ds


def _create(p: Path, cfg: dict, model: models.Model, problem: search.Problem, ref: train.Reference,
            ds: _data.Dataset, facts: dict, settings: search.SearchSettings) -> None:
    """A new run file: the reference (θ* [P], its facts), probe and held-out inputs with the reference's
    outputs and labels, far inputs, and an empty /equivalents."""
    theta_ref, X, Xh = ref.theta, ds.X_probe, ds.X_heldout
    X_far, Y_far, far_attrs, power_far = far_inputs(cfg, model, theta_ref, X, Xh)
    arch = architecture(model)
    store.create_run(
        p, config=cfg, architecture=arch, theta_ref=theta_ref,
        reference={"accuracy": ref.accuracy, "source": ref.source, "train_accuracy": ref.train_accuracy,
                   "output_power_far": power_far, "in_memory": arch.get("in_memory"), **facts},
        X=X, X_heldout=Xh, Y=problem.Y.cpu().numpy(), Y_heldout=problem.Y_heldout.cpu().numpy(),
        labels=ds.y_probe, labels_heldout=ds.y_heldout, X_far=X_far, Y_far=Y_far, probe_attrs=far_attrs,
        equivalents_attrs={"tol": settings.tol, "method": settings.method,
                           "status_codes": list(search.STATUS), "n_requested": settings.n})


def _stalled(msg: str, model: models.Model, settings: search.SearchSettings) -> None:
    """Warn that elements stall, with what to expect for this activation and start."""
    act = getattr(model, "activation", "this model's")
    hint = ("expected for relu from random starts: spurious minima (docs/method.md, 'ReLU from random starts'); use "
            "[search] init = \"perturb\" (θ* + init_scale × noise) or \"walk\" (a looser tol would only accept the "
            "stalled elements)" if act in
            ("relu", "leaky_relu") and settings.init == "random" else
            ("not expected from θ* + small noise: try a smaller [search] init_scale, a looser tol, or more "
             "restarts" if settings.init != "random" else
             f"not expected for {act} activations (random starts usually converge): try [search] "
             "init = \"perturb\", a looser tol, or more restarts"))
    warn(f"{msg}; {hint}; fewer [search] restarts give up sooner (each element stops after at most "
         f"(restarts + 1) × max_steps = {(settings.restarts + 1) * settings.steps_per_attempt} steps)")


def search_arguments(parser) -> None:
    """The command-line overrides of the config that ``find`` and ``run`` share."""
    parser.add_argument("--n", type=int, help="number of equivalents (overrides [search] n)")
    parser.add_argument("--seed", type=int, help="overrides the config's seed")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (overrides [search] device)")


def arguments(parser) -> None:
    """``genni find``'s arguments."""
    parser.add_argument("config", help="experiment TOML")
    parser.add_argument("-o", "--output", required=True, help="run file to create or resume")
    search_arguments(parser)


def from_args(args) -> tuple[Path, FindOptions]:
    """(run file, options) from ``genni find`` or ``genni run`` arguments: the config with its overrides;
    the run file defaults to runs/<name>.h5."""
    cfg = _config.with_overrides(_config.load(args.config), n=args.n, seed=args.seed, device=args.device)
    return (Path(args.output) if args.output else Path("runs") / f"{cfg['name']}.h5"), FindOptions(cfg)
