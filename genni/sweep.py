"""Sweeps: many run files from one base config and a grid over config keys, as tasks on Dask.

A sweep file (TOML)::

    base = "moons_relu.toml"      # a config file, relative to the sweep file; or an inline [base] table
    stages = ["find", "identify"] # any of find, identify, paths, ricci (in this order); train instead of
                                  # find: the reference alone (identify, paths, ricci then see θ* only)
    seeds = 3                     # cells for seeds base.seed + 0 … 2
    [grid]
    "model.widths" = [[2, 8, 1], [2, 16, 16, 1]]
    "data.dataset" = ["moons", "circles"]
    "model.widths, data.dim" = [[[5, 5, 1], 5], [[10, 10, 1], 10]]   # keys that vary together

Every cell (grid point × seed, in the order of the grid's keys, the last varying fastest, seeds
innermost) is an ordinary run file ``DIR/cell_NNNN.h5``; its stages run as one task on a Dask
cluster: a ``LocalCluster`` here (``workers`` processes, one thread each and torch threads =
cores / workers, so BLAS does not oversubscribe) or an existing one (``scheduler`` address).  A cell
whose file already holds every stage's result is read, not recomputed; a half-done one is resumed
(``find`` resumes by itself); so re-running a sweep after a crash or Ctrl-C finishes it.  A cell
that fails records ``status = "failed: …"`` and the others go on.  The table — one row per cell: file,
seed, status, one column per swept key (JSON text for lists), and what the stages computed — goes to
``DIR/sweep.h5`` (through :mod:`genni.store`) and ``DIR/sweep.csv``, rewritten after every cell.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import itertools
import json
import math
import os
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import config as _config
from . import stages as _stages
from .errors import ConfigError, GenniError

DEFAULT_WORKERS = 2
"""Processes of the local Dask cluster a sweep starts when it is given no scheduler."""

CELL_LOCK_WAIT = 3600.0
"""Seconds a cell waits for another process that is still writing its file."""

STAGES = tuple(_stages.SWEEP)
"""The stages a sweep may name (:data:`genni.stages.SWEEP`), in the order a cell runs them."""
COLUMNS = ("file", "seed", "status", "accuracy", "output_power", "n_params", "n_converged", "functional_dimension",
           "bound", "rank_grown", "rank_grown_inputs", "rank_grown_saturated", "exact_rank", "exact_status",
           "exact_regions", "hidden_equivalent", "data_equivalent",
           "symmetry_copy", "probe_only", "path_length", "path_straightness",
           "rho", "rho_lo", "rho_hi", "rho_n", "pooled_rho", "seconds")
"""Fixed columns of the table (then one per swept key); a value the stages did not compute is NaN (text: "")."""
TEXT_COLUMNS = ("file", "status", "exact_status")


def load_sweep(path: str | Path) -> dict:
    """Read and check a sweep file; returns {base (resolved config), stages, seeds, grid, cells: [(name, cfg, keys)]}.

    Every cell's config is resolved here, so a bad combination is refused before anything runs
    (:class:`~genni.errors.ConfigError`, naming the cell and the key).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sweep file {p} is not valid TOML: {exc}") from None
    unknown = set(raw) - {"base", "stages", "seeds", "grid"}
    if unknown:
        raise ConfigError(f"sweep: unknown key '{sorted(unknown)[0]}' (known: base, stages, seeds, grid)")
    if "base" not in raw:
        raise ConfigError("sweep: needs base = \"config.toml\" or a [base] table")
    base = raw["base"]
    if isinstance(base, str):  # a config file: its folder is the cells' (relative [model] module paths)
        base_cfg = _config.load(p.parent / base)
        base_raw = tomllib.loads((p.parent / base).read_text())
        root = (p.parent / base).absolute().parent
    elif isinstance(base, dict):  # inline: the sweep file's folder
        root = p.absolute().parent
        base_cfg, base_raw = _config.resolve(base, root=root), base
    else:
        raise ConfigError("sweep: base must be a config path or a table")
    stages = raw.get("stages", ["find", "identify"])
    if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
        raise ConfigError(f"sweep: stages must be a non-empty list from {', '.join(STAGES)}, got {stages!r}")
    if "train" in stages and "find" in stages:
        raise ConfigError("sweep: stage train (the reference alone) does not combine with find")
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"sweep: seeds must be a positive integer, got {seeds!r}")
    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError("sweep: [grid] must be a table of dotted config keys to lists")
    for key, values in grid.items():
        parts = key.split(",")
        for part in parts:
            section, _, name = part.strip().rpartition(".")
            if section not in _config.SCHEMA or name not in _config.SCHEMA[section] or not section:
                raise ConfigError(f"sweep: unknown grid key '{part.strip()}' (use section.key, e.g. model.widths)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep: grid key '{key}' needs a non-empty list of values")
        if len(parts) > 1 and any(not isinstance(v, list) or len(v) != len(parts) for v in values):
            raise ConfigError(f"sweep: grid key '{key}' names {len(parts)} keys: each value must be a list of "
                              f"{len(parts)} (the keys vary together)")
    cells = []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        for s in range(seeds):
            raw_cell = copy.deepcopy(base_raw)
            for key, value in zip(keys, combo):
                parts = [k.strip() for k in key.split(",")]
                for part, v in zip(parts, value if len(parts) > 1 else [value]):
                    section, _, name = part.rpartition(".")
                    raw_cell.setdefault(section, {})[name] = v
            raw_cell["seed"] = int(base_cfg["seed"]) + s
            name = f"cell_{len(cells):04d}"
            try:
                cfg = _config.resolve(raw_cell, root=root)
            except ConfigError as exc:
                raise ConfigError(f"sweep {name} ({_describe(keys, combo)}, seed {raw_cell['seed']}): {exc}") from None
            cfg["name"] = f"{base_cfg['name']}_{name}"
            cells.append((name, cfg, dict(zip(keys, combo))))
    return {"base": base_cfg, "stages": stages, "seeds": seeds, "grid": grid, "cells": cells, "path": str(p)}


def _describe(keys, combo) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in zip(keys, combo)) or "base"


def run_cell(cfg: dict, path: str, stages: list[str], threads: int = 1) -> dict:
    """One cell: run its stages into ``path`` (resuming what is there) and return its table row.

    Runs on a Dask worker; never raises: a failure becomes ``status = "failed: <one line>"``."""
    import time

    import torch

    from . import store

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    row = {"file": Path(path).name, "seed": int(cfg["seed"]), "status": "done"}
    try:
        p = Path(path)
        # the cell's writer lock for all its stages; a cell still being finished by an orphaned task of a
        # killed sweep (its client gone, the task running on) is waited for, then found done
        with store.writer_lock(p, "sweep cell", create=True, wait=CELL_LOCK_WAIT):
            run = store.load_run(p) if p.exists() else None
            if run is None or not all(_stages.done(run, s) for s in stages):
                first = _stages.SWEEP["train" if "train" in stages else "find"]
                with contextlib.redirect_stderr(io.StringIO()):  # per-cell warnings would interleave on the console
                    _stages.REGISTRY[first.stage].run(p, first.make_options(config=cfg))
                run = store.load_run(p)
                for name, step in _stages.SWEEP.items():
                    if name in stages and step.stage != "find" and not _stages.done(run, name):
                        _stages.REGISTRY[step.stage].run(p, step.make_options())
                run = store.load_run(p)
        row.update(summarise_run(run))
    except (GenniError, ValueError, RuntimeError, OSError) as exc:
        row["status"] = "failed: " + " ".join(str(exc).split())[:300]
    row["seconds"] = time.perf_counter() - t0
    return row


def summarise_run(run) -> dict:
    """The table's numbers from one run file (NaN where a stage has not run)."""
    nan = float("nan")
    eq, ident = run.equivalents, run.identifiability
    out = {"accuracy": run.reference.get("accuracy", nan), "output_power": run.reference.get("output_power", nan),
           "n_params": int(run.theta_ref.shape[0]),
           "n_converged": int(eq["converged"].sum()) if run.n_equivalents else 0,
           "functional_dimension": float(ident["rank"]) if ident else nan,
           "bound": float(ident["expected_rank"]) if ident else nan}
    ia = run.identifiability_attrs
    out["rank_grown"] = float(ia["rank_growth_rank"]) if "rank_growth_rank" in ia else nan
    out["rank_grown_inputs"] = float(ia["rank_growth_inputs"]) if "rank_growth_inputs" in ia else nan
    out["rank_grown_saturated"] = float(bool(ia["rank_growth_saturated"])) if "rank_growth_saturated" in ia else nan
    ex = run.exact.get("attrs", {})
    out["exact_rank"] = float(ex["rank"]) if ex else nan
    out["exact_status"] = str(ex["status"]) if ex else ""
    out["exact_regions"] = float(ex["n_regions"]) if ex else nan
    names = run.equivalents_attrs.get("verdict_codes", [])
    for v in ("hidden_equivalent", "data_equivalent", "symmetry_copy", "probe_only"):
        out[v] = float((eq["verdict"] == names.index(v)).sum()) if "verdict" in eq and v in names else nan
    p = run.layer_paths.get("zscore_procrustes") or next(iter(run.layer_paths.values()), None)
    out["path_length"] = float(p["length"][0]) if p else nan
    out["path_straightness"] = float(p["straightness"][0]) if p else nan
    r = next(iter(run.ricci.values()), None)
    out["rho"] = float(r["rho"][0]) if r else nan
    lo, hi = (r["rho_ci"][0] if r else (nan, nan))
    out["rho_lo"], out["rho_hi"] = float(lo), float(hi)
    out["rho_n"] = float(r["rho_n"][0]) if r else nan
    out["pooled_rho"] = float(r["attrs"]["pooled_rho"]) if r else nan
    return out


def cluster_arguments(parser) -> None:
    """Add ``--workers`` and ``--scheduler`` (where a sweep's cells run) to an argparse parser."""
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"processes of the local Dask cluster (default {DEFAULT_WORKERS}); not with --scheduler, "
                             "whose cluster has its own workers")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler, e.g. "
                        "tcp://host:8786 (default: a local cluster of --workers processes)")


def run_sweep(sweep_path: str | Path, outdir: str | Path, *, workers: int | None = None, scheduler: str | None = None,
              progress: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Run (or finish) a sweep; returns {cells, done, failed, skipped, table}.  See the module docstring.

    workers : processes of the local cluster (None: :data:`DEFAULT_WORKERS`); refused with ``scheduler``, an
        existing cluster with workers of its own"""
    from distributed import Client, LocalCluster, as_completed

    from . import store
    from .progress import bar

    log = log or (lambda m: None)
    if scheduler and workers is not None:
        raise GenniError(f"--workers {workers} sizes a local cluster; the cluster at --scheduler {scheduler} has its "
                         "own workers")
    workers = DEFAULT_WORKERS if workers is None else workers
    sw = load_sweep(sweep_path)
    if workers < 1:
        raise GenniError(f"--workers must be at least 1, got {workers}")
    out = Path(outdir).absolute()  # workers of a cluster elsewhere do not share this process's directory
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenniError(f"cannot create the sweep folder {out}: {exc.strerror}") from None
    keys = list(sw["grid"])
    rows: dict[str, dict] = {}
    todo = []
    for name, cfg, _ in sw["cells"]:
        path = out / f"{name}.h5"
        ref = cfg.get("reference", {})
        if ref.get("path") and not Path(ref["path"]).is_absolute():  # a state_dict: found from here, not the worker
            cfg = {**cfg, "reference": {**ref, "path": str(Path(ref["path"]).absolute())}}
        if path.exists():  # read what is there; only cells missing a stage go to the cluster
            try:
                run = store.load_run(path)
            except GenniError:
                run = None
            if run is not None:
                diffs = _config.differences(run.config, cfg)
                if diffs:
                    raise GenniError(f"{path} holds a run of another config ({', '.join(diffs)} differ): sweep into "
                                     "another folder, or remove the old cells")
                if all(_stages.done(run, s) for s in sw["stages"]):
                    rows[name] = {"file": path.name, "seed": cfg["seed"], "status": "done", **summarise_run(run),
                                  "seconds": float("nan")}
                    continue
        todo.append((name, cfg, path))
    skipped = len(rows)
    cores = os.cpu_count() or 1
    threads = max(1, cores // workers)

    def table() -> None:
        cols: dict = {c: [] for c in COLUMNS}
        cols.update({k: [] for k in keys})
        for (name, cfg, swept) in sw["cells"]:
            r = rows.get(name, {"file": f"{name}.h5", "seed": cfg["seed"], "status": "pending"})
            for c in COLUMNS:
                cols[c].append(r.get(c, "" if c in TEXT_COLUMNS else float("nan")))
            for k in keys:
                cols[k].append(json.dumps(swept[k]) if isinstance(swept[k], (list, dict)) else swept[k])
        text_cols = set(TEXT_COLUMNS) | {k for k in keys if any(isinstance(v, str) for v in cols[k])}
        arrays = {c: (list(map(str, v)) if c in text_cols else np.asarray(v, dtype=float if c != "seed" else np.int64))
                  for c, v in cols.items()}
        store.write_table(out / "sweep.h5", arrays, {"sweep": str(sw["path"]), "stages": json.dumps(sw["stages"]),
                                                     "keys": json.dumps(keys), "base": json.dumps(sw["base"])})
        tmp = out / ".sweep.csv.tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(arrays))
            for i in range(len(sw["cells"])):
                w.writerow([_csv(arrays[c][i]) for c in arrays])
        os.replace(tmp, out / "sweep.csv")

    if todo:
        log(f"{len(todo)} of {len(sw['cells'])} cells to run ({skipped} done already) on "
            f"{'the cluster at ' + scheduler if scheduler else f'{workers} local worker(s), {threads} thread(s) each'}")
        cluster = None
        try:
            if scheduler:
                client = Client(scheduler, timeout="10s")
            else:
                # Dask's nanny pins OMP/MKL/OpenBLAS to one thread per worker; give each worker its share of the
                # cores instead (torch.set_num_threads in the task does the same for torch's own pool)
                blas = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,  # ":0": any free
                                       dashboard_address=":0", silence_logs=40, env=blas)  # port (None still takes 8787)
                client = Client(cluster)
        except (OSError, TimeoutError) as exc:
            raise GenniError(f"cannot reach a Dask scheduler{' at ' + scheduler if scheduler else ''}: {exc}") from None
        try:
            futures = {client.submit(run_cell, cfg, str(path), sw["stages"], threads, pure=False, key=f"genni-{name}-"
                                     f"{os.getpid()}"): name for name, cfg, path in todo}
            with bar(total=len(sw["cells"]), initial=skipped, progress=progress, desc="sweep", unit="cell") as pbar:
                for fut in as_completed(futures):
                    name = futures[fut]
                    try:
                        rows[name] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker lost, a pickling error: the cell failed
                        rows[name] = {"file": f"{name}.h5", "status": "failed: " + " ".join(str(exc).split())[:300]}
                    table()
                    pbar.update(1)
                    pbar.set_postfix(failed=sum(r["status"].startswith("failed") for r in rows.values()), refresh=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    table()
    failed = [n for n, r in rows.items() if r["status"].startswith("failed")]
    return {"cells": len(sw["cells"]), "ran": len(todo), "skipped": skipped, "failed": len(failed),
            "failed_cells": failed, "table": str(out / "sweep.h5"), "csv": str(out / "sweep.csv")}


def _csv(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    return str(v)


__all__ = ["STAGES", "COLUMNS", "load_sweep", "run_cell", "summarise_run", "run_sweep", "cluster_arguments"]
