"""All-pairs layer-path distances: genni's batched `geometry.pairwise` against a per-pair loop.

Representations: 64 random MLPs (32 tanh, 32 relu; `Model.init_theta`, torch's default
initialisation) on 1,000 two-moons inputs; for every network its last 4 representations from
one batched `....layers()`: 256 (network, layer) points, 32,640 pairs,
float64.  Default widths 2-16-16-1, the default experiment's architecture, whose 4
representations (input, h1, h2, output) are what `genni paths` compares; `--widths
2,32,32,32,2 --out paths_wide` takes wider layers (h1, h2, h3 of width 32 and the output).

Baseline (written here, independent of genni, and used as the oracle): for each pair, both
representations are centred (and z-scored / normalised) from scratch and the distance is
computed the textbook way:
  angular_cka        arccos(‖X̃ᵀỸ‖_F² / (‖X̃ᵀX̃‖_F ‖ỸᵀỸ‖_F))         (feature-space CKA formula)
  angular_procrustes arccos(‖X̂ᵀŶ‖_*), X̂ = X̃/‖X̃‖_F                  (np.linalg.svd of the d_x × d_y product)
  procrustes         √(‖X̃‖² + ‖Ỹ‖² − 2‖X̃ᵀỸ‖_*)
  zscore_procrustes  z-score each unit (units with variance < 1e-8 · max dropped), then angular_procrustes
The loop is timed with numpy's BLAS at 1 thread (its fastest: with 2 threads OpenBLAS spends
more time waking threads than computing on these small products) on all pairs; a timed
random subset with BLAS at 2 threads is reported too (per-pair cost × 32,640).  genni is
timed with BLAS at 1 and at 2 threads (torch at 2).  Medians of repeats.

    python benchmarks/bench_paths.py [--repeats 3] [--subset 200] [--widths 2,16,16,1] [--out paths]
writes benchmarks/results/<out>.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from genni import data, geometry
from genni.machine import cpu_name
from genni.models import MLP

HERE = Path(__file__).resolve().parent
N_NETS, N_INPUTS, N_LAYERS, FLOOR = 64, 1000, 4, 1e-8


def representations(widths: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """256 points [1000, d], ordered network-major (index m·4 + l); networks 0–31 tanh, 32–63 relu;
    the last 4 representations of each network."""
    ds = data.load_dataset("moons", n_probe=N_INPUTS, n_heldout=1, n_train=0, seed=seed, noise=0.1)
    X = torch.as_tensor(ds.X_probe)
    reps = []
    for k, act in enumerate(("tanh", "relu")):
        spec = MLP(widths, act)
        theta = spec.init_theta(N_NETS // 2, torch.Generator().manual_seed(seed + k))
        with torch.no_grad():
            _, layers = spec.layers(theta, X)
        reps += [np.ascontiguousarray(layers[l][m].numpy()) for m in range(N_NETS // 2)
                 for l in range(len(widths) - N_LAYERS, len(widths))]
    return reps


# ---------------------------------------------------------------- the per-pair loop (oracle)


def _centre(X):
    return X - X.mean(axis=0)


def _zscore(X):
    Xc = _centre(X)
    var = (Xc * Xc).mean(axis=0)
    keep = var >= FLOOR * var.max()
    return Xc[:, keep] / np.sqrt(var[keep])


def _angle_of(cos):
    return float(np.arccos(min(max(cos, -1.0), 1.0)))


def base_angular_cka(X, Y):
    Xc, Yc = _centre(X), _centre(Y)
    return _angle_of(np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)))


def _angular_procrustes(Xc, Yc):
    Xn, Yn = Xc / np.linalg.norm(Xc), Yc / np.linalg.norm(Yc)
    return _angle_of(np.linalg.svd(Xn.T @ Yn, compute_uv=False).sum())


def base_angular_procrustes(X, Y):
    return _angular_procrustes(_centre(X), _centre(Y))


def base_procrustes(X, Y):
    Xc, Yc = _centre(X), _centre(Y)
    nuc = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    return float(np.sqrt(max((Xc * Xc).sum() + (Yc * Yc).sum() - 2.0 * nuc, 0.0)))


def base_zscore_procrustes(X, Y):
    return _angular_procrustes(_zscore(X), _zscore(Y))


BASELINES = {"angular_cka": base_angular_cka, "angular_procrustes": base_angular_procrustes,
             "procrustes": base_procrustes, "zscore_procrustes": base_zscore_procrustes}


def loop(reps, pairs, fn) -> np.ndarray:
    return np.array([fn(reps[i], reps[j]) for i, j in pairs])


# ---------------------------------------------------------------- main


def _fmt(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--subset", type=int, default=200, help="pairs timed with BLAS at 2 threads (extrapolated)")
    ap.add_argument("--metrics", nargs="+", default=list(BASELINES), choices=list(BASELINES))
    ap.add_argument("--widths", default="2,16,16,1", help="MLP widths; the last 4 representations are compared")
    ap.add_argument("--out", default="paths", help="results/<out>.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    widths = tuple(int(w) for w in args.widths.split(","))
    if len(widths) < N_LAYERS:
        raise SystemExit(f"--widths needs at least {N_LAYERS} entries (input, …, output)")
    reps = representations(widths)
    M = len(reps)
    iu = np.triu_indices(M, 1)
    pairs = list(zip(iu[0].tolist(), iu[1].tolist()))
    sub = [pairs[k] for k in np.random.default_rng(0).choice(len(pairs), args.subset, replace=False)]
    rows = []
    for metric in args.metrics:
        fn = BASELINES[metric]
        tb1, tb2, tg1, tg = [], [], [], []
        err = 0.0
        for r in range(args.repeats):
            with threadpool_limits(1, user_api="blas"):
                t0 = time.perf_counter()
                vb = loop(reps, pairs, fn)
                tb1.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                geometry.pairwise(reps, metric)
                tg1.append(time.perf_counter() - t0)
            with threadpool_limits(2, user_api="blas"):
                t0 = time.perf_counter()
                loop(reps, sub, fn)
                tb2.append((time.perf_counter() - t0) * len(pairs) / len(sub))
                t0 = time.perf_counter()
                D = geometry.pairwise(reps, metric)
                tg.append(time.perf_counter() - t0)
            err = max(err, float(np.max(np.abs(D[iu] - vb))))
            print(f"{metric} repeat {r}: loop (1 BLAS thread) {tb1[-1]:.2f}s, loop (2 BLAS threads, extrapolated) "
                  f"{tb2[-1]:.2f}s, genni {tg1[-1]:.3f}s (1 BLAS thread) {tg[-1]:.3f}s (2), max |difference| {err:.1e}",
                  file=sys.stderr)
        b1, b2, g1, g2 = (statistics.median(t) for t in (tb1, tb2, tg1, tg))
        g = min(g1, g2)
        unit = " (activation units)" if metric == "procrustes" else " rad"
        rows.append(f"| {metric} | {_fmt(b1)} ({b1 / len(pairs) * 1e6:.0f} µs/pair) | {_fmt(b2)} | {_fmt(g1)} | {_fmt(g2)} "
                    f"| {g / len(pairs) * 1e6:.1f} µs | {min(b1, b2) / g:.0f}× | {err:.0e}{unit} |")
    names = (["input"] + [f"h{i}" for i in range(1, len(widths) - 1)] + ["output"])[-N_LAYERS:]
    shown = ", ".join(f"{nm} ({w})" for nm, w in zip(names, widths[-N_LAYERS:]))
    text = (f"Measured by `python benchmarks/bench_paths.py {' '.join(sys.argv[1:])}` on {cpu_name()}, "
            f"numpy {np.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; medians of "
            f"{args.repeats} repeats.  {N_NETS} random MLPs {'-'.join(map(str, widths))} (half tanh, half relu) on "
            f"{N_INPUTS} two-moons inputs, {N_LAYERS} layers each ({shown}): {M} points, {len(pairs)} pairs, float64.  "
            "Per-pair loop: centre / normalise both "
            "representations for every pair, then the textbook formula (SVD of the d × d product for Procrustes); "
            f"timed on all pairs with 1 BLAS thread, and on {args.subset} random pairs with 2 BLAS threads "
            "(× pairs).  genni at 1 and 2 BLAS threads.  Speed-up: faster loop / faster genni; "
            "max |difference| of genni against the loop over all pairs.\n\n"
            "| metric | per-pair loop, 1 BLAS thread | per-pair loop, 2 BLAS threads (extrapolated) | genni `pairwise`, "
            "1 BLAS thread | genni `pairwise`, 2 BLAS threads | genni per pair | speed-up | max difference |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    text += (f"\nLoad average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes share the "
             "machine; the 2-thread BLAS timings suffer most).\n")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
