"""Hidden symmetries of relu networks at initialisation (Grigsby, Lindsey & Rolnick, ICML 2023, Fig. 6).

Relu networks (n, n, …, n, 1) with depth d linear layers, inputs i.i.d. N(0, I_n), at initialisation;
functional dimension = rank of the parameter Jacobian of the outputs over m Gaussian inputs, against
the bound P − #hidden (the rescaling of each hidden unit is invisible).  A network that reaches the
bound has no hidden symmetries at its parameter.  Their reading: the chance of reaching the bound falls
toward 0 with depth and rises toward 1 with width and input dimension.

Initialisations: He-normal weights N(0, 2/fan_in) with biases N(0, 0.01²) (``[reference] init = "he"``),
beside PyTorch's default ``Linear`` initialisation (``init = "torch"``).  m = 2P + 50 inputs per network,
and each run file holds the rank on the first k inputs (``/identifiability/rank_vs_probe``) to show
that the rank is not probe-limited.

    python experiments/hidden_symmetries.py [--full] [--tiny] [--workers 2]
default: n = 5, 10 and d = 4, 5, 6, 6 networks each; --full: n = 5, 10, 15, 40 networks each.
Writes runs/hidden_symmetries/, figures/hidden_symmetries/ (functional_dimension.png, results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genni import nets, plots, store, sweep

ROOT = Path(__file__).resolve().parents[1]
NAME = "hidden_symmetries"
CLAIM = ("Grigsby, Lindsey & Rolnick (ICML 2023, Fig. 6): the share of networks with no hidden symmetries "
         "(functional dimension = P − #hidden) falls toward 0 with depth and rises toward 1 with width "
         "and input dimension.")


def sweep_file(folder: Path, n: int, depth: int, init: str, seeds: int) -> Path:
    widths = [n] * depth + [1]
    P = nets.MLPSpec(tuple(widths), "relu").n_params
    base = {"name": f"{init}_d{depth}_n{n}", "seed": 0,
            "data": {"dataset": "normal", "dim": n, "n_probe": 2 * P + 50, "n_heldout": 64, "n_far": 64},
            "model": {"widths": widths, "activation": "relu"},
            "reference": {"source": "random", "init": init}, "search": {"n": 1}}
    folder.mkdir(parents=True, exist_ok=True)
    lines = ['stages = ["train", "identify"]', f"seeds = {seeds}", "[base]",
             f'name = "{base["name"]}"', "seed = 0"]
    for section in ("data", "model", "reference", "search"):
        lines.append(f"[base.{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in base[section].items()]
    p = folder / "sweep.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the published scale: n = 5, 10, 15, 40 networks each")
    ap.add_argument("--tiny", action="store_true", help="smoke test: n = 3, d = 3, 4, 2 networks each")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", default=str(ROOT), help="where runs/ and figures/ go")
    args = ap.parse_args(argv)
    widths, depths, seeds = ((5, 10, 15), (4, 5, 6), 40) if args.full else (((3,), (3, 4), 2) if args.tiny
                                                                         else ((5, 10), (4, 5, 6), 6))
    root = Path(args.root)
    runs, figs = root / "runs" / NAME, root / "figures" / NAME
    results = {}
    for init in ("he", "torch"):
        for n in widths:
            for depth in depths:
                folder = runs / f"{init}_d{depth}_n{n}"
                info = sweep.run_sweep(sweep_file(folder, n, depth, init, seeds), folder, workers=args.workers)
                cols, _ = store.read_table(folder / "sweep.h5")
                ok = np.array([s == "done" for s in cols["status"]])
                probe = store.load_run(folder / cols["file"][0]).identifiability["rank_vs_probe"]
                results[(init, n, depth)] = {"rank": np.asarray(cols["functional_dimension"])[ok],
                                             "bound": float(np.asarray(cols["bound"])[ok][0]), "failed": info["failed"],
                                             "rank_vs_probe": probe}
    figs.mkdir(parents=True, exist_ok=True)
    fig = plots.figure_functional_dimension(results)
    fig.savefig(figs / "functional_dimension.png", dpi=130)
    scale = "Full" if args.full else "Tiny (smoke test)" if args.tiny else "Default"
    lines = [f"# {NAME}", "", CLAIM, "",
             f"{scale} scale: n = {list(widths)}, depth = {list(depths)}, {seeds} networks "
             "per architecture and initialisation; m = 2P + 50 Gaussian inputs.", "",
             "| init | n | depth | P | bound P − #hidden | median functional dimension | share at the bound | "
             "rank at m/2 = rank at m |", "|---|---|---|---|---|---|---|---|"]
    for (init, n, depth), r in results.items():
        t = r["rank_vs_probe"]
        half = t[np.argmin(np.abs(t[:, 0] - t[-1, 0] / 2)), 1]
        lines.append(f"| {init} | {n} | {depth} | {nets.MLPSpec(tuple([n] * depth + [1]), 'relu').n_params} | "
                     f"{r['bound']:.0f} | {np.median(r['rank']):.0f} | {np.mean(r['rank'] >= r['bound']):.0%} | "
                     f"{'yes' if half == t[-1, 1] else f'no ({half} vs {t[-1, 1]})'} |")
    shares = {k: float(np.mean(r["rank"] >= r["bound"])) for k, r in results.items()}
    he = {k[1:]: v for k, v in shares.items() if k[0] == "he"}
    deeper = all(he[(n, d2)] <= he[(n, d1)] for n in widths for d1, d2 in zip(depths, depths[1:]))
    wider = all(he[(n2, d)] >= he[(n1, d)] for d in depths for n1, n2 in zip(widths, widths[1:]))
    lines += ["", f"He initialisation: the share at the bound {'never rises' if deeper else 'does not always fall'} "
              f"with depth and {'never falls' if wider else 'does not always rise'} with width at this scale: the "
              f"published reading {'holds' if deeper and wider else 'holds only in part'} here.",
              "PyTorch's default initialisation beside it (rows `torch`)."]
    (figs / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
