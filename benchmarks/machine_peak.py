"""The machine's measured float64 GEMM peak, for benchmarks that report achieved GFLOP/s beside it.

    from machine_peak import gemm_peak_gflops     # benchmarks run as ``python benchmarks/<name>.py``
    peak = gemm_peak_gflops()                     # median GFLOP/s of a 2048² float64 torch.matmul

C = A·B with A, B of size n × n (2·n³ flops) by ``torch.matmul`` in float64 on the CPU, timed ``repeats`` times
after one warm-up, with torch's current intra-op threads (or ``threads``); the median run is the peak.  n = 2048
saturates the GEMM kernels of a CPU (one product takes ~0.1–1 s) while staying far below its memory.
"""

from __future__ import annotations

import statistics
import time

import torch


def gemm_peak_gflops(n: int = 2048, repeats: int = 5, threads: int | None = None) -> float:
    """Median GFLOP/s of a float64 n × n matrix product over ``repeats`` timed runs.

    n : matrix size;  repeats : timed runs after one warm-up;  threads : torch intra-op threads for the
    measurement (restored afterwards; None: the current setting)
    returns : float, GFLOP/s
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
        return statistics.median(runs)
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    for t in sorted({1, torch.get_num_threads()}):
        print(f"float64 GEMM 2048², {t} thread(s): {gemm_peak_gflops(threads=t):.1f} GFLOP/s (median of 5)")
