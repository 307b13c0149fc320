"""How far walks get along the class of the default reference, against a naive walk, in this process.

genni: ``[search] init = "walk"`` on the built-in default reference (2-16-16-1 relu on moons), 16 chains,
64 stored elements (every 10th accepted step), ε = 1e-5 relative; relu steps slide along the faces of
the kinks they would cross (:func:`genni.walk.face_direction`).  Naive (the issue's first measurement,
same code otherwise): a random vertical direction kept between steps, plain Gauss–Newton retraction,
no face handling (``faces = False``), fewer chains.  Distances are modulo the exact symmetries (aligned
and balanced, as `genni identify` measures them), relative to ‖θ*‖.  Records distance reached vs wall
time per chain and why steps were refused.

    python benchmarks/bench_walk.py [--chains 16] [--n 64] [--naive-chains 4]
writes benchmarks/results/walk.md and walk.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import genni
from genni import config, search, stages, store
from genni import walk as W
from genni.machine import cpu_name
from genni.models import MLP

HERE = Path(__file__).resolve().parent




def run(cfg: dict, path: Path, settings: W.WalkSettings | None = None) -> dict:
    """Walk into a fresh run file; returns rows, per-row wall times and chain logs."""
    times: list[float] = []
    t0 = time.perf_counter()
    if settings is None:
        genni.find(cfg, path, callback=lambda f: times.extend([time.perf_counter() - t0] * len(f.index)))
        logs = store.read_group(path, "walks/walk_000")[0]
    else:  # the same reference and probe set, walked with other settings
        genni.find({**cfg, "search": {**cfg["search"], "n": 1, "init": "perturb"}}, path)
        r = store.load_run(path)
        spec = MLP.from_dict(r.architecture)
        problem = search.Problem.from_arrays(spec, r.theta_ref, r.X, r.X_heldout)
        starts = [W.Start(c, r.theta_ref, steps=settings.steps) for c in range(settings.chains)]
        t0 = time.perf_counter()
        stages.walk.run_chains(path, spec, problem, starts, settings, tol=cfg["search"]["tol"], seed=cfg["seed"],
                           progress=False, callback=lambda f: times.extend([time.perf_counter() - t0] * len(f.index)))
        groups = store.group_names(path, "walks")
        logs = store.read_group(path, f"walks/{groups[-1]}")[0]
    r = store.load_run(path)
    spec = MLP.from_dict(r.architecture)
    eq = r.equivalents
    rows = np.flatnonzero(eq["chain"] >= 0)
    aligned = np.stack([spec.symmetry.align(t, r.theta_ref)[0] for t in eq["theta"][rows]])
    dist = spec.symmetry.distance_to_reference(aligned, r.theta_ref)
    return {"rows": rows, "chain": eq["chain"][rows], "step": eq["step"][rows], "dist": dist,
            "time": np.array(times[-len(rows):]), "L": eq["discrepancy"][rows], "tol": cfg["search"]["tol"],
            "segment_max": eq["segment_max"][rows], "logs": logs}


def summary(name: str, res: dict, eps: float) -> dict:
    chains = sorted(set(res["chain"].tolist()))
    far = [float(res["dist"][res["chain"] == c].max()) for c in chains]
    logs = res["logs"]
    return {"name": name, "chains": len(chains), "rows": int(len(res["rows"])),
            "median_farthest": float(np.median(far)), "max_farthest": float(np.max(far)),
            "accepted": int(logs["accepted"].sum()), "wall_s": float(res["time"].max()) if len(res["time"]) else 0.0,
            "seconds_per_chain": float(np.median(logs["seconds"])),
            "refused_retraction": int(logs["refused_retraction_failed"].sum()),
            "refused_certificate": int(logs["refused_certificate_failed"].sum()),
            "pattern_changes": int(logs["pattern_changes"].sum()), "forced_stores": int(logs["forced_stores"].sum()),
            "stopped": sorted({s.decode() for s in logs["stopped"]}),
            "all_converged": bool((res["L"] <= res["tol"]).all()), "max_segment": float(np.nanmax(res["segment_max"])),
            "epsilon": eps,
            "trace": [(int(c), int(s), float(t), float(d)) for c, s, t, d in
                      zip(res["chain"], res["step"], res["time"], res["dist"])]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--naive-chains", type=int, default=4)
    ap.add_argument("--out", default="walk")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = config.load(None)
    cfg["search"].update(init="walk", n=args.n, chains=args.chains, thin=args.thin)
    eps = cfg["search"]["segment_epsilon"]
    with tempfile.TemporaryDirectory() as d:
        print(f"genni walk: {args.chains} chains, {args.n} rows", flush=True)
        ours = summary("genni (faces)", run(cfg, Path(d) / "walk.h5"), eps)
        print(json.dumps({k: v for k, v in ours.items() if k != "trace"}), flush=True)
        naive_settings = replace(W.WalkSettings.from_config(cfg["search"]), chains=args.naive_chains,
                                 steps=args.n // args.chains * args.thin, faces=False, persistence=0.95)
        print(f"naive walk: {args.naive_chains} chains", flush=True)
        naive = summary("naive (no faces)", run(cfg, Path(d) / "naive.h5", naive_settings), eps)
        print(json.dumps({k: v for k, v in naive.items() if k != "trace"}), flush=True)
    host = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load": os.getloadavg()[0]}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.out}.json").write_text(json.dumps({"host": host, "runs": [ours, naive]}, indent=1))
    lines = [f"Measured by `python benchmarks/bench_walk.py` on {host['cpu']}, torch {host['torch']}, "
             f"{host['threads']} threads, load average {host['load']:.1f}.", "",
             "| walk | chains | accepted steps | rows | median farthest (mod sym) | max | wall | s per chain | "
             "refused: retraction | refused: certificate | steps changing a relu pattern | early stores | "
             "all rows L ≤ tol | largest certificate (ε) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (ours, naive):
        lines.append(f"| {r['name']} | {r['chains']} | {r['accepted']} | {r['rows']} | {r['median_farthest']:.1%} | "
                     f"{r['max_farthest']:.1%} | {r['wall_s']:.0f} s | {r['seconds_per_chain']:.1f} | "
                     f"{r['refused_retraction']} | {r['refused_certificate']} | {r['pattern_changes']} | "
                     f"{r['forced_stores']} | {r['all_converged']} | {r['max_segment']:.1e} ({r['epsilon']:g}) |")
    lines += ["", "Distance reached (modulo the exact symmetries) vs wall time, genni, per stored row "
              "(chain, step, seconds, distance):", "",
              "| chain | step | s | distance |", "|---|---|---|---|"]
    lines += [f"| {c} | {s} | {t:.0f} | {d:.1%} |" for c, s, t, d in sorted(ours["trace"])[: 4 * 8]]
    (HERE / "results" / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
