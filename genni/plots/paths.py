"""Layer paths: every network as a path through representation space, and its geometry by layer."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from ..store import RunData
from .common import by_layer, run_title, wrap


def figure_layer_paths(run: RunData):
    """MDS map of every network's layer path, one panel per stored metric (standard next to quotient)."""
    paths = run.layer_paths
    if not paths:
        return None
    order = sorted(paths, key=lambda m: (m.startswith("zscore"), m))
    fig, axes = plt.subplots(1, len(order), figsize=(6.5 * len(order), 5.8), constrained_layout=True, squeeze=False)
    for ax, metric in zip(axes[0], order):
        p = paths[metric]
        M, L = int(p["attrs"]["n_networks"]), int(p["attrs"]["n_layers"])
        E = p["embedding"].reshape(M, L, 2)
        for m in range(M - 1, -1, -1):
            ref = m == 0
            ax.plot(E[m, :, 0], E[m, :, 1], "-", color="k" if ref else "#1f78b4", lw=2.2 if ref else 0.8,
                    alpha=1 if ref else 0.5, zorder=3 if ref else 2, label="reference θ*" if ref else None)
        ax.plot([], [], "-", color="#1f78b4", lw=0.8, label=f"equivalents ({M - 1})")
        ax.scatter(E[:, 0, 0], E[:, 0, 1], marker="s", s=50, color="#33a02c", zorder=4, label="input layer")
        ax.scatter(E[:, -1, 0], E[:, -1, 1], marker="^", s=50, color="#e31a1c", zorder=4, label="output layer")
        layer_names = _layer_names(p)
        for l in range(1, L - 1):
            ax.annotate(layer_names[l], E[0, l], textcoords="offset points", xytext=(5, 5), fontsize=9)
        names = json.loads(p["attrs"]["invariances"])
        inv = ",\n".join(", ".join(names[i:i + 3]) for i in range(0, len(names), 3))
        ax.set(xlabel="MDS 1", ylabel="MDS 2", aspect="equal",
               title=f"{metric} (MDS, Kruskal stress-1 {p['attrs'].get('stress_1', float('nan')):.2f})\n"
                     f"invariant to: {inv}")
        ax.title.set_fontsize(9)
        if p["attrs"].get("warning"):
            ax.text(0.01, 0.01, "misses symmetries of this network: exact copies may move", transform=ax.transAxes,
                    fontsize=7, color="#b15928")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(wrap(run_title(run), 70 * len(order)) + "\neach network as a path through representation space "
                 "(layers in order)", fontsize=11)
    return fig


def _layer_names(p: dict) -> list[str]:
    L = int(p["attrs"]["n_layers"])
    names = p["attrs"].get("layers")
    return json.loads(names) if names else ["input", *[f"h{l}" for l in range(1, L - 1)], "output"]

def figure_layer_geometry(run: RunData):
    """Step lengths, angles and progress towards the labels by layer; one column per metric."""
    paths = run.layer_paths
    if not paths:
        return None
    order = sorted(paths, key=lambda m: (m.startswith("zscore"), m))
    fig, axes = plt.subplots(3, len(order), figsize=(5.2 * len(order), 9.5), constrained_layout=True, squeeze=False)
    for j, metric in enumerate(order):
        p = paths[metric]
        names = _layer_names(p)
        steps = [f"{a}→{b}" for a, b in zip(names[:-1], names[1:])]
        by_layer(axes[0, j], steps, p["steps"], "distance (rad)" if metric != "procrustes" else "distance",
                  f"{metric}\nstep length between consecutive layers")
        if p["angles"].shape[1]:
            by_layer(axes[1, j], names[1:-1], p["angles"], "angle (rad)", "angle at each hidden layer (π = straight on)")
            axes[1, j].axhline(np.pi, color="grey", ls=":", lw=1)
        else:
            axes[1, j].set_axis_off()
        if "to_labels" in p:
            by_layer(axes[2, j], names, p["to_labels"], "distance to labels", "distance to the one-hot labels")
        else:
            by_layer(axes[2, j], names, p["to_output"], "distance to output", "distance to the network's output")
        axes[0, j].legend(fontsize=7, loc="best")
    fig.suptitle(run_title(run) + "\nlayer-path geometry by layer (reference bold; thin lines: converged equivalents)",
                 fontsize=11)
    return fig
