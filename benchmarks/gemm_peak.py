"""The machine's measured float64 GEMM peak, for benchmarks that report achieved GFLOP/s next to it.

    from gemm_peak import gemm_peak          # benchmarks run as ``python benchmarks/<name>.py``
    peak = gemm_peak()                       # {"gflops": ..., "n": 2048, "threads": ..., "repeats": ...}

A square product C = A·B of size n (2·n³ flops) with ``torch.matmul`` in float64 on the CPU, timed ``repeats``
times after one warm-up; the median is the peak this process reaches with the threads it has (``threads``:
torch's intra-op threads for the measurement, the current setting by default).  n = 2048 saturates the GEMM
kernels of a CPU (the product takes ~0.1–1 s) while staying far below its memory.
"""

from __future__ import annotations

import statistics
import time

import torch


def gemm_peak(n: int = 2048, repeats: int = 5, threads: int | None = None) -> dict:
    """Median GFLOP/s of a float64 n × n matrix product over ``repeats`` runs.

    n : matrix size;  repeats : timed runs after one warm-up;  threads : torch intra-op threads for the
    measurement (restored afterwards; None: the current setting)
    returns : {"gflops": median, "gflops_runs": every run, "n", "threads", "repeats"}
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        A = torch.rand(n, n, dtype=torch.float64, generator=g)
        B = torch.rand(n, n, dtype=torch.float64, generator=g)
        torch.matmul(A, B)
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(A, B)
            runs.append(2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
        return {"gflops": statistics.median(runs), "gflops_runs": runs, "n": n, "threads": torch.get_num_threads(),
                "repeats": repeats}
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    for t in sorted({1, torch.get_num_threads()}):
        p = gemm_peak(threads=t)
        print(f"float64 GEMM {p['n']}², {p['threads']} thread(s): {p['gflops']:.1f} GFLOP/s (median of {p['repeats']})")
