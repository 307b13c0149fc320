"""Figures drawn from a run file's stored arrays (no computation beyond cosmetics).

Each ``figure_*`` function takes a :class:`~genni.store.RunData` and returns a
matplotlib Figure, or None when the run holds nothing for it; :func:`plot_run`
writes every figure the file supports.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .models import describe  # noqa: E402
from .store import RunData  # noqa: E402

_STATUS_COLOURS = {"converged": "#1b9e77", "stalled": "#d95f02", "max_steps": "#7570b3",
                   "diverged": "#e7298a", "dead_units": "#66a61e"}
_FLOOR = 1e-20  # discrepancies below this are drawn at this value on log axes


def _title(run: RunData) -> str:
    return f"{run.config.get('name')}: {describe(run.architecture)} on {run.config['data']['dataset']}"


def _wrap(text: str, width: int) -> str:
    """A title broken into lines of at most ``width`` characters (a long architecture fits a narrow figure)."""
    return "\n".join(textwrap.wrap(text, width)) or text


def figure_discrepancy(run: RunData):
    """Every element's relative discrepancy on probe vs held-out inputs, and sorted by probe value."""
    eq = run.equivalents
    if not run.n_equivalents:
        return None
    codes = run.equivalents_attrs.get("status_codes", [])
    rel = np.maximum(eq["relative_discrepancy"], _FLOOR)
    relh = np.maximum(eq["relative_discrepancy_heldout"], _FLOOR)
    power = run.reference.get("output_power", 1.0)
    tol_rel = run.equivalents_attrs.get("tol", np.nan) / power
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for i, name in enumerate(codes):
        m = eq["status"] == i
        if m.any():
            ax1.scatter(rel[m], relh[m], s=22, alpha=0.8, color=_STATUS_COLOURS.get(name, "grey"),
                        label=f"{name} ({int(m.sum())})", edgecolor="none")
    lo = min(rel.min(), relh.min(), tol_rel) / 3
    hi = max(rel.max(), relh.max(), tol_rel) * 3
    ax1.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls=":", label="held-out = probe")
    ax1.axvline(tol_rel, color="k", lw=1, ls="--", label=f"tol / output power = {tol_rel:.1e}")
    ax1.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
            xlabel="relative discrepancy on probe inputs  mean‖f_θ−f_θ*‖² / mean‖f_θ*‖²",
            ylabel="relative discrepancy on held-out inputs",
            title="each found element: probe vs held-out")
    ax1.legend(loc="lower right", fontsize=8)  # the elements sit above the diagonal, to the left
    order = np.argsort(rel)
    x = np.arange(len(order))
    ax2.semilogy(x, rel[order], "o", ms=4, color="#1f78b4", label="probe")
    ax2.semilogy(x, relh[order], "^", ms=4, color="#e31a1c", alpha=0.7, label="held-out")
    ax2.axhline(tol_rel, color="k", lw=1, ls="--", label="tol / output power")
    ax2.set(xlabel="element, sorted by probe discrepancy", ylabel="relative discrepancy",
            title=f"{int(eq['converged'].sum())} of {run.n_equivalents} elements converged")
    ax2.legend(fontsize=8)
    fig.suptitle(_wrap(_title(run) + f"  (output power {power:.3g}; values below {_FLOOR:g} drawn at {_FLOOR:g})",
                       120))
    return fig


def figure_probe(run: RunData):
    """The probe and held-out inputs coloured by the reference's output (2-D inputs only)."""
    if run.X.shape[1] != 2 or run.Y.shape[1] != 1:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 5.5), constrained_layout=True)
    y = run.Y[:, 0]
    v = np.abs(np.concatenate([y, run.Y_heldout[:, 0]])).max()
    sc = ax.scatter(run.X[:, 0], run.X[:, 1], c=y, cmap="RdBu_r", vmin=-v, vmax=v, s=18,
                    edgecolor="k", linewidth=0.3, label=f"probe ({len(run.X)})")
    ax.scatter(run.X_heldout[:, 0], run.X_heldout[:, 1], c=run.Y_heldout[:, 0], cmap="RdBu_r", vmin=-v, vmax=v,
               s=10, marker="^", alpha=0.6, label=f"held-out ({len(run.X_heldout)})")
    fig.colorbar(sc, ax=ax, shrink=0.8, label="reference output f_θ*(x) (logit)")
    acc = run.reference.get("accuracy")
    ax.set(xlabel="x₁", ylabel="x₂", aspect="equal",
           title="probe inputs and the reference's output" + (f" (accuracy {acc:.3f})" if acc is not None else ""))
    ax.legend(loc="lower left", fontsize=8)
    return fig


_VERDICT_COLOURS = {"symmetry_copy": "#1b9e77", "hidden_equivalent": "#7570b3", "data_equivalent": "#1f78b4",
                    "probe_only": "#d95f02", "not_converged": "#999999"}
_VERDICT_INPUTS = {"symmetry_copy": "all, within τ", "hidden_equivalent": "probe, held-out,\nfar",
                   "data_equivalent": "probe,\nheld-out", "probe_only": "probe", "not_converged": "none"}


def figure_identifiability(run: RunData):
    """Singular values of J, rank vs probe size, verdict counts, aligned distances."""
    ident = run.identifiability
    if not ident or "singular_values" not in ident:  # none, or large P (matrix-free rank only)
        return None
    s = ident["singular_values"]
    rank, expected, tol = int(ident["rank"]), int(ident["expected_rank"]), float(ident["rank_tolerance"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    ax = axes[0, 0]
    i = np.arange(1, len(s) + 1)
    ax.semilogy(i, np.maximum(s, 1e-300), ".", ms=4, color="#1f78b4", label="singular values of J")
    ax.axhline(tol, color="k", ls="--", lw=1, label=f"rank tolerance {tol:.1e}")
    ax.axvline(rank + 0.5, color="#e31a1c", lw=1, label=f"numerical rank {rank}")
    ax.axvline(expected + 0.5, color="#33a02c", lw=1, ls=":", label=f"bound for the architecture {expected}")
    ax.set(xlabel="index i", ylabel="σ_i", title=f"spectrum of the output Jacobian at the balanced θ* (P = {len(run.theta_ref)})")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    t = ident["rank_vs_probe"]
    K = run.Y.shape[1]
    ax.plot(t[:, 0], t[:, 1], "o-", color="#1f78b4", label="rank of J on the first k probe inputs")
    ax.plot(t[:, 0], np.minimum(t[:, 0] * K, expected), "--", color="#33a02c", label="min(k·outputs, bound)")
    ax.set(xscale="log", xlabel="probe inputs k", ylabel="rank", title="functional dimension vs probe size")
    ax.legend(fontsize=8)
    eq = run.equivalents
    ax = axes[1, 0]
    names = run.equivalents_attrs.get("verdict_codes", list(_VERDICT_COLOURS))
    if "verdict" in eq:
        counts = [int((eq["verdict"] == k).sum()) for k in range(len(names))]
        labels = [n.replace("_", "\n") + (f"\n({_VERDICT_INPUTS[n]})" if n in _VERDICT_INPUTS else "") for n in names]
        bars = ax.bar(labels, counts, color=[_VERDICT_COLOURS.get(n, "grey") for n in names])
        ax.bar_label(bars)
        ax.tick_params(axis="x", labelsize=7)
    ax.set(ylabel="elements", title=f"verdict on the {run.n_equivalents} found elements (inputs each agrees on)")
    ax = axes[1, 1]
    if "relative_discrepancy_far" in eq and "verdict" in eq and run.n_equivalents:
        _verdict_map(ax, run, names)
    elif "distance_to_reference" in eq and run.n_equivalents:  # verdicts from before far inputs existed
        d = np.maximum(eq["distance_to_reference"], 1e-16)
        bins = np.geomspace(d.min() / 1.5, d.max() * 1.5, 30)
        for k, name in enumerate(names):
            m = eq["verdict"] == k
            if m.any():
                ax.hist(d[m], bins=bins, color=_VERDICT_COLOURS.get(name, "grey"), alpha=0.8,
                        label=name.replace("_", " "))
        st = run.equivalents_attrs.get("symmetry_tol")
        if st:
            ax.axvline(st, color="k", ls="--", lw=1, label=f"symmetry tolerance {st:g}")
        ax.set(xscale="log", xlabel="‖align(θ) − θ*‖ / ‖θ*‖ (after the known symmetries)", ylabel="elements",
               title="distance to the reference modulo exact symmetries (old verdicts: re-run identify)")
        ax.legend(fontsize=8)
    fig.suptitle(_title(run) + "  — identifiability")
    return fig


def _verdict_map(ax, run: RunData, names: list[str]) -> None:
    """Both checks behind a verdict, one point per element: far-input discrepancy (x) against the copy
    score (y: the share of the displacement from θ* that the residual does not explain)."""
    eq = run.equivalents
    far = np.maximum(eq["relative_discrepancy_far"], _FLOOR)
    score = np.clip(eq["copy_score"], 1e-6, 1e12) if "copy_score" in eq else \
        np.maximum(eq["distance_to_reference"] / np.maximum(eq["symmetry_threshold"], 1e-300), 1e-6)
    agree = float(run.equivalents_attrs.get("agreement_tolerance", np.nan))
    for k, name in enumerate(names):
        m = eq["verdict"] == k
        if m.any():
            ax.scatter(far[m], score[m], s=24, alpha=0.85, color=_VERDICT_COLOURS.get(name, "grey"),
                       edgecolor="none", label=f"{name.replace('_', ' ')} ({int(m.sum())})")
    ax.axvline(agree, color="k", ls="--", lw=1,
               label=f"agreement tolerance {agree:.1e}\n(to its right: agrees only if the first-order\n"
                     "model along the explained displacement accounts for it)")
    ax.axhline(1.0, color="#e31a1c", ls=":", lw=1, label="copy score 1 (below: displacement explained)")
    ax.set(xscale="log", yscale="log", xlabel="relative discrepancy on far inputs (3× the data's radius)",
           ylabel="copy score: displacement from θ* / what the residual explains",
           title="the two checks behind each verdict\n(a copy must agree far and sit below 1)")
    ax.legend(fontsize=7, loc="best", framealpha=0.8)


def _chain_lines(ax, eq: dict, values: np.ndarray, **kw) -> None:
    """One line per walk chain through its stored rows in step order, from its start (θ* at step 0 and
    value 0, or the stored element it started from)."""
    cmap = plt.get_cmap("viridis")
    chains = sorted(set(eq["chain"][eq["chain"] >= 0].tolist()))
    for k, c in enumerate(chains):
        rows = np.flatnonzero(eq["chain"] == c)
        rows = rows[np.argsort(eq["step"][rows], kind="stable")]
        x, y = eq["step"][rows], values[rows]
        first = eq["parent"][rows[0]]
        if first < 0:
            x, y = np.concatenate([[0], x]), np.concatenate([[0.0], y])
        else:  # a chain started from a stored element: draw from there
            x, y = np.concatenate([[eq["step"][first]], x]), np.concatenate([[values[first]], y])
        ax.plot(x, y, "-o", ms=3, lw=1, color=cmap(k / max(len(chains) - 1, 1)), alpha=0.8, **kw)


def figure_walk(run: RunData):
    """Walk chains: distance from θ* (modulo the exact symmetries) by step, the segment certificates
    against ε, and the discrepancy of each stored state on probe, held-out and far inputs."""
    eq = run.equivalents
    if not run.n_equivalents or not (eq.get("chain", np.zeros(0)) >= 0).any():
        return None
    walked = eq["chain"] >= 0
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    ax = axes[0]
    if "distance_to_reference" in eq:
        _chain_lines(ax, eq, eq["distance_to_reference"] * 100)
        ax.set(ylabel="distance to θ* modulo exact symmetries (% of ‖θ*‖)")
    else:
        ax.text(0.5, 0.5, "run genni identify for distances\nmodulo the exact symmetries", ha="center",
                va="center", transform=ax.transAxes)
    n_chains = len(set(eq["chain"][walked].tolist()))
    ax.set(xlabel="accepted steps along the chain", title=f"{n_chains} chains: how far along the class")
    ax = axes[1]
    eps = float(run.equivalents_attrs.get("segment_epsilon", np.nan))
    seg = np.maximum(eq["segment_max"][walked], _FLOOR)
    ax.scatter(eq["step"][walked], seg, s=14, color="#1f78b4", label="max relative discrepancy on the segment "
               "parent → row")
    ax.axhline(eps, color="#e31a1c", ls="--", lw=1, label=f"ε = {eps:g} (certified below)")
    ax.set(yscale="log", xlabel="accepted steps", ylabel="segment certificate",
           title=f"{int((eq['segment_max'][walked] <= eps).sum())} of {int(walked.sum())} segments certified")
    ax.legend(fontsize=8)
    ax = axes[2]
    step = eq["step"][walked]
    for key, lab, mk, col in (("relative_discrepancy", "probe", "o", "#1b9e77"),
                              ("relative_discrepancy_heldout", "held-out", "^", "#d95f02"),
                              ("relative_discrepancy_far", "far (3× radius)", "s", "#7570b3")):
        if key in eq:
            ax.scatter(step, np.maximum(eq[key][walked], _FLOOR), s=14, marker=mk, color=col, alpha=0.8, label=lab)
    power = run.reference.get("output_power", 1.0)
    ax.axhline(run.equivalents_attrs.get("tol", np.nan) / power, color="k", ls=":", lw=1, label="tol / output power")
    ax.set(yscale="log", xlabel="accepted steps", ylabel="relative discrepancy",
           title="each stored state: where it still computes f_θ*")
    ax.legend(fontsize=8)
    fig.suptitle(_title(run) + "  — walks along the equivalence class")
    return fig


_SUBSPACE_TITLES = {"pca": "PCA of the elements", "plane": "plane through θ* and two elements",
                    "null": "Jacobian null space at θ* (tangent of the class)", "random": "filter-normalised random directions"}


def _log_ticks(cb, levels) -> None:
    """Decade ticks (10^k) on a log-scaled contour colour bar, at most ~8 of them."""
    lo, hi = np.log10(levels[0]), np.log10(levels[-1])
    ks = np.arange(np.ceil(lo), np.floor(hi) + 1)
    if len(ks) < 2:  # less than a decade: label the ends
        ticks = [levels[0], levels[-1]]
    else:
        ticks = 10.0 ** ks[:: max(1, int(np.ceil(len(ks) / 8)))]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:.1e}" if len(ks) < 2 else f"1e{int(np.log10(t))}" for t in ticks])


def _projection_panel(ax, run: RunData, name: str, which: str = "values"):
    from matplotlib.colors import LogNorm

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
        _log_ticks(cb, cf.levels)
    fig.colorbar(sc, ax=axes[0, -1], shrink=0.85, label="log₁₀ residual ‖θ − its projection‖")
    fig.suptitle(_title(run) + "\nthe equivalence class seen in 2-D subspaces through θ*", fontsize=11)
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
           title=f"{_title(run)}\nlow-discrepancy region of the 3-D {p['attrs'].get('kind')} subspace through θ*\n"
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
    from matplotlib.colors import LogNorm

    B = b["barriers"] / power
    im = ax2.imshow(np.maximum(B, 1e-20), norm=LogNorm(), cmap="magma")
    names = ["θ*"] + [str(e) for e in b["elements"]]
    ax2.set_xticks(range(len(names)), names, fontsize=7)
    ax2.set_yticks(range(len(names)), [f"{n} (comp. {lab})" for n, lab in zip(names, b["labels"])], fontsize=7)
    fig.colorbar(im, ax=ax2, label="straight-path barrier (relative)")
    ax2.set(title=f"pairwise barriers: {int(b['components'])} connected component(s)\n"
                  "(edge where the straight path stays below ε)", xlabel="element", ylabel="element (component)")
    fig.suptitle(_title(run) + " — paths and barriers between equivalents")
    return fig


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
    fig.suptitle(_wrap(_title(run), 70 * len(order)) + "\neach network as a path through representation space "
                 "(layers in order)", fontsize=11)
    return fig


def _layer_names(p: dict) -> list[str]:
    L = int(p["attrs"]["n_layers"])
    names = p["attrs"].get("layers")
    return json.loads(names) if names else ["input", *[f"h{l}" for l in range(1, L - 1)], "output"]


def _by_layer(ax, x, values: np.ndarray, ylabel: str, title: str):
    """One line per network (row 0 = reference, bold) across layers."""
    for m in range(len(values) - 1, -1, -1):
        ref = m == 0
        ax.plot(x, values[m], "-o" if ref else "-", color="k" if ref else "#1f78b4", lw=2 if ref else 0.7,
                ms=4, alpha=1 if ref else 0.45, zorder=3 if ref else 2,
                label="reference θ*" if ref else ("equivalents" if m == 1 else None))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=8, rotation=30)
    ax.grid(alpha=0.3)


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
        _by_layer(axes[0, j], steps, p["steps"], "distance (rad)" if metric != "procrustes" else "distance",
                  f"{metric}\nstep length between consecutive layers")
        if p["angles"].shape[1]:
            _by_layer(axes[1, j], names[1:-1], p["angles"], "angle (rad)", "angle at each hidden layer (π = straight on)")
            axes[1, j].axhline(np.pi, color="grey", ls=":", lw=1)
        else:
            axes[1, j].set_axis_off()
        if "to_labels" in p:
            _by_layer(axes[2, j], names, p["to_labels"], "distance to labels", "distance to the one-hot labels")
        else:
            _by_layer(axes[2, j], names, p["to_output"], "distance to output", "distance to the network's output")
        axes[0, j].legend(fontsize=7, loc="best")
    fig.suptitle(_title(run) + "\nlayer-path geometry by layer (reference bold; thin lines: converged equivalents)",
                 fontsize=11)
    return fig


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
    _by_layer(axes[0, 0], names, C, f"total {a['curvature']} curvature Ric_l", "total curvature of each layer's kNN graph")
    axes[0, 0].legend(fontsize=8)
    gl = "harmonic Wiener H_l = Σ 1/γ" if harmonic else "Wiener index g_l = Σ hop distances"
    _by_layer(axes[0, 1], names, np.where(np.isfinite(G), G, np.nan), gl, "spread of each layer's graph")
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
    fig.suptitle(f"{_title(run)}\nRicci flow along the layers ('{name}': {a['curvature']}, k = {a['k']}, "
                 f"{a['mode']} kNN, connectivity fix {a['connectivity']}, {a['n_inputs']} {a['inputs']} inputs, "
                 f"{a['n_networks']} network{'s' if a['n_networks'] != 1 else ''})", fontsize=10)
    return fig


def figure_ricci_graphs(run: RunData):
    """The reference's kNN graph at every layer, drawn at the input positions, edges coloured by curvature."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize, TwoSlopeNorm

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
    fig.suptitle(f"{_title(run)}\nthe reference's kNN graph (k = {a['k']}) of each layer, drawn at the input points; "
                 f"{colours}", fontsize=10)
    return fig


FIGURES = {"discrepancy": figure_discrepancy, "probe": figure_probe, "identifiability": figure_identifiability,
           "projections": figure_projections, "projection_3d": figure_projection_3d, "paths": figure_paths,
           "layer_paths": figure_layer_paths, "layer_geometry": figure_layer_geometry,
           "ricci": figure_ricci, "ricci_graphs": figure_ricci_graphs, "walk": figure_walk}


def figure_functional_dimension(results: dict):
    """Functional dimension of relu networks at initialisation against the bound P − #hidden.

    results : (init, n, depth) -> {"rank": [k] functional dimensions, "bound": P − #hidden,
    "rank_growth": k arrays [j, 2] of (m, rank)}.  Left: share of networks at the bound by depth,
    one line per width (solid He, dashed PyTorch default).  Middle: the deficiency bound − rank of every
    network.  Right: the deficiency against the number of inputs m, every network of the first init."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    inits = sorted({k[0] for k in results})
    widths = sorted({k[1] for k in results})
    depths = sorted({k[2] for k in results})
    cmap = plt.get_cmap("viridis")
    styles = {"he": "-", "torch": "--"}
    ax = axes[0]
    for i, n in enumerate(widths):
        for init in inits:
            share = [np.mean(results[(init, n, d)]["rank"] >= results[(init, n, d)]["bound"]) for d in depths]
            ax.plot(depths, share, styles.get(init, ":"), marker="o", color=cmap(i / max(len(widths) - 1, 1)),
                    label=f"n = {n}, {init} init")
    ax.set(xlabel="depth (linear layers)", ylabel="share with functional dimension = P − #hidden", ylim=(-0.05, 1.05),
           xticks=depths, title="no hidden symmetries at the parameter")
    ax.legend(fontsize=8)
    ax = axes[1]
    labels, pos = [], 0
    for n in widths:
        for d in depths:
            for j, init in enumerate(inits):
                r = results[(init, n, d)]
                gap = r["bound"] - np.asarray(r["rank"], dtype=float)
                x = pos + 0.35 * j + np.random.default_rng(pos).uniform(-0.08, 0.08, len(gap))  # jitter: cosmetic
                ax.scatter(x, np.maximum(gap, 0) + 0.5, s=12, color="#1b9e77" if init == "he" else "#d95f02", alpha=0.7,
                           label=f"{init} init" if pos == 0 else None)
            labels.append(f"n={n}\nd={d}")
            pos += 1
    ax.set(yscale="log", xticks=np.arange(len(labels)) + 0.17, xticklabels=labels, ylabel="bound − functional dimension + ½",
           title="deficiency of every network (½: at the bound)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    ax = axes[2]
    markers = dict(zip(depths, "os^Dv"))
    for i, n in enumerate(widths):
        for d in depths:
            r = results[(inits[0], n, d)]
            for k, t in enumerate(r["rank_growth"]):
                ax.plot(t[:, 0], r["bound"] - t[:, 1] + 0.5, "-", marker=markers.get(d, "o"), ms=3, lw=0.8, alpha=0.6,
                        color=cmap(i / max(len(widths) - 1, 1)), label=f"n = {n}, depth {d}" if k == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel="inputs m (fresh N(0, I_n) draws)", ylabel="bound − rank + ½",
           title=f"deficiency as the inputs grow ({inits[0]} init, every network)")
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle("relu networks (n, …, n, 1) at initialisation, inputs N(0, I_n): functional dimension vs P − #hidden")
    return fig


def figure_equivalent_paths(summary: dict, metric: str):
    """Layer paths and Ricci ρ of equivalents against independently trained networks.

    summary : activation -> {"layers": names, "equivalents": [m, L] distances to θ*'s layers,
    "trained": [t, L] the same for independently trained networks, "rho_equivalents", "rho_trained",
    "rho_reference"}.  Left: median distance to θ* by layer (bars: min–max).  Right: ρ of every network."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    colours = {"relu": "#1b9e77", "tanh": "#7570b3"}
    for act, s in summary.items():
        x = np.arange(len(s["layers"]))
        for label, d, style, dx in (("equivalents", s["equivalents"], "-o", -0.05),
                                    ("independently trained", s["trained"], "--s", 0.05)):
            med = np.median(d, axis=0)
            ax1.errorbar(x + dx, med, yerr=[med - d.min(0), d.max(0) - med], fmt=style, capsize=3,
                         color=colours.get(act, "grey"), label=f"{act}: {label} ({len(d)})")
        ax1.set_xticks(x, s["layers"])
    ax1.set(ylabel=f"distance to θ*'s layer ({metric})", xlabel="layer",
            title="equivalents vs independently trained networks, layer by layer")
    ax1.legend(fontsize=8)
    pos = 0
    ticks, names = [], []
    for act, s in summary.items():
        for label, r in (("equivalents", s["rho_equivalents"]), ("trained", s["rho_trained"])):
            r = np.asarray(r, float)
            ax2.scatter(np.full(len(r), pos) + np.random.default_rng(pos).uniform(-0.1, 0.1, len(r)), r, s=14,
                        color=colours.get(act, "grey"), alpha=0.8)  # jitter: cosmetic
            ticks.append(pos)
            names.append(f"{act}\n{label}")
            pos += 1
        ax2.axhline(s["rho_reference"], color=colours.get(act, "grey"), ls=":", lw=1, label=f"{act}: θ*")
    ax2.set_xticks(ticks, names)
    ax2.set(ylabel="Ricci coefficient ρ (per network)", title="Ricci flow coefficient of every network")
    ax2.legend(fontsize=8)
    fig.suptitle("Do functionally equivalent networks share their layer paths and Ricci curvature?")
    return fig


def figure_ricci_accuracy(table: dict, cut: float):
    """Ricci coefficient ρ against held-out accuracy, one point per trained network.

    table : "dataset", "depth", "width", "rho", "accuracy", "ok" (arrays, one entry per network);
    cut : the accuracy above which networks count as well trained (dashed line).  Left: every network,
    colour = data set, marker = depth.  Right: ρ by depth per data set."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5), constrained_layout=True)
    ok = np.asarray(table["ok"], bool) & np.isfinite(table["rho"])
    sets = list(dict.fromkeys(np.asarray(table["dataset"])[ok].tolist()))
    depths = sorted(set(np.asarray(table["depth"])[ok].tolist()))
    cmap = plt.get_cmap("tab10")
    markers = "osD^v<>p"
    for i, ds in enumerate(sets):
        for j, d in enumerate(depths):
            m = ok & (table["dataset"] == ds) & (table["depth"] == d)
            if m.any():
                ax1.scatter(table["accuracy"][m], table["rho"][m], color=cmap(i), marker=markers[j % len(markers)], s=30,
                            alpha=0.8, label=f"{ds}, {d} hidden layers")
        m = ok & (table["dataset"] == ds)
        ax2.scatter(table["depth"][m] + 0.08 * (i - len(sets) / 2), table["rho"][m], color=cmap(i), s=22, alpha=0.8,
                    label=ds)
    ax1.axvline(cut, color="k", ls="--", lw=1, label=f"well trained: accuracy ≥ {cut}")
    ax1.axhline(0, color="0.6", lw=0.8)
    ax1.set(xlabel="held-out accuracy", ylabel="Ricci coefficient ρ (negative: Ricci-flow-like)",
            title="ρ against accuracy, one point per trained network")
    ax1.legend(fontsize=7, ncol=2)
    ax2.axhline(0, color="0.6", lw=0.8)
    ax2.set(xlabel="hidden layers", xticks=depths, ylabel="ρ", title="ρ by depth")
    ax2.legend(fontsize=8)
    fig.suptitle("Deep learning as Ricci flow? (Forman curvature, k = 10, kNN ∪ MST, forward pairing)")
    return fig


def figure_layer_paths_study(rows: list[dict], embedding: np.ndarray, owner: list, metric: str):
    """Wider vs deeper networks as paths, over training.

    rows : per network {"arch", "epochs", "seed", "length", "straightness", "to_labels" [L], "layers"};
    embedding : [K, 2] MDS coordinates of every (network, layer) point; owner : per point (network row, layer).
    Left: path length by epochs.  Middle: distance of each layer to the labels after the longest training.
    Right: the MDS map, each network's layers joined in order (lighter = fewer epochs)."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    colours = {"wide": "#1b9e77", "deep": "#7570b3"}
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    epochs = sorted({r["epochs"] for r in rows})
    ax = axes[0]
    for a in archs:
        for key, style in (("length", "-o"),):
            med = [np.median([r[key] for r in rows if r["arch"] == a and r["epochs"] == e]) for e in epochs]
            ax.plot(epochs, med, style, color=colours.get(a, "grey"), label=f"{a}: median path length")
            pts = [(r["epochs"], r[key]) for r in rows if r["arch"] == a]
            ax.scatter(*zip(*pts), s=10, color=colours.get(a, "grey"), alpha=0.5)
    ax.set(xscale="log", xlabel="training epochs", ylabel=f"path length ({metric})", title="path length over training")
    ax.legend(fontsize=8)
    ax = axes[1]
    for a in archs:
        final = [r for r in rows if r["arch"] == a and r["epochs"] == epochs[-1]]
        for r in final:
            ax.plot(np.arange(len(r["to_labels"])), r["to_labels"], "-o", ms=3, color=colours.get(a, "grey"), alpha=0.7,
                    label=f"{a} ({len(r['to_labels']) - 2} hidden layers)" if r is final[0] else None)
    ax.set(xlabel="layer (0 = input)", ylabel=f"distance to the one-hot labels ({metric})",
           title=f"progress toward the labels after {epochs[-1]} epochs")
    ax.legend(fontsize=8)
    ax = axes[2]
    for k, r in enumerate(rows):
        idx = [i for i, (m, _) in enumerate(owner) if m == k]
        shade = 0.25 + 0.75 * epochs.index(r["epochs"]) / max(len(epochs) - 1, 1)
        ax.plot(embedding[idx, 0], embedding[idx, 1], "-o", ms=3, lw=1, color=colours.get(r["arch"], "grey"), alpha=shade)
        ax.scatter(*embedding[idx[-1]], marker="s", s=18, color=colours.get(r["arch"], "grey"), alpha=shade)
    ax.set(xlabel="MDS 1", ylabel="MDS 2", title="all networks' layers (■ output; lighter: fewer epochs)")
    fig.suptitle("relu MLPs on digits: wide vs deep, as paths through representation space")
    return fig


def plot_run(run: RunData, outdir: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write every figure the run supports to ``outdir``; returns the written paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        fig = make(run)
        if fig is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=130)
            written.append(path)
        plt.close(fig)
    return written
