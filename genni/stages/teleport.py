"""Stage ``teleport``: move along the equivalence class so that an objective falls or rises
(:func:`genni.teleport.teleport`).

From a stored element (0 = θ*) a teleport takes projected gradient steps of the objective J along the
class's (horizontal) tangent space, retracts onto the class, certifies each straight segment from the last
stored state (relative discrepancy ≤ ε, as walks do) and accepts a step only when J improved.  Its states
are ordinary rows of /equivalents (``chain``, ``step``, ``parent``, ``segment_max``, as a walk's), so every
other stage and figure sees them; ``/teleports/teleport_<k>`` records the objective along the way.

What the objectives are evaluated on (the run file holds probe, held-out and, after ``identify``, far
inputs; the reference's outputs on each; the data set's labels where it has them):

- ``sharpness``, ``hessian_trace``: the training loss on the probe inputs.  ``loss="labels"`` is the
  reference's own training loss (cross-entropy) on the probe labels, the default when the reference was
  trained on labels (``[reference] source = "train"``) and the file holds them; ``loss="outputs"`` is the
  mean squared error to the reference's stored outputs, the default otherwise: the class is then exactly the
  loss's zero set and its Hessian there is the Gauss–Newton matrix 2JᵀJ/n.
- ``relative_discrepancy``: on the held-out inputs by default (on the probe inputs it is ≤ tol/P* all along
  the class); ``inputs="far"`` for the far inputs.  A step must change it by more than tol/P* (P* the output
  power on the probe inputs): inside the class's tolerance a smaller change is no change of function.
- ``layer_distance``: on the probe inputs by default (the inputs where the function is pinned; the hidden
  layers can still move), under ``metric`` (default angular_procrustes).
- ``parameter_norm``, ``path_norm``: no inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import discrepancy, models, objectives, report, search, store
from .. import teleport as teleport_
from ..errors import ConfigError, GenniError
from ..linalg import one_thread
from ..objectives import Objective
from .common import Log, Result, need_choice, need_int, need_positive, next_chain, quiet, start_state, tolerance, writes
from .walk import walk_settings

INPUTS = ("probe", "heldout", "far")
"""The input sets an objective can be evaluated on."""

TAKES_INPUTS = {"relative_discrepancy": "heldout", "layer_distance": "probe"}
"""Objectives that take an input set, with their default set."""

LOSSES = ("labels", "outputs")
"""The training losses of sharpness and hessian_trace: cross-entropy on the probe labels, or the mean squared
error to the reference's stored outputs."""

TAKE_LOSS = ("sharpness", "hessian_trace")


@dataclass(frozen=True)
class TeleportOptions:
    """What ``teleport`` does.

    objective : a name of :data:`genni.objectives.NAMES` or an :class:`~genni.objectives.Objective` (e.g. a
        user's callable through :func:`genni.objectives.from_callable`: its name and formula are recorded)
    goal : "min" or "max";  start : the start element (0 = θ*, k = row k − 1 of /equivalents);  steps : accepted
    steps;  thin : store every thin-th accepted state (and the last; None: 1);  horizontal : False also moves
    along the symmetry orbits (rescalings);  inputs : probe | heldout | far (relative_discrepancy, default
    heldout; layer_distance, default probe);  metric : layer_distance's metric;  loss : labels | outputs
    (sharpness, hessian_trace; default: labels when the reference was trained on them);  step_size : initial
    step relative to ‖θ*‖ (None: :class:`genni.teleport.TeleportSettings`' default)
    """

    objective: str | Objective = "parameter_norm"
    goal: str = "min"
    start: int = 0
    steps: int = 50
    thin: int | None = None
    horizontal: bool = True
    inputs: str | None = None
    metric: str | None = None
    loss: str | None = None
    step_size: float | None = None

    def __post_init__(self):
        if not isinstance(self.objective, Objective):
            need_choice("objective", self.objective, objectives.NAMES)
        need_choice("goal", self.goal, teleport_.GOALS)
        need_int("teleport --from", self.start, 0)
        need_int("teleport --steps", self.steps, 1)
        if self.thin is not None:
            need_int("teleport --thin", self.thin, 1)
        if self.step_size is not None:
            need_positive("teleport --step-size", self.step_size)
        name = self.objective.name if isinstance(self.objective, Objective) else self.objective
        named = not isinstance(self.objective, Objective)
        if self.inputs is not None:
            need_choice("inputs", self.inputs, INPUTS)
            if not (named and name in TAKES_INPUTS):
                raise ConfigError(f"--inputs {self.inputs} applies to {' and '.join(TAKES_INPUTS)}, not to '{name}'")
        if self.metric is not None and not (named and name == "layer_distance"):
            raise ConfigError(f"--metric {self.metric} applies to layer_distance, not to '{name}'")
        if self.loss is not None:
            need_choice("loss", self.loss, LOSSES)
            if not (named and name in TAKE_LOSS):
                raise ConfigError(f"--loss {self.loss} applies to {' and '.join(TAKE_LOSS)}, not to '{name}'")

    @property
    def name(self) -> str:
        return self.objective.name if isinstance(self.objective, Objective) else self.objective


@dataclass(frozen=True, repr=False)
class TeleportResult(Result):
    """What ``teleport`` did.

    group : its group under /teleports;  objective, formula, goal, invariant;  evaluated_on : what J was
    evaluated on (inputs, loss);  start : the start element;  horizontal;  rows : the stored elements' numbers
    (1-based: element k is /equivalents row k − 1; 0 = θ*);  steps : accepted steps at the start and at each
    stored state;  values : J at the start and at each stored state (the field ``values_``: the mapping's key is
    ``values``);  canonical_values : J at the canonical point
    of each of those states' orbits (:func:`genni.objectives.at_canonical`: what is not a change of gauge);
    start_value, best_value, final_value;  change : final − start (raw), canonical_change;  accepted; refused :
    reason -> count;  escapes : second-order steps from stationary states;  stopped : the stop's code;
    reason : why it stopped, one line;  gradient_ratio : ‖P_H ∇J‖ / ‖∇J‖ at the last state it was computed;
    max_raw_distance : max ‖θ − θ*‖ / ‖θ*‖ over the stored states;  max_segment, segment_epsilon;  seconds
    """

    headline = staticmethod(report.format_teleport)

    group: str
    objective: str
    formula: str
    goal: str
    invariant: bool
    evaluated_on: str
    start: int
    horizontal: bool
    rows: list
    steps: list
    values_: list
    canonical_values: list
    start_value: float
    best_value: float
    final_value: float
    change: float
    canonical_change: float
    accepted: int
    refused: dict
    escapes: int
    stopped: str
    reason: str
    gradient_ratio: float
    max_raw_distance: float
    max_segment: float
    segment_epsilon: float
    seconds: float


def done(run: store.RunData) -> bool:
    """The run holds a teleport."""
    return bool(run.teleports)


def build_objective(run: store.RunData, model: models.Model, options: TeleportOptions) -> tuple[Objective, str]:
    """The objective ``options`` name, bound to what the run file holds (the module docstring), and a phrase
    saying what it is evaluated on.  A set the file lacks (far inputs before ``identify``, labels of a data set
    without them) is a one-line :class:`~genni.errors.GenniError`."""
    if isinstance(options.objective, Objective):
        return options.objective, "the user's objective"
    name = options.objective
    if name in TAKES_INPUTS:
        which = options.inputs or TAKES_INPUTS[name]
        X = {"probe": run.X, "heldout": run.X_heldout, "far": run.X_far}[which]
        if X is None:
            raise GenniError(f"{run.path} holds no far inputs yet (genni identify adds them): --inputs far needs them")
        kw = {"metric": options.metric} if name == "layer_distance" and options.metric is not None else {}
        return objectives.make(name, model, theta_ref=run.theta_ref, X=X, **kw), f"{which} inputs"
    if name in TAKE_LOSS:
        trained = run.config.get("reference", {}).get("source") == "train"
        loss = options.loss or ("labels" if trained and run.labels is not None else "outputs")
        if loss == "labels":
            if run.labels is None:
                raise GenniError(f"{run.path} holds no probe labels (its data set has none): use --loss outputs")
            return (objectives.make(name, model, X=run.X, labels=run.labels),
                    "probe inputs, cross-entropy on the probe labels")
        return (objectives.make(name, model, X=run.X, Y=run.Y),
                "probe inputs, mean squared error to the reference's outputs")
    return objectives.make(name, model), "θ alone"


@writes("teleport")
def run(path: str | Path, options: TeleportOptions = TeleportOptions(), *, progress: bool = False,
        log: Log = quiet) -> TeleportResult:
    """Teleport from element ``start``: ``steps`` accepted steps lowering (``goal="min"``) or raising J.

    ε, the tangent-space tolerance and the retraction's settings are the walk's (the run's config); the
    tolerance of the class is the run's.  A teleport that cannot move is a result (its reason), not an error.
    """
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    start = options.start
    theta0, row, step0 = start_state(stored, start, "a teleport")
    tol = tolerance(stored)
    n, eq = stored.n_equivalents, stored.equivalents
    objective, evaluated_on = build_objective(stored, model, options)
    wset = walk_settings(stored.config["search"])
    atol = tol / discrepancy.output_power(stored.Y) if objective.name == "relative_discrepancy" and \
        not isinstance(options.objective, Objective) else None
    settings = teleport_.settings_with(
        teleport_.TeleportSettings(segment_epsilon=wset.segment_epsilon, null_rtol=wset.null_rtol),
        improve_atol=atol, steps=options.steps, thin=options.thin, horizontal=options.horizontal, step_size=options.step_size)
    problem = search.Problem.from_arrays(model, stored.theta_ref, stored.X, stored.X_heldout)
    chain = next_chain(stored)
    first_index = int(eq["index"].max()) + 1 if n else 0
    added = []

    def append(states) -> None:
        k = len(states.theta)
        found = search.as_found(problem, states.theta, np.arange(first_index + len(added), first_index + len(added) + k),
                                tol, chain=states.chain, step=states.step, parent=states.parent,
                                segment_max=states.segment_max)
        store.append_equivalents(path, found)
        added.extend(range(k))

    log(f"teleport: {options.goal} {objective.name} from {'θ*' if start == 0 else f'element {start}'}, "
        f"{options.steps} steps, {'horizontal' if settings.horizontal else 'horizontal and vertical'} directions")
    try:
        t = teleport_.teleport(model, stored.theta_ref, stored.X, theta0, objective, options.goal, settings, tol=tol,
                               chain=chain, start_row=row, first_row=n, start_step=step0, progress=progress,
                               callback=append)
    except teleport_.Interrupted as stop:  # record what was stored, then stop as asked
        t = stop.teleport
        _record(path, stored, model, objective, options, settings, evaluated_on, t, theta0, chain, n, len(added),
                canonical=False)
        raise
    group, rows, canonical = _record(path, stored, model, objective, options, settings, evaluated_on, t, theta0, chain,
                                     n, len(added))
    log(f"teleport {group}: {t.reason}")
    values = t.values
    best = float(values.min() if options.goal == "min" else values.max())
    raw = (np.linalg.norm(t.stored.theta - stored.theta_ref, axis=1) / np.linalg.norm(stored.theta_ref)
           if len(rows) else np.zeros(0))
    return TeleportResult(
        group=group, objective=objective.name, formula=objective.formula, goal=options.goal,
        invariant=bool(objective.invariant), evaluated_on=evaluated_on, start=start, horizontal=settings.horizontal,
        rows=[int(r) + 1 for r in rows], steps=[int(s) for s in t.steps], values_=[float(v) for v in values],
        canonical_values=[float(v) for v in canonical], start_value=float(values[0]), best_value=best,
        final_value=float(values[-1]), change=float(values[-1] - values[0]),
        canonical_change=float(canonical[-1] - canonical[0]), accepted=t.accepted, refused=dict(t.refused),
        escapes=t.escapes, stopped=t.stopped, reason=t.reason, gradient_ratio=float(t.gradient_ratio),
        max_raw_distance=float(raw.max()) if len(raw) else 0.0,
        max_segment=float(t.stored.segment_max.max()) if len(rows) else float("nan"),
        segment_epsilon=settings.segment_epsilon, seconds=t.seconds)


def _record(path, stored: store.RunData, model, objective: Objective, options: TeleportOptions,
            settings: teleport_.TeleportSettings, evaluated_on: str, t: teleport_.Teleport, theta0: np.ndarray,
            chain: int, n: int, written: int, canonical: bool = True) -> tuple[str, np.ndarray, np.ndarray]:
    """``/teleports/teleport_<k>`` for the teleport ``t``, whose first ``written`` stored states follow the run's
    first n rows in the file, with J at the canonical points (NaN without ``canonical``: an interrupted teleport
    is recorded at once).  returns (group name, rows, canonical values)"""
    states = np.concatenate([theta0[None], t.stored.theta[:written]])
    if canonical:
        with one_thread():  # small products: one thread, as the teleport's own arithmetic
            canonical = np.array([float(objectives.at_canonical(objective, model, th, stored.theta_ref))
                                  for th in states])
    else:
        canonical = np.full(len(states), np.nan)
    rows = np.arange(n, n + written)
    group = f"teleport_{len(store.group_names(path, 'teleports')):03d}"
    attrs = {"objective": objective.name, "formula": objective.formula, "goal": options.goal, "start": options.start,
             "horizontal": settings.horizontal, "invariant": objective.invariant, "evaluated_on": evaluated_on,
             "stopped": t.stopped, "reason": t.reason, "accepted": t.accepted, "escapes": t.escapes,
             **{f"refused_{r}": v for r, v in t.refused.items()}, "forced_stores": t.forced_stores,
             "gradient_ratio": t.gradient_ratio, "epsilon": settings.segment_epsilon, "seconds": t.seconds,
             "chain": chain, "settings": json.dumps({name: getattr(settings, name) for name in (
                 "steps", "thin", "step_size", "max_step", "min_step", "segment_epsilon", "horizontal", "null_rtol",
                 "faces", "improve_rtol", "improve_atol", "stationary_rtol", "lanczos")}),
             "note": "rows: /equivalents rows of the stored states (0-based; element k = row k − 1); values, "
                     "canonical_values, steps: the start first, then each stored state"}
    store.write_teleport(path, group, {"rows": rows.astype(np.int64), "values": t.values[: written + 1],
                                       "canonical_values": canonical, "steps": t.steps[: written + 1],
                                       "trace_value": t.trace_value}, attrs,
                         segment_epsilon=settings.segment_epsilon if len(rows) else None)
    return group, rows, canonical


def arguments(parser) -> None:
    """``genni teleport``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--objective", required=True, help=f"what to lower or raise: {', '.join(objectives.NAMES)}")
    parser.add_argument("--goal", default="min", help="min or max (default %(default)s)")
    parser.add_argument("--from", dest="start", type=int, default=0, help="start element: 0 = θ* (default), k = row k − 1")
    parser.add_argument("--steps", type=int, default=50, help="accepted steps (default %(default)s)")
    parser.add_argument("--thin", type=int, help="store every thin-th accepted state, and the last (default 1)")
    parser.add_argument("--vertical", action="store_true",
                        help="also move along the symmetry orbits (rescalings): needed to lower a norm or the "
                             "sharpness of a relu network by rescaling")
    parser.add_argument("--inputs", help="relative_discrepancy (default heldout), layer_distance (default probe): "
                                         "probe, heldout or far")
    parser.add_argument("--metric", help="layer_distance's metric (default angular_procrustes)")
    parser.add_argument("--loss", help="sharpness, hessian_trace: labels (cross-entropy on the probe labels; default "
                                       "when the reference was trained on them) or outputs (mean squared error to the "
                                       "reference's outputs)")
    parser.add_argument("--step-size", type=float, help="initial step, relative to ‖θ*‖ (default 0.01)")


def from_args(args) -> tuple[str, TeleportOptions]:
    return args.run, TeleportOptions(objective=args.objective, goal=args.goal, start=args.start, steps=args.steps,
                                     thin=args.thin, horizontal=not args.vertical, inputs=args.inputs,
                                     metric=args.metric, loss=args.loss, step_size=args.step_size)
