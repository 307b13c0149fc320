"""Projections of the class: 2-D discrepancy panels, the 3-D sublevel set, paths and barriers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from ..store import RunData
from .common import log_ticks, run_title

_SUBSPACE_TITLES = {"pca": "PCA of the elements", "plane": "plane through θ* and two elements",
                    "null": "Jacobian null space at θ* (tangent of the class)", "random": "filter-normalised random directions"}

def _projection_panel(ax, run: RunData, name: str, which: str = "values"):
    p = run.projections[name]
    power = p["attrs"].get("output_power", 1.0)
    eps_rel = p["attrs"]["epsilon"] / power
    rel = p[which] / power
    floor = max(np.nanmin(rel[rel > 0]) if np.any(rel > 0) else 1e-30, 1e-30)
    shown = np.clip(rel, floor, None)
    a0, a1 = p["axes"]
    levels = np.geomspace(max(shown[np.isfinite(shown)].min(), 1e-30), shown[np.isfinite(shown)].max() * 1.0001, 25)
    cf = ax.contourf(a0, a1, shown.T, levels=levels, norm=LogNorm(), cmap="viridis")
    if np.nanmin(rel) <= eps_rel <= np.nanmax(rel):
        ax.contour(a0, a1, rel.T, levels=[eps_rel], colors="w", linewidths=1.5)
    where = ("" if np.nanmin(rel) <= eps_rel <= np.nanmax(rel) else
             ": the whole panel is below ε" if np.nanmax(rel) < eps_rel else ": the whole panel is above ε")
    ax.plot([], [], color="w", lw=1.5, label=f"ε-level set (relative {eps_rel:.0e}){where}")
    c = p["coords"]
    res = p["residuals"]
    sc = ax.scatter(c[:, 0], c[:, 1], c=np.log10(np.maximum(res, 1e-16)), cmap="autumn", s=30, edgecolor="k",
                    linewidth=0.5, label=f"elements ({len(c)}; colour: log₁₀ residual)")
    ax.plot(0, 0, marker="*", ms=16, color="cyan", markeredgecolor="k", ls="none", label="reference θ*")
    exp = p.get("explained")
    lab = [f"coordinate along basis vector {i + 1}" + (f" ({exp[i] * 100:.0f}% var.)" if exp is not None else "")
           for i in range(2)]
    ax.set(xlabel=lab[0], ylabel=lab[1],
           title=f"{_SUBSPACE_TITLES.get(p['attrs'].get('kind'), name)}\n({'probe' if which == 'values' else 'held-out'} inputs;"
                 f" elements {p['attrs'].get('elements')};\nmedian residual {np.median(res):.2g})")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
    return cf, sc


def figure_projections(run: RunData):
    """One panel per stored 2-D subspace: log relative discrepancy with the ε-level set and the elements."""
    names = [n for n, p in run.projections.items() if "values" in p and p["values"].ndim == 2
             and not np.isnan(p["values"]).all()]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(7.0 * len(names), 5.8), constrained_layout=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        cf, sc = _projection_panel(ax, run, name)
        cb = fig.colorbar(cf, ax=ax, shrink=0.85, label="relative discrepancy  L(θ) / mean‖f_θ*‖²")
        log_ticks(cb, cf.levels)
    fig.colorbar(sc, ax=axes[0, -1], shrink=0.85, label="log₁₀ residual ‖θ − its projection‖")
    fig.suptitle(run_title(run) + "\nthe equivalence class seen in 2-D subspaces through θ*", fontsize=11)
    return fig


def figure_projection_3d(run: RunData):
    """The ε-sublevel set of a 3-D grid (grid points with discrepancy ≤ ε) and the elements."""
    names = [n for n, p in run.projections.items() if "values" in p and p["values"].ndim == 3]
    if not names:
        return None
    p = run.projections[names[0]]
    v = p["values"]
    eps = p["attrs"]["epsilon"]
    a0, a1, a2 = p["axes"]
    fig = plt.figure(figsize=(8, 7), constrained_layout=True)
    ax = fig.add_subplot(projection="3d")
    power = p["attrs"].get("output_power", 1.0)
    # the ε-sublevel set; a generic 3-D slice meets the class only near isolated points, so the
    # lowest 1 % of the grid (the valley around the class) is drawn too, coloured by its value
    level = max(eps, float(np.nanquantile(v, 0.01)))
    inside = np.argwhere(v <= level)
    vals = v[v <= level] / power
    sc = ax.scatter(a0[inside[:, 0]], a1[inside[:, 1]], a2[inside[:, 2]], s=9, alpha=0.55,
                    c=np.log10(np.maximum(vals, 1e-30)), cmap="viridis_r", depthshade=False,
                    label=f"grid points with L ≤ {level / power:.2g}·power (lowest 1 % or ε)")
    fig.colorbar(sc, ax=ax, shrink=0.6, label="log₁₀ relative discrepancy")
    n_eps = int((v <= eps).sum())
    c = p["coords"]
    ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=25, color="#e31a1c", edgecolor="k", label=f"elements ({len(c)})")
    ax.scatter([0], [0], [0], s=150, marker="*", color="cyan", edgecolor="k", label="reference θ*")
    ax.set(xlabel="basis vector 1", ylabel="basis vector 2", zlabel="basis vector 3",
           title=f"{run_title(run)}\nlow-discrepancy region of the 3-D {p['attrs'].get('kind')} subspace through θ*\n"
                 f"{n_eps} of {v.size} grid points within ε = {eps / power:.0e}·power")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def figure_paths(run: RunData):
    """Discrepancy along straight and Bézier paths θ* → element, and the barrier matrix."""
    b = run.projections.get("barriers")
    if not b or "linear" not in b:
        return None
    power = run.reference.get("output_power", 1.0)
    eps = b["attrs"]["epsilon"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    t = b["t"]
    for i, (lin, bez) in enumerate(zip(b["linear"], b["bezier"])):
        ax1.semilogy(t, np.maximum(lin / power, 1e-20), color=f"C{i % 10}", lw=1.5,
                     label=f"element {b['elements'][i]}: straight" if i < 4 else None)
        ax1.semilogy(t, np.maximum(bez / power, 1e-20), color=f"C{i % 10}", lw=1.2, ls="--",
                     label=f"element {b['elements'][i]}: Bézier" if i < 4 else None)
    ax1.axhline(eps / power, color="k", ls=":", lw=1, label="ε (relative)")
    ax1.set(xlabel="t along the path (0 = θ*, 1 = element)", ylabel="relative discrepancy  L / mean‖f_θ*‖²",
            title="paths from the reference to found elements\n(solid: straight line; dashed: optimised quadratic Bézier)")
    ax1.legend(fontsize=7, ncol=2)
    B = b["barriers"] / power
    im = ax2.imshow(np.maximum(B, 1e-20), norm=LogNorm(), cmap="magma")
    names = ["θ*"] + [str(e) for e in b["elements"]]
    ax2.set_xticks(range(len(names)), names, fontsize=7)
    ax2.set_yticks(range(len(names)), [f"{n} (comp. {lab})" for n, lab in zip(names, b["labels"])], fontsize=7)
    fig.colorbar(im, ax=ax2, label="straight-path barrier (relative)")
    ax2.set(title=f"pairwise barriers: {int(b['components'])} connected component(s)\n"
                  "(edge where the straight path stays below ε)", xlabel="element", ylabel="element (component)")
    fig.suptitle(run_title(run) + " — paths and barriers between equivalents")
    return fig
