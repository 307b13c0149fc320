"""Walks along the default reference's class: genni's step against the reference (dense) step, in this process.

genni: ``[search] init = "walk"`` on the built-in default reference (2-16-16-1 relu on moons, 512 probe inputs,
P = 337), 16 chains from θ*, 64 stored elements (every 10th accepted step), ε = 1e-5 relative, the chains
started as ``genni find`` starts them (:func:`genni.stages.walk.walk_find`) and streamed into a run file.
Reference: ``benchmarks/reference_walk.py``, the dense step (full Jacobian and its SVD, the full
pre-activation Jacobian [n·H, P], SVDs of the active constraints, ``lstsq`` on the full J), on the first
``--reference-chains`` chains only (a reference chain takes minutes): rates are compared per attempted step,
per accepted step and per unit of distance, never by wall time of unequal work.  Naive: genni's step without
relu faces (persistence 0.95), ``--naive-chains`` chains, for the reach the faces buy.

Distances are modulo the exact symmetries (aligned and balanced, as ``genni identify`` measures them),
relative to ‖θ*‖.  Ratios are measured side by side: ``--pairs`` short walks (2 chains × ``--pair-steps``
accepted steps, other chains each time) alternate genni and the reference, and the median of their
per-step ratios is reported next to the full runs' ratios.  Both run their arithmetic on one thread
(:func:`genni.walk.one_thread`); the reference is also timed on the process's default threads in the first
pair and runs on whichever was faster.  Achieved GFLOP/s counts the matrix products of one extra genni run
(``torch.utils.flop_counter``; LAPACK factorisations are not counted, so it is a lower bound) over the
median wall time, next to the float64 GEMM peak measured here (``benchmarks/gemm_peak.py``).

    python benchmarks/bench_walk.py [--chains 16] [--n 64] [--reference-chains 4] [--repeats 3] [--pairs 5]
writes benchmarks/results/walk.md and walk.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
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
sys.path.insert(0, str(HERE))
import reference_walk as RW  # noqa: E402
from gemm_peak import gemm_peak  # noqa: E402


def setup(cfg: dict, folder: Path) -> tuple[Path, MLP, search.Problem]:
    """The default reference and probe set in a run file (one searched element beside θ*)."""
    path = folder / "base.h5"
    genni.find({**cfg, "search": {**cfg["search"], "n": 1, "init": "perturb"}}, path)
    r = store.load_run(path)
    spec = MLP.from_dict(r.architecture)
    return path, spec, search.Problem.from_arrays(spec, r.theta_ref, r.X, r.X_heldout)


def starts(problem: search.Problem, n: int, chains: list[int], n_chains: int, thin: int) -> list[W.Start]:
    """The starts ``genni find`` gives chains c of a walk of ``n_chains`` storing n rows (walk_find)."""
    theta = problem.theta_ref.cpu().numpy()
    out = []
    for c in chains:
        want = n // n_chains + (c < n % n_chains)
        out.append(W.Start(c, theta, -1, 0, want * thin, want))
    return out


def distances(spec: MLP, theta_ref: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    aligned = np.stack([spec.symmetry.align(t, theta_ref)[0] for t in thetas])
    return spec.symmetry.distance_to_reference(aligned, theta_ref)


def summarise(name: str, spec: MLP, problem: search.Problem, rows: dict, logs: list, wall: float, tol: float,
              eps: float, chains: list[int] | None = None) -> dict:
    """Reach, rates and guarantees of a walk's rows (dict of arrays) and chain logs (ChainLog or dicts)."""
    logs = [g if isinstance(g, dict) else g.__dict__ for g in logs]
    if chains is not None:
        keep = np.isin(rows["chain"], chains)
        rows = {k: v[keep] for k, v in rows.items()}
        logs = [g for g in logs if g["chain"] in chains]
    theta_ref = problem.theta_ref.cpu().numpy()
    dist = distances(spec, theta_ref, rows["theta"])
    ids = sorted(set(rows["chain"].tolist()))
    far = np.array([dist[rows["chain"] == c].max() for c in ids])
    secs = np.array([g["seconds"] for g in logs])
    accepted = int(sum(g["accepted"] for g in logs))
    refused = {r: int(sum(g["refused"][r] for g in logs)) for r in W.REASONS}
    attempts = accepted + sum(refused.values())
    chain_far = {c: f for c, f in zip(ids, far)}
    per_chain_rate = [chain_far[g["chain"]] / g["seconds"] for g in logs if g["chain"] in chain_far and g["seconds"] > 0]
    return {"name": name, "chains": len(logs), "rows": int(len(rows["theta"])), "accepted": accepted,
            "attempts": attempts, "refused": refused, "median_farthest": float(np.median(far)),
            "max_farthest": float(far.max()), "chain_seconds_median": float(np.median(secs)),
            "chain_seconds_total": float(secs.sum()), "wall_s": wall,
            "s_per_attempt": float(secs.sum() / attempts), "s_per_accepted": float(secs.sum() / max(accepted, 1)),
            "distance_per_chain_second": float(np.median(per_chain_rate)),
            "all_converged": bool((rows["discrepancy"] <= tol).all()),
            "max_segment": float(np.max(rows["segment_max"])), "epsilon": eps,
            "stopped": sorted({str(g["stopped"]) for g in logs}),
            "trace": [(int(c), int(s), float(d)) for c, s, d in zip(rows["chain"], rows["step"], dist)]}


def genni_walk(path: Path, spec: MLP, problem: search.Problem, st: list, settings: W.WalkSettings, tol: float,
               seed: int, folder: Path, tag: str) -> tuple[dict, list, float]:
    """genni's walk streamed into a copy of the base run file; (rows, logs, wall seconds)."""
    p = folder / f"{tag}.h5"
    p.write_bytes(path.read_bytes())
    t0 = time.perf_counter()
    _, logs = stages.walk.run_chains(p, spec, problem, st, settings, tol=tol, seed=seed, progress=False)
    wall = time.perf_counter() - t0
    eq = store.load_run(p).equivalents
    keep = eq["chain"] >= 0
    rows = {k: eq[k][keep] for k in ("theta", "chain", "step", "discrepancy", "segment_max")}
    return rows, logs, wall


def reference_walk(spec: MLP, problem: search.Problem, st: list, settings: W.WalkSettings, tol: float, seed: int,
                   threads: str) -> tuple[dict, list, float]:
    """The reference step's walk (no file); (rows, logs, wall seconds)."""
    logs: list = []
    out = []
    ctx = W.one_thread() if threads == "one" else contextlib.nullcontext()
    t0 = time.perf_counter()
    with ctx:
        for s in RW.walk(spec, problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy(), st, settings, tol=tol,
                         seed=seed, first_row=0, logs=logs):
            out.append(s)
    wall = time.perf_counter() - t0
    rows = {"theta": np.concatenate([s.theta for s in out]), "chain": np.concatenate([s.chain for s in out]),
            "step": np.concatenate([s.step for s in out]), "discrepancy": np.concatenate([s.discrepancy for s in out]),
            "segment_max": np.concatenate([s.segment_max for s in out])}
    return rows, logs, wall


def per_attempt(logs: list) -> float:
    return sum(g.seconds for g in logs) / sum(g.accepted + sum(g.refused.values()) for g in logs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--reference-chains", type=int, default=4)
    ap.add_argument("--naive-chains", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--pair-steps", type=int, default=10)
    ap.add_argument("--out", default="walk")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = config.load(None)
    cfg["search"].update(init="walk", n=args.n, chains=args.chains, thin=args.thin)
    tol, eps, seed = cfg["search"]["tol"], cfg["search"]["segment_epsilon"], cfg["seed"]
    host = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load_start": os.getloadavg()[0]}
    print(f"{host['cpu']}, {host['cores']} cores, torch {host['torch']}, load {host['load_start']:.1f}", flush=True)
    peak = {"default": gemm_peak(), "one": gemm_peak(threads=1)}
    print(f"float64 GEMM peak: {peak['default']['gflops']:.1f} GFLOP/s ({peak['default']['threads']} threads), "
          f"{peak['one']['gflops']:.1f} (1 thread)", flush=True)
    settings = W.WalkSettings.from_config(cfg["search"])
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        base, spec, problem = setup(cfg, folder)

        # side by side: short walks alternating genni and the reference
        pairs, ref_threads = [], "one"
        for k in range(args.pairs):
            ids = [2 * k, 2 * k + 1]
            st = starts(problem, args.n, ids, args.chains, args.thin)
            st = [replace(s, steps=args.pair_steps, max_rows=None) for s in st]
            pset = replace(settings, steps=args.pair_steps)
            _, g_logs, _ = genni_walk(base, spec, problem, st, pset, tol, seed, folder, f"pair{k}")
            if k == 0:  # the reference on the process's default threads too; it keeps the faster setting
                _, r_default, _ = reference_walk(spec, problem, st, pset, tol, seed, "default")
                _, r_logs, _ = reference_walk(spec, problem, st, pset, tol, seed, "one")
                ref_threads = "one" if per_attempt(r_logs) <= per_attempt(r_default) else "default"
                default_vs_one = per_attempt(r_default) / per_attempt(r_logs)
                r_logs = r_logs if ref_threads == "one" else r_default
            else:
                _, r_logs, _ = reference_walk(spec, problem, st, pset, tol, seed, ref_threads)
            ratio = per_attempt(r_logs) / per_attempt(g_logs)
            pairs.append({"chains": ids, "genni_s_per_attempt": per_attempt(g_logs),
                          "reference_s_per_attempt": per_attempt(r_logs), "ratio": ratio})
            print(f"pair {k}: genni {per_attempt(g_logs) * 1e3:.1f} ms, reference {per_attempt(r_logs) * 1e3:.1f} ms "
                  f"per attempted step: {ratio:.1f}×", flush=True)

        # the full walks
        st = starts(problem, args.n, list(range(args.chains)), args.chains, args.thin)
        wset = replace(settings, steps=max(s.steps for s in st))
        walls, runs = [], []
        for k in range(args.repeats):
            rows, logs, wall = genni_walk(base, spec, problem, st, wset, tol, seed, folder, f"genni{k}")
            walls.append(wall)
            runs.append((rows, logs))
            print(f"genni walk {k}: {wall:.1f} s", flush=True)
        same = all(np.array_equal(runs[0][0]["theta"], r[0]["theta"]) for r in runs)
        wall = statistics.median(walls)
        rows, logs = runs[walls.index(sorted(walls)[len(walls) // 2])]
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            genni_walk(base, spec, problem, st, wset, tol, seed, folder, "counted")
        flops = counter.get_total_flops()
        ours = summarise("genni", spec, problem, rows, logs, wall, tol, eps)
        ours_sub = summarise(f"genni, chains 0–{args.reference_chains - 1}", spec, problem, rows, logs, wall, tol, eps,
                             list(range(args.reference_chains)))
        print(json.dumps({k: v for k, v in ours.items() if k != "trace"}), flush=True)

        rst = st[: args.reference_chains]
        r_rows, r_logs, r_wall = reference_walk(spec, problem, rst, replace(wset, chains=len(rst)), tol, seed, ref_threads)
        ref = summarise(f"reference, chains 0–{args.reference_chains - 1}", spec, problem, r_rows, r_logs, r_wall, tol,
                        eps)
        print(json.dumps({k: v for k, v in ref.items() if k != "trace"}), flush=True)

        naive_set = replace(settings, chains=args.naive_chains, steps=args.n // args.chains * args.thin, faces=False,
                            persistence=0.95)
        nst = [replace(s, max_rows=None) for s in st[: args.naive_chains]]
        n_rows, n_logs, n_wall = genni_walk(base, spec, problem, nst, naive_set, tol, seed, folder, "naive")
        naive = summarise("naive (no faces)", spec, problem, n_rows, n_logs, n_wall, tol, eps)

    host["load_end"] = os.getloadavg()[0]
    ratios = {"pairs_median": statistics.median(p["ratio"] for p in pairs),
              "per_attempt": ref["s_per_attempt"] / ours["s_per_attempt"],
              "per_accepted": ref["s_per_accepted"] / ours["s_per_accepted"],
              "distance_per_second": ours["distance_per_chain_second"] / ref["distance_per_chain_second"],
              "same_chains_distance_per_second": ours_sub["distance_per_chain_second"] / ref["distance_per_chain_second"]}
    gflops = flops / wall / 1e9
    result = {"host": host, "gemm_peak": peak, "reference_threads": ref_threads,
              "reference_default_threads_vs_one": default_vs_one, "pairs": pairs, "ratios": ratios,
              "matmul_flops": flops, "achieved_gflops": gflops, "repeats_walls": walls, "repeats_identical": same,
              "runs": [ours, ours_sub, ref, naive]}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.out}.json").write_text(json.dumps(result, indent=1))
    write_markdown(args, result)


def write_markdown(args, res: dict) -> None:
    host, peak, ratios = res["host"], res["gemm_peak"], res["ratios"]
    ours, ours_sub, ref, naive = res["runs"]
    ref_ext = ref["chain_seconds_total"] / ref["chains"] * ours["chains"]
    lines = [
        f"Measured by `python benchmarks/bench_walk.py` on {host['cpu']} ({host['cores']} cores), torch {host['torch']}, "
        f"load average {host['load_start']:.1f} at the start and {host['load_end']:.1f} at the end (other work on the "
        "machine).  Both steps run on one thread (`genni.walk.one_thread`); the reference ran "
        f"{'on one thread' if res['reference_threads'] == 'one' else 'on the default threads'} "
        f"(the other setting took {res['reference_default_threads_vs_one']:.2f}× as long per step on the default "
        "threads against one).", "",
        f"**genni's step is {ratios['pairs_median']:.0f}× faster than the reference step** (median of "
        f"{len(res['pairs'])} side-by-side pairs of short walks, per attempted step); over the full walks "
        f"{ratios['per_attempt']:.0f}× per attempted step, {ratios['per_accepted']:.0f}× per accepted step and "
        f"{ratios['distance_per_second']:.0f}× in distance reached per chain-second "
        f"({ratios['same_chains_distance_per_second']:.0f}× on the same chains).  The reference walked only "
        f"chains 0–{ref['chains'] - 1} (its 16-chain walk would take about {ref_ext / 60:.0f} chain-minutes at its "
        f"measured rate, against {ours['wall_s']:.0f} s of wall time for genni's 16 chains, median of "
        f"{len(res['repeats_walls'])} runs, {'bitwise identical' if res['repeats_identical'] else 'NOT identical'}).",
        "",
        f"Achieved: {res['achieved_gflops']:.2f} GFLOP/s in matrix products ({res['matmul_flops'] / 1e9:.1f} GFLOP "
        f"counted by `torch.utils.flop_counter` over the median wall time; LAPACK factorisations not counted) against a "
        f"float64 GEMM peak of {peak['one']['gflops']:.1f} GFLOP/s on one thread and {peak['default']['gflops']:.1f} "
        f"on {peak['default']['threads']} ({peak['default']['n']}², median of {peak['default']['repeats']}): "
        "a step is hundreds of operations on matrices of size P × P = 337 × 337 or smaller, bound by latency, not "
        "by the GEMM peak.", "",
        "| walk | chains | attempted steps | accepted | rows | median farthest (mod sym) | max | s per attempted "
        "step | s per accepted step | distance per chain-second | median chain-seconds | refused: retraction | "
        "refused: certificate | all rows L ≤ tol | largest certificate (ε) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (ours, ours_sub, ref, naive):
        lines.append(
            f"| {r['name']} | {r['chains']} | {r['attempts']} | {r['accepted']} | {r['rows']} | {r['median_farthest']:.1%} | "
            f"{r['max_farthest']:.1%} | {r['s_per_attempt']:.3f} | {r['s_per_accepted']:.3f} | "
            f"{r['distance_per_chain_second']:.2%}/s | {r['chain_seconds_median']:.1f} | "
            f"{r['refused']['retraction_failed']} | {r['refused']['certificate_failed']} | {r['all_converged']} | "
            f"{r['max_segment']:.1e} ({r['epsilon']:g}) |")
    lines += ["", "Side-by-side pairs (2 chains × "
              f"{args.pair_steps} accepted steps each, genni then the reference, the same chains):", "",
              "| chains | genni ms per attempted step | reference ms per attempted step | ratio |", "|---|---|---|---|"]
    lines += [f"| {p['chains'][0]}, {p['chains'][1]} | {p['genni_s_per_attempt'] * 1e3:.1f} | "
              f"{p['reference_s_per_attempt'] * 1e3:.1f} | {p['ratio']:.1f}× |" for p in res["pairs"]]
    lines += ["", "Distance reached (modulo the exact symmetries) per stored row, genni, chains 0–3 "
              "(chain, step, distance):", "", "| chain | step | distance |", "|---|---|---|"]
    lines += [f"| {c} | {s} | {d:.1%} |" for c, s, d in sorted(ours["trace"]) if c < 4]
    (HERE / "results" / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
