"""Ricci curvature along the layers: Ric_l, g_l and ρ, and the reference's kNN graphs."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm

from ..store import RunData
from .common import by_layer, run_title


def _ricci_group(run: RunData) -> tuple[str, dict, dict, list[str]] | None:
    """The Ricci group to draw — the one with the plainest name (defaults carry no suffix) — as
    (name, group, its attributes, layer names)."""
    if not run.ricci:
        return None
    name = min(run.ricci, key=lambda n: (n.count("_"), n))
    r = run.ricci[name]
    return name, r, r["attrs"], json.loads(r["attrs"]["layers"])


def _fmt_rho(rho: float, lo: float, hi: float, n: int, reason: str) -> str:
    return f"ρ = {rho:+.2f} [{lo:+.2f}, {hi:+.2f}], n = {n}" if reason == "ok" else f"ρ undefined ({reason}, n = {n})"


def figure_ricci(run: RunData):
    """Ricci flow along the layers: Ric_l and g_l by layer, the (Ric_l, η_l) scatter with ρ, local ρ(x)."""
    got = _ricci_group(run)
    if got is None:
        return None
    name, r, a, names = got
    C, G, comps, eta, pairs = r["curvature"], r["wiener"], r["components"], r["eta"], r["pairs"]
    harmonic = a["connectivity"] == "harmonic"
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5), constrained_layout=True)
    by_layer(axes[0, 0], names, C, f"total {a['curvature']} curvature Ric_l", "total curvature of each layer's kNN graph")
    axes[0, 0].legend(fontsize=8)
    gl = "harmonic Wiener H_l = Σ 1/γ" if harmonic else "Wiener index g_l = Σ hop distances"
    by_layer(axes[0, 1], names, np.where(np.isfinite(G), G, np.nan), gl, "spread of each layer's graph")
    axes[0, 1].set_yscale("log")
    for l, c in enumerate(comps[0]):
        if c > 1:
            axes[0, 1].annotate(f"{c} comp.", (l, G[0, l] if np.isfinite(G[0, l]) else np.nanmax(G)), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
    ax = axes[1, 0]
    cmap = plt.get_cmap("viridis", max(len(pairs), 2))
    for p, (la, lb) in enumerate(pairs):
        ax.scatter(C[1:, la], eta[1:, lb], s=14, color=cmap(p), alpha=0.55,
                   label=f"Ric({names[la]}) vs Δg {names[lb]}→{names[lb + 1]}")
        ax.scatter(C[0, la], eta[0, lb], s=70, color=cmap(p), edgecolor="k", lw=1.5, zorder=3)
    ax.scatter([], [], s=70, facecolor="none", edgecolor="k", lw=1.5, label="reference θ* (others: equivalents)")
    pooled = _fmt_rho(a["pooled_rho"], *a["pooled_ci"], a["pooled_n"], a["pooled_reason"])
    ref = _fmt_rho(r["rho"][0], *r["rho_ci"][0], int(r["rho_n"][0]), r["rho_reason"][0].decode())
    ax.set(xlabel="total curvature Ric_l", ylabel=("η_l = H_{l+1} − H_l" if harmonic else "η_l = g_{l+1} − g_l"),
           title=f"pooled {pooled}\nreference {ref}\n(ρ {'> 0' if harmonic else '< 0'} reads as Ricci-flow-like)")
    ax.title.set_fontsize(9)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    loc = r["local_rho"]
    bins = np.linspace(-1, 1, 41)
    nloc = int(np.isfinite(loc[0]).sum())
    if np.isfinite(loc).any():
        ax.hist(loc[np.isfinite(loc)], bins=bins, color="#1f78b4", alpha=0.5, density=True, label="all networks' points")
        if nloc:
            ax.hist(loc[0][np.isfinite(loc[0])], bins=bins, histtype="step", color="k", lw=1.8, density=True,
                    label="reference θ*'s points")
        ax.legend(fontsize=8)
        title = (f"local coefficient per point (reference: mean {r['local_mean'][0]:+.2f} over {nloc} points)" if nloc
                 else "local coefficient per point (undefined for the reference)")
    else:
        reasons = sorted({x.decode() for x in r["local_reason"][0]}) if "local_reason" in r else ["undefined"]
        ax.text(0.5, 0.5, f"local ρ(x) undefined at every point\n({', '.join(reasons)})", ha="center", va="center",
                transform=ax.transAxes, fontsize=10)
        title = "local coefficient per point"
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set(xlim=(-1, 1), xlabel="local ρ(x): Pearson over layers of x's edge curvature vs its neighbours' distance change",
           ylabel="density", title=title)
    ax.xaxis.label.set_fontsize(8)
    ax.title.set_fontsize(9)
    fig.suptitle(f"{run_title(run)}\nRicci flow along the layers ('{name}': {a['curvature']}, k = {a['k']}, "
                 f"{a['mode']} kNN, connectivity fix {a['connectivity']}, {a['n_inputs']} {a['inputs']} inputs, "
                 f"{a['n_networks']} network{'s' if a['n_networks'] != 1 else ''})", fontsize=10)
    return fig


def figure_ricci_graphs(run: RunData):
    """The reference's kNN graph at every layer, drawn at the input positions, edges coloured by curvature."""
    got = _ricci_group(run)
    if got is None:
        return None
    name, r, a, names = got
    E, V, X = r["ref_edges"], r["ref_edge_curvature"], r["positions"]
    lo, hi = float(V.min()), float(V.max())
    norm = TwoSlopeNorm(0.0, lo, hi) if lo < 0 < hi else Normalize(lo, hi)
    L = len(names)
    cols = min(L, 4)
    rows = -(-L // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.6 * rows), constrained_layout=True, squeeze=False)
    for l in range(rows * cols):
        ax = axes.flat[l]
        if l >= L:
            ax.set_axis_off()
            continue
        sel = E[:, 0] == l
        segs = np.stack([X[E[sel, 1]], X[E[sel, 2]]], axis=1)
        lc = LineCollection(segs, cmap="coolwarm_r", norm=norm, linewidths=0.6, alpha=0.8)
        lc.set_array(V[sel])
        ax.add_collection(lc)
        ax.scatter(X[:, 0], X[:, 1], s=3, color="k", zorder=3)
        ax.set(title=f"layer {names[l]}: Ric = {r['curvature'][0, l]:.4g}, {r['components'][0, l]} component(s)",
               xlabel="input x₁" if run.X.shape[1] == 2 else "input PC 1",
               ylabel="input x₂" if run.X.shape[1] == 2 else "input PC 2")
        ax.title.set_fontsize(9)
        ax.autoscale()
    fig.colorbar(lc, ax=axes, shrink=0.8, label=f"edge curvature ({a['curvature']})")
    colours = ("red = negative, blue = positive curvature" if lo < 0 < hi else
               "red = most negative, blue = least negative curvature" if hi <= 0 else
               "red = least positive, blue = most positive curvature")
    fig.suptitle(f"{run_title(run)}\nthe reference's kNN graph (k = {a['k']}) of each layer, drawn at the input points; "
                 f"{colours}", fontsize=10)
    return fig
