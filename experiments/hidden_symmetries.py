"""Hidden symmetries of relu networks at initialisation (Grigsby, Lindsey & Rolnick, ICML 2023, Fig. 6).

Relu networks (n, n, …, n, 1) with depth d linear layers, inputs i.i.d. N(0, I_n), at initialisation;
functional dimension = rank of the parameter Jacobian of the outputs over m Gaussian inputs, against
the bound P − #hidden (the rescaling of each hidden unit is invisible).  A network that reaches the
bound has no hidden symmetries at its parameter.  Their reading: the chance of reaching the bound falls
toward 0 with depth and rises toward 1 with width and input dimension.

Initialisations: He-normal weights N(0, 2/fan_in) with biases N(0, 0.01²) (``[reference] init = "he"``),
beside PyTorch's default ``Linear`` initialisation (``init = "torch"``).  Functional dimension = the rank
over fresh inputs on both sides of every hidden unit's kink in the box ±3 standard deviations
(``[identify] rank_inputs = "kinks"``, :mod:`genni.exact.kinks`: they reach the rank with far fewer
inputs than N(0, I_n) draws, benchmarks/results/rank_inputs.md), m doubling from 2·P_max + 50 until the
rank has not changed over 8× more inputs or m reaches M_MAX (``[identify] rank_growth_max``;
``/identifiability/rank_growth`` in each file shows whether it stopped changing: is it probe-limited?).

    python experiments/hidden_symmetries.py [--full] [--tiny] [--widths N ...] [--depths D ...] [--networks K]
                                            [--workers 2]
default: n = 5, 10 and d = 4, 5, 6, 6 networks each; --full: n = 5, 10, 15, 40 networks each, 600 s walks
(runs/hidden_symmetries_full/); --widths, --depths and --networks narrow either.
Writes runs/hidden_symmetries/, figures/hidden_symmetries/ (functional_dimension.png, results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genni import exact, models, plots, store, sweep
from genni.models import MLP

ROOT = Path(__file__).resolve().parents[1]
NAME = "hidden_symmetries"
M_MAX = 2 ** 17  # the most inputs the rank is taken over (131,072; 7 s for P = 561 on one core)
SAMPLED_POINTS = 2 ** 20  # uniform points of the box whose distinct patterns bound an unfinished walk's regions
EXACT_SECONDS = 60.0  # each network's walk over its linear regions (--full: 600)
CLAIM = ("Grigsby, Lindsey & Rolnick (ICML 2023, Fig. 6): the share of networks with no hidden symmetries "
         "(functional dimension = P − #hidden) falls toward 0 with depth and rises toward 1 with width "
         "and input dimension.")


def sweep_file(folder: Path, widths: tuple, depths: tuple, seeds: int, m_max: int = M_MAX,
               exact_seconds: float = EXACT_SECONDS) -> Path:
    """One sweep: grid over (widths, input dimension) together × initialisation; probe 2·P_max + 50,
    rank grown over fresh kink inputs up to M_MAX, and the exact functional dimension on the box ±3 sd
    (``identify --exact``: the regions' walk stops after ``exact_seconds``)."""
    archs = [([n] * d + [1], n) for n in widths for d in depths]
    m = 2 * max(MLP(tuple(w), "relu").n_params for w, _ in archs) + 50
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "sweep.toml"
    p.write_text("\n".join([
        'stages = ["train", "identify"]', f"seeds = {seeds}",
        "[base]", f'name = "{NAME}"', "seed = 0",
        "[base.data]", 'dataset = "normal"', f"dim = {widths[0]}", f"n_probe = {m}", "n_heldout = 64", "n_far = 64",
        "[base.model]", f"widths = {json.dumps(archs[0][0])}", 'activation = "relu"',
        "[base.reference]", 'source = "random"', "[base.search]", "n = 1",
        "[base.identify]", f"rank_growth_max = {m_max}", 'rank_inputs = "kinks"', "exact = true",
        f"max_seconds = {exact_seconds}",
        "[grid]", f'"model.widths, data.dim" = {json.dumps([[w, n] for w, n in archs])}',
        '"reference.init" = ["he", "torch"]']) + "\n")
    return p


def _median(values: np.ndarray) -> str:
    """The median of the finite values, as a count ('–' where there are none)."""
    v = np.asarray(values, float)
    return f"{np.median(v[np.isfinite(v)]):,.0f}" if np.isfinite(v).any() else "–"


def answer(results: dict, widths: tuple, depths: tuple) -> str:
    """The claim's verdict in words, from the certified networks (He initialisation), saying where
    certification stops."""
    he = {k[1:]: r for k, r in results.items() if k[0] == "he"}
    parts = []
    for n in widths:
        row = []
        for d in depths:
            st = he[(n, d)]["exact_status"] if (n, d) in he else np.array([])
            certified = np.isin(st, ("certified at the bound", "certified deficit"))
            at = np.sum(st == "certified at the bound")
            row.append(f"depth {d}: {at} of {len(st)} at the bound, {np.sum(st == 'certified deficit')} with a certified "
                       f"deficit" + ("" if certified.all() else f", {np.sum(~certified)} uncertified (lower bound only)"))
        parts.append(f"n = {n}: " + "; ".join(row))
    complete = [(n, d) for (n, d), r in he.items() if np.isin(r["exact_status"], ("certified at the bound",
                                                                                  "certified deficit")).all()]
    shares = {k: float(np.mean(he[k]["exact_status"] == "certified at the bound")) for k in complete}
    text = "He initialisation, exact answers on the box: " + ". ".join(parts) + "."
    by_n = {}
    for (n, d) in complete:
        by_n.setdefault(n, []).append((d, shares[(n, d)]))
    by_n = {n: v for n, v in by_n.items() if len(v) > 1}  # a trend with depth needs two certified depths
    if by_n:
        trend = [(n, d) for n, v in by_n.items() for d, _ in v]
        falls = all(all(b[1] <= a[1] for a, b in zip(sorted(v), sorted(v)[1:])) for v in by_n.values())
        text += (f" Where every network is certified ({', '.join(f'n = {n}, depth {d}' for n, d in sorted(trend))}), "
                 f"the share at the bound {'never rises' if falls else 'does not always fall'} with depth"
                 f"{': the published reading holds there' if falls else ': the published reading holds only in part'}.")
    missing = sorted(set(he) - set(complete))
    if missing:
        reach = "; ".join(f"n = {n}, depth {d}: walked {_median(he[(n, d)]['exact_regions'])}, met by sampling "
                          f"{_median(he[(n, d)]['sampled_regions'])}" for n, d in missing)
        text += (f" Certification stops at {', '.join(f'n = {n}, depth {d}' for n, d in missing)}: a network below "
                 "the bound needs every linear region of the box walked to certify its deficit, and these boxes hold "
                 "more regions than the walk's budget reaches (median regions, He: " + reach + "; the rank found is "
                 "a lower bound).")
    return text + " PyTorch's default initialisation beside it (rows `torch`)."


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the published scale: n = 5, 10, 15, 40 networks each")
    ap.add_argument("--tiny", action="store_true", help="smoke test: n = 3, d = 3, 4, 2 networks each")
    ap.add_argument("--widths", type=int, nargs="+", help="only these n (e.g. --full --widths 5)")
    ap.add_argument("--depths", type=int, nargs="+", help="only these depths (e.g. --full --widths 15 --depths 4)")
    ap.add_argument("--networks", type=int, help="networks per architecture and initialisation")
    sweep.cluster_arguments(ap)
    ap.add_argument("--root", default=str(ROOT), help="where runs/ and figures/ go")
    args = ap.parse_args(argv)
    widths, depths, seeds = ((5, 10, 15), (4, 5, 6), 40) if args.full else (((3,), (3, 4), 2) if args.tiny
                                                                         else ((5, 10), (4, 5, 6), 6))
    widths, depths, seeds = tuple(args.widths or widths), tuple(args.depths or depths), args.networks or seeds
    root = Path(args.root)
    folder = NAME + ("_full" if args.full else "")
    runs, figs = root / "runs" / folder, root / "figures" / folder
    sampled_points = 2 ** 12 if args.tiny else SAMPLED_POINTS
    m_max = 1024 if args.tiny else M_MAX
    exact_seconds = 600.0 if args.full else 5.0 if args.tiny else EXACT_SECONDS
    info = sweep.run_sweep(sweep_file(runs, widths, depths, seeds, m_max, exact_seconds), runs, workers=args.workers,
                           scheduler=args.scheduler)
    cols, _ = store.read_table(runs / "sweep.h5")
    results = {}
    for i, status in enumerate(cols["status"]):
        if status != "done":
            continue
        w, n = json.loads(cols["model.widths, data.dim"][i])
        key = (cols["reference.init"][i], n, len(w) - 1)
        r = results.setdefault(key, {"rank": [], "probe_rank": [], "inputs": [], "saturated": [],
                                     "bound": float(cols["bound"][i]), "rank_growth": [], "exact_rank": [],
                                     "exact_status": [], "exact_regions": [], "sampled_regions": []})
        r["exact_rank"].append(float(cols["exact_rank"][i]))
        r["exact_status"].append(str(cols["exact_status"][i]))
        r["exact_regions"].append(float(cols["exact_regions"][i]))
        r["rank"].append(float(cols["rank_grown"][i]))
        r["probe_rank"].append(float(cols["functional_dimension"][i]))
        r["inputs"].append(float(cols["rank_grown_inputs"][i]))
        r["saturated"].append(bool(cols["rank_grown_saturated"][i] == 1))
        stored = store.load_run(runs / cols["file"][i])
        r["rank_growth"].append(stored.identifiability["rank_growth"])
        r["sampled_regions"].append(float(exact.sampled_regions(
            exact.Pieces.of(models.from_dict(stored.architecture), [stored.theta_ref]),
            exact.Domain.from_attrs(stored.exact["attrs"]), sampled_points)) if r["exact_status"][-1] == "lower bound"
            else np.nan)
    results = {k: {**v, **{f: np.array(v[f]) for f in ("rank", "probe_rank", "inputs", "saturated", "exact_rank",
                                                        "exact_status", "exact_regions", "sampled_regions")}}
               for k, v in sorted(results.items())}
    figs.mkdir(parents=True, exist_ok=True)
    fig = plots.figure_functional_dimension(results, inputs="fresh kink inputs in the ±3 sd box")
    fig.savefig(figs / "functional_dimension.png", dpi=130)
    scale = "Full" if args.full else "Tiny (smoke test)" if args.tiny else "Default"
    failed = f" {info['failed']} cells failed (sweep.csv says why)." if info["failed"] else ""
    lines = [f"# {NAME}", "", CLAIM, "",
             f"{scale} scale: n = {list(widths)}, depth = {list(depths)}, {seeds} networks "
             f"per architecture and initialisation.  Sampled: rank of J over fresh inputs on both sides of "
             f"every hidden unit's kink in the box ±3 sd (rank_inputs = \"kinks\"), m doubling until unchanged over "
             f"8× more inputs or m = {m_max:,}.  Exact (`identify --exact`): "
             f"the functional dimension on the box ±3 sd from the linear regions, certified at the bound, "
             f"certified as a deficit by a complete walk over the regions, or a lower bound when the walk's "
             f"{exact_seconds:g} s ended first (table: runs/{folder}/sweep.h5).{failed}",
             "", "| init | n | depth | P | bound P − #hidden | median rank on the probe (m₀) | median sampled rank "
             "(saturated) | median exact rank | certified at the bound | certified deficit | lower bound only |"
             f" median regions used | median regions met by {sampled_points:,} uniform points (lower bounds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (init, n, depth), r in results.items():
        m0 = int(r["rank_growth"][0][0, 0])
        st = r["exact_status"]
        lines.append(f"| {init} | {n} | {depth} | {MLP(tuple([n] * depth + [1]), 'relu').n_params} | "
                     f"{r['bound']:.0f} | {np.median(r['probe_rank']):.0f} (m₀ = {m0:,}) | {np.median(r['rank']):.0f} "
                     f"({r['saturated'].sum()}/{len(r['rank'])}) | {np.median(r['exact_rank']):.0f} | "
                     f"{np.sum(st == 'certified at the bound')}/{len(st)} | {np.sum(st == 'certified deficit')}/{len(st)} | "
                     f"{np.sum(st == 'lower bound')}/{len(st)} | {np.median(r['exact_regions']):,.0f} | "
                     f"{_median(r['sampled_regions'])} |")
    lines += ["", answer(results, widths, depths)]
    (figs / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
