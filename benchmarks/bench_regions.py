"""Linear regions and the exact functional dimension: regions per second and time to a certified rank.

Networks: the built-in default reference (2-16-16-1 relu trained on moons; box = the probe inputs'
bounding box × 3) and He-initialised relu networks (n, …, n, 1) with depth 4, 5, 6 linear layers on
inputs in R^n, n = 5 and 10 (box ±3 sd of N(0, I_n)), as in ``experiments/hidden_symmetries.py``.

For each: the region walk with facets from the regions' vertices (Qhull; genni's method) against the
plain method in the same process (one Chebyshev LP per region and one HiGHS LP per unit), both over
the same first regions (``--regions``), as regions per second and their ratio; then
:func:`genni.exact.exact_rank` to its status (certified at the bound, certified deficit, or a lower
bound when ``--seconds`` ends the walk), with the time it took, and the rank from the probe alone
beside it.  Medians over ``--repeats`` (timing only; the answers are deterministic).

    python benchmarks/bench_regions.py [--regions 300] [--seconds 120] [--repeats 3] [--quick]
writes benchmarks/results/regions.md
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import genni
from genni import config, identifiability, models, store
from genni.exact import Pieces, default_domain, normal_box
from genni.exact.rank import exact_rank
from genni.exact.regions import walk
from genni.machine import summary
from genni.models import MLP
from genni.train import random_reference

HERE = Path(__file__).resolve().parent


def default_reference(folder: Path):
    """The default experiment's reference (trained as `genni run` trains it) and its probe inputs."""
    cfg = config.load(None)
    path = folder / "default.h5"
    genni.find(cfg, path, reference_only=True)
    run = store.load_run(path)
    model = models.from_dict(run.architecture)
    return model, model.symmetry.balance(run.theta_ref), default_domain("moons", run.X), run.X


def he_network(n: int, depth: int, seed: int = 0):
    model = MLP(tuple([n] * depth + [1]), "relu")
    theta = random_reference(model, seed=seed, init="he")
    return model, theta, normal_box(n), np.random.default_rng(seed).standard_normal((2 * model.n_params + 50, n))


def regions_per_second(model, theta, box, k: int, facets: str) -> float:
    t = time.perf_counter()
    seen = 0
    for _ in walk(Pieces.of(model, [theta]), box, facets=facets):
        seen += 1
        if seen >= k:
            break
    return seen / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=300, help="regions walked for the rate (each method)")
    ap.add_argument("--seconds", type=float, default=120.0, help="walk budget of exact_rank per network")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="n = 5 at depth 4 and the default network only")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "regions.md")
    args = ap.parse_args(argv)
    machine = summary()
    print(machine)
    with tempfile.TemporaryDirectory() as tmp:
        nets = [("default 2-16-16-1 (trained, moons)", *default_reference(Path(tmp)))]
    for n in (5,) if args.quick else (5, 10):
        for depth in (4,) if args.quick else (4, 5, 6):
            nets.append((f"He init {'-'.join(map(str, [n] * depth + [1]))}", *he_network(n, depth)))
    rows = []
    for name, model, theta, box, probe in nets:
        rates = {f: statistics.median(regions_per_second(model, theta, box, args.regions, f) for _ in range(args.repeats))
                 for f in ("vertices", "lp")}
        t = time.perf_counter()
        e = exact_rank(model, theta, box, max_seconds=args.seconds, points=probe)
        seconds = time.perf_counter() - t
        probe_rank = identifiability.spectrum(identifiability.output_jacobian(model, theta, probe)).rank
        rows.append((name, model.n_params, e.bound, probe_rank, e.rank, e.status, e.n_regions, e.regions.complete,
                     seconds, rates["vertices"], rates["lp"]))
        print(rows[-1], flush=True)
    lines = [f"Linear regions and the exact functional dimension ({machine}).", "",
             f"`python benchmarks/bench_regions.py --regions {args.regions} --seconds {args.seconds:g} "
             f"--repeats {args.repeats}{' --quick' if args.quick else ''}`", "",
             "Regions per second of the walk over the first regions (median of repeats): facets from the vertices "
             "(genni) and from one LP per unit (the plain method), same regions, same process.  Then the "
             "functional dimension on the box from `exact_rank` (the probe inputs' regions, 8192 uniform points', "
             "then the walk) and the time to its status, beside the rank on the probe inputs alone.", "",
             "| network | P | bound | probe rank | rank on the box | status | regions | complete | seconds "
             "| regions/s (vertices) | regions/s (LP) | ratio |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, P, bound, pr, r, st, nr, comp, sec, rv, rl in rows:
        lines.append(f"| {name} | {P} | {bound} | {pr} | {r} | {st} | {nr:,} | {'yes' if comp else 'no'} | {sec:.1f} "
                     f"| {rv:.0f} | {rl:.0f} | {rv / rl:.1f}× |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
