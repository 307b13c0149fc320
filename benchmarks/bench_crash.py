"""What crash safety costs: genni's copy-on-write writes (copy the run file, write, fsync, rename) against
writing the run file in place (the baseline: ``store.atomic.IN_PLACE = True``), in the same process.

Workloads (default reference of each, 2 threads): ``find`` of the default relu experiment (64 elements
from θ* + 1 % noise; one write per finished chunk), ``walk`` (find with init = "walk": 4 chains, 32
stored states; one write per stored state), ``project`` (PCA grid 201² on probe and held-out inputs,
writes batched every 0.5 s; --paths 0).  Medians of ``--repeats``; each repeat starts from the same
files.  Also counts the writes and the final file size.

    python benchmarks/bench_crash.py [--repeats 3]
writes benchmarks/results/crash.md
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import genni
from genni import config, store
from genni.machine import cpu_name

HERE = Path(__file__).resolve().parent




class _Count:
    """Counts store.atomic._write calls (one per write to an existing run file)."""

    def __init__(self):
        self.n = 0
        self.real = store.atomic._write  # noqa: SLF001

    def __enter__(self):
        def counted(path):
            self.n += 1
            return self.real(path)
        store.atomic._write = counted  # noqa: SLF001
        return self

    def __exit__(self, *exc):
        store.atomic._write = self.real  # noqa: SLF001


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="genni_bench_crash_"))
    base = config.load(None)
    walk_cfg = copy.deepcopy(base)
    walk_cfg["search"].update(init="walk", n=32, chains=4, thin=4)
    # the reference, probe data and far inputs once; every repeat starts from these files
    genni.find(base, work / "ref.h5", reference_only=True)
    genni.find(walk_cfg, work / "walkref.h5", reference_only=True)
    genni.find(config.with_overrides(base, n=16), work / "proj.h5")
    jobs = {
        "find (64 elements)": ("ref.h5", lambda p: genni.find(base, p)),
        "walk (4 chains, 32 states)": ("walkref.h5", lambda p: genni.find(walk_cfg, p)),
        "project (PCA grid 201²)": ("proj.h5", lambda p: genni.project(p, resolution=201, paths=0)),
    }
    rows = []
    for name, (src, fn) in jobs.items():
        times = {True: [], False: []}
        writes, size = {}, 0
        for r in range(args.repeats):
            for in_place in (True, False):  # alternate, so drifting load hits both alike
                p = work / f"run_{r}_{in_place}.h5"
                shutil.copyfile(work / src, p)
                store.atomic.IN_PLACE = in_place
                with _Count() as c:
                    t = time.perf_counter()
                    fn(p)
                    times[in_place].append(time.perf_counter() - t)
                writes[in_place] = c.n
                size = p.stat().st_size
                p.unlink()
        store.atomic.IN_PLACE = False
        a, b = statistics.median(times[True]), statistics.median(times[False])
        rows.append((name, writes[False], size, a, b, b / a))
        print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    lines = [f"CPU: {cpu_name()}; torch {torch.__version__}, 2 threads; medians of {args.repeats} repeats", "",
             "| workload | writes | file size | in place (baseline) | copy-on-write (genni) | ratio |",
             "|---|---|---|---|---|---|"]
    for name, w, size, a, b, ratio in rows:
        lines.append(f"| {name} | {w} | {size / 1e6:.1f} MB | {a:.2f} s | {b:.2f} s | {ratio:.2f}× |")
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "crash.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
