"""A search at LeNet size: the matrix-free LM step against scipy's least_squares, per converged element.

The network: an MLP 64-512-20-10 on digits (P = 43,750, LeNet-5's size; genni has no convolutional
kind yet, issue 14), a He-initialised teacher (biases N(0, 0.01²)), 1,000 probe inputs (10,000
residuals, so the problem is under-determined: the class has dimension ≥ 33,750).  Elements start at
θ* + 1 % of a fresh initialisation; converged = relative discrepancy L/power ≤ 1e-10.

- genni: ``solver = "cg"`` (J·v and Jᵀ·u in closed form, Jacobi-preconditioned CG, cg_tol 1e-6);
- baseline: ``scipy.optimize.least_squares`` as a careful user would call it at this size.
  ``method="lm"`` (MINPACK) refuses: it needs at least as many residuals as parameters, and its dense
  J alone would be 10,000 × 43,750 × 8 B = 3.5 GB.  So: ``method="trf", tr_solver="lsmr"`` with the
  Jacobian as a ``LinearOperator`` whose products are torch.func's jvp / vjp of the torch module
  (no genni code), ftol = xtol = 1e-15, gtol = 1e-15.
- the direct LM step (Cholesky of JᵀJ + μD) would need JᵀJ: 43,750² × 8 B = 15.3 GB per element; not run.

Each method runs in its own subprocess (peak resident memory = ru_maxrss of that process, torch and
data included); 2 threads; ``--elements`` elements per method.

    python benchmarks/bench_matrix_free.py [--elements 3]
writes benchmarks/results/matrix_free.md
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genni.machine import cpu_name

HERE = Path(__file__).resolve().parent
WIDTHS = (64, 512, 20, 10)
REL_TOL = 1e-10




def _problem():
    from genni import data, nets, search, train

    ds = data.load_dataset("digits", n_probe=1000, n_heldout=200, n_train=0, seed=0)
    spec = nets.MLPSpec(WIDTHS, "relu")
    theta = train.random_reference(spec, seed=0, init="he")
    return search.Problem.from_arrays(spec, theta, ds.X_probe, ds.X_heldout)


def _starts(problem, k):
    from genni import nets

    out = []
    for i in range(k):
        g, _ = nets.element_generator(0, i, 0)
        out.append(problem.theta_ref.numpy() + nets.init_theta(problem.spec, 1, g, 0.01)[0].numpy())
    return out


def run_genni(k: int) -> dict:
    from genni import search

    problem = _problem()
    tol = REL_TOL * problem.output_power
    settings = search.SearchSettings(n=k, batch_size=1, solver="cg", tol=tol, init="perturb", init_scale=0.01,
                                     restarts=0, max_steps=200)
    starts = dict(enumerate(_starts(problem, k)))
    t = time.perf_counter()
    f = search.run_search(problem, settings, seed=0, starts=starts)
    sec = time.perf_counter() - t
    return {"seconds": sec, "converged": int(f.converged.sum()), "steps": f.steps.tolist(),
            "relative": (f.discrepancy / problem.output_power).tolist()}


def run_scipy(k: int) -> dict:
    from scipy.optimize import least_squares
    from scipy.sparse.linalg import LinearOperator
    from torch.func import functional_call, jvp, vjp

    problem = _problem()
    net = problem.spec.module()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    X, Y = problem.X, problem.Y
    P, m = problem.spec.n_params, Y.numel()
    n = X.shape[0]

    def f(th):
        parts, o = {}, 0
        for name, sh in zip(names, shapes):
            c = int(np.prod(sh))
            parts[name] = th[o:o + c].reshape(sh)
            o += c
        return (functional_call(net, parts, (X,)) - Y).reshape(-1)

    def fun(x):
        with torch.no_grad():
            return f(torch.from_numpy(x)).numpy()

    def jac(x, *_):
        th = torch.from_numpy(x)
        return LinearOperator((m, P), dtype=np.float64,
                              matvec=lambda v: jvp(f, (th,), (torch.from_numpy(np.ravel(v).copy()),))[1].detach().numpy(),
                              rmatvec=lambda u: vjp(f, th)[1](torch.from_numpy(np.ravel(u).copy()))[0].detach().numpy())

    try:
        least_squares(fun, _starts(problem, 1)[0], method="lm")
        lm = "ran"
    except ValueError as exc:
        lm = str(exc).split(".")[0]
    t = time.perf_counter()
    rel, conv = [], 0
    for x0 in _starts(problem, k):
        r = least_squares(fun, x0, jac=jac, method="trf", tr_solver="lsmr", ftol=1e-15, xtol=1e-15, gtol=1e-15,
                          max_nfev=200)
        L = float(np.mean(r.fun.reshape(n, -1) ** 2 * Y.shape[1])) / problem.output_power
        rel.append(L)
        conv += L <= REL_TOL
    return {"seconds": time.perf_counter() - t, "converged": conv, "relative": rel, "lm": lm}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=3)
    ap.add_argument("--child", choices=["genni", "scipy"])
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.child:
        out = run_genni(args.elements) if args.child == "genni" else run_scipy(args.elements)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    res = {}
    for who in ("genni", "scipy"):
        r = subprocess.run([sys.executable, __file__, "--child", who, "--elements", str(args.elements)],
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        res[who] = json.loads(r.stdout.strip().splitlines()[-1])
        print(who, res[who], flush=True)
    P = 43750
    g, s = res["genni"], res["scipy"]
    per = lambda d: d["seconds"] / max(d["converged"], 1)  # noqa: E731
    lines = [f"CPU: {cpu_name()}; torch {torch.__version__}, 2 threads; MLP {list(WIDTHS)} (P = {P:,}), 1,000 digits "
             f"probe inputs, {args.elements} elements per method from θ* + 1 % noise", "",
             "| method | converged (rel. L ≤ 1e-10) | seconds per converged element | peak memory | median rel. L reached |",
             "|---|---|---|---|---|",
             f"| genni, matrix-free LM (solver = \"cg\") | {g['converged']}/{args.elements} | {per(g):.1f} s | "
             f"{g['peak_rss_mb']:.0f} MB | {np.median(g['relative']):.1e} |",
             f"| scipy least_squares(trf, lsmr, torch.func products) | {s['converged']}/{args.elements} | "
             f"{per(s):.1f} s{'' if s['converged'] else ' (none converged: total time / 1)'} | {s['peak_rss_mb']:.0f} MB | "
             f"{np.median(s['relative']):.1e} |",
             f"| scipy least_squares(method=\"lm\") | refused: {s['lm']} | | | |",
             f"| direct LM (Cholesky of JᵀJ) | not run: JᵀJ alone is {P * P * 8 / 1e9:.1f} GB | | | |", "",
             f"Ratio (scipy / genni, seconds per converged element): {per(s) / per(g):.1f}×; genni's peak memory is "
             f"{g['peak_rss_mb'] * 2**20 / (P * P * 8):.3f} of P²·8 bytes."]
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "matrix_free.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
