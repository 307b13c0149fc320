"""Edge curvature of a kNN graph: genni.geometry.ricci against the GraphRicciCurvature package.

Graph: 2,000 points from a 10-D standard Gaussian (seed 0), k = 10 nearest neighbours, OR-symmetrised
(genni's ``knn_graph``); the networkx graph for the reference is built from the SAME adjacency.
Forman: GraphRicciCurvature's ``FormanRicci(method="1d")`` is, for unit weights, 1 + 1 − Σ over the other
edges at each end = 4 − d_i − d_j (genni's "forman"); its ``method="augmented"`` (the package default)
is t + 2 − |0 − (d_i − 1 − t + d_j − 1 − t)| = 4 − d_i − d_j + 3t (genni's "augmented"); both compared.
Ollivier: ``OllivierRicci(method="OTD")`` (exact transport by POT's network simplex, all-pairs shortest
paths, its default process pool) with the same α; genni's exact integer max-flow (and its HiGHS LP path).
Values must agree (max abs difference); times are medians of repeats in one process.

GraphRicciCurvature, networkx and POT are never genni dependencies: the script runs itself in its own
virtual environment ``benchmarks/.venv-ricci`` (created on first use, without torch) and imports
the package ``genni/geometry/ricci/`` from the working tree without running ``genni/__init__.py``
(which needs torch).

    python benchmarks/bench_ricci.py [--n 2000] [--k 10] [--repeats 5] [--ollivier-n 2000] [--no-lp]
writes benchmarks/results/ricci.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-ricci"
PACKAGES = ["graphriccicurvature", "networkx", "pot", "numpy", "scipy", "scikit-learn"]


def ensure_venv() -> None:
    """Re-run this script inside benchmarks/.venv-ricci (created with PACKAGES when missing)."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not py.exists():
        print(f"creating {VENV} with {' '.join(PACKAGES)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES], check=True)
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


def _load(name: str, rel: str):
    """A genni module by file (this environment has no torch, so not through the genni package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "genni" / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _bare_package(name: str, rel: str) -> None:
    """Register the package ``name`` (folder genni/``rel``) without running its ``__init__.py``, so that
    its torch-free subpackages import on their own."""
    mod = types.ModuleType(name)
    mod.__path__ = [str(ROOT / "genni" / rel)]
    sys.modules.setdefault(name, mod)


def load_ricci():
    """genni.geometry.ricci (graphs, curvatures, geodesics, flow; numpy, scipy, scikit-learn only)."""
    _bare_package("genni", ".")
    _bare_package("genni.geometry", "geometry")
    return importlib.import_module("genni.geometry.ricci")


def cpu_name() -> str:
    return _load("genni_machine", "machine.py").cpu_name()


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ensure_venv()
    import importlib.metadata as md
    import logging

    import networkx as nx
    import numpy as np
    import scipy.sparse as sp
    from GraphRicciCurvature.FormanRicci import FormanRicci
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    logging.getLogger("GraphRicciCurvature").setLevel(logging.ERROR)
    R = load_ricci()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ref-repeats", type=int, default=3)
    ap.add_argument("--ollivier-n", type=int, default=2000)
    ap.add_argument("--no-lp", action="store_true", help="skip timing genni's (slower) LP path")
    args = ap.parse_args()

    def graphs(n):
        X = np.random.default_rng(0).standard_normal((n, args.d))
        A = R.knn_graph(X, args.k, mode="or")
        G = nx.Graph()
        G.add_nodes_from(range(n))
        U = sp.triu(A, 1).tocoo()
        G.add_edges_from(zip(U.row.tolist(), U.col.tolist()))
        assert G.number_of_edges() == A.nnz // 2
        return A, G

    def diff(edges, vals, ref: dict) -> float:
        want = np.array([ref[(i, j)] if (i, j) in ref else ref[(j, i)] for i, j in edges.tolist()])
        return float(np.max(np.abs(vals - want)))

    load0 = os.getloadavg()[0]
    rows = []
    A, G = graphs(args.n)
    m = A.nnz // 2
    for name, method, aug in (("Forman 4 − d_i − d_j", "1d", False), ("augmented Forman + 3 t_ij", "augmented", True)):
        def ref(method=method):
            f = FormanRicci(G, method=method)
            f.compute_ricci_curvature()
            return {(u, v): d["formanCurvature"] for u, v, d in f.G.edges(data=True)}

        tr, vr = timed(ref, args.ref_repeats)
        tg, (e, F) = timed(lambda aug=aug: R.forman_curvature(A, augmented=aug), max(args.repeats, 20))
        err = diff(e, F, vr)
        rows.append((f"{name} (FormanRicci method='{method}')", args.n, m, tr, tg, err))
        print(f"{name}: reference {tr:.3f}s genni {tg * 1e3:.2f}ms max|diff| {err:.1e}", file=sys.stderr)

    A, G = graphs(args.ollivier_n) if args.ollivier_n != args.n else (A, G)
    m = A.nnz // 2
    proc = os.cpu_count()
    for alpha in (0.5, 0.0):
        def ref(alpha=alpha):
            o = OllivierRicci(G, alpha=alpha, method="OTD", proc=proc, verbose="ERROR")
            return o.compute_ricci_curvature_edges()

        tr, vr = timed(ref, args.ref_repeats)
        tg, (e, K) = timed(lambda alpha=alpha: R.ollivier_curvature(A, alpha, method="maxflow"), args.repeats)
        err = diff(e, K, vr)
        rows.append((f"Ollivier α = {alpha}, exact (OllivierRicci method='OTD', {proc} processes) — genni max-flow",
                     args.ollivier_n, m, tr, tg, err))
        print(f"Ollivier alpha={alpha}: reference {tr:.2f}s genni {tg:.2f}s max|diff| {err:.1e}", file=sys.stderr)
        if not args.no_lp and alpha == 0.5:
            tl, (e2, K2) = timed(lambda alpha=alpha: R.ollivier_curvature(A, alpha, method="lp"), 1)
            err2 = diff(e2, K2, vr)
            rows.append((f"Ollivier α = {alpha} — genni HiGHS LP path (same reference)", args.ollivier_n, m, tr, tl, err2))
            print(f"  LP path {tl:.2f}s max|diff| {err2:.1e}", file=sys.stderr)

    vers = ", ".join(f"{p} {md.version(p)}" for p in ("numpy", "scipy", "scikit-learn", "networkx", "GraphRicciCurvature", "POT"))
    text = (f"Measured by `python benchmarks/bench_ricci.py {' '.join(sys.argv[1:])}` on {cpu_name()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, in the torch-free benchmark environment "
            f"benchmarks/.venv-ricci ({vers}); genni single-threaded; medians of {max(args.repeats, 20)} (Forman) / "
            f"{args.repeats} (Ollivier) genni repeats and {args.ref_repeats} reference repeats. Graph: {args.d}-D standard "
            f"Gaussian points (seed 0), k = {args.k}, OR-symmetrised; the reference gets the same edges as a networkx "
            "graph (its conversion time is not counted). Values compared edge by edge. 1-min load average at the start "
            f"{load0:.1f}, at the end {os.getloadavg()[0]:.1f} (both sides ran under the same load).\n\n"
            "| curvature (reference) | nodes | edges | GraphRicciCurvature | genni | speed-up | max abs difference |\n"
            "|---|---|---|---|---|---|---|\n")
    for name, n, m, tr, tg, err in rows:
        fmt = f"{tg:.2f} s" if tg >= 1 else f"{tg * 1e3:.2f} ms"
        speed = f"{tr / tg:.0f}×" if tr >= tg else f"{tr / tg:.2f}× (slower)"
        text += f"| {name} | {n} | {m} | {tr:.3f} s | {fmt} | {speed} | {err:.0e} |\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ricci.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
