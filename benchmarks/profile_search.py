"""Where an LM step's time goes: each stage of :mod:`genni.search.steps` timed on its own, per element, beside
the whole step, on the two benchmark problems of ``bench_search.py`` (``moons_tanh``: 2-16-16-1 tanh, 512 probe
inputs, random starts; ``default``: the built-in relu default, starts θ* + 1 % noise).

Per element, one thread (the search runs each element single-threaded on its worker thread):

- forward: r(θ) = vec(f_θ(X) − Y), one forward pass (the step runs two: θ + hδ and the trial point);
- J: the closed-form Jacobian with its forward pass (per row prepared);
- JᵀJ: :func:`~genni.search.steps.gram_lower`, one triangle by BLAS syrk (per row prepared);
- J·v, Jᵀ·u: one product each (the step runs J·δ, Jᵀ·r_vv; a prepare Jᵀ·r);
- factorisation: Cholesky of JᵀJ + μD (per step);
- solves: the two triangular solves of one Cholesky solve (the step runs two);
- acceptance: the gain ratio, μ and θ updates of the whole batch, per element;
- prepare, step: :func:`~genni.search.steps.lm_prepare` / :func:`~genni.search.steps.lm_trial_one` per element
  as the search calls them on the CPU; what they take beyond their stages is dispatch, copies and Python;
- driver: the batch loop's bookkeeping per element-step (stall, hop, restart and convergence tests, the
  state's rows), from a whole search minus its prepares and steps.

Each stage's timing is the fastest of ``--repeats`` passes over a batch of ``--batch`` elements (the stage's own
cost, least disturbed by other processes); GFLOP/s beside the float64 GEMM peak of one thread
(:func:`gemm_peak.gemm_peak`).  The whole search is one wall-clock run.

    python benchmarks/profile_search.py [--batch 16] [--repeats 5]
writes benchmarks/results/search_profile.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from genni import search
from genni.machine import cpu_name
from genni.search import batching, driver, steps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_search import setup  # noqa: E402
from gemm_peak import gemm_peak  # noqa: E402


def _best_ms(fn, k: int, repeats: int, setup=None) -> float:
    """The fastest of ``repeats`` timed calls of fn() (after ``setup()``, untimed), per element (k elements
    per call), in ms: the stage's own cost, least disturbed by other processes."""
    runs = []
    for _ in range(repeats + 1):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs[1:]) / k * 1e3


def profile(name: str, batch: int, repeats: int) -> dict:
    cfg, spec, problem = setup(name)
    settings = search.SearchSettings.from_config({**cfg["search"], "n": batch, "batch_size": batch})
    runner = batching.RowRunner("cpu", workers=1)
    b = driver._Batch(problem, settings, 0, None, runner)
    b.add(list(range(batch)))
    st, X = b.st, problem.X
    n, P = X.shape[0], spec.n_params
    m = n * spec.widths[-1]
    rows = [slice(i, i + 1) for i in range(batch)]
    Js = [st["J"][i] for i in rows]
    As = [st["A"][i] for i in rows]
    Ls = []
    for i in rows:
        M = st["A"][i].clone()
        M.diagonal(dim1=1, dim2=2).add_(st["mu"][i, None] * st["D"][i])
        Ls.append(torch.linalg.cholesky_ex(M.mT)[0])
    v = [st["g"][i] for i in rows]
    u = [st["r"][i] for i in rows]

    def each(fn):
        return lambda: [fn(i) for i in range(batch)]

    def factor(i):
        M = As[i].clone()
        M.diagonal(dim1=1, dim2=2).add_(st["mu"][rows[i], None] * st["D"][rows[i]])
        return torch.linalg.cholesky_ex(M.mT)

    fwd = 2 * n * sum(a * b for a, b in zip(spec.widths[:-1], spec.widths[1:]))
    gram = steps.gram_flops(m, P)
    stages = {
        "forward r(θ)": (each(lambda i: steps._residuals(problem, st["theta"][rows[i]])), fwd),
        "J (closed form, with its forward pass)": (each(lambda i: spec.jacobian(st["theta"][rows[i]], X)), fwd + m * P),
        "JᵀJ (BLAS syrk)": (each(lambda i: steps.gram_lower(Js[i])), gram),
        "J·v": (each(lambda i: steps._matvec(Js[i], v[i])), 2 * m * P),
        "Jᵀ·u": (each(lambda i: steps._rmatvec(Js[i], u[i])), 2 * m * P),
        "Cholesky of JᵀJ + μD": (each(factor), P**3 / 3),
        "Cholesky solve (two triangular solves)": (each(lambda i: steps._chol_solve(Ls[i], v[i])), 2 * P**2),
    }
    out = {}
    for label, (fn, flops) in stages.items():
        ms = _best_ms(fn, batch, repeats)
        out[label] = {"ms": ms, "gflops": flops / ms / 1e6}
    trial = st["theta"].clone()
    loss = st["loss"] * 0.5
    pred = st["loss"].clone()
    ok = torch.ones(batch, dtype=torch.bool)

    def accept():
        saved = {k: st[k].clone() for k in ("theta", "loss", "mu", "nu")}
        steps.lm_accept(st, slice(None), trial, loss, pred, ok)
        st.update(saved)

    out["acceptance (whole batch)"] = {"ms": _best_ms(accept, batch, repeats), "gflops": None}
    all_rows = torch.arange(batch)
    saved = {k: v.clone() for k, v in st.items()}

    def restore():
        st.update({k: v.clone() for k, v in saved.items()})

    out["lm_prepare per row"] = {"ms": _best_ms(lambda: steps.lm_prepare(problem, st, all_rows, settings.damping, runner),
                                                batch, repeats, restore), "gflops": None}
    out["lm_trial_one per row"] = {"ms": _best_ms(lambda: [steps.lm_trial_one(problem, st, i, settings.geodesic)
                                                           for i in range(batch)], batch, repeats, restore),
                                   "gflops": None}
    runner.close()

    # a whole search: rows prepared and stepped, and the driver's share
    counts = {"prepare": 0.0, "step": 0.0, "rows": 0, "steps": 0}
    prep, stp = driver.lm_prepare_rows, driver.lm_trial_one

    def timed_prepare(problem, st, idx, *a):
        t0 = time.perf_counter()
        prep(problem, st, idx, *a)
        counts["prepare"] += time.perf_counter() - t0
        counts["rows"] += 1 if isinstance(idx, slice) else int(idx.numel())

    def timed_step(problem, st, i, *a):
        t0 = time.perf_counter()
        out = stp(problem, st, i, *a)
        counts["step"] += time.perf_counter() - t0
        counts["steps"] += 1
        return out

    driver.lm_prepare_rows, driver.lm_trial_one = timed_prepare, timed_step
    try:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        search.run_search(problem, search.SearchSettings.from_config({**cfg["search"], "n": batch}), seed=0)
        total = time.perf_counter() - t0
    finally:
        driver.lm_prepare_rows, driver.lm_trial_one = prep, stp
        torch.set_num_threads(before)
    es = counts["steps"]
    out["search"] = {"element_steps": es, "rows_prepared": counts["rows"], "seconds": total,
                     "ms_per_element_step": total / es * 1e3,
                     "driver_ms_per_element_step": (total - counts["prepare"] - counts["step"]) / es * 1e3,
                     "prepared_per_step": counts["rows"] / es}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=["moons_tanh", "default"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    peak = gemm_peak(threads=1)["gflops"]
    res = {name: profile(name, args.batch, args.repeats) for name in args.configs}
    lines = [f"Measured by `python benchmarks/profile_search.py {' '.join(sys.argv[1:])}` on {cpu_name()}, torch "
             f"{torch.__version__}, one thread; batches of {args.batch} elements, fastest of {args.repeats} passes; "
             f"float64 GEMM peak of one thread {peak:.1f} GFLOP/s; 1-min load average {load0:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end.", "",
             "| stage (per element) | " + " | ".join(f"{k} ms | {k} GFLOP/s" for k in res) + " |",
             "|---|" + "---|---|" * len(res)]
    labels = [k for k in next(iter(res.values())) if k != "search"]
    for label in labels:
        cells = []
        for r in res.values():
            ms, gf = r[label]["ms"], r[label]["gflops"]
            cells += [f"{ms:.3f}", "" if gf is None else f"{gf:.1f} ({100 * gf / peak:.0f} %)"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| whole search, one thread | " + " | ".join(res) + " |", "|---|" + "---|" * len(res)]
    for key, fmt in (("element_steps", "{:.0f}"), ("prepared_per_step", "{:.2f}"), ("ms_per_element_step", "{:.2f}"),
                     ("driver_ms_per_element_step", "{:.3f}")):
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(fmt.format(r["search"][key]) for r in res.values()) + " |")
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "search_profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
