"""Equivalence-search throughput and memory against a GENNI-style baseline.

Baseline (as the GENNI code works): for each element, a fresh
``torch.nn.Sequential`` in float64 and ``torch.optim.Adam(lr=1e-2)`` on the same
probe discrepancy L(θ) = mean‖f_θ(x) − f_θ*(x)‖², run until L ≤ tol or 3,000
steps, one element after another.  genni: the batched search with the config's
defaults.  Both run in this process on the same reference and probe set; each
measurement is the median of ``--repeats`` runs.

Also measured: the closed-form Jacobian against torch.func (vmap of jacrev), and
peak RSS of ``genni find`` for 64 vs 1,024 elements (separate processes, a small
network so the large run stays short) to show that memory does not grow with N.

    python benchmarks/bench_search.py [--repeats 3] [--baseline-elements 8] [--n 64]
writes benchmarks/results/search.md (summarised in the README and docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genni import config, data, search, train
from genni.machine import cpu_name
from genni.models import MLP
from genni.seeds import element_generator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def setup(cfg_path: Path):
    cfg = config.load(cfg_path)
    d = cfg["data"]
    ds = data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"],
                           n_train=d["n_train"], seed=cfg["seed"], noise=d["noise"])
    spec = MLP.from_dict(cfg["model"])
    ref = train.make_reference(cfg, spec, ds)
    return cfg, spec, search.Problem.from_arrays(spec, ref.theta, ds.X_probe, ds.X_heldout)


def baseline(spec, problem, n_elements: int, tol: float, seed: int, max_steps: int = 3000):
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


def genni_search(problem, cfg, n: int, seed: int):
    settings = search.SearchSettings.from_config({**cfg["search"], "n": n})
    t0 = time.perf_counter()
    found = search.run_search(problem, settings, seed=seed)
    return time.perf_counter() - t0, int(found.converged.sum()), found.discrepancy


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-elements", type=int, default=8)
    ap.add_argument("--n", type=int, default=64, help="elements per genni search")
    ap.add_argument("--configs", nargs="*", default=["moons_relu", "moons_tanh"])
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--out", default="search", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows, extra = [], {}
    mem = {} if args.skip_memory else {n: peak_rss_mb(n) for n in (64, 1024)}
    for name in args.configs:
        cfg, spec, problem = setup(ROOT / "experiments" / f"{name}.toml")
        tol = cfg["search"]["tol"]
        b_runs, g_runs = [], []
        for r in range(args.repeats):
            b_runs.append(baseline(spec, problem, args.baseline_elements, tol, seed=r))
            g_runs.append(genni_search(problem, cfg, args.n, seed=r))
            print(f"{name} repeat {r}: baseline {b_runs[-1][0]:.1f}s {b_runs[-1][1]}/{args.baseline_elements} conv; "
                  f"genni {g_runs[-1][0]:.1f}s {g_runs[-1][1]}/{args.n} conv", file=sys.stderr)
        b_time = statistics.median(t for t, _, _ in b_runs)
        g_time = statistics.median(t for t, _, _ in g_runs)
        b_conv = statistics.median(c for _, c, _ in b_runs)
        g_conv = statistics.median(c for _, c, _ in g_runs)
        b_final = np.concatenate([f for _, _, f in b_runs])
        g_final = np.concatenate([f for _, _, f in g_runs])
        b_rate_all, g_rate_all = args.baseline_elements / b_time, args.n / g_time
        b_rate, g_rate = b_conv / b_time, g_conv / g_time
        rows.append({
            "config": name, "P": spec.n_params, "tol": tol,
            "baseline_el_s": b_rate_all, "baseline_conv_el_s": b_rate, "baseline_conv": f"{b_conv:g}/{args.baseline_elements}",
            "baseline_median_L": float(np.median(b_final)),
            "genni_el_s": g_rate_all, "genni_conv_el_s": g_rate, "genni_conv": f"{g_conv:g}/{args.n}",
            "genni_median_L": float(np.median(g_final)),
            "speedup_elements": g_rate_all / b_rate_all,
            "speedup_converged": (g_rate / b_rate) if b_rate > 0 else float("inf"),
        })
        extra[f"jacobian_{name}"] = jacobian_timing(spec, problem)
    lines = [
        f"Measured by `python benchmarks/bench_search.py {' '.join(sys.argv[1:])}` on {cpu_name()}, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; medians of {args.repeats} repeats.",
        "",
        "| config | P | baseline el/s | baseline converged | baseline median L | genni el/s | genni converged "
        "| genni median L | speed-up (all elements) | speed-up (converged el/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sc = "∞ (baseline converged none)" if r["speedup_converged"] == float("inf") else f"{r['speedup_converged']:.0f}×"
        lines.append(f"| {r['config']} | {r['P']} | {r['baseline_el_s']:.3f} | {r['baseline_conv']} | "
                     f"{r['baseline_median_L']:.1e} | {r['genni_el_s']:.2f} | {r['genni_conv']} | "
                     f"{r['genni_median_L']:.1e} | {r['speedup_elements']:.0f}× | {sc} |")
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
    (HERE / "results" / f"{args.out}.json").write_text(json.dumps({"rows": rows, "jacobian": extra, "rss_mb": mem}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
