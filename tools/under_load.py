"""make test-load: the whole suite N times in a row while another process keeps every core busy.

    python -m tools.under_load [--runs 3]

The burner is a separate process running one numpy matrix-product loop per core.  Prints one line per
run (exit status, minutes, pytest's summary) and exits non-zero if any run failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from genni.machine import summary

BURN = ("import numpy as np, threading, time\n"
        "def spin():\n a = np.random.rand(400, 400)\n while True: a = np.tanh(a @ a)\n"
        "ts = [threading.Thread(target=spin, daemon=True) for _ in range({n})]\n"
        "[t.start() for t in ts]\ntime.sleep(10 ** 7)\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers, as `make test` runs the suite")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    burner = subprocess.Popen([sys.executable, "-c", BURN.format(n=cores)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    print(f"suite under load on {summary()} (burner: {cores} threads)", flush=True)
    failed = 0
    try:
        for k in range(1, args.runs + 1):
            t = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(args.jobs),
                                "--dist", "loadfile"], capture_output=True, text=True)
            last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
            log = f"under_load_run{k}.log"
            with open(log, "w") as fh:  # the whole output: which test failed, and why
                fh.write(r.stdout + r.stderr)
            failures = [ln for ln in r.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
            print(f"run {k}: exit {r.returncode}, {(time.monotonic() - t) / 60:.1f} min, {last} (log: {log})", flush=True)
            for ln in failures:
                print(f"  {ln}", flush=True)
            failed += r.returncode != 0
    finally:
        burner.kill()
        burner.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
