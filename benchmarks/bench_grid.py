"""Discrepancy on a 101 × 101 grid: genni's batched evaluation against a GENNI-style loop.

Baseline (as the GENNI code evaluates its grids): for each grid point, deep-copy the
model, load the point's parameters into it, run the forward pass on the probe set and
take the mean squared discrepancy (one full-batch forward: no data loader).  genni:
`projection.evaluate_grid` (chunks of grid points through `Model.forward_combination`),
at several chunk sizes.  Same process, same device, same reference, probe set and plane
(a random filter-normalised plane through θ*); medians of repeats.

    python benchmarks/bench_grid.py [--repeats 3] [--resolution 101] [--device cuda] [--batches 32,64,128,256]
writes benchmarks/results/grid[_DEVICE].md (summarised in the README and docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genni import config, data, projection, train
from genni.machine import cpu_name
from genni.models import MLP

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def baseline(spec, theta_ref, X, Y, origin, basis, axes, device="cpu") -> np.ndarray:
    """One grid point after another: deepcopy, load parameters, forward, MSE."""
    model = spec.module(torch.as_tensor(theta_ref)).to(device)
    Xt, Yt = torch.as_tensor(X, device=device), torch.as_tensor(Y, device=device)
    origin, basis = torch.as_tensor(origin, device=device), torch.as_tensor(basis, device=device)
    R = axes.shape[1]
    out = np.empty((R, R))
    with torch.no_grad():
        for i in range(R):
            for j in range(R):
                m = copy.deepcopy(model)
                theta = origin + float(axes[0, i]) * basis[0] + float(axes[1, j]) * basis[1]
                torch.nn.utils.vector_to_parameters(theta, m.parameters())
                out[i, j] = ((m(Xt) - Yt) ** 2).sum(-1).mean().item()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=101)
    ap.add_argument("--config", default="moons_relu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="32,64,128,256", help="genni chunk sizes to time")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = config.load(ROOT / "experiments" / f"{args.config}.toml")
    d = cfg["data"]
    ds = data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"], n_train=d["n_train"],
                           seed=cfg["seed"], noise=d["noise"])
    spec = MLP.from_dict(cfg["model"])
    theta = train.make_reference(cfg, spec, ds).theta
    X = ds.X_probe
    Y = spec.forward(torch.as_tensor(theta), torch.as_tensor(X)).numpy()
    sub = projection.random_subspace(spec, theta, theta[None], k=2, seed=0)
    axes = np.tile(np.linspace(-1, 1, args.resolution), (2, 1))
    batches = [int(b) for b in args.batches.split(",")]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    tb, tg, err = [], {b: [] for b in batches}, 0.0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        vb = baseline(spec, theta, X, Y, sub.origin, sub.basis, axes, args.device)
        sync()
        tb.append(time.perf_counter() - t0)
        for b in batches:
            t0 = time.perf_counter()
            vg = projection.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes, batch=b, device=args.device)
            tg[b].append(time.perf_counter() - t0)
            # relative to the grid's scale: at θ* itself both are ~0 and a pointwise ratio is meaningless
            err = max(err, float(np.max(np.abs(vb - vg)) / np.max(np.abs(vb))))
        print(f"repeat {r}: baseline {tb[-1]:.2f}s genni " + " ".join(f"{b}: {tg[b][-1]:.3f}s" for b in batches)
              + f" max rel. difference {err:.1e}", file=sys.stderr)
    base = statistics.median(tb)
    n = args.resolution ** 2
    where = (torch.cuda.get_device_name() if args.device.startswith("cuda")
             else f"{cpu_name()}, {torch.get_num_threads()} threads")
    text = (f"Measured by `python benchmarks/bench_grid.py {' '.join(sys.argv[1:])}` on {args.device} ({where}), "
            f"torch {torch.__version__}; medians of {args.repeats} repeats; {args.config} (P = {spec.n_params}, "
            f"{len(X)} probe inputs); load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n"
            "| grid | GENNI-style loop | genni, points per chunk | genni | speed-up | max difference / max value |\n"
            "|---|---|---|---|---|---|\n")
    for b in batches:
        g = statistics.median(tg[b])
        text += (f"| {args.resolution} × {args.resolution} ({n} points) | {base:.2f} s ({n / base:.0f} points/s) | {b} | "
                 f"{g:.3f} s ({n / g:.0f} points/s) | {base / g:.0f}× | {err:.0e} |\n")
    (HERE / "results").mkdir(exist_ok=True)
    name = "grid.md" if args.device == "cpu" else f"grid_{args.device.split(':')[0]}.md"
    (HERE / "results" / name).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
