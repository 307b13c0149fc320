"""Stage ``walk``: extend a run by walking along the equivalence class (:func:`genni.walk.walk`).

A chain moves θ by steps in the vertical (or horizontal) directions of the class, accepting a step
θ → θ' when the relative discrepancy stays ≤ ε along the whole straight segment θ → θ'
(``segment_max``); every ``thin``-th accepted state is stored as an ordinary row of /equivalents with
its ``chain``, ``step``, ``parent`` and ``segment_max``.  The chains' logs go to ``/walks/walk_<k>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import models, report, search, store
from .. import walk as walk_
from ..errors import ConfigError
from .common import Log, Result, need_int, next_chain, quiet, start_state, tolerance, writes

LOGGED_SETTINGS = ("chains", "steps", "thin", "step_size", "max_step", "segment_epsilon", "horizontal", "persistence",
                   "null_rtol", "faces")
"""The walk settings recorded with each walk's log."""


@dataclass(frozen=True)
class WalkOptions:
    """What ``walk`` does.

    start : the start element (0 = θ*, k = row k − 1 of /equivalents)
    chains : new chains;  steps : accepted steps per chain
    thin : store every thin-th state (None: the config's ``[search] thin``)
    """

    start: int = 0
    chains: int = 4
    steps: int = 40
    thin: int | None = None

    def __post_init__(self):
        need_int("walk --from", self.start, 0)
        for name in ("chains", "steps") + (("thin",) if self.thin is not None else ()):
            need_int(f"walk --{name}", getattr(self, name), 1)


@dataclass(frozen=True, repr=False)
class WalkResult(Result):
    """What ``walk`` added: rows stored, per-chain ids, accepted steps and stop reasons, refusals by reason,
    steps that changed a relu pattern, early stores, seconds, the farthest raw distance ‖θ − θ*‖ / ‖θ*‖,
    the largest segment certificate and the ε it is held to."""

    headline = staticmethod(report.format_walk)

    rows_added: int
    chains: list
    accepted: list
    refused: dict
    pattern_changes: int
    forced_stores: int
    stopped: list
    seconds: float
    max_raw_distance: float
    max_segment: float
    segment_epsilon: float


def walk_settings(section: dict, **overrides) -> walk_.WalkSettings:
    """The ``[search]`` section's walk settings, with ``overrides``; a bad value is a one-line ConfigError."""
    try:
        return walk_.WalkSettings.from_config(section, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@writes("walk")
def run(path: str | Path, options: WalkOptions = WalkOptions(), *, progress: bool = False,
        log: Log = quiet) -> WalkResult:
    """Extend a run by ``chains`` new chains from element ``start``, ``steps`` accepted steps each.

    The walk's settings (ε, step size, horizontal) come from the run's config; the tolerance is the run's.
    """
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    start = options.start
    theta0, row, step0 = start_state(stored, start, "a walk")
    tol = tolerance(stored)
    section = stored.config["search"]
    first_chain = next_chain(stored)
    wset = walk_settings(section, steps=options.steps, chains=options.chains, thin=options.thin)
    problem = search.Problem.from_arrays(model, stored.theta_ref, stored.X, stored.X_heldout)
    starts = [walk_.Start(first_chain + c, theta0, row, step0, options.steps) for c in range(options.chains)]
    log(f"walking {options.chains} chain(s) of {options.steps} steps from "
        f"{'θ*' if start == 0 else f'element {start}'}")
    n_new, logs = run_chains(Path(path), model, problem, starts, wset, tol=tol, seed=int(stored.attrs.get("seed", 0)),
                             progress=progress)
    log_stops(logs, log)
    after = store.load_run(path).equivalents
    new = np.arange(stored.n_equivalents, stored.n_equivalents + n_new)
    raw = (np.linalg.norm(after["theta"][new] - stored.theta_ref, axis=1) / np.linalg.norm(stored.theta_ref)
           if n_new else np.zeros(0))
    return WalkResult(
        rows_added=n_new, chains=[g.chain for g in logs], accepted=[g.accepted for g in logs],
        refused={r: int(sum(g.refused[r] for g in logs)) for r in walk_.REASONS},
        pattern_changes=int(sum(g.pattern_changes for g in logs)),
        forced_stores=int(sum(g.forced_stores for g in logs)), stopped=[g.stopped for g in logs],
        seconds=float(sum(g.seconds for g in logs)), max_raw_distance=float(raw.max()) if len(raw) else 0.0,
        max_segment=float(after["segment_max"][new].max()) if n_new else float("nan"),
        segment_epsilon=wset.segment_epsilon)


def run_chains(path: Path, model: models.Model, problem: search.Problem, starts: list, wsettings: walk_.WalkSettings,
               *, tol: float, seed: int, progress: bool, callback: Callable | None = None) -> tuple[int, list]:
    """Walk the chains of ``starts`` and stream their stored states into ``path`` as ordinary elements;
    the chains' logs go to ``/walks/walk_<k>``.  returns (rows added, logs)"""
    eq = store.load_run(path).equivalents
    first_row = len(eq.get("index", ()))
    next_index = int(eq["index"].max()) + 1 if first_row else 0
    logs: list = []
    n_new = 0
    for stored in walk_.walk(model, problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy(), starts, wsettings,
                             tol=tol, seed=seed, first_row=first_row, progress=progress, logs=logs):
        k = len(stored.theta)
        found = search.as_found(problem, stored.theta, np.arange(next_index, next_index + k), tol,
                                chain=stored.chain, step=stored.step, parent=stored.parent,
                                segment_max=stored.segment_max)
        store.append_equivalents(path, found)
        if callback is not None:
            callback(found)
        next_index += k
        n_new += k
    _write_logs(path, logs, wsettings, n_new)
    return n_new, logs


def _write_logs(path: Path, logs: list, wsettings: walk_.WalkSettings, n_new: int) -> None:
    """One walk call's chain logs (:class:`genni.walk.ChainLog`, one entry per chain) into
    ``/walks/walk_<k>`` [C] each, and the ε every stored segment satisfies onto /equivalents."""
    column = lambda name, dtype=None: np.array([getattr(g, name) for g in logs], dtype)  # noqa: E731
    groups = store.group_names(path, "walks")
    store.write_group(path, f"walks/walk_{len(groups):03d}", {
        "chain": column("chain", np.int64), "accepted": column("accepted", np.int64),
        **{f"refused_{r}": np.array([g.refused[r] for g in logs], np.int64) for r in walk_.REASONS},
        "pattern_changes": column("pattern_changes", np.int64), "forced_stores": column("forced_stores", np.int64),
        "seconds": column("seconds"), "final_step": column("final_step"), "stopped": column("stopped", "S")},
        {"settings": json.dumps({k: getattr(wsettings, k) for k in LOGGED_SETTINGS}),
         "rows_added": n_new, "note": "one entry per chain of this walk call (genni.walk.ChainLog)"})
    store.update_attrs(path, "equivalents", {"segment_epsilon": wsettings.segment_epsilon})


def walk_find(path: Path, cfg: dict, model: models.Model, problem: search.Problem, settings: search.SearchSettings, *,
              progress: bool, callback: Callable | None, log: Log) -> tuple[int, list]:
    """``find`` with ``[search] init = "walk"``: ``chains`` chains from θ* store ``n`` elements in all (chain c
    stores n // chains, one more for the first n % chains), every ``thin``-th accepted step; resuming goes on
    from each chain's last stored row.  returns (rows added, logs)"""
    wset = walk_settings(cfg["search"])
    eq = store.load_run(path).equivalents
    chain = eq.get("chain", np.zeros(0, np.int64))
    starts = []
    for c in range(wset.chains):
        want = settings.n // wset.chains + (c < settings.n % wset.chains)
        rows = np.flatnonzero(chain == c)
        have = len(rows)
        if have >= want:
            continue
        if have:
            last = rows[np.argmax(eq["step"][rows])]
            start = walk_.Start(c, eq["theta"][last], int(last), int(eq["step"][last]), (want - have) * wset.thin,
                                want - have)
        else:
            start = walk_.Start(c, problem.theta_ref.cpu().numpy(), -1, 0, want * wset.thin, want)
        starts.append(start)
    if not starts:
        return 0, []
    log(f"walking {len(starts)} chain(s) from {'their last stored states' if len(chain) else 'θ*'}")
    n_new, logs = run_chains(path, model, problem, starts, replace(wset, steps=max(s.steps for s in starts)),
                             tol=settings.tol, seed=cfg["seed"], progress=progress, callback=callback)
    log_stops(logs, log)
    return n_new, logs


def log_stops(logs: list, log: Log) -> None:
    """Log every chain that stopped before its steps were done, with why."""
    for g in logs:
        if g.stopped != "done":
            extra = (" (the class is locally just the symmetry orbit: nothing to walk along)"
                     if g.stopped == "no vertical directions" else "")
            log(f"chain {g.chain} stopped after {g.accepted} accepted steps: {g.stopped}{extra}")


def arguments(parser) -> None:
    """``genni walk``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--from", dest="start", type=int, default=0, help="start element: 0 = θ* (default), k = row k − 1")
    parser.add_argument("--chains", type=int, default=4, help="chains (default %(default)s)")
    parser.add_argument("--steps", type=int, default=40, help="accepted steps per chain (default %(default)s)")
    parser.add_argument("--thin", type=int, help="store every thin-th state (default: the config's [search] thin)")


def from_args(args) -> tuple[str, WalkOptions]:
    return args.run, WalkOptions(start=args.start, chains=args.chains, steps=args.steps, thin=args.thin)
