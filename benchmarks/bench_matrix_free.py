"""A search at LeNet size: genni's matrix-free LM step against scipy's least_squares, per converged element.

Two CNNs of the ``cnn`` kind (relu, max-pooling, no activation after the last layer), each with a
He-initialised random teacher whose hidden biases are centred on the probe images (no dead units), on
N(0, I) images; elements start at θ* + 1 % of a fresh initialisation; converged = relative discrepancy
L / output power ≤ 1e-10 on the probe images.

- **LeNet** (the paper's shape): 1×28×28 → conv 6 k5 → max-pool 2 → conv 16 k5 → max-pool 2 → dense
  120, 84 → 10, P = 44,426; 128 probe images (1,280 residuals).  genni: ``solver = "cg"`` (J·v and
  Jᵀ·u through torch.func, Jacobi-preconditioned CG, cg_tol 1e-6).  scipy ``least_squares(method="lm")``
  (MINPACK) refuses: it needs at least as many residuals as parameters, and its dense J would be
  m × P × 8 bytes; the direct LM step would need JᵀJ, P² × 8 bytes = 15.8 GB.
- **small LeNet** (the experiment's default size): 1×12×12 → conv 4 k3 → pool → conv 8 k3 → pool →
  dense 32, 16 → 10, P = 1,322; 160 probe images (1,600 residuals ≥ P, so MINPACK runs).  genni:
  ``solver = "direct"`` and ``"cg"``; baseline: ``least_squares(fun, x0, jac=J, method="lm")`` with the
  dense Jacobian from ``torch.func.jacrev`` of the torch module (no genni code), xtol = ftol = gtol =
  1e-15, as a careful user would write it.

Each method runs in its own subprocess (peak resident memory = ru_maxrss of that process, torch and
data included), 2 threads, the same starts.

    python benchmarks/bench_matrix_free.py [--elements 2]
writes benchmarks/results/matrix_free.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genni.machine import cpu_name
from genni.seeds import element_generator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from baselines import module_residual  # noqa: E402

REL_TOL = 1e-10
SIZES = {
    "lenet": dict(side=28, kernel=5, channels=[6, 16], dense=[120, 84], n_probe=128),
    "small": dict(side=12, kernel=3, channels=[4, 8], dense=[32, 16], n_probe=160),
}


def _problem(size: str):
    from genni import models, search, train

    s = SIZES[size]
    spec = models.from_dict({"kind": "cnn", "input_shape": [1, s["side"], s["side"]], "channels": s["channels"],
                             "kernel_size": s["kernel"], "pool": "max", "dense": s["dense"], "d_out": 10,
                             "activation": "relu"})
    rng = np.random.default_rng(0)
    X = rng.standard_normal((s["n_probe"], s["side"] ** 2))
    Xh = rng.standard_normal((64, s["side"] ** 2))
    theta = spec.centre_biases(train.random_reference(spec, seed=0, init="he", bias_std=0.1), X)
    return search.Problem.from_arrays(spec, theta, X, Xh)


def _starts(problem, k):

    out = []
    for i in range(k):
        g, _ = element_generator(0, i, 0)
        out.append(problem.theta_ref.numpy() + problem.model.init_theta(1, g, 0.01)[0].numpy())
    return out


def run_genni(size: str, solver: str, k: int) -> dict:
    from genni import search

    problem = _problem(size)
    settings = search.SearchSettings(n=k, batch_size=1, solver=solver, tol=REL_TOL * problem.output_power,
                                     init="perturb", init_scale=0.01, restarts=0, max_steps=200)
    t = time.perf_counter()
    f = search.run_search(problem, settings, seed=0, starts=dict(enumerate(_starts(problem, k))))
    return {"seconds": time.perf_counter() - t, "converged": int(f.converged.sum()), "steps": f.steps.tolist(),
            "relative": (f.discrepancy / problem.output_power).tolist(), "P": problem.model.n_params}


def run_scipy(size: str, k: int) -> dict:
    from scipy.optimize import least_squares
    from torch.func import jacrev

    problem = _problem(size)
    net = problem.model.module()
    X, Y = problem.X, problem.Y
    n, P, m = X.shape[0], problem.model.n_params, Y.numel()

    f = module_residual(net, X, Y)

    seen: list[tuple[float, float]] = []  # (time, relative L) of every evaluation: when the target was first met

    def fun(x):
        with torch.no_grad():
            r = f(torch.from_numpy(x)).numpy()
        seen.append((time.perf_counter(), float(np.mean(r.reshape(n, -1) ** 2 * Y.shape[1])) / problem.output_power))
        return r

    def jac(x):
        return jacrev(f)(torch.from_numpy(x)).detach().numpy()

    if m < P:
        try:
            least_squares(fun, _starts(problem, 1)[0], jac=jac, method="lm")  # scipy checks m < P after J0
            refused = ""
        except ValueError as exc:
            refused = str(exc).split(".")[0]
        return {"refused": refused, "P": P, "m": m}
    total, rel, conv, nfev, to_end = 0.0, [], 0, [], 0.0
    for x0 in _starts(problem, k):
        seen.clear()
        t = time.perf_counter()
        r = least_squares(fun, x0, jac=jac, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=400)
        to_end += time.perf_counter() - t
        hit = [ts for ts, L in seen if L <= REL_TOL]  # MINPACK has no "stop at L ≤ tol": time to the first such iterate
        total += (hit[0] - t) if hit else time.perf_counter() - t
        conv += bool(hit)
        rel.append(min(L for _, L in seen))
        nfev.append(int(r.nfev))
    return {"seconds": total, "seconds_to_its_own_end": to_end, "converged": conv, "relative": rel, "nfev": nfev,
            "P": P, "m": m}


def _child(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(args, out, flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=2)
    ap.add_argument("--child", nargs=3, metavar=("WHO", "SIZE", "SOLVER"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    torch.set_default_dtype(torch.float64)
    if args.child:
        who, size, solver = args.child
        out = run_genni(size, solver, args.elements) if who == "genni" else run_scipy(size, args.elements)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    k = str(args.elements)
    load0 = os.getloadavg()[0]
    res = {"lenet_cg": _child(["genni", "lenet", "cg", "--elements", k]),
           "lenet_scipy": _child(["scipy", "lenet", "-", "--elements", k]),
           "small_direct": _child(["genni", "small", "direct", "--elements", k]),
           "small_cg": _child(["genni", "small", "cg", "--elements", k]),
           "small_scipy": _child(["scipy", "small", "-", "--elements", k])}
    per = lambda d: d["seconds"] / max(d["converged"], 1)  # noqa: E731
    P_big, P_small = res["lenet_cg"]["P"], res["small_direct"]["P"]

    def row(name, d, extra=""):
        steps = f", {int(np.median(d['steps']))} LM steps (median)" if "steps" in d else (
            f", {int(np.median(d['nfev']))} evaluations (median)" if "nfev" in d else "")
        return (f"| {name} | {d['converged']}/{args.elements}{steps} | {per(d):.1f} s{extra} | {d['peak_rss_mb']:.0f} MB | "
                f"{np.max(d['relative']):.1e} |")

    g, sd, sc, ss = res["lenet_cg"], res["small_direct"], res["small_cg"], res["small_scipy"]
    lines = [f"CPU: {cpu_name()}; torch {torch.__version__}, 2 threads; 1-min load average {load0:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end; {args.elements} elements per method from θ* + 1 % noise; converged: "
             "relative discrepancy ≤ 1e-10 on the probe images.", "",
             "| method | converged | seconds per converged element | peak memory (process) | worst rel. L |",
             "|---|---|---|---|---|",
             row(f"**LeNet** (P = {P_big:,}, 128 probe images): genni matrix-free LM (`solver = \"cg\"`)", g),
             f"| LeNet: scipy `least_squares(method=\"lm\")` | refused: {res['lenet_scipy']['refused']} "
             f"({res['lenet_scipy']['m']:,} residuals < P), after forming its dense J | | "
             f"{res['lenet_scipy']['peak_rss_mb']:.0f} MB | |",
             f"| LeNet: direct LM (Cholesky of JᵀJ) | not run: JᵀJ alone is {P_big ** 2 * 8 / 1e9:.1f} GB | | | |",
             row(f"**small LeNet** (P = {P_small:,}, 160 probe images): genni direct LM", sd),
             row("small LeNet: genni matrix-free LM", sc),
             row("small LeNet: scipy `least_squares(method=\"lm\")`, dense J from torch.func.jacrev", ss), "",
             f"scipy's time is until its first iterate with relative L ≤ 1e-10 (MINPACK cannot be told to stop there; "
             f"run to its own end, xtol = ftol = gtol = 1e-15, it took {ss['seconds_to_its_own_end'] / args.elements:.1f} s "
             "per element and reached the 'worst rel. L' shown).  genni's memory is the whole process (torch included).",
             "",
             f"Ratios (seconds per converged element): small LeNet, scipy lm / genni direct = {per(ss) / per(sd):.1f}×, "
             f"scipy lm / genni matrix-free = {per(ss) / per(sc):.1f}×.  LeNet: genni's matrix-free peak memory is "
             f"{g['peak_rss_mb'] * 2 ** 20 / (P_big ** 2 * 8):.4f} of P²·8 bytes."]
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "matrix_free.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
