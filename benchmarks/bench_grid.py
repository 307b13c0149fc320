"""Discrepancy on a 101 × 101 grid: genni's batched evaluation against a GENNI-style loop.

Baseline (as the GENNI code evaluates its grids): for each grid point, deep-copy the
model, load the point's parameters into it, run the forward pass on the probe set and
take the mean squared discrepancy.  genni: `projection.evaluate_grid`, the same
[N, P] batched forward pass the search uses.  Same process, same reference, probe set
and plane (PCA-free: a random filter-normalised plane through θ*); medians of repeats.

    python benchmarks/bench_grid.py [--repeats 3] [--resolution 101]
writes benchmarks/results/grid.md (the table in the README).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genni import config, data, nets, projection, train

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def baseline(spec, theta_ref, X, Y, origin, basis, axes) -> np.ndarray:
    """One grid point after another: deepcopy, load parameters, forward, MSE."""
    model = spec.module(torch.as_tensor(theta_ref))
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    R = axes.shape[1]
    out = np.empty((R, R))
    with torch.no_grad():
        for i in range(R):
            for j in range(R):
                m = copy.deepcopy(model)
                theta = torch.as_tensor(origin + axes[0, i] * basis[0] + axes[1, j] * basis[1])
                torch.nn.utils.vector_to_parameters(theta, m.parameters())
                out[i, j] = ((m(Xt) - Yt) ** 2).sum(-1).mean().item()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=101)
    ap.add_argument("--config", default="moons_relu")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = config.load(ROOT / "experiments" / f"{args.config}.toml")
    d = cfg["data"]
    ds = data.load_dataset(d["dataset"], n_probe=d["n_probe"], n_heldout=d["n_heldout"], n_train=d["n_train"],
                           seed=cfg["seed"], noise=d["noise"])
    spec = nets.MLPSpec.from_dict(cfg["model"])
    theta = train.make_reference(cfg, spec, ds).theta
    X = ds.X_probe
    Y = nets.forward(spec, torch.as_tensor(theta), torch.as_tensor(X)).numpy()
    sub = projection.random_subspace(spec, theta, theta[None], k=2, seed=0)
    axes = np.tile(np.linspace(-1, 1, args.resolution), (2, 1))
    tb, tg = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        vb = baseline(spec, theta, X, Y, sub.origin, sub.basis, axes)
        tb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        vg = projection.evaluate_grid(spec, X, Y, sub.origin, sub.basis, axes)
        tg.append(time.perf_counter() - t0)
        # relative to the grid's scale: at θ* itself both are ~0 and a pointwise ratio is meaningless
        err = float(np.max(np.abs(vb - vg)) / np.max(np.abs(vb)))
        print(f"repeat {r}: baseline {tb[-1]:.2f}s genni {tg[-1]:.3f}s max rel. difference {err:.1e}", file=sys.stderr)
    b, g = statistics.median(tb), statistics.median(tg)
    n = args.resolution ** 2
    text = (f"Measured by `python benchmarks/bench_grid.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} repeats; "
            f"{args.config} (P = {spec.n_params}, {len(X)} probe inputs).\n\n"
            "| grid | GENNI-style loop | genni batched | speed-up | max difference / max value |\n|---|---|---|---|---|\n"
            f"| {args.resolution} × {args.resolution} ({n} points) | {b:.2f} s ({n / b:.0f} points/s) | "
            f"{g:.3f} s ({n / g:.0f} points/s) | {b / g:.0f}× | {err:.0e} |\n")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "grid.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
