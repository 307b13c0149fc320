"""How many inputs reach the rank of J: inputs at the units' kinks against i.i.d. inputs.

rank J over m inputs, J = ∂ vec f_θ(X)/∂θ, grows with m until every activation region that adds rows
has been visited; the question is which inputs get there with the fewest.  Methods:

* kinks: :class:`genni.exact.KinkStream`, pairs of points on both sides of every hidden unit's kink in
  the domain box D, round robin over the units (:mod:`genni.exact.kinks`);
* data: i.i.d. from the data distribution (N(0, I_n) for the random networks, two moons for the
  default reference: :func:`genni.data.input_stream`);
* uniform: i.i.d. uniform in D.

D is the run's default domain (:func:`genni.exact.default_domain`): ±3 standard deviations for N(0, I_n)
inputs, the probe's bounding box enlarged 3× for moons.  Networks: the built-in default reference
(2-16-16-1 relu trained on two moons, θ* from ``tests/data/reference_default.h5``; seeds change only
the inputs) and random relu networks (n, …, n, 1) of depth d (d linear layers) with He-normal weights
and N(0, 0.01²) biases (``[reference] init = "he"``, as ``experiments/hidden_symmetries.py``; seed s
gives network s and inputs s).  For each network and seed every method's rank is taken on m = 16, 16·√2,
32, … up to m_max inputs (compressed stacked Jacobian as :func:`genni.identifiability.rank_growth`,
rtol 1e-9); final rank = the largest any method reaches at m_max; "inputs to final" = the first m at
which a method reaches it.  Medians over seeds; a method that does not reach the final rank by m_max
counts as ∞ there.

    python benchmarks/bench_rank_inputs.py [--widths 5,10] [--depths 4,5,6] [--seeds 3] [--m-max 16384]
    python benchmarks/bench_rank_inputs.py --full      # seeds 5, m_max 65536
writes benchmarks/results/rank_inputs.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from genni import data, models, store
from genni.exact import KinkStream, default_domain
from genni.identifiability import DEFAULT_RTOL, output_jacobian
from genni.machine import summary
from genni.models import MLP
from genni.train import random_reference

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METHODS = ("kinks", "data", "uniform")


def checkpoints(m_max: int, m0: int = 16) -> list[int]:
    """m = m0·2^(k/2) (rounded), up to and including m_max."""
    ms = sorted({int(round(m0 * 2 ** (k / 2))) for k in range(int(2 * np.log2(m_max / m0)) + 1)} | {m_max})
    return [m for m in ms if m <= m_max]


def rank_curve(model, theta, draw, ms: list[int], rtol: float = DEFAULT_RTOL) -> tuple[np.ndarray, float]:
    """rank of the stacked J over the first m inputs of ``draw``, for each m in ``ms`` ([len(ms)] int), and
    the gap σ_r / σ_{r+1} at the last m.  Only Σ Vᵀ of the stack is kept (as
    :func:`genni.identifiability.rank_growth`)."""
    P = model.n_params
    chunk = max(256, 2 * P)
    C, s, m, out = np.zeros((0, P)), np.zeros(0), 0, []
    for target in ms:
        while m < target:
            b = min(chunk, target - m)
            _, s, Vt = np.linalg.svd(np.vstack([C, output_jacobian(model, theta, draw(b))]), full_matrices=False)
            C = s[:, None] * Vt
            m += b
        out.append(int((s > rtol * s[0]).sum()) if len(s) else 0)
    r = out[-1]
    gap = float(s[r - 1] / s[r]) if 0 < r < len(s) and s[r] > 0 else float("inf")
    return np.array(out), gap


def networks(widths: list[int], depths: list[int], moons: bool):
    """(name, setup) where setup(seed) -> (model, θ, domain, data draw)."""
    if moons:
        run = store.load_run(ROOT / "tests" / "data" / "reference_default.h5")
        model = models.from_dict(run.architecture)
        domain = default_domain("moons", run.X)

        def setup_moons(seed):
            return model, run.theta_ref, domain, data.input_stream("moons", seed=seed)

        yield "default (2-16-16-1 moons)", setup_moons
    for n in widths:
        for d in depths:
            model = MLP(tuple([n] * d + [1]), "relu")

            def setup(seed, model=model, n=n):
                rng = np.random.default_rng(seed + 1000)
                return (model, random_reference(model, seed=seed, init="he"), default_domain("normal", np.zeros((1, n))),
                        lambda k: rng.standard_normal((k, n)))

            yield f"he n={n} depth {d}", setup


def measure(setup, seed: int, ms: list[int]) -> dict:
    """Each method's rank curve and seconds for one network and seed."""
    model, theta, domain, draw_data = setup(seed)
    rng = np.random.default_rng(seed + 2000)
    draws = {"kinks": KinkStream(model, theta, domain, seed), "data": draw_data,
             "uniform": lambda k: domain.sample(k, rng)}
    out = {"P": model.n_params, "bound": model.expected_rank()}
    for name in METHODS:
        t = time.perf_counter()
        out[name], out[name + "_gap"] = rank_curve(model, theta, draws[name], ms)
        out[name + "_s"] = time.perf_counter() - t
    out["final"] = max(int(out[name][-1]) for name in METHODS)
    for name in METHODS:
        hit = np.flatnonzero(out[name] >= out["final"])
        out[name + "_m"] = ms[hit[0]] if hit.size else np.inf
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="5,10", help="input dimension = hidden width n of the random networks")
    ap.add_argument("--depths", default="4,5,6", help="depths d (linear layers) of the random networks")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--m-max", type=int, default=16384, help="the most inputs a rank is taken over")
    ap.add_argument("--no-moons", action="store_true", help="leave out the default reference")
    ap.add_argument("--full", action="store_true", help="seeds 5, m_max 65536")
    args = ap.parse_args(argv)
    if args.full:
        args.seeds, args.m_max = 5, 65536
    torch.set_num_threads(1)
    with threadpool_limits(1):  # one BLAS thread too: threaded SVDs of these small matrices crawl on a busy machine
        rows = run(args)
    report(args, rows)


def run(args) -> list[dict]:
    """One row per network: medians over the seeds."""
    ms = checkpoints(args.m_max)
    widths = [int(w) for w in args.widths.split(",") if w]
    depths = [int(d) for d in args.depths.split(",") if d]
    print(summary(), flush=True)
    rows = []
    for name, setup in networks(widths, depths, not args.no_moons):
        runs = [measure(setup, s, ms) for s in range(args.seeds)]
        row = {"network": name, "P": runs[0]["P"], "bound": runs[0]["bound"],
               "final": float(np.median([r["final"] for r in runs]))}
        for k in METHODS:
            got = np.array([r[k + "_m"] for r in runs], dtype=float)
            row[k + "_m"], row[k + "_reached"] = float(np.median(got)), int(np.isfinite(got).sum())
            row[k + "_rank"] = float(np.median([r[k][-1] for r in runs]))
            row[k + "_s"] = float(np.median([r[k + "_s"] for r in runs]))
            row[k + "_gap"] = float(np.median([r[k + "_gap"] for r in runs]))
            row[k + "_seeds"] = [r[k + "_m"] for r in runs]
        row["finals"] = [r["final"] for r in runs]
        rows.append(row)
        print(row, flush=True)
    return rows


def report(args, rows: list[dict]) -> None:
    """The table, printed and written to benchmarks/results/rank_inputs.md."""
    S = args.seeds

    def inputs(r, k):
        m = r[k + "_m"]
        text = f"{m:,.0f}" if np.isfinite(m) else f"not reached by {args.m_max:,}"
        return f"{text} ({r[k + '_reached']}/{S})"

    lines = [f"Measured by `python benchmarks/bench_rank_inputs.py --widths {args.widths} --depths {args.depths} "
             f"--seeds {S} --m-max {args.m_max}` on {summary()}, torch {torch.__version__}, one thread.", "",
             "rank J at rtol 1e-9 over m = 16, 16·√2, 32, … inputs; final rank = the largest any method reaches at "
             f"m = {args.m_max:,}; inputs to final = the first such m at which a method reaches it (median over {S} "
             "seeds, in brackets the seeds that reach it); seconds = drawing the inputs and ranking all "
             f"{args.m_max:,}.", "",
             "| network | P | bound P − #hidden | final rank | inputs to final: kinks | data | uniform in D "
             f"| rank at {args.m_max:,}: kinks / data / uniform | gap σ_r/σ_r+1 there | seconds: kinks / data / uniform |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['P']} | {r['bound']} | {r['final']:.0f} | {inputs(r, 'kinks')} | "
                     f"{inputs(r, 'data')} | {inputs(r, 'uniform')} | "
                     + " / ".join(f"{r[k + '_rank']:.0f}" for k in METHODS) + " | "
                     + " / ".join(f"{r[k + '_gap']:.0e}" for k in METHODS) + " | "
                     + " / ".join(f"{r[k + '_s']:.1f}" for k in METHODS) + " |")
    def m(v):
        return f"{v:,.0f}" if np.isfinite(v) else "–"

    def fewest(k):  # networks on which method k's median inputs to the final rank are finite and the fewest
        return sum(np.isfinite(r[k + "_m"]) and r[k + "_m"] <= min(r[o + "_m"] for o in METHODS) for r in rows)

    def first(k):  # (network, seed) pairs on which method k reaches the final rank with the fewest inputs
        return sum(np.isfinite(r[k + "_seeds"][s]) and r[k + "_seeds"][s] <= min(r[o + "_seeds"][s] for o in METHODS)
                   for r in rows for s in range(S))

    lines += ["", "Fewest inputs to the final rank, ties counted for each: by the medians over seeds, "
              + ", ".join(f"{k} on {fewest(k)}" for k in METHODS) + f" of {len(rows)} networks; seed by seed, "
              + ", ".join(f"{k} on {first(k)}" for k in METHODS) + f" of {len(rows) * S}.  Gap: the median "
              "σ_r / σ_r+1 at the rank (1e+08 and more: σ_r+1 is rounding and the rank is clear-cut; near 1: the "
              "spectrum runs on through the threshold rtol·σ_max, so the rank counts what lies above 1e-9·σ_max).", "",
              f"Per seed: final rank, and inputs to it for kinks / data / uniform (– = not reached by {args.m_max:,}).",
              "", "| network | " + " | ".join(f"seed {s}" for s in range(S)) + " |", "|---|" + "---|" * S]
    for r in rows:
        cells = [f"{r['finals'][s]}: " + " / ".join(m(r[k + "_seeds"][s]) for k in METHODS) for s in range(S)]
        lines.append(f"| {r['network']} | " + " | ".join(cells) + " |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "rank_inputs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
