"""Do functionally equivalent networks share their layer paths and Ricci curvature?  (genni's own question)

For the default relu reference (2-16-16-1 on moons; equivalents from walks along its class) and the
same architecture with tanh (equivalents from random starts): the spread of the layer paths (distance
of each equivalent's layer l to θ*'s layer l under ``zscore_procrustes``, which quotients out the
exact symmetries) and of the Ricci coefficient ρ across equivalents, against the same spreads across
independently trained networks of the same architecture on the same data (``[reference] seed``).

    python experiments/equivalent_paths.py [--full] [--tiny] [--workers 2]
Writes runs/equivalent_paths/, figures/equivalent_paths/ (paths_spread.png, results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import genni
from genni import config, geometry, plots, store, sweep
from genni.models import MLP

ROOT = Path(__file__).resolve().parents[1]
NAME = "equivalent_paths"
METRIC = "zscore_procrustes"


def base(activation: str, n: int, probe: int, tiny: bool = False) -> dict:
    """The config of one activation (tiny: a 2-8-8-1 network, 200 training epochs and short walks, for the smoke
    test)."""
    search = ({"init": "walk", "chains": 2 if tiny else 4, "thin": 2 if tiny else 5} if activation == "relu"
              else {"init": "random"})
    reference = {"source": "train", "weight_decay": 1e-3, **({"epochs": 200} if tiny else {})}
    return {"name": f"{NAME}_{activation}", "seed": 0, "data": {"dataset": "moons", "n_probe": probe, "n_heldout": probe},
            "model": {"widths": [2, 8, 8, 1] if tiny else [2, 16, 16, 1], "activation": activation},
            "reference": reference, "search": {"n": n, **search}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="64 equivalents and 32 trained networks per activation")
    ap.add_argument("--tiny", action="store_true", help="smoke test sizes")
    sweep.cluster_arguments(ap)
    ap.add_argument("--root", default=str(ROOT))
    args = ap.parse_args(argv)
    n, k, probe = (64, 32, 512) if args.full else ((4, 3, 64) if args.tiny else (16, 8, 256))
    root = Path(args.root)
    runs, figs = root / "runs" / NAME, root / "figures" / NAME
    runs.mkdir(parents=True, exist_ok=True)
    summary = {}
    for act in ("relu", "tanh"):
        cfg = config.resolve(base(act, n, probe, args.tiny))
        path = runs / f"{act}.h5"
        genni.find(cfg, path)
        genni.layer_paths(path, metric=METRIC)
        genni.ricci(path)
        run = store.load_run(path)
        p = run.layer_paths[METRIC]
        M, L = int(p["attrs"]["n_networks"]), int(p["attrs"]["n_layers"])
        D = p["distances"]
        equiv = np.array([[D[0 * L + l, m * L + l] for l in range(L)] for m in range(1, M)])  # [M−1, L] to θ*
        rho_eq = next(iter(run.ricci.values()))["rho"]
        # independently trained networks: the same data and architecture, other reference seeds
        sw_dir = runs / f"{act}_trained"
        sw_dir.mkdir(exist_ok=True)
        raw = base(act, n, probe, args.tiny)
        lines = ['stages = ["train", "ricci"]', "[base]", f'name = "{raw["name"]}_trained"', "seed = 0"]
        for section in ("data", "model", "reference", "search"):
            lines.append(f"[base.{section}]")
            lines += [f"{key} = {json.dumps(v)}" for key, v in raw[section].items() if key not in ("init", "chains", "thin")]
        lines += ["[grid]", f'"reference.seed" = {json.dumps(list(range(1, k + 1)))}']
        (sw_dir / "sweep.toml").write_text("\n".join(lines) + "\n")
        sweep.run_sweep(sw_dir / "sweep.toml", sw_dir, workers=args.workers, scheduler=args.scheduler)
        cols, _ = store.read_table(sw_dir / "sweep.h5")
        trained = [store.load_run(sw_dir / f) for f, st in zip(cols["file"], cols["status"]) if st == "done"]
        spec = MLP.from_dict(run.architecture)
        with torch.no_grad():  # every trained network's layers on θ*'s probe inputs (the same data seed)
            thetas = torch.as_tensor(np.stack([run.theta_ref] + [t.theta_ref for t in trained]))
            _, layers = spec.layers(thetas, torch.as_tensor(run.X))
        reps = [r.numpy() for r in layers]
        T = len(trained) + 1
        Dt = geometry.pairwise([reps[l][m] for m in range(T) for l in range(L)], METRIC)
        between = np.array([[Dt[0 * L + l, m * L + l] for l in range(L)] for m in range(1, T)])  # [T−1, L] to θ*
        rho_tr = np.asarray(cols["rho"], dtype=float)
        summary[act] = {"layers": json.loads(p["attrs"]["layers"]), "equivalents": equiv, "trained": between,
                        "rho_equivalents": rho_eq[1:], "rho_reference": float(rho_eq[0]),
                        "rho_trained": rho_tr[np.isfinite(rho_tr)], "accuracy_trained": np.asarray(cols["accuracy"], float),
                        "n_equivalents": M - 1}
    figs.mkdir(parents=True, exist_ok=True)
    plots.figure_equivalent_paths(summary, METRIC).savefig(figs / "paths_spread.png", dpi=130)
    out = [f"# {NAME}", "", "Do functionally equivalent networks share their layer paths and Ricci curvature?", "",
           f"Distances under {METRIC} (invariant to the exact symmetries) from θ*'s layer to the same layer of each "
           "other network, median [max]; ρ = Ricci coefficient per network (forman, k = 10, kNN ∪ MST).", "",
           "| activation | networks | " + " | ".join(summary["relu"]["layers"]) + " | ρ median [min, max] |",
           "|---|---|" + "---|" * (len(summary["relu"]["layers"]) + 1)]
    for act, s in summary.items():
        for label, d, rho in (("equivalents", s["equivalents"], s["rho_equivalents"]),
                              ("independently trained", s["trained"], s["rho_trained"])):
            cells = " | ".join(f"{np.median(d[:, l]):.2g} [{np.max(d[:, l]):.2g}]" for l in range(d.shape[1]))
            r = f"{np.median(rho):+.2f} [{np.min(rho):+.2f}, {np.max(rho):+.2f}]" if len(rho) else "—"
            out.append(f"| {act} | {len(d)} {label} | {cells} | {r} |")
    verdicts = []
    for act, s in summary.items():
        ratio = np.median(s["equivalents"][:, 1:-1]) / max(np.median(s["trained"][:, 1:-1]), 1e-300)
        verdicts.append(f"{act}: hidden layers of equivalents sit {ratio:.2g} × as far from θ*'s as independently "
                        f"trained networks' do")
    out += ["", "; ".join(verdicts) + ".", "The outputs coincide for equivalents by construction (distance ≈ 0 at "
            "the output); the hidden layers tell whether equivalence reaches inside the network."]
    (figs / "results.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
