"""Networks as paths through representation space (Lange et al. 2022): wider vs deeper, and over training.

Relu MLPs on the shipped digits (64 features, 10 classes): a wide shallow network (64-64-10 … as set
below) against a deep narrow one, trained for 25, 100, 400 and 1,600 epochs from the same
initialisation (full-batch Adam is deterministic, so the network trained for e epochs is the e-th
epoch checkpoint of the longer runs), several seeds, as one sweep (stages train + paths).  Per network:
path length and straightness, and each layer's distance to the one-hot labels, under
``zscore_procrustes`` (a metric that quotients out permutations and per-unit rescalings); and an MDS
map of every (network, layer) point together.

    python experiments/layer_paths.py [--full] [--tiny] [--workers 2]
Writes runs/layer_paths/ (sweep.h5, a run file per network), figures/layer_paths/ (layer_paths.png,
results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from genni import geometry, plots, store, sweep
from genni.models import MLP

ROOT = Path(__file__).resolve().parents[1]
NAME = "layer_paths"
METRIC = "zscore_procrustes"
CLAIM = ("Lange et al. (2022) ask how wider and deeper networks differ as paths through representation space "
         "(length, straightness, progress toward the labels) and how the paths change over training; this script "
         "asks the same questions of relu MLPs on digits and states what it finds.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="5 seeds, epochs up to 6,400")
    ap.add_argument("--tiny", action="store_true", help="smoke test sizes")
    sweep.cluster_arguments(ap)
    ap.add_argument("--root", default=str(ROOT))
    args = ap.parse_args(argv)
    archs = {"wide": [64, 64, 10], "deep": [64, 16, 16, 16, 16, 10]}
    epochs, seeds, probe = (([25, 100, 400, 1600, 6400], 5, 512) if args.full else
                            (([5, 20], 1, 64) if args.tiny else ([25, 100, 400, 1600], 2, 256)))
    root = Path(args.root)
    runs, figs = root / "runs" / NAME, root / "figures" / NAME
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "sweep.toml").write_text("\n".join([
        'stages = ["train", "paths"]', f"seeds = {seeds}", "[base]", f'name = "{NAME}"', "seed = 0",
        "[base.data]", 'dataset = "digits"', f"n_probe = {probe}", "n_heldout = 256", "n_far = 64",
        "[base.model]", 'activation = "relu"', "[base.reference]", 'source = "train"',
        "[base.search]", "n = 1", "[grid]", f'"model.widths" = {json.dumps(list(archs.values()))}',
        f'"reference.epochs" = {json.dumps(epochs)}']) + "\n")
    sweep.run_sweep(runs / "sweep.toml", runs, workers=args.workers, scheduler=args.scheduler)
    cols, _ = store.read_table(runs / "sweep.h5")
    names = {json.dumps(v): k for k, v in archs.items()}
    nets_, rows = [], []
    for i, f in enumerate(cols["file"]):
        if cols["status"][i] != "done":
            continue
        run = store.load_run(runs / f)
        p = run.layer_paths[METRIC]
        rows.append({"arch": names[cols["model.widths"][i]], "epochs": int(cols["reference.epochs"][i]),
                     "seed": int(cols["seed"][i]), "accuracy": float(cols["accuracy"][i]),
                     "length": float(p["length"][0]), "straightness": float(p["straightness"][0]),
                     "to_labels": p["to_labels"][0], "layers": json.loads(p["attrs"]["layers"])})
        nets_.append(run)
    # one MDS map of every (network, layer) point: all networks on the same probe inputs (one data seed)
    points, owner = [], []
    for k, run in enumerate(nets_):
        spec = MLP.from_dict(run.architecture)
        with torch.no_grad():
            _, layers = spec.layers(torch.as_tensor(run.theta_ref), torch.as_tensor(nets_[0].X))
        for l, rep in enumerate(layers):
            points.append(rep.numpy())
            owner.append((k, l))
    D = geometry.pairwise(points, METRIC)
    embedding, _ = geometry.mds(D, seed=0)
    figs.mkdir(parents=True, exist_ok=True)
    plots.figure_layer_paths_study(rows, embedding, owner, METRIC).savefig(figs / "layer_paths.png", dpi=130)
    last = max(epochs)
    lines = [f"# {NAME}", "", CLAIM, "",
             f"digits, relu, wide {archs['wide']} vs deep {archs['deep']}, epochs {epochs}, {seeds} seed(s); "
             f"{METRIC} on {probe} probe inputs.", "",
             "| network | epochs | accuracy | path length | straightness | distance to labels: first hidden → output |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["arch"], r["epochs"], r["seed"])):
        lines.append(f"| {r['arch']} (seed {r['seed']}) | {r['epochs']} | {r['accuracy']:.3f} | {r['length']:.3f} | "
                     f"{r['straightness']:.3f} | {r['to_labels'][1]:.3f} → {r['to_labels'][-1]:.3f} |")
    med = {(a, e): (np.median([r["length"] for r in rows if r["arch"] == a and r["epochs"] == e]),
                    np.median([r["straightness"] for r in rows if r["arch"] == a and r["epochs"] == e]))
           for a in archs for e in epochs if any(r["arch"] == a and r["epochs"] == e for r in rows)}
    if ("deep", last) in med and ("wide", last) in med:
        longer = med[("deep", last)][0] > med[("wide", last)][0]
        bent = med[("deep", last)][1] < med[("wide", last)][1]
        grows = all(med[(a, e2)][0] >= med[(a, e1)][0] for a in archs for e1, e2 in zip(epochs, epochs[1:])
                    if (a, e1) in med and (a, e2) in med)
        lines += ["", f"After {last} epochs the deep network's path is {'longer' if longer else 'not longer'} and "
                  f"{'less' if bent else 'not less'} straight than the wide one's; over training the median path "
                  f"length {'never shrinks' if grows else 'does not always grow'}."]
    (figs / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
