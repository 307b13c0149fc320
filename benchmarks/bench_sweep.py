"""Sweep throughput: cells per minute on Dask with 1 and 2 local workers, against a plain loop over the
same cells in this process (no Dask), so the table shows what Dask costs and what the second worker buys.

The cells: a small tanh network (2-8-1 on moons, 256 probe inputs, random teacher) × 12 seeds,
stages find (8 elements) and identify.  Each measurement starts from an empty folder; medians of
``--repeats`` runs.

    python benchmarks/bench_sweep.py [--seeds 12] [--repeats 3]
writes benchmarks/results/sweep.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genni import sweep
from genni.machine import cpu_name

HERE = Path(__file__).resolve().parent

BASE = """
name = "bench"
seed = 0
[data]
dataset = "moons"
n_probe = 256
n_heldout = 256
n_train = 200
n_far = 1024
[model]
widths = [2, 8, 1]
activation = "tanh"
[reference]
source = "random"
init_scale = 2.0
[search]
n = 8
batch_size = 8
"""


def write_sweep(d: Path, seeds: int) -> Path:
    (d / "base.toml").write_text(BASE)
    p = d / "sweep.toml"
    p.write_text(f'base = "base.toml"\nstages = ["find", "identify"]\nseeds = {seeds}\n')
    return p


def plain_loop(sweep_file: Path, out: Path) -> float:
    sw = sweep.load_sweep(sweep_file)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for name, cfg, _ in sw["cells"]:
        row = sweep.run_cell(cfg, str(out / f"{name}.h5"), sw["stages"], threads=os.cpu_count() or 1)
        assert row["status"] == "done", row
    return time.perf_counter() - t


def dask_run(sweep_file: Path, out: Path, workers: int) -> float:
    t = time.perf_counter()
    info = sweep.run_sweep(sweep_file, out, workers=workers)
    assert info["failed"] == 0
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"plain loop (no Dask)": [], "Dask, 1 worker": [], "Dask, 2 workers": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            sf = write_sweep(d, args.seeds)
            times["plain loop (no Dask)"].append(plain_loop(sf, d / "loop"))
            times["Dask, 1 worker"].append(dask_run(sf, d / "w1", 1))
            times["Dask, 2 workers"].append(dask_run(sf, d / "w2", 2))
        print({k: v[-1] for k, v in times.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = cpu_name()
    base = med["plain loop (no Dask)"]
    lines = [f"Measured by `python benchmarks/bench_sweep.py --seeds {args.seeds} --repeats {args.repeats}` on {cpu}, "
             f"{os.cpu_count()} cores, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}; medians.", "",
             "| how | wall (s) | cells per minute | against the plain loop |", "|---|---|---|---|"]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.1f} | {60 * args.seeds / v:.1f} | {base / v:.2f}× |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
