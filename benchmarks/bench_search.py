"""Equivalence-search speed against scipy's Levenberg–Marquardt and a GENNI-style Adam loop, the LM
step's achieved GFLOP/s against the machine's float64 GEMM peak, and memory.

Problems (same process, same reference and probe set for every method):

- ``moons_tanh``: 2-16-16-1 tanh trained on two moons, 512 probe inputs, random starts, tol = 1e-10;
- ``default``: the built-in default experiment (2-16-16-1 relu on moons, starts θ* + 1 % noise).

Baselines:

- **scipy LM**: ``scipy.optimize.least_squares(method="lm")`` (MINPACK) on the same residuals, with the
  dense Jacobian from ``torch.func.jacrev`` of the torch module (no genni code), xtol = ftol = gtol =
  1e-15, capped at ``--scipy-nfev`` (150) evaluations, from the same starts as genni's elements (element
  i's first attempt).  Credited generously: its seconds per element are the time to its first iterate
  with L ≤ tol, or to its own end (cap or stopping rule) when it never gets there, counted as if every
  element converged; how many really converged is reported beside it.
- **Adam** (as the GENNI code works): for each element a fresh ``torch.nn.Sequential`` in float64 and
  ``torch.optim.Adam(lr=1e-2)`` until L ≤ tol or 3,000 steps, one element after another.

genni: the config's search settings, ``--n`` elements; its time is the search's (``run_search``: the
reference, data and problem are built before the clock starts) per converged element.  The LM step's
floating-point work is counted from the rows prepared (J, one triangle of JᵀJ by BLAS syrk, Jᵀr) and the
rows stepped (Cholesky of JᵀJ + μD, four triangular solves, J·δ, Jᵀ·r_vv, two forward passes) — see
:func:`lm_flops` — and divided by the search's wall time: the achieved GFLOP/s, also as a share of the
float64 GEMM peak measured in the same process (:func:`gemm_peak.gemm_peak`, a 2048² matmul,
median of 5).  With ``precision = "mixed"`` (the default) JᵀJ and its factorisation run in float32 for
rows far from a solution; their operations are counted like the float64 ones, against the float64 peak.
Every measurement is the median of ``--repeats`` runs, the methods interleaved.

Also: the closed-form Jacobian against torch.func (vmap of jacrev), and peak RSS of ``genni find`` for
64 vs 1,024 elements (separate processes, a small network so the large run stays short).

    python benchmarks/bench_search.py [--repeats 3] [--n 32] [--scipy-elements 4] [--baseline-elements 8]
writes benchmarks/results/search.md and .json (summarised in the README and docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from genni import config, data, search, train
from genni.machine import cpu_name
from genni.models import MLP
from genni.search import driver, steps
from genni.seeds import element_generator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from baselines import module_residual  # noqa: E402
from gemm_peak import gemm_peak  # noqa: E402

CONFIGS = {"moons_tanh": ROOT / "experiments" / "moons_tanh.toml", "default": None}


def setup(name: str):
    """(config, model, Problem) of a named benchmark problem (``default``: the built-in default experiment)."""
    path = CONFIGS.get(name, ROOT / "experiments" / f"{name}.toml")
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "default.toml"
            path.write_text(resources.files("genni").joinpath("default.toml").read_text())
            cfg = config.load(path)
    else:
        cfg = config.load(path)
    d = cfg["data"]
    ds = data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"],
                           n_train=d["n_train"], seed=cfg["seed"], noise=d["noise"])
    spec = MLP.from_dict(cfg["model"])
    ref = train.make_reference(cfg, spec, ds)
    return cfg, spec, search.Problem.from_arrays(spec, ref.theta, ds.X_probe, ds.X_heldout)


def starts(cfg: dict, spec, problem, k: int, seed: int) -> list[np.ndarray]:
    """θ of genni's elements 0..k−1, first attempt (the search's own initialisation)."""
    s = search.SearchSettings.from_config(cfg["search"])
    out = []
    for i in range(k):
        g, _ = element_generator(seed, i, 0)
        th = spec.init_theta(1, g, s.init_scale)[0]
        out.append((problem.theta_ref + th if s.init == "perturb" else th).numpy())
    return out


def lm_flops(spec, n_probe: int) -> tuple[float, float]:
    """Floating-point operations of the direct LM step per element: (per row prepared, per row stepped).

    prepared: forward pass and J (n·K rows, P columns), one triangle of JᵀJ by :func:`~genni.search.steps.gram_lower`
    (syrk on the CPU, m·P·(P + 1): :func:`~genni.search.steps.gram_flops`), Jᵀr (2mP).  stepped: Cholesky of
    JᵀJ + μD (P³/3), four triangular solves (P² each), J·δ and Jᵀ·r_vv (2mP each), two forward passes (2·n·Σ w_l·w_{l−1} each)."""
    P, m = spec.n_params, n_probe * spec.widths[-1]
    fwd = 2 * n_probe * sum(a * b for a, b in zip(spec.widths[:-1], spec.widths[1:]))
    gram = steps.gram_flops(m, P)
    prepared = fwd + m * P + gram + 2 * m * P
    stepped = P**3 / 3 + 4 * P**2 + 4 * m * P + 2 * fwd
    return prepared, stepped


def genni_search(problem, cfg, n: int, seed: int) -> dict:
    """The config's search of n elements, timed, with the LM rows prepared and stepped counted (stepped: every
    element's steps; prepared: rows whose r, J and JᵀJ were built, counted in the driver's calls)."""
    settings = search.SearchSettings.from_config({**cfg["search"], "n": n})
    counts = {"prepared": 0}
    lock = threading.Lock()
    prep_rows, prep = driver.lm_prepare_rows, driver.lm_prepare

    def counted_rows(problem, st, idx, *a):
        with lock:
            counts["prepared"] += 1 if isinstance(idx, slice) else int(idx.numel())
        return prep_rows(problem, st, idx, *a)

    def counted_prepare(problem, st, rows, *a):
        with lock:
            counts["prepared"] += int(rows.numel())
        return prep(problem, st, rows, *a)

    driver.lm_prepare_rows, driver.lm_prepare = counted_rows, counted_prepare
    try:
        t0 = time.perf_counter()
        found = search.run_search(problem, settings, seed=seed)
        seconds = time.perf_counter() - t0
    finally:
        driver.lm_prepare_rows, driver.lm_prepare = prep_rows, prep
    steps_taken = int(found.steps.sum())
    return {"seconds": seconds, "converged": int(found.converged.sum()), "final": found.discrepancy,
            "steps": steps_taken, "stepped": steps_taken, **counts}


def scipy_lm(spec, problem, x0s: list[np.ndarray], tol: float, max_nfev: int) -> dict:
    """scipy least_squares(method="lm") from each start; seconds to the first iterate with L ≤ tol, or to
    its own end when it never gets there."""
    from scipy.optimize import least_squares
    from torch.func import jacrev

    net = spec.module()
    X, Y = problem.X, problem.Y
    n = X.shape[0]

    f = module_residual(net, X, Y)

    seen: list[tuple[float, float]] = []

    def fun(x):
        with torch.no_grad():
            r = f(torch.from_numpy(x)).numpy()
        seen.append((time.perf_counter(), float(r @ r) / n))
        return r

    def jac(x):
        return jacrev(f)(torch.from_numpy(x)).detach().numpy()

    per, conv, best, nfev = [], 0, [], []
    for x0 in x0s:
        seen.clear()
        t = time.perf_counter()
        r = least_squares(fun, x0, jac=jac, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=max_nfev)
        end = time.perf_counter()
        hit = [ts for ts, L in seen if L <= tol]
        per.append((hit[0] if hit else end) - t)
        conv += bool(hit)
        best.append(min(L for _, L in seen))
        nfev.append(int(r.nfev))
    return {"seconds_per_element": float(np.mean(per)), "converged": conv, "best": best, "nfev": nfev}


def adam_baseline(spec, problem, n_elements: int, tol: float, seed: int, max_steps: int = 3000):
    """One element after another: fresh nn.Sequential + Adam(lr=1e-2) until L ≤ tol or max_steps."""
    X, Y = problem.X, problem.Y
    finals, converged = [], 0
    t0 = time.perf_counter()
    for i in range(n_elements):
        torch.manual_seed(seed * 100_003 + i)
        net = spec.module()  # torch.nn.Linear's default init
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(max_steps):
            opt.zero_grad()
            loss = ((net(X) - Y) ** 2).sum(-1).mean()
            if loss.item() <= tol:
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            final = ((net(X) - Y) ** 2).sum(-1).mean().item()
        finals.append(final)
        converged += final <= tol
    return time.perf_counter() - t0, converged, np.array(finals)


def jacobian_timing(spec, problem, n: int = 64, repeats: int = 3):
    theta = spec.init_theta(n, element_generator(0, 0)[0])
    X = problem.X

    def closed():
        spec.jacobian(theta, X)

    def func():
        torch.func.vmap(torch.func.jacrev(lambda t: spec.forward(t, X)))(theta)

    out = {}
    for name, fn in (("closed form", closed), ("torch.func vmap(jacrev)", func)):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def peak_rss_mb(n: int) -> float:
    """Peak RSS of a separate `genni find` of n elements on a small tanh net."""
    cfg = ("name = 'mem'\nseed = 0\n[data]\ndataset = 'moons'\nn_probe = 128\nn_heldout = 128\n"
           "[model]\nwidths = [2, 8, 1]\nactivation = 'tanh'\n[reference]\nsource = 'train'\nepochs = 300\n"
           f"[search]\nn = {n}\nmax_steps = 60\nrestarts = 0\nbatch_size = 64\n")
    # VmHWM (peak resident set of this process image) rather than ru_maxrss, which keeps the
    # parent's high-water mark across fork + exec
    code = ("import sys; from genni.cli import main; rc = main(sys.argv[1:]); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "mem.toml"
        p.write_text(cfg)
        r = subprocess.run([sys.executable, "-c", code, "find", str(p), "-o", str(Path(tmp) / "mem.h5"), "--quiet"],
                           capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1]) / 1024


def genni_row(label: str, runs: list[dict], s_runs: list[dict], spec, cfg: dict, n_probe: int, args) -> dict:
    """One result row: genni's repeats (medians) against scipy's on the same problem."""
    med = statistics.median
    s_per = med([s["seconds_per_element"] for s in s_runs])
    fp, fs = lm_flops(spec, n_probe)
    g_time, g_conv = med([g["seconds"] for g in runs]), med([g["converged"] for g in runs])
    g = runs[0]  # the search is deterministic: every repeat does the same work
    flops = g["prepared"] * fp + g["stepped"] * fs
    g_per = g_time / max(g_conv, 1)
    return {
        "config": label, "P": spec.n_params, "tol": cfg["search"]["tol"], "init": cfg["search"].get("init", "random"),
        "genni_seconds": g_time, "genni_converged": f"{g_conv:g}/{args.n}", "genni_s_per_converged": g_per,
        "genni_median_L": float(np.median(g["final"])), "genni_element_steps": g["steps"],
        "genni_rows_prepared": g["prepared"], "genni_rows_stepped": g["stepped"],
        "ms_per_element_step": g_time / g["stepped"] * 1e3,
        "gflop": flops / 1e9, "gflops": flops / g_time / 1e9,
        "scipy_s_per_element": s_per, "scipy_converged": f"{s_runs[0]['converged']}/{args.scipy_elements}",
        "scipy_nfev": s_runs[0]["nfev"], "scipy_best_L": s_runs[0]["best"],
        "ratio_scipy": s_per / g_per,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=32, help="elements per genni search")
    ap.add_argument("--scipy-elements", type=int, default=4)
    ap.add_argument("--scipy-nfev", type=int, default=150, help="scipy's cap on residual evaluations")
    ap.add_argument("--baseline-elements", type=int, default=8, help="elements of the Adam baseline (0: skip)")
    ap.add_argument("--configs", nargs="*", default=["moons_tanh", "default"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", nargs="*", default=[], metavar="KEY=VALUE",
                    help="search settings of one more genni row per problem (e.g. geodesic=1.5), against the same scipy runs")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-jacobian", action="store_true")
    ap.add_argument("--out", default="search", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    rows, extra, peaks = [], {}, []
    mem = {} if args.skip_memory else {n: peak_rss_mb(n) for n in (64, 1024)}
    for name in args.configs:
        cfg, spec, problem = setup(name)
        tol = cfg["search"]["tol"]
        x0s = starts(cfg, spec, problem, args.scipy_elements, seed=0)
        g_runs, s_runs, b_runs, v_runs = [], [], [], []
        variant = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.variant)}
        cfg_v = {**cfg, "search": {**cfg["search"], **variant}}
        for r in range(args.repeats):
            peaks.append(gemm_peak()["gflops"])
            g_runs.append(genni_search(problem, cfg, args.n, seed=0))
            if variant:
                v_runs.append(genni_search(problem, cfg_v, args.n, seed=0))
            s_runs.append(scipy_lm(spec, problem, x0s, tol, args.scipy_nfev))
            if args.baseline_elements:
                b_runs.append(adam_baseline(spec, problem, args.baseline_elements, tol, seed=r))
            g, s = g_runs[-1], s_runs[-1]
            print(f"{name} repeat {r}: genni {g['seconds']:.1f}s {g['converged']}/{args.n} conv; scipy "
                  f"{s['seconds_per_element']:.1f}s/element {s['converged']}/{args.scipy_elements} conv; "
                  f"peak {peaks[-1]:.1f} GFLOP/s", file=sys.stderr)
        med = statistics.median
        row = genni_row(name, g_runs, s_runs, spec, cfg, problem.X.shape[0], args)
        g_time = row["genni_seconds"]
        if b_runs:
            b_time = med([t for t, _, _ in b_runs])
            b_conv = med([c for _, c, _ in b_runs])
            a_rate = args.baseline_elements / b_time
            row.update({"adam_el_s": a_rate, "adam_conv": f"{b_conv:g}/{args.baseline_elements}",
                        "adam_median_L": float(np.median(np.concatenate([f for _, _, f in b_runs]))),
                        "genni_el_s": args.n / g_time, "speedup_adam_elements": (args.n / g_time) / a_rate})
        rows.append(row)
        if variant:
            label = f"{name} ({', '.join(f'{k} = {v}' for k, v in variant.items())})"
            rows.append(genni_row(label, v_runs, s_runs, spec, cfg, problem.X.shape[0], args))
        if not args.skip_jacobian:
            extra[f"jacobian_{name}"] = jacobian_timing(spec, problem)
    peak = statistics.median(peaks) if peaks else gemm_peak()["gflops"]
    for row in rows:
        row["peak_gflops"] = peak
        row["share_of_peak"] = row["gflops"] / peak
    lines = [
        f"Measured by `python benchmarks/bench_search.py {' '.join(sys.argv[1:])}` on {cpu_name()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}, {args.threads} threads; medians of {args.repeats} "
        f"repeats, methods interleaved; 1-min load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
        f"end (every method ran under the same load).  float64 GEMM peak in this process (2048² matmul, median): "
        f"{peak:.1f} GFLOP/s.",
    ]
    if rows:
        lines += [
            "",
            "| problem | P | starts | genni s per converged element | genni converged | scipy LM s per element "
            "(credited) | scipy converged | **scipy / genni** | genni ms per element-step | achieved GFLOP/s "
            "| share of GEMM peak |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            starts_ = "θ* + 1 % noise" if r["init"] == "perturb" else "random"
            lines.append(f"| {r['config']} | {r['P']} | {starts_} | {r['genni_s_per_converged']:.3f} | "
                         f"{r['genni_converged']} | {r['scipy_s_per_element']:.1f} | {r['scipy_converged']} | "
                         f"**{r['ratio_scipy']:.0f}×** | {r['ms_per_element_step']:.2f} | {r['gflops']:.1f} | "
                         f"{100 * r['share_of_peak']:.0f} % |")
        lines += ["", "genni's work: " + "; ".join(
            f"{r['config']} {r['genni_element_steps']} element-steps ({r['genni_rows_prepared']} J and JᵀJ builds, "
            f"{r['genni_rows_stepped']} factorisations), {r['gflop']:.1f} GFLOP, median final L "
            f"{r['genni_median_L']:.1e}" for r in rows) + ".  scipy evaluations per element: " + "; ".join(
            f"{r['config']} {r['scipy_nfev']} (best L {', '.join(f'{x:.1e}' for x in r['scipy_best_L'])})"
            for r in rows) + "."]
    if any("adam_el_s" in r for r in rows):
        lines += ["", "| problem | Adam el/s | Adam converged | Adam median L | genni el/s | genni converged "
                  "| speed-up (all elements) |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['adam_el_s']:.3f} | {r['adam_conv']} | {r['adam_median_L']:.1e} | "
                  f"{r['genni_el_s']:.2f} | {r['genni_converged']} | {r['speedup_adam_elements']:.0f}× |"
                  for r in rows if "adam_el_s" in r]
    if extra:
        lines += ["", "| Jacobian of 64 networks on the probe set | closed form | torch.func vmap(jacrev) | ratio |",
                  "|---|---|---|---|"]
        for k, v in extra.items():
            a, b = v["closed form"], v["torch.func vmap(jacrev)"]
            lines.append(f"| {k.removeprefix('jacobian_')} | {a * 1e3:.0f} ms | {b * 1e3:.0f} ms | {b / a:.1f}× |")
    if mem:
        lines += ["", "| `genni find` (2-8-1 tanh, 128 probe inputs) | peak RSS |", "|---|---|"]
        lines += [f"| {n} elements | {v:.0f} MB |" for n, v in mem.items()]
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.out}.md").write_text(text)
    (HERE / "results" / f"{args.out}.json").write_text(json.dumps(
        {"rows": rows, "jacobian": extra, "rss_mb": mem, "peak_gflops_runs": peaks}, indent=2, default=float))
    print(text)


if __name__ == "__main__":
    main()
