"""Wiring of the stages: a resolved config and a run file in, results into the file.

``find`` builds (or, on resume, reloads) the reference network and probe data and
streams functionally equivalent parameter sets into the run file as they finish.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import config as _config
from . import data as _data
from . import identifiability, models, projection, search, store, train
from . import walk as walk_
from .errors import GenniError
from .geometry.statistics import min_median_max
from .progress import bar

WRITE_EVERY = 0.5
"""Seconds of grid work between two writes of a project's grid (a kill loses at most this much)."""

DEGENERATE_RATIO = 1e-4
"""A reference is flagged degenerate when tol / output power exceeds this: the zero
function would then be (nearly) close enough to count as an equivalent."""


def _writes(fn: Callable) -> Callable:
    """Run ``fn`` holding the run file's one-writer lock (:func:`store.writer_lock`): a second process
    writing the same file is refused at once, naming the first."""
    import functools
    import inspect

    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        path = sig.bind(*args, **kwargs).arguments["path"]
        with store.writer_lock(path, fn.__name__, create=fn.__name__ == "find"):
            return fn(*args, **kwargs)
    return wrapper


def _warn(msg: str) -> None:
    print(f"genni: warning: {msg}", file=sys.stderr)


def _architecture(spec: models.Model) -> dict:
    """The JSON description stored on /reference/theta: the model's own, its phrase and its sizes (so
    readers check shapes without building the model)."""
    return {**spec.to_dict(), "description": spec.describe(), "n_params": spec.n_params, "in_dim": spec.in_dim,
            "out_dim": spec.out_dim}


def reference_facts(spec: models.Model, problem: search.Problem, tol: float) -> dict:
    """Output power, the degeneracy flag and dead units of the reference."""
    power = problem.output_power
    dead = spec.dead_units(problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy())
    return {
        "output_power": power,
        "output_power_heldout": problem.output_power_heldout,
        "degenerate": bool(power <= 0 or tol / power > DEGENERATE_RATIO),
        "dead_units": dead,
    }


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise GenniError(f"unknown device '{name}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenniError(f"device '{name}' requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GenniError(f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


@_writes
def find(cfg: dict, path: str | Path, *, progress: bool = False, callback: Callable | None = None,
         log: Callable[[str], None] | None = None, reference_only: bool = False) -> dict:
    """Reference + probe data + ``cfg['search']['n']`` equivalents into ``path``.

    A new file is created; an existing file made with the same config (up to
    :data:`genni.config.RESUMABLE_KEYS`) is resumed: only the missing element
    indices are searched.  A file made with another config is refused untouched.
    With ``reference_only`` the file gets the reference, probe data and far inputs and no search runs
    (a sweep's ``train`` stage).
    returns : a few facts about what was done (created, n_new, n_total, ...)
    """
    log = log or (lambda m: None)
    p = Path(path)
    dev = _device(cfg["search"]["device"])
    settings = search.SearchSettings.from_config(cfg["search"])
    if p.exists():
        stored = store.read_config(p)
        diffs = _config.differences(stored, cfg)
        if diffs:
            raise GenniError(f"{p} was made with a different config ({', '.join(diffs)} differ); "
                             "refusing to mix runs: choose another -o file")
        run = store.load_run(p)
        spec = models.from_dict(run.architecture)
        theta_ref, X, Xh = run.theta_ref, run.X, run.X_heldout
        ref = ds = None
        log(f"resuming {p}: {run.n_equivalents} elements stored")
    else:
        d = cfg["data"]
        ds = _data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"],
                                n_train=d["n_train"], seed=cfg["seed"], noise=d["noise"], dim=d.get("dim"))
        spec = _config.model_of(cfg)
        ref = train.make_reference(cfg, spec, ds, progress=progress)
        log(f"reference: {cfg['reference']['source']} {spec.describe()} on {ds.name}")
        theta_ref, X, Xh = ref.theta, ds.X_probe, ds.X_heldout
    problem = search.Problem.from_arrays(spec, theta_ref, X, Xh, device=dev)
    facts = reference_facts(spec, problem, settings.tol)
    created = ref is not None
    if created:
        X_far, Y_far, far_attrs, power_far = far_inputs(cfg, spec, theta_ref, X, Xh)
        store.create_run(
            p, config=cfg, architecture=_architecture(spec), theta_ref=theta_ref,
            reference={"accuracy": ref.accuracy, "source": ref.source, "train_accuracy": ref.train_accuracy,
                       "output_power_far": power_far, **facts},
            X=X, X_heldout=Xh, Y=problem.Y.cpu().numpy(), Y_heldout=problem.Y_heldout.cpu().numpy(),
            labels=ds.y_probe, labels_heldout=ds.y_heldout, X_far=X_far, Y_far=Y_far, probe_attrs=far_attrs,
            equivalents_attrs={"tol": settings.tol, "method": settings.method,
                               "status_codes": list(search.STATUS), "n_requested": settings.n})
        if ref.accuracy is not None:
            log(f"reference accuracy (held-out labels): {ref.accuracy:.3f}")
    if facts["degenerate"]:
        _warn(f"the reference is nearly the zero function on the probe set (output power "
              f"{facts['output_power']:.3g}, tol {settings.tol:.3g}): 'converged' would not mean equivalent")
    if any(facts["dead_units"]):
        log(f"reference has dead hidden units per layer: {facts['dead_units']}")
    done = set(store.done_indices(p).tolist())
    if reference_only:
        return {"path": str(p), "created": created, "n_new": 0, "n_total": len(done), **facts}
    store.update_attrs(p, "equivalents", {"n_requested": max(settings.n, len(done))})
    if settings.init == "walk":
        n_new, _ = _walk_find(p, cfg, spec, problem, settings, progress=progress, callback=callback, log=log)
        return {"path": str(p), "created": created, "n_new": n_new, "n_total": len(done) + n_new, **facts}
    todo = [i for i in range(settings.n) if i not in done]
    n_new = 0
    def stalled(msg: str) -> None:
        act = getattr(spec, "activation", "this model's")
        hint = ("expected for relu from random starts: spurious minima (README, 'ReLU from random starts'); use "
                "[search] init = \"perturb\" (θ* + init_scale × noise) or \"walk\" (a looser tol would only accept the "
                "stalled elements)" if act in
                ("relu", "leaky_relu") and settings.init == "random" else
                ("not expected from θ* + small noise: try a smaller [search] init_scale, a looser tol, or more "
                 "restarts" if settings.init != "random" else
                 f"not expected for {act} activations (random starts usually converge): try [search] "
                 "init = \"perturb\", a looser tol, or more restarts"))
        _warn(f"{msg}; {hint}; fewer [search] restarts give up sooner (each element stops after at most "
              f"(restarts + 1) × max_steps = {(settings.restarts + 1) * settings.steps_per_attempt} steps)")

    for chunk in search.search(problem, settings, seed=cfg["seed"], indices=todo, progress=progress,
                               callback=callback, on_stall=stalled):
        store.append_equivalents(p, chunk)
        n_new += len(chunk)
    return {"path": str(p), "created": created, "n_new": n_new, "n_total": len(done) + n_new, **facts}


def _walk_settings(section: dict, **overrides) -> walk_.WalkSettings:
    try:
        return walk_.WalkSettings.from_config(section, **overrides)
    except ValueError as exc:
        raise GenniError(str(exc)) from None


def _run_walk(path: Path, spec: models.Model, problem: search.Problem, starts: list, wsettings: walk_.WalkSettings,
              *, tol: float, seed: int, progress: bool, callback: Callable | None = None) -> tuple[int, list]:
    """Walk the chains of ``starts`` and stream their stored states into ``path`` as ordinary elements;
    the chains' logs go to ``/walks/walk_<k>``.  returns (rows added, logs)"""
    eq = store.load_run(path).equivalents
    first_row = len(eq.get("index", ()))
    next_index = int(eq["index"].max()) + 1 if first_row else 0
    logs: list = []
    n_new = 0
    for stored in walk_.walk(spec, problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy(), starts, wsettings,
                             tol=tol, seed=seed, first_row=first_row, progress=progress, logs=logs):
        k = len(stored.theta)
        found = search.describe(problem, stored.theta, np.arange(next_index, next_index + k), tol,
                                chain=stored.chain, step=stored.step, parent=stored.parent,
                                segment_max=stored.segment_max)
        store.append_equivalents(path, found)
        if callback is not None:
            callback(found)
        next_index += k
        n_new += k
    groups = store.group_names(path, "walks")
    store.write_group(path, f"walks/walk_{len(groups):03d}", {
        "chain": np.array([g.chain for g in logs], np.int64),
        "accepted": np.array([g.accepted for g in logs], np.int64),
        **{f"refused_{r}": np.array([g.refused[r] for g in logs], np.int64) for r in walk_.REASONS},
        "pattern_changes": np.array([g.pattern_changes for g in logs], np.int64),
        "forced_stores": np.array([g.forced_stores for g in logs], np.int64),
        "seconds": np.array([g.seconds for g in logs]), "final_step": np.array([g.final_step for g in logs]),
        "stopped": np.array([g.stopped for g in logs], dtype="S")},
        {"settings": json.dumps({k: getattr(wsettings, k) for k in ("chains", "steps", "thin", "step_size", "max_step",
                                                                    "segment_epsilon", "horizontal", "persistence",
                                                                    "null_rtol", "faces")}),
         "rows_added": n_new, "note": "one entry per chain of this walk call (genni.walk.ChainLog)"})
    store.update_attrs(path, "equivalents", {"segment_epsilon": wsettings.segment_epsilon})
    return n_new, logs


def _tree_path(eq: dict, i: int, j: int) -> list[int] | None:
    """Rows of the path i → j through walk parent links (rows; −1 = θ*), or None if they share no tree."""
    def up(r):
        out = [r]
        while r >= 0:
            r = int(eq["parent"][r])
            out.append(r)
            if len(out) > len(eq["parent"]) + 2:
                return None
        return out
    if not ((i < 0 or eq["chain"][i] >= 0 or i == j) and (j < 0 or eq["chain"][j] >= 0)):
        return None
    a, b = up(i), up(j)
    if a is None or b is None:
        return None
    common = next((r for r in a if r in set(b)), None)
    if common is None:
        return None
    return a[: a.index(common) + 1] + list(reversed(b[: b.index(common)]))


@_writes
def connect(path: str | Path, i: int, j: int, *, max_steps: int = 200,
            log: Callable[[str], None] | None = None) -> dict:
    """A certified path inside the class between element i and element j (0 = θ*, k = row k − 1), into
    ``/paths_between/<i>_<j>``: ``theta`` [K, P] (first = i, last = j or its symmetry copy nearest i),
    ``segment_max`` [K − 1]; attributes ``certified``, ``epsilon``, ``reason``, ``method``.

    When i and j lie on the same walk tree (parent links), the path follows the stored rows and every
    segment is certified again here; otherwise a walk leaning toward j modulo the exact symmetries
    (:func:`genni.walk.connect`).  An unreachable target is reported (certified = false, a reason),
    never raised.
    """
    log = log or (lambda m: None)
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    n = run.n_equivalents
    for name, v in (("I", i), ("J", j)):
        if not 0 <= v <= n:
            raise GenniError(f"element {name} = {v} is out of range: 0 is θ*, 1..{n} the stored elements")
    if i == j:
        raise GenniError("I and J are the same element")
    eq = run.equivalents
    tol = float(run.equivalents_attrs.get("tol", run.config["search"]["tol"]))
    for v in (i, j):
        if v > 0 and not eq["converged"][v - 1]:
            raise GenniError(f"element {v} is not on the class (probe discrepancy {eq['discrepancy'][v - 1]:.3g} > tol)")
    wset = _walk_settings(run.config["search"])
    eps = float(run.equivalents_attrs.get("segment_epsilon", wset.segment_epsilon))
    theta = lambda v: run.theta_ref if v == 0 else eq["theta"][v - 1]  # noqa: E731
    x = torch.as_tensor(run.X)
    Y = torch.as_tensor(run.Y)
    power = float((run.Y * run.Y).sum(-1).mean())
    rows = _tree_path(eq, i - 1, j - 1) if n else None
    if rows is not None:
        verts = np.stack([run.theta_ref if r < 0 else eq["theta"][r] for r in rows])
        certs = np.array([walk_.segment_max(spec, verts[k], verts[k + 1], x, Y, power) for k in range(len(verts) - 1)])
        ok = bool((certs <= eps).all())
        conn = walk_.Connection(verts, certs, ok, "along the stored walk chain" if ok else
                                "a stored segment fails its certificate when recomputed", 0)
        method = "walk tree (parent links), segments re-certified"
    else:
        a = theta(i)
        b, _ = spec.symmetry.align(theta(j), a)
        log(f"walking from element {i} toward element {j} (aligned to {i} modulo the exact symmetries)")
        conn = walk_.connect(spec, run.theta_ref, run.X, a, b, replace(wset, segment_epsilon=eps), tol=tol,
                             max_steps=max_steps, seed=int(run.attrs.get("seed", 0)))
        method = "directed walk toward the target aligned modulo the exact symmetries"
    store.write_group(path, f"paths_between/{i}_{j}", {"theta": conn.vertices, "segment_max": conn.segment_max},
                      {"certified": conn.certified, "epsilon": eps, "reason": conn.reason, "method": method,
                       "from": i, "to": j, "note": "0 = θ*, k = /equivalents row k − 1; the last vertex is J or, "
                       "for a directed walk, J's symmetry copy nearest I (the same function)"})
    length = float(np.linalg.norm(np.diff(conn.vertices, axis=0), axis=1).sum()) if len(conn.vertices) > 1 else 0.0
    return {"from": i, "to": j, "certified": conn.certified, "reason": conn.reason, "method": method,
            "vertices": len(conn.vertices), "epsilon": eps,
            "max_segment": float(conn.segment_max.max()) if len(conn.segment_max) else float("nan"),
            "length": length / float(np.linalg.norm(run.theta_ref))}


def _walk_find(path: Path, cfg: dict, spec: models.Model, problem: search.Problem, settings: search.SearchSettings, *,
               progress: bool, callback: Callable | None, log: Callable[[str], None]) -> tuple[int, list]:
    """``[search] init = "walk"``: ``chains`` chains from θ* store ``n`` elements in all (chain c stores
    n // chains, one more for the first n % chains), every ``thin``-th accepted step; resuming goes on
    from each chain's last stored row."""
    wset = _walk_settings(cfg["search"])
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
    n_new, logs = _run_walk(path, spec, problem, starts, replace(wset, steps=max(s.steps for s in starts)),
                            tol=settings.tol, seed=cfg["seed"], progress=progress, callback=callback)
    _log_stops(logs, log)
    return n_new, logs


def _log_stops(logs: list, log: Callable[[str], None]) -> None:
    for g in logs:
        if g.stopped != "done":
            extra = (" (the class is locally just the symmetry orbit: nothing to walk along)"
                     if g.stopped == "no vertical directions" else "")
            log(f"chain {g.chain} stopped after {g.accepted} accepted steps: {g.stopped}{extra}")


@_writes
def walk(path: str | Path, *, start: int = 0, chains: int = 4, steps: int = 40, thin: int | None = None,
         progress: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Extend a run by ``chains`` new chains from element ``start`` (0 = θ*, k = row k − 1 of /equivalents),
    ``steps`` accepted steps each, storing every ``thin``-th state (default: the config's ``thin``).

    The walk's settings (ε, step size, horizontal) come from the run's config; the tolerance is the run's.
    returns : rows added, per-chain logs, the farthest raw distance reached (‖θ − θ*‖/‖θ*‖)
    """
    log = log or (lambda m: None)
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    n = run.n_equivalents
    if not 0 <= start <= n:
        raise GenniError(f"--from {start} is out of range: 0 is θ*, 1..{n} the stored elements")
    if chains < 1 or steps < 1 or (thin is not None and thin < 1):
        raise GenniError("--chains, --steps and --thin must be at least 1")
    tol = float(run.equivalents_attrs.get("tol", run.config["search"]["tol"]))
    eq = run.equivalents
    if start == 0:
        theta0, row, step0 = run.theta_ref, -1, 0
    else:
        row = start - 1
        if not eq["converged"][row]:
            raise GenniError(f"element {start} (row {row}) is not on the class (probe discrepancy "
                             f"{eq['discrepancy'][row]:.3g} > tol {tol:.3g}): a walk must start on it")
        theta0, step0 = eq["theta"][row], int(eq["step"][row]) if int(eq["chain"][row]) >= 0 else 0
    # new chain ids: after every stored chain, and after the ids a walk config reserves for find
    reserved = int(run.config["search"].get("chains", 0)) if run.config["search"].get("init") == "walk" else 0
    first_chain = max(int(eq["chain"].max()) + 1 if n else 0, reserved)
    wset = _walk_settings(run.config["search"], steps=steps, chains=chains, thin=thin)
    problem = search.Problem.from_arrays(spec, run.theta_ref, run.X, run.X_heldout)
    starts = [walk_.Start(first_chain + c, theta0, row, step0, steps) for c in range(chains)]
    log(f"walking {chains} chain(s) of {steps} steps from {'θ*' if start == 0 else f'element {start}'}")
    n_new, logs = _run_walk(Path(path), spec, problem, starts, wset, tol=tol, seed=int(run.attrs.get("seed", 0)),
                            progress=progress)
    _log_stops(logs, log)
    after = store.load_run(path).equivalents
    new = np.arange(n, n + n_new)
    raw = np.linalg.norm(after["theta"][new] - run.theta_ref, axis=1) / np.linalg.norm(run.theta_ref) if n_new else np.zeros(0)
    return {"rows_added": n_new, "chains": [g.chain for g in logs], "accepted": [g.accepted for g in logs],
            "refused": {r: int(sum(g.refused[r] for g in logs)) for r in walk_.REASONS},
            "pattern_changes": int(sum(g.pattern_changes for g in logs)),
            "forced_stores": int(sum(g.forced_stores for g in logs)), "stopped": [g.stopped for g in logs],
            "seconds": float(sum(g.seconds for g in logs)), "max_raw_distance": float(raw.max()) if len(raw) else 0.0,
            "max_segment": float(after["segment_max"][new].max()) if n_new else float("nan"),
            "segment_epsilon": wset.segment_epsilon}


def far_inputs(cfg: dict, spec: models.Model, theta_ref: np.ndarray, X: np.ndarray,
               X_heldout: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict, float]:
    """The run's far inputs (:func:`genni.data.far_inputs` around the probe and held-out inputs,
    ``[data] n_far`` of them at ``far_scale`` × the data's radius, seeded by the run's seed) and
    the reference's outputs there.

    returns : (X_far [n_far, w_0], Y_far [n_far, w_L], attributes for /probe, output power on them)
    """
    d = cfg.get("data", {})
    n_far = d.get("n_far", _data.DEFAULT_N_FAR)
    scale = d.get("far_scale", _data.DEFAULT_FAR_SCALE)
    X_far, facts = _data.far_inputs(np.concatenate([X, X_heldout]), n_far, scale=scale, seed=int(cfg.get("seed", 0)))
    with torch.no_grad():
        Y_far = spec.forward(torch.as_tensor(theta_ref), torch.as_tensor(X_far)).numpy()
    attrs = {"far_how": facts["how"], "far_radius": facts["radius"], "far_scale": facts["scale"],
             "far_centre": facts["centre"]}
    return X_far, Y_far, attrs, float((Y_far * Y_far).sum(-1).mean())


RANK_GROWTH_PATIENCE = 3  # rank_growth stops when 2³ = 8× more inputs changed nothing


@_writes
def identify(path: str | Path, *, rtol: float = identifiability.DEFAULT_RTOL,
             copy_factor: float = identifiability.DEFAULT_COPY_FACTOR,
             agree_tol: float = identifiability.DEFAULT_AGREE_TOL, rank_growth_max: int | None = None,
             progress: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Functional dimension at the reference and a verdict on every stored element, into ``path``.

    ``rank_growth_max`` > 0 (default: the config's ``[identify] rank_growth_max``) also stores
    ``/identifiability/rank_growth`` [k, 2]: the rank of J over fresh inputs from the data's distribution,
    doubling from n_probe until it stops changing or reaches that many (:func:`identifiability.rank_growth`).

    Verdicts and every quantity behind them come from :func:`genni.identifiability.assess` (agreement on
    probe, held-out and far inputs; the copy score against the per-element threshold; J at the balanced
    θ*).  A run file written before far inputs existed gets them here (``/probe/X_far``, ``/probe/Y_far``).
    Per element: ``verdict``, ``aligned_theta``, ``distance_to_reference``, ``distance_row``,
    ``distance_null``, ``symmetry_threshold``, ``copy_score``, ``linearity_heldout``, ``linearity_far``,
    ``discrepancy_far``, ``relative_discrepancy_far``.

    returns : the headline facts (rank, expected rank, verdict counts, thresholds, ...)
    """
    log = log or (lambda m: None)
    for name, v in (("rtol", rtol), ("copy factor", copy_factor), ("agreement tolerance", agree_tol)):
        if not (v > 0 and np.isfinite(v)):
            raise GenniError(f"{name} must be a positive number, got {v}")
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    if run.X_far is None:
        X_far, Y_far, far_attrs, power_far = far_inputs(run.config, spec, run.theta_ref, run.X, run.X_heldout)
        store.write_far_inputs(path, X_far, Y_far, far_attrs, {"output_power_far": power_far})
        log(f"added {len(X_far)} far inputs to {path} ({far_attrs['far_how']})")
        run = store.load_run(path)
    if spec.n_params > IDENTIFY_SVD_MAX_P:
        return _identify_matrix_free(path, run, spec, rtol, log, progress)
    tol = float(run.equivalents_attrs.get("tol", run.config.get("search", {}).get("tol", 0.0)))
    eq = run.equivalents
    n = run.n_equivalents
    thetas = eq["theta"] if n else np.zeros((0, spec.n_params))
    a = identifiability.assess(spec, run.theta_ref, run.X, run.X_heldout, run.X_far, thetas, tol, rtol=rtol,
                               copy_factor=copy_factor, agree_tol=agree_tol, progress=progress)
    sp, verdict = a.spectrum, a.verdict
    J_rows = len(run.X) * spec.out_dim
    table = identifiability.rank_vs_probe(spec, a.reference_balanced, run.X, rtol=rtol)
    expected = identifiability.expected_rank(spec, J_rows)
    if rank_growth_max is None:
        rank_growth_max = int(run.config.get("identify", {}).get("rank_growth_max", 0))
    growth, growth_attrs = {}, {}
    if rank_growth_max > 0:
        d = run.config["data"]
        draw = _data.input_stream(d["dataset"], seed=int(run.config.get("seed", 0)), noise=d.get("noise"),
                                  dim=d.get("dim"))
        g = identifiability.rank_growth(spec, a.reference_balanced, draw, len(run.X), rank_growth_max, rtol=rtol,
                                        patience=RANK_GROWTH_PATIENCE)
        growth = {"rank_growth": g}
        growth_attrs = {"rank_growth_rank": int(g[-1, 1]), "rank_growth_inputs": int(g[-1, 0]),
                        "rank_growth_saturated": bool(len(g) > RANK_GROWTH_PATIENCE
                                                      and g[-1 - RANK_GROWTH_PATIENCE, 1] == g[-1, 1]),
                        "rank_growth_how": f"fresh {d['dataset']} inputs, doubling from {len(run.X)}; saturated = "
                                           f"unchanged over the last {RANK_GROWTH_PATIENCE} doublings"}
        log(f"rank over fresh inputs: {g[-1, 1]} at m = {g[-1, 0]} "
            f"({'unchanged' if growth_attrs['rank_growth_saturated'] else 'still changing'} over the last "
            f"{2 ** RANK_GROWTH_PATIENCE}× inputs)")
    kinds = spec.symmetry.kinds
    meaning = json.dumps(identifiability.VERDICT_MEANING)
    store.write_identifiability(
        path,
        results={"singular_values": sp.singular_values, "rank": sp.rank, "rank_tolerance": sp.rank_tolerance,
                 "expected_rank": expected, "null_basis": sp.null_basis, "rank_vs_probe": table, **growth},
        attrs={**growth_attrs, "rtol": rtol, "gap": sp.gap, "n_params": spec.n_params, "n_rows": J_rows,
               "symmetries": json.dumps(kinds), "gauge": "balanced reference (minimum-norm point of its rescaling orbit)"},
        per_element={"verdict": verdict, "aligned_theta": a.aligned, "distance_to_reference": a.distance,
                     "symmetry_threshold": a.threshold, "distance_row": a.distance_row, "distance_null": a.distance_null,
                     "copy_score": a.score, "linearity_heldout": a.linearity_heldout,
                     "linearity_far": a.linearity_far, "discrepancy_far": a.discrepancy_far,
                     "relative_discrepancy_far": a.relative_far},
        element_attrs={"verdict_codes": list(identifiability.VERDICTS), "verdict_meaning": meaning,
                       "copy_factor": copy_factor, "copy_threshold_formula": identifiability.COPY_THRESHOLD_FORMULA,
                       "copy_score_formula": identifiability.COPY_SCORE_FORMULA,
                       "linearity_limit": identifiability.LINEARITY_LIMIT,
                       "sigma_r": a.sigma_r, "agree_tol": agree_tol, "agreement_tolerance": a.agree,
                       "generalisation_factor": identifiability.GENERALISATION_FACTOR,
                       "far_how": str(run.probe_attrs.get("far_how", ""))})
    counts = a.counts()
    conv = np.asarray(eq.get("converged", np.zeros(0, bool)), bool)
    return {"rank": sp.rank, "expected_rank": expected, "n_params": spec.n_params, "rank_tolerance": sp.rank_tolerance,
            "gap": sp.gap, "null_dim": spec.n_params - sp.rank, "symmetries": kinds, "n_elements": n,
            "verdicts": counts, "meaning": identifiability.VERDICT_MEANING, "copy_factor": copy_factor,
            "sigma_r": a.sigma_r, "agreement_tolerance": a.agree, "agree_tol": agree_tol, "n_far": len(run.X_far),
            "far_how": str(run.probe_attrs.get("far_how", "")),
            "median_threshold": float(np.median(a.threshold[conv])) if conv.any() else float("nan"),
            "relative_discrepancy_far": min_median_max(a.relative_far[conv]),
            "distance_to_reference": min_median_max(a.distance[conv]), **growth_attrs}


IDENTIFY_SVD_MAX_P = 8192
"""Above this many parameters `identify` does not take the SVD of J (its right vectors alone would be
P² floats: 15 GB at LeNet's 44k) but the matrix-free functional dimension."""


def _identify_matrix_free(path, run: store.RunData, spec: models.Model, rtol: float, log, progress: bool) -> dict:
    """`identify` for large P: rank J at the balanced θ* from J·v products only
    (:func:`identifiability.randomized_rank`, with its error bound) and each element's discrepancy on the
    far inputs; no per-element verdicts (they rest on J's right singular vectors: the resolved part of each
    displacement), which the log says."""
    ref = spec.symmetry.balance(run.theta_ref)
    rr = identifiability.randomized_rank(spec, ref, run.X, rtol=rtol, progress=progress)
    far = identifiability.far_discrepancies(spec, run.equivalents["theta"], run.X_far, run.Y_far)
    J_rows = len(run.X) * spec.out_dim
    expected = identifiability.expected_rank(spec, J_rows)
    kinds = spec.symmetry.kinds
    how = ("randomized range finder on J·v products (Halko, Martinsson & Tropp 2011): every direction missing "
           "from the range has singular value ≤ rank_error_bound with probability ≥ 1 − min(m, P)·1e-10")
    store.write_identifiability(
        path, results={"rank": rr["rank"], "rank_tolerance": rr["epsilon"], "expected_rank": expected},
        attrs={"rtol": rtol, "n_params": spec.n_params, "n_rows": J_rows, "symmetries": json.dumps(kinds),
               "rank_method": "randomized", "rank_how": how, "rank_error_bound": rr["bound"],
               "sigma_max": rr["sigma_max"], "products": rr["products"], "gauge": "balanced reference"},
        per_element=far, element_attrs={})
    log(f"P = {spec.n_params:,} > {IDENTIFY_SVD_MAX_P:,}: functional dimension from J·v products only; no "
        "per-element verdicts (they need J's right singular vectors); discrepancies on far inputs stored")
    return {"rank": rr["rank"], "expected_rank": expected, "n_params": spec.n_params, "rank_tolerance": rr["epsilon"],
            "method": "randomized", "rank_error_bound": rr["bound"], "products": rr["products"],
            "null_dim": spec.n_params - rr["rank"], "symmetries": kinds, "n_elements": run.n_equivalents,
            "verdicts": {}}


def _elements_for_picture(spec: models.Model, run: store.RunData) -> tuple[np.ndarray, np.ndarray, str]:
    """(origin, elements, how) for the pictures.  Elements are aligned to θ* when `identify` has
    run (symmetry copies then collapse onto the reference), else as found; for relu every
    network, θ* included, is moved to the minimum-norm point of its rescaling orbit
    (``model.symmetry.balance``: the same function), so that units that are almost
    switched off do not dominate distances with huge compensating weights."""
    eq = run.equivalents
    thetas, how = (eq["aligned_theta"], "aligned") if "aligned_theta" in eq else (eq["theta"], "as found")
    if spec.symmetry.kinds.get("rescaling"):
        return (spec.symmetry.balance(run.theta_ref), np.stack([spec.symmetry.balance(t) for t in thetas]),
                how + ", balanced")
    return run.theta_ref, thetas, how


@_writes
def project(path: str | Path, *, subspace: str = "pca", dims: int = 2, resolution: int | None = None,
            elements: tuple[int, ...] | None = None, epsilon_rel: float = 1e-6, margin: float = 0.25,
            paths: int = 8, progress: bool = False, batch: int = projection.DEFAULT_BATCH,
            device: str | None = None) -> dict:
    """A subspace through the equivalence class, the discrepancy on a grid in it, and paths.

    Stores ``/projections/<subspace>`` (2-D) or ``/projections/<subspace>_3d`` (3-D) with the
    basis, origin (θ*; for relu its minimum-norm rescaling, the same function), every
    element's coordinates and residual, the grid axes and the probe and held-out
    discrepancy on the grid (NaN-prefilled, filled chunk by chunk: an interrupted run
    resumes), and ``/projections/barriers``: the discrepancy along straight and Bézier paths
    from θ* to the ``paths`` elements of lowest probe discrepancy, the pairwise
    straight-path barrier matrix between them and θ*, and the connected components of the
    graph "path stays below ε".
    ε = epsilon_rel × output power of the reference.  ``device``: where the grids and paths are
    evaluated (default: the run's ``search.device`` when it is available here, else the CPU).
    """
    if subspace not in projection.KINDS:
        raise GenniError(f"unknown subspace '{subspace}' (choose from: {', '.join(projection.KINDS)})")
    if dims not in (2, 3):
        raise GenniError(f"--dims must be 2 or 3, got {dims}")
    resolution = resolution or (101 if dims == 2 else 41)
    if resolution < 3:
        raise GenniError(f"--resolution must be at least 3, got {resolution}")
    if not (epsilon_rel > 0 and np.isfinite(epsilon_rel)):
        raise GenniError(f"--epsilon-rel must be a positive number, got {epsilon_rel}")
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    if run.n_equivalents == 0:
        raise GenniError(f"{path} holds no equivalents yet: run genni find first")
    if device is None:
        device = run.config.get("search", {}).get("device", "cpu")
        device = device if device == "cpu" or torch.cuda.is_available() else "cpu"
    dev = _device(device)
    ref, thetas, how = _elements_for_picture(spec, run)
    conv = np.flatnonzero(run.equivalents["converged"])
    if subspace == "pca":
        if len(thetas) < max(2, dims):
            raise GenniError(f"PCA needs at least {max(2, dims)} elements, the file has {len(thetas)}")
        sub = projection.pca_subspace(thetas, origin=ref, k=dims)
    elif subspace == "plane":
        pool = conv if len(conv) >= dims else np.arange(len(thetas))
        chosen = tuple(elements) if elements else tuple(int(i) for i in pool[:dims])
        if len(chosen) != dims or any(not 0 <= i < len(thetas) for i in chosen):
            raise GenniError(f"the plane subspace needs {dims} element rows in 0..{len(thetas) - 1}, got {list(chosen)}")
        sub = projection.plane_subspace(ref, thetas[chosen[0]], thetas[chosen[1]], thetas,
                                        c=thetas[chosen[2]] if dims == 3 else None)
    elif subspace == "null":
        if "null_basis" not in run.identifiability:
            raise GenniError("the null subspace needs the Jacobian null space: run genni identify first")
        sub = projection.null_subspace(run.identifiability["null_basis"], ref, thetas, k=dims)
    else:
        sub = projection.random_subspace(spec, ref, thetas, k=dims, seed=int(run.attrs.get("seed", 0)))
    axes = projection.grid_axes(sub.coords, resolution=resolution, margin=margin)
    power = float(run.reference.get("output_power") or projection.output_power(run.Y))
    eps = projection.default_epsilon(power, epsilon_rel)
    name = subspace if dims == 2 else f"{subspace}_3d"
    signature = json.dumps({"kind": subspace, "k": dims, "resolution": resolution, "margin": margin,
                            "elements": how, "n": len(thetas), "chosen": list(elements or ()),
                            "basis_sha": float(np.round(sub.basis.sum(), 12))}, sort_keys=True)
    arrays = {"basis": sub.basis, "origin": sub.origin, "coords": sub.coords, "residuals": sub.residuals, "axes": axes}
    if sub.explained is not None:
        arrays["explained"] = sub.explained
    done = store.prepare_projection(
        path, name, arrays=arrays, grid_shape=(resolution,) * dims,
        attrs={"signature": signature, "kind": subspace, "epsilon": eps, "epsilon_rel": epsilon_rel,
               "elements": how, "output_power": power, "resolution": resolution})
    for which, X, Y in (("values", run.X, run.Y), ("values_heldout", run.X_heldout, run.Y_heldout)):
        pending, last = [], time.monotonic()
        for idx, vals in projection.iter_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=batch,
                                              done_mask=done[which], progress=progress, device=dev):
            pending.append((idx, vals))
            if time.monotonic() - last >= WRITE_EVERY:  # each write copies the file: not after every chunk
                store.write_grid_runs(path, name, which, pending)
                pending, last = [], time.monotonic()
        store.write_grid_runs(path, name, which, pending)
    info = {"name": name, "kind": subspace, "dims": dims, "resolution": resolution, "epsilon": eps,
            "median_residual": float(np.median(sub.residuals)), "elements": how}
    if paths > 0:
        best = np.argsort(run.equivalents["discrepancy"], kind="stable")[:paths]  # converged ones first
        info.update(_paths(path, spec, run, ref, thetas[best], best, eps, progress, dev))
    return info


def _paths(path, spec, run: store.RunData, ref: np.ndarray, chosen: np.ndarray, rows: np.ndarray, eps: float,
           progress: bool, device: torch.device) -> dict:
    """Straight and Bézier paths θ* → element, and the straight-path barrier graph."""
    t = np.linspace(0.0, 1.0, 33)
    linear, bezier = [], []
    for theta in bar(chosen, progress=progress, desc="paths", unit="path", leave=False):
        linear.append(projection.path_discrepancy(spec, run.X, run.Y, projection.linear_path(ref, theta, len(t)),
                                                  device=device))
        control = projection.fit_bezier(spec, run.X, run.Y, ref, theta, steps=150, device=device)
        bezier.append(projection.path_discrepancy(spec, run.X, run.Y, projection.bezier_path(ref, theta, control, len(t)),
                                                  device=device))
    points = np.concatenate([ref[None], chosen])
    barriers, n_comp, labels = projection.barrier_graph(spec, run.X, run.Y, points, eps, device=device)
    # certified joins: walk segments (parent → row) and certified /paths_between, each ≤ its own ε
    cert_labels, cert_comp, cert_eps = certified_components(run)
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
            "certified_with_reference": int((cert_labels[1:] == cert_labels[0]).sum()), "n_elements": run.n_equivalents,
            "certified_epsilon": cert_eps,
            "max_linear_barrier": float(max(lin_b)), "max_bezier_barrier": float(max(bez_b))}


STRAIGHT_BARRIER_NOTE = ("straight-line barriers: two elements share a component when a chain of straight segments "
                         "stays below ε; different components are an upper bound on separation only (a curved path "
                         "inside the class may still join them)")


def certified_components(run: store.RunData) -> tuple[np.ndarray, int, float]:
    """Connected components of θ* and every element under certified joins: walk segments parent → row with
    ``segment_max`` ≤ the run's ``segment_epsilon``, and certified ``/paths_between``.

    returns : (labels [N + 1] (0 = θ*, then rows), number of components, ε)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = run.n_equivalents
    eq = run.equivalents
    eps = float(run.equivalents_attrs.get("segment_epsilon", np.nan))
    edges = []
    if n:
        ok = (eq["chain"] >= 0) & (eq["segment_max"] <= eps)
        edges += [(int(eq["parent"][r]) + 1, r + 1) for r in np.flatnonzero(ok)]
    for name, g in store.read_family(run.path, "paths_between").items():
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


def _one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels [n] → one-hot [n, C] (the targets as a representation)."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(int(labels.max()) + 1)[labels]


def _representations(path, run: store.RunData, spec: models.Model, thetas: np.ndarray, rows: np.ndarray, n_inputs: int,
                     preactivations: bool, cache: bool) -> list[np.ndarray]:
    """Every network's representations, a list over layers of [M, n, w_l]: read from
    /representations when it holds these networks on these inputs, else computed (and stored
    there when ``cache``)."""
    names = spec.layer_names(preactivations)
    arrays, attrs = store.read_group(path, "representations")
    if (attrs.get("layers") == json.dumps(names) and attrs.get("n_inputs") == n_inputs
            and np.array_equal(arrays.get("elements", np.zeros(0, int)), rows)):
        return [arrays[f"layer_{l:02d}"] for l in range(len(names))]
    with torch.no_grad():
        _, reps = spec.layers(torch.as_tensor(thetas), torch.as_tensor(run.X[:n_inputs]), preactivations=preactivations)
    reps = [r.numpy() for r in reps]
    if cache:
        store.write_group(path, "representations", {"elements": rows, **{f"layer_{l:02d}": r for l, r in enumerate(reps)}},
                          {"layers": json.dumps(names), "n_inputs": n_inputs,
                           "note": "layer_LL [M, n, w]: network m (0 = reference, then the listed elements) at layer LL"})
    return reps


@_writes
def layer_paths(path: str | Path, *, metric: str = "angular_procrustes", max_networks: int = 32,
                max_inputs: int = 512, preactivations: bool = False, cache: bool = False, floor: float | None = None,
                progress: bool = False) -> dict:
    """Each network's layers as a path through representation space, into ``/paths/<metric>``.

    Networks: the reference (row 0) and up to ``max_networks − 1`` converged elements; their
    representations (input, every hidden post-activation — with ``preactivations`` also the
    pre-activation before it — and the output) on the first ``max_inputs`` probe inputs;
    with ``cache`` they are stored under ``/representations`` and reused when they match.
    Stored: ``distances`` [M·L, M·L] between all (network, layer) points (index m·L + l),
    ``steps`` [M, L−1], ``angles`` [M, L−2] (interior angle at each layer, π = straight, from
    log maps), ``straightness`` [M] = d(first, last) / length, ``length`` [M], ``embedding``
    [M·L, 2] (metric MDS of the distances) with attributes ``stress`` (raw, scikit-learn's) and
    ``stress_1`` (Kruskal's, √(stress / Σ_{i<j} d_ij²): 0 = distances kept exactly); progress along the
    path: ``to_output`` [M, L] = d(X_l, f) (the network's own output), ``to_labels`` [M, L] =
    d(X_l, one-hot labels) when the run has labels, and ``geodesic_t``, ``geodesic_off``
    [M, L]: each layer projected onto the geodesic from the input (t = 0) to the output
    (t = 1), its position along it and distance off it (NaN under zscore_permutation, which
    has no geodesics).  ``floor``: the z-score metrics drop units whose variance is below floor ×
    the layer's largest (default :data:`genni.geometry.DEFAULT_FLOOR`); every other unit counts
    equally, so nearly dead units weigh as much as busy ones unless the floor removes them.
    """
    from sklearn.manifold import MDS

    from . import geometry

    if metric not in geometry.METRICS:
        raise GenniError(f"unknown metric '{metric}' (choose from: {', '.join(geometry.METRICS)})")
    if max_networks < 1 or max_inputs < 2:
        raise GenniError("--max-networks must be ≥ 1 and --max-inputs ≥ 2")
    floor = geometry.DEFAULT_FLOOR if floor is None else float(floor)
    if not 0 <= floor < 1:
        raise GenniError(f"--floor must lie in [0, 1), got {floor}")
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    rows, thetas = _networks(run, max_networks)
    n_inputs = min(max_inputs, len(run.X))
    reps = _representations(path, run, spec, thetas, rows, n_inputs, preactivations, cache)
    names = spec.layer_names(preactivations)
    M, L = len(thetas), len(reps)
    points = [reps[l][m] for m in range(M) for l in range(L)]
    D = geometry.pairwise(points, metric, floor)
    idx = np.arange(M)[:, None] * L
    steps = D[idx + np.arange(L - 1), idx + np.arange(1, L)]
    length = steps.sum(1)
    straightness = np.where(length > 0, D[idx[:, 0], idx[:, 0] + L - 1] / np.where(length > 0, length, 1), np.nan)
    to_output = D[idx + np.arange(L), idx + L - 1]
    labels = None if run.labels is None else _one_hot(run.labels[:n_inputs])
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
    with warnings.catch_warnings():  # scikit-learn ≥ 1.8 renames MDS arguments; the old names still work
        warnings.simplefilter("ignore", FutureWarning)
        mds = MDS(n_components=2, dissimilarity="precomputed", random_state=int(run.attrs.get("seed", 0)), n_init=4)
        embedding = mds.fit_transform(D)
    warning = geometry.warn_missing_symmetries(metric, spec.symmetry.invariances, spec.describe())
    spec_m = geometry.METRICS[metric]
    arrays = {"distances": D, "steps": steps, "angles": angles, "straightness": straightness, "length": length,
              "embedding": embedding, "elements": rows, "to_output": to_output, "geodesic_t": geo_t,
              "geodesic_off": geo_off}
    if labels is not None:
        arrays["to_labels"] = to_labels
    store.write_group(path, f"paths/{metric}", arrays,
                      {"metric": metric, "invariances": json.dumps(list(spec_m.invariances)), "n_networks": M,
                       "n_layers": L, "layers": json.dumps(names), "n_inputs": n_inputs, "stress": float(mds.stress_),
                       "stress_1": float(np.sqrt(mds.stress_ / max((D ** 2).sum() / 2, 1e-300))),
                       "floor": floor, "warning": warning or "", "note": "point m·L + l is network m (0 = reference) at layer l"})
    ref_labels = to_labels[0] if labels is not None else None
    return {"metric": metric, "n_networks": M, "n_layers": L, "layers": names, "warning": warning,
            "median_length": float(np.median(length)), "median_straightness": float(np.nanmedian(straightness)),
            "max_spread_per_layer": [float(D[idx[:, 0] + l][:, idx[:, 0] + l].max()) for l in range(L)],
            "reference_to_labels": None if ref_labels is None else ref_labels.tolist(),
            "reference_geodesic_t": geo_t[0].tolist()}


def _networks(run: store.RunData, max_networks: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows of /equivalents used, θ [M, P]): the reference, then up to max_networks − 1 converged elements."""
    rows = np.flatnonzero(run.equivalents["converged"])[: max_networks - 1] if run.n_equivalents else np.zeros(0, int)
    thetas = np.concatenate([run.theta_ref[None], run.equivalents["theta"][rows]]) if len(rows) else run.theta_ref[None]
    return rows, thetas


def _parse_k(k) -> int | float:
    try:
        v = float(k)
    except (TypeError, ValueError):
        raise GenniError(f"--k must be a neighbour count (e.g. 10) or a fraction of the points (e.g. 0.02), got '{k}'") from None
    if v >= 1 and v == int(v):
        return int(v)
    if 0 < v < 1:
        return v
    raise GenniError(f"--k must be a whole count ≥ 1 or a fraction in (0, 1), got '{k}'")


@_writes
def ricci(path: str | Path, *, k: int | float | str = 10, mode: str = "or", curvature: str = "forman",
          alpha: float | None = None, connectivity: str = "mst", pairing: str = "forward", include_output: bool = True,
          inputs: str = "probe", max_networks: int = 32, max_inputs: int = 512, n_boot: int = 1000,
          progress: bool = False) -> dict:
    """Ricci flow along the layers (Baptista et al. 2024) of the reference and its equivalents, into
    ``/ricci/<curvature>_k<k>[_<connectivity>][_<mode>][_<pairing>][_heldout][_nooutput]`` (defaults
    leave the suffixes out).

    For every network m and layer l (input, each hidden post-activation, the output unless
    ``include_output`` is False) the kNN graph G_{m,l} of the same ``max_inputs`` probe (or held-out)
    points; Ric_{m,l} = total edge curvature, g_{m,l} = Wiener index (hop counts), η = g_{l+1} − g_l,
    ρ_m = Pearson(Ric, η) over the pairs of ``pairing``; pooled ρ over all (layer, network) pairs;
    local ρ(x) per point; every coefficient with its count and a bootstrap interval
    (:mod:`genni.geometry.ricci`).  Stored: ``curvature``, ``wiener``, ``components``, ``n_edges``
    [M, L]; ``eta`` [M, L−1]; ``rho``, ``rho_n`` [M], ``rho_ci`` [M, 2], ``rho_reason`` [M] (bytes);
    ``local_rho`` [M, n]; ``local_mean`` [M], ``local_ci`` [M, 2]; ``layer_rho`` [M, P] with ``pairs``
    [P, 2]; for drawing: ``positions`` [n, 2] (the inputs, or their first two principal components),
    the reference's graphs ``ref_edges`` [E, 3] (layer, i, j) and ``ref_edge_curvature`` [E];
    attributes name every choice and the pooled coefficient.
    """
    from .geometry import ricci as R

    checks = {"mode": (mode, R.MODES), "curvature": (curvature, R.CURVATURES), "connectivity": (connectivity, R.CONNECTIVITY),
              "pairing": (pairing, R.PAIRINGS), "inputs": (inputs, ("probe", "heldout"))}
    for what, (v, allowed) in checks.items():
        if v not in allowed:
            raise GenniError(f"unknown {what} '{v}' (choose from: {', '.join(allowed)})")
    if R.CURVATURES[curvature].needs_alpha and alpha is None:
        raise GenniError("Ollivier curvature needs --alpha (0 = uniform on the neighbours, 0.5 = lazy random walk)")
    if alpha is not None and not 0 <= alpha < 1:
        raise GenniError(f"--alpha must lie in [0, 1), got {alpha}")
    if max_networks < 1 or max_inputs < 4:
        raise GenniError("--max-networks must be ≥ 1 and --max-inputs ≥ 4")
    kk = _parse_k(k)
    run = store.load_run(path)
    spec = models.from_dict(run.architecture)
    rows, thetas = _networks(run, max_networks)
    X = (run.X if inputs == "probe" else run.X_heldout)[:max_inputs]
    n = len(X)
    try:
        k_used = R.resolve_k(kk, n)
    except ValueError as exc:
        raise GenniError(str(exc)) from None
    with torch.no_grad():
        _, reps = spec.layers(torch.as_tensor(thetas), torch.as_tensor(X))
    reps = [r.numpy() for r in (reps if include_output else reps[:-1])]
    if not all(np.isfinite(r).all() for r in reps):
        raise GenniError("a representation is not finite (NaN or inf): cannot build kNN graphs")
    names = spec.layer_names()[: len(reps)]
    M = len(thetas)
    opts = dict(mode=mode, curvature=curvature, alpha=alpha, connectivity=connectivity, pairing=pairing, n_boot=n_boot,
                seed=int(run.attrs.get("seed", 0)))
    networks = bar([[r[m] for r in reps] for m in range(M)], progress=progress, desc=f"ricci ({curvature}, k={k_used})",
                   unit="net")
    pooled_all = R.ricci_pooled(networks, k_used, **opts)
    results, pooled, used = pooled_all.results, pooled_all.coefficient, pooled_all.used
    # the reference's graphs, for drawing
    edges = [np.column_stack([np.full(len(e), l), e]) for l, (e, _) in enumerate(results[0].edges)]
    values = [v for _, v in results[0].edges]
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
        "pairs": results[0].pairs, "elements": rows, "positions": positions, "pooled_used": used,
        "ref_edges": np.concatenate(edges).astype(np.int64), "ref_edge_curvature": np.concatenate(values),
        "ref_node_curvature": results[0].node_curvature,
    }
    suffix = "".join(f"_{v}" for v, d in ((connectivity, "mst"), (mode, "or"), (pairing, "forward"), (inputs, "probe"))
                     if v != d) + ("" if include_output else "_nooutput")
    name = f"{curvature}_k{k_used}{suffix}"
    attrs = {"k": k_used, "k_requested": str(k), "mode": mode, "curvature": curvature,
             "alpha": float("nan") if alpha is None else float(alpha), "connectivity": connectivity, "pairing": pairing,
             "curvature_definition": R.CURVATURES[curvature].definition, "connectivity_definition": R.CONNECTIVITY[connectivity],
             "pairing_definition": R.PAIRINGS[pairing], "layers": json.dumps(names), "inputs": inputs, "n_inputs": n,
             "n_networks": M, "flow_sign": results[0].flow_sign, "n_boot": n_boot, "level": pooled.level,
             "pooled_rho": pooled.rho, "pooled_n": pooled.n, "pooled_reason": pooled.reason,
             "pooled_ci": list(pooled.ci), "pooled_networks": int(used.sum()),
             "note": "row m is network m (0 = the reference θ*, then the listed elements); column l is layer l"}
    store.write_group(path, f"ricci/{name}", arrays, attrs)
    ref = results[0]
    return {"name": name, "k": k_used, "curvature": curvature, "connectivity": connectivity, "mode": mode,
            "pairing": pairing, "layers": names, "n_networks": M, "n_inputs": n, "flow_sign": ref.flow_sign,
            "reference": {"rho": ref.rho, "n": ref.coefficient.n, "reason": ref.reason, "ci": list(ref.coefficient.ci),
                          "curvature": ref.curvature.tolist(), "wiener": ref.wiener.tolist(),
                          "components": ref.components.tolist(), "local_mean": ref.local_summary.rho},
            "pooled": {"rho": pooled.rho, "n": pooled.n, "reason": pooled.reason, "ci": list(pooled.ci),
                       "networks": int(used.sum())},
            "rho_defined": int(np.isfinite(arrays["rho"]).sum()),
            "median_rho": float(np.nanmedian(arrays["rho"])) if np.isfinite(arrays["rho"]).any() else float("nan"),
            "max_components": int(arrays["components"].max())}
