"""ReLU equivalents from random starts: share converged to tol = 1e-10 and seconds per element, for the
search as it is and for three approaches tried against its spurious minima (none kept: see docs/method.md).

* baseline: the default search (LM, restarts 4, hops 3, revive), random torch.nn.Linear starts;
* leaky: continuation in the activation: leaky_relu with slope 0.5, 0.2, …, 0.001 (200 LM steps each,
  warm-started from the previous slope) fitting the relu reference's outputs, then relu;
* place: residual-informed restarts: when an element stalls, the first-layer unit that contributes
  least (‖outgoing‖·‖incoming‖) is re-drawn with its kink through the probe point of largest residual
  and its outgoing weights zeroed (f unchanged), 8 rounds of 200 LM steps;
* homotopy: continuation in the target: exact fits of Y(λ) = (1 − λ) f_θ0(X) + λ Y*, λ = 0.1, …, 1,
  from each element's own start θ0.

References: the built-in default (2-16-16-1 relu trained on moons) and a random 3-7-5-2 relu teacher on
spheres.  Same process, same probe sets.

    python benchmarks/bench_relu_starts.py [--n 8] [--approaches baseline,leaky,place,homotopy]
writes benchmarks/results/relu_starts.md
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from genni import config, data, search, train
from genni.machine import cpu_name
from genni.models import MLP
from genni.models.mlp import layout
from genni.seeds import element_generator

HERE = Path(__file__).resolve().parent


def setup(which: str):
    if which == "default":
        cfg = config.load(None)
    else:
        cfg = config.resolve({"name": "teacher", "seed": 0, "data": {"dataset": "spheres", "n_probe": 512, "n_heldout": 512},
                              "model": {"widths": [3, 7, 5, 2], "activation": "relu"}, "reference": {"source": "random"}})
    d = cfg["data"]
    ds = data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"], n_train=d["n_train"],
                           seed=cfg["seed"], noise=d["noise"])
    spec = MLP.from_dict(cfg["model"])
    ref = train.make_reference(cfg, spec, ds)
    return spec, search.Problem.from_arrays(spec, ref.theta, ds.X_probe, ds.X_heldout)


def baseline(spec, relu, st, n):
    return search.run_search(relu, st, seed=0)


def leaky(spec, relu, st, n):
    starts = None
    for a in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.003, 0.001):
        sp = replace(spec, activation="leaky_relu", negative_slope=a)
        prob = search.Problem(sp, relu.theta_ref, relu.X, relu.Y, relu.X_heldout, relu.Y_heldout)
        f = search.run_search(prob, replace(st, restarts=0, hops=0, max_steps=200), seed=0, starts=starts)
        starts = {int(i): th for i, th in zip(f.index, f.theta)}
    return search.run_search(relu, replace(st, restarts=0), seed=0, starts=starts)


def place(spec, relu, st, n, rounds=8):
    rng = np.random.default_rng(0)
    f = search.run_search(relu, replace(st, restarts=0, hops=0, max_steps=200), seed=0)
    for _ in range(rounds):
        starts = {}
        for k, i in enumerate(f.index):
            th = torch.as_tensor(f.theta[k]).clone()
            if not f.converged[k]:
                with torch.no_grad():
                    res = ((spec.forward(th, relu.X) - relu.Y) ** 2).sum(-1)
                x = relu.X[int(torch.argmax(res))]
                (W1, b1), (W2, _) = layout.unflatten(th, spec.widths)[:2]
                j = int(torch.argmin(W2.norm(dim=0) * torch.sqrt((W1 ** 2).sum(1) + b1 ** 2)))
                w = torch.as_tensor(rng.standard_normal(W1.shape[1]))
                W1[j], b1[j], W2[:, j] = w, -(w @ x), 0.0
            starts[int(i)] = th
        f = search.run_search(relu, replace(st, restarts=0, hops=0, max_steps=200), seed=0, starts=starts)
    return f


def homotopy(spec, relu, st, n, K=10):
    starts = {i: spec.init_theta(1, element_generator(0, i, 0)[0], 1.0)[0] for i in range(n)}
    with torch.no_grad():
        F0 = {i: (spec.forward(t, relu.X), spec.forward(t, relu.X_heldout)) for i, t in starts.items()}
    for lam in np.linspace(0, 1, K + 1)[1:-1]:
        for i in range(n):  # each element follows its own target path
            pr = search.Problem(spec, relu.theta_ref, relu.X, (1 - lam) * F0[i][0] + lam * relu.Y, relu.X_heldout,
                                (1 - lam) * F0[i][1] + lam * relu.Y_heldout)
            fi = search.run_search(pr, replace(st, n=1, batch_size=1, restarts=0, hops=0, max_steps=100, revive=False),
                                   seed=0, indices=[i], starts={i: starts[i]})
            starts[i] = torch.as_tensor(fi.theta[0])
    return search.run_search(relu, replace(st, restarts=0), seed=0, starts=starts)


APPROACHES = {"baseline": baseline, "leaky": leaky, "place": place, "homotopy": homotopy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--approaches", default=",".join(APPROACHES))
    ap.add_argument("--references", default="default,teacher")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = []
    for which in args.references.split(","):
        spec, relu = setup(which)
        st = search.SearchSettings(n=args.n, batch_size=args.n, tol=1e-10)
        for name in args.approaches.split(","):
            t = time.perf_counter()
            f = APPROACHES[name](spec, relu, st, args.n)
            dt = time.perf_counter() - t
            row = (which, name, int(f.converged.sum()), args.n, dt / args.n, float(np.median(f.relative_discrepancy)))
            print(row, flush=True)
            rows.append(row)
    cpu = cpu_name()
    lines = [f"Measured by `python benchmarks/bench_relu_starts.py --n {args.n}` on {cpu}, torch {torch.__version__}, "
             f"load average {os.getloadavg()[0]:.1f}.", "",
             "| reference | approach | converged to tol 1e-10 | s per element | median relative discrepancy |",
             "|---|---|---|---|---|"]
    lines += [f"| {w} | {a} | {c}/{n} | {s:.1f} | {m:.1e} |" for w, a, c, n, s, m in rows]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "relu_starts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
