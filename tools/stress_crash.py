"""make stress: the kill -9 harness at larger sizes, on real ``python -m genni`` processes.

    python -m tools.stress_crash [--kills 20] [--only find,walk,project,sweep] [--in-place]

Each command is SIGKILLed (its whole process group) at ``--kills`` random moments after launch, the
file checked after every kill (tools/crash_harness.py), then run to the end.  ``--in-place`` runs the
same harness with genni's writes made in place instead of copy-on-write (GENNI_UNSAFE_IN_PLACE_WRITES=1):
the baseline that shows what the harness catches.  Prints a table (docs/robustness.md, "Crash safety").
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from genni.machine import cpu_name
from tools import crash_harness as ch

BASE = """
name = "stress"
seed = 0
[data]
dataset = "moons"
n_probe = 512
n_heldout = 512
[model]
widths = [2, 16, 16, 1]
activation = "relu"
[reference]
source = "train"
epochs = 300
[search]
tol = 1e-10
init_scale = 0.01
batch_size = 16
"""




def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--only", default="find,walk,project,sweep")
    ap.add_argument("--in-place", action="store_true", help="baseline: genni writes in place (not crash-safe)")
    args = ap.parse_args(argv)
    if args.in_place:
        os.environ["GENNI_UNSAFE_IN_PLACE_WRITES"] = "1"
    work = Path(tempfile.mkdtemp(prefix="genni_stress_"))
    writes = "IN PLACE (baseline)" if args.in_place else "copy-on-write"
    print(f"# kill -9 stress on {cpu_name()}, {os.cpu_count()} cores; writes: {writes}; in {work}")
    print("| command | size | kills landed | checks passed | finished before the kill | restarts from nothing "
          "| seconds | result |")
    print("|---|---|---|---|---|---|---|---|")
    fails = 0

    def fresh(*paths):
        def go():
            for p in paths:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return go

    jobs = []
    (work / "find.toml").write_text(BASE + 'n = 256\ninit = "perturb"\n')
    (work / "walk.toml").write_text(BASE + 'n = 48\ninit = "walk"\nchains = 4\nthin = 4\n')
    if "find" in args.only:
        jobs.append(("find", "2-16-16-1 relu, 256 elements", ["find", "find.toml", "-o", "f.h5", "--quiet"],
                     work / "f.h5", ch.ElementsChecker(256), (2.0, 8.0), fresh(work / "f.h5"), None))
    if "walk" in args.only:
        jobs.append(("find (init = walk)", "4 chains, 48 stored states", ["find", "walk.toml", "-o", "w.h5", "--quiet"],
                     work / "w.h5", ch.ElementsChecker(48), (2.0, 12.0), fresh(work / "w.h5"), None))
    if "project" in args.only:
        def fresh_project():
            (work / "p.h5").unlink(missing_ok=True)
            shutil.copyfile(work / "pbase.h5", work / "p.h5")
        jobs.append(("project", "PCA grid 401², probe + held-out", ["project", "p.h5", "--resolution", "401", "--paths", "0",
                                                                    "--quiet"],
                     work / "p.h5", ch.GridChecker("pca"), (2.0, 8.0), fresh_project, "project"))
    if "sweep" in args.only:
        (work / "sw.toml").write_text('base = "base.toml"\nstages = ["train", "identify"]\nseeds = 6\n[grid]\n'
                                      '"model.widths" = [[2, 8, 1], [2, 16, 1], [2, 8, 8, 1], [2, 16, 16, 1]]\n')
        (work / "base.toml").write_text(BASE + 'n = 1\ninit = "perturb"\n')
        jobs.append(("sweep", "24 cells (train + identify), 2 local workers",
                     ["sweep", "sw.toml", "-o", "out", "--workers", "2", "--quiet"], work / "out", ch.SweepChecker(24),
                     (3.0, 20.0), fresh(work / "out"), None))
    for name, size, argv, target, checker, window, fresh_fn, setup in jobs:
        if setup == "project":
            (work / "pbase.toml").write_text(BASE + 'n = 16\ninit = "perturb"\n')
            assert ch.run_to_end(["find", "pbase.toml", "-o", "pbase.h5", "--quiet"], "exec", str(work)) == 0
        t0 = time.monotonic()
        try:
            rep = ch.kill_loop(name, argv, target, checker, kills=args.kills, window=window, mode="exec",
                               cwd=str(work), fresh=fresh_fn, seed=7, timeout=3600)
            print(f"| {name} | {size} | {rep.kills} | {rep.checks} | {rep.finished_first} | {rep.restarts} | "
                  f"{rep.seconds:.0f} | passed |", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next command
            fails += 1
            msg = " ".join(str(exc).split())[:160]
            print(f"| {name} | {size} | | | | | {time.monotonic() - t0:.0f} | FAILED: {type(exc).__name__}: {msg} |",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
