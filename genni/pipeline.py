"""Wiring of the stages: a resolved config and a run file in, results into the file.

``find`` builds (or, on resume, reloads) the reference network and probe data and
streams functionally equivalent parameter sets into the run file as they finish.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as _config
from . import data as _data
from . import identifiability, nets, search, store, symmetries, train
from .errors import GenniError

DEGENERATE_RATIO = 1e-4
"""A reference is flagged degenerate when tol / output power exceeds this: the zero
function would then be (nearly) close enough to count as an equivalent."""


def _warn(msg: str) -> None:
    print(f"genni: warning: {msg}", file=sys.stderr)


def dead_units(spec: nets.MLPSpec, theta: np.ndarray, X: np.ndarray) -> list[int]:
    """Per hidden layer, the number of units whose post-activation is constant (zero
    for relu) on every probe input; such units carry no signal on this probe set.

    theta : shape [P];  X : shape [n, w_0]
    """
    with torch.no_grad():
        _, reps = nets.forward(spec, torch.as_tensor(theta), torch.as_tensor(X), layers=True)
    return [int((h.std(0) == 0).sum()) for h in reps[1:-1]]


def reference_facts(spec: nets.MLPSpec, problem: search.Problem, tol: float) -> dict:
    """Output power, the degeneracy flag and dead units of the reference."""
    power = problem.output_power
    dead = dead_units(spec, problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy())
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


def find(cfg: dict, path: str | Path, *, progress: bool = False, callback: Callable | None = None,
         log: Callable[[str], None] | None = None) -> dict:
    """Reference + probe data + ``cfg['search']['n']`` equivalents into ``path``.

    A new file is created; an existing file made with the same config (up to
    :data:`genni.config.RESUMABLE_KEYS`) is resumed: only the missing element
    indices are searched.  A file made with another config is refused untouched.
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
        spec = nets.MLPSpec.from_dict(run.architecture)
        theta_ref, X, Xh = run.theta_ref, run.X, run.X_heldout
        created = False
        log(f"resuming {p}: {run.n_equivalents} elements stored")
    else:
        d = cfg["data"]
        ds = _data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"],
                                n_train=d["n_train"], seed=cfg["seed"], noise=d["noise"])
        spec = nets.MLPSpec.from_dict(cfg["model"])
        log(f"reference: {cfg['reference']['source']} {spec.activation} MLP {list(spec.widths)} on {ds.name}")
        ref = train.make_reference(cfg, spec, ds, progress=progress)
        theta_ref, X, Xh = ref.theta, ds.X_probe, ds.X_heldout
        problem = search.Problem.from_arrays(spec, theta_ref, X, Xh)
        facts = reference_facts(spec, problem, settings.tol)
        store.create_run(
            p, config=cfg, architecture=spec.to_dict(), theta_ref=theta_ref,
            reference={"accuracy": ref.accuracy, "source": ref.source, "train_accuracy": ref.train_accuracy,
                       **facts},
            X=X, X_heldout=Xh, Y=problem.Y.numpy(), Y_heldout=problem.Y_heldout.numpy(),
            labels=ds.y_probe, labels_heldout=ds.y_heldout,
            equivalents_attrs={"tol": settings.tol, "method": settings.method,
                               "status_codes": list(search.STATUS), "n_requested": settings.n})
        created = True
        if ref.accuracy is not None:
            log(f"reference accuracy (held-out labels): {ref.accuracy:.3f}")
    problem = search.Problem.from_arrays(spec, theta_ref, X, Xh, device=dev)
    facts = reference_facts(spec, problem, settings.tol)
    if facts["degenerate"]:
        _warn(f"the reference is nearly the zero function on the probe set (output power "
              f"{facts['output_power']:.3g}, tol {settings.tol:.3g}): 'converged' would not mean equivalent")
    if any(facts["dead_units"]):
        log(f"reference has dead hidden units per layer: {facts['dead_units']}")
    done = set(store.done_indices(p).tolist())
    todo = [i for i in range(settings.n) if i not in done]
    store.update_attrs(p, "equivalents", {"n_requested": max(settings.n, len(done))})
    n_new = 0
    for chunk in search.search(problem, settings, seed=cfg["seed"], indices=todo, progress=progress,
                               callback=callback):
        store.append_equivalents(p, chunk)
        n_new += len(chunk)
    return {"path": str(p), "created": created, "n_new": n_new, "n_total": len(done) + n_new, **facts}


def identify(path: str | Path, *, rtol: float = identifiability.DEFAULT_RTOL,
             symmetry_tol: float = identifiability.DEFAULT_SYMMETRY_TOL,
             heldout_tol: float = identifiability.DEFAULT_HELDOUT_TOL, progress: bool = False) -> dict:
    """Functional dimension at the reference and a verdict on every stored element, into ``path``.

    returns : the headline facts (rank, expected rank, verdict counts, ...)
    """
    for name, v in (("rtol", rtol), ("symmetry tolerance", symmetry_tol), ("held-out tolerance", heldout_tol)):
        if not (v > 0 and np.isfinite(v)):
            raise GenniError(f"{name} must be a positive number, got {v}")
    run = store.load_run(path)
    spec = nets.MLPSpec.from_dict(run.architecture)
    J = identifiability.output_jacobian(spec, run.theta_ref, run.X)
    sp = identifiability.spectrum(J, rtol)
    table = identifiability.rank_vs_probe(spec, run.theta_ref, run.X, rtol=rtol)
    expected = identifiability.expected_rank(spec, J.shape[0])
    n = run.n_equivalents
    eq = run.equivalents
    if n:
        thetas = eq["theta"]
        aligned = np.empty_like(thetas)
        for i in tqdm(range(n), desc="align", unit="el", disable=not progress, file=sys.stderr, leave=False):
            aligned[i] = symmetries.align(spec, thetas[i], run.theta_ref)[0]
        dist = symmetries.distance_to_reference(spec, aligned, run.theta_ref)
        verdict = identifiability.classify(eq["converged"], dist, eq["relative_discrepancy_heldout"],
                                           symmetry_tol, heldout_tol)
    else:
        aligned, dist, verdict = np.zeros((0, spec.n_params)), np.zeros(0), np.zeros(0, np.int8)
    kinds = symmetries.symmetry_kinds(spec)
    store.write_identifiability(
        path,
        results={"singular_values": sp.singular_values, "rank": sp.rank, "rank_tolerance": sp.rank_tolerance,
                 "expected_rank": expected, "null_basis": sp.null_basis, "rank_vs_probe": table},
        attrs={"rtol": rtol, "gap": sp.gap, "n_params": spec.n_params, "n_rows": J.shape[0],
               "symmetries": json.dumps(kinds)},
        per_element={"verdict": verdict, "aligned_theta": aligned, "distance_to_reference": dist},
        element_attrs={"verdict_codes": list(identifiability.VERDICTS), "symmetry_tol": symmetry_tol,
                       "heldout_tol": heldout_tol})
    counts = {name: int((verdict == i).sum()) for i, name in enumerate(identifiability.VERDICTS)}
    return {"rank": sp.rank, "expected_rank": expected, "n_params": spec.n_params, "rank_tolerance": sp.rank_tolerance,
            "gap": sp.gap, "null_dim": spec.n_params - sp.rank, "symmetries": kinds, "n_elements": n,
            "verdicts": counts, "symmetry_tol": symmetry_tol, "heldout_tol": heldout_tol}
