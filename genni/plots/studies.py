"""Figures the experiment scripts draw from their own tables (not from a run file)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def figure_functional_dimension(results: dict, inputs: str = "fresh N(0, I_n) draws"):
    """Functional dimension of relu networks at initialisation against the bound P − #hidden.

    results : (init, n, depth) -> {"rank": [k] functional dimensions over fresh inputs, "bound": P − #hidden,
    "rank_growth": k arrays [j, 2] of (m, rank), optionally "exact_rank" [k] and "exact_status" [k] (the
    functional dimension on the input box and its status)};  inputs : what the m inputs of the rank growth
    are (the right panel's axis label).  With exact answers the left and middle panels use them: filled
    markers where every answer is certified, open ones where some are lower bounds only.  Left: share of
    networks at the bound by depth, one line per width (solid He, dashed PyTorch default).  Middle: the
    deficiency bound − rank of every network.  Right: the deficiency against the number of inputs m,
    every network of the first init."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    inits = sorted({k[0] for k in results})
    widths = sorted({k[1] for k in results})
    depths = sorted({k[2] for k in results})
    cmap = plt.get_cmap("viridis")
    styles = {"he": "-", "torch": "--"}
    exact = all("exact_status" in r and len(r["exact_status"]) and all(r["exact_status"]) for r in results.values())

    def rank(r):
        return np.asarray(r["exact_rank"] if exact else r["rank"], dtype=float)

    def certified(r):
        return (np.isin(r["exact_status"], ("certified at the bound", "certified deficit")) if exact
                else np.ones(len(r["rank"]), bool))

    ax = axes[0]
    for i, n in enumerate(widths):
        for init in inits:
            colour = cmap(i / max(len(widths) - 1, 1))
            share = [np.mean(rank(results[(init, n, d)]) >= results[(init, n, d)]["bound"]) for d in depths]
            whole = [certified(results[(init, n, d)]).all() for d in depths]
            ax.plot(depths, share, styles.get(init, ":"), color=colour,
                    label=f"n = {n}, {init} init" + ("" if all(whole) else " (open: lower bounds only)"))
            for d, v, ok in zip(depths, share, whole):
                ax.plot(d, v, "o", color=colour, markerfacecolor=colour if ok else "white")
    what = "exact, on the box" if exact else "over fresh inputs"
    ax.set(xlabel="depth (linear layers)", ylabel="share with functional dimension = P − #hidden", ylim=(-0.05, 1.05),
           xticks=depths, title=f"share at the bound ({what})")
    ax.legend(fontsize=8)
    ax = axes[1]
    labels, pos, opened = [], 0, set()
    for n in widths:
        for d in depths:
            for j, init in enumerate(inits):
                r = results[(init, n, d)]
                gap = r["bound"] - rank(r)
                ok = certified(r)
                x = pos + 0.35 * j + np.random.default_rng(pos).uniform(-0.08, 0.08, len(gap))  # jitter: cosmetic
                colour = "#1b9e77" if init == "he" else "#d95f02"
                ax.scatter(x[ok], np.maximum(gap[ok], 0) + 0.5, s=14, color=colour, alpha=0.8,
                           label=f"{init} init, certified" if pos == 0 else None)
                first_open = (~ok).any() and init not in opened
                ax.scatter(x[~ok], np.maximum(gap[~ok], 0) + 0.5, s=14, facecolors="white", edgecolors=colour,
                           label=f"{init} init, at most (the rank is a lower bound)" if first_open else None)
                if first_open:
                    opened.add(init)
            labels.append(f"n={n}\nd={d}")
            pos += 1
    ax.set(yscale="log", xticks=np.arange(len(labels)) + 0.17, xticklabels=labels,
           ylabel="bound − functional dimension + ½ (½: at the bound)",
           title=f"deficiency of every network ({what})")
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
    ax.set(xscale="log", yscale="log", xlabel=f"inputs m ({inputs})", ylabel="bound − rank + ½",
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


UNDERSPEC_GROUPS = {"class": ("#d95f02", "o", "members of θ*'s class (equivalents, teleports)"),
                    "copies": ("0.55", ".", "symmetry copies of θ* (rescaled / permuted)"),
                    "trained": ("#1b9e77", "s", "independently trained (other seeds)")}


def _strip(ax, x: float, values, colour, marker, filled: bool = True, label=None, width: float = 0.12) -> None:
    """One column of points at x (horizontal jitter from a fixed seed: cosmetic)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return
    jitter = np.random.default_rng(len(v)).uniform(-width, width, len(v))
    ax.scatter(x + jitter, v, s=16, marker=marker, alpha=0.75, label=label,
               color=colour if filled else "none", edgecolors=colour, linewidths=0.8)


def figure_underspecification(table: dict):
    """Sharpness, Hessian trace, off-data discrepancy and shifted accuracy within equivalence classes
    against independently trained networks.

    table : the experiment's columns, one entry per network state: ``case`` (text), ``kind`` (``reference``,
    ``copies``, ``class``, ``trained``), ``sharpness``, ``sharpness_canonical``, ``trace``,
    ``trace_canonical``, ``rel_far``, ``rel_shift``, ``acc_shift``, and the attribute-like entry
    ``shift`` (case -> how its data were shifted).  Panels: λ_max and tr H (raw: filled, at the
    canonical point of the orbit: open), the relative discrepancy to θ* on far and on shifted inputs,
    and accuracy on the shifted data; one column group per case, θ* as a black bar."""
    case, kind = np.asarray(table["case"]), np.asarray(table["kind"])
    cases = list(dict.fromkeys(case.tolist()))
    fig, axes = plt.subplots(1, 4, figsize=(20, 5.2), constrained_layout=True)
    offsets = {"class": -0.25, "copies": 0.0, "trained": 0.25}
    seen: set = set()

    def label(key: str) -> str | None:
        if key in seen:
            return None
        seen.add(key)
        return key

    for i, c in enumerate(cases):
        ref = (case == c) & (kind == "reference")
        for ax, col in ((axes[0], "sharpness"), (axes[1], "trace")):
            for k, (colour, marker, words) in UNDERSPEC_GROUPS.items():
                m = (case == c) & (kind == k)
                _strip(ax, i + offsets[k] - 0.06, table[col][m], colour, marker, True, label(f"{words}, raw"))
                if k != "copies":
                    _strip(ax, i + offsets[k] + 0.06, table[f"{col}_canonical"][m], colour, marker, False,
                           label(f"{words}, at the canonical point"))
            if ref.any():
                ax.hlines(table[col][ref], i - 0.4, i + 0.4, color="k", lw=1.5, label=label("θ*"))
        for k, dx in (("class", -0.15), ("trained", 0.15)):
            colour, marker, words = UNDERSPEC_GROUPS[k]
            m = (case == c) & (kind == k)
            _strip(axes[2], i + dx - 0.06, table["rel_far"][m], colour, marker, True, None, 0.05)
            _strip(axes[2], i + dx + 0.06, table["rel_shift"][m], colour, "^", False, None, 0.05)
            _strip(axes[3], i + dx, table["acc_shift"][m], colour, marker, True, None)
        if ref.any():
            axes[3].hlines(table["acc_shift"][ref], i - 0.4, i + 0.4, color="k", lw=1.5)
    shift = table.get("shift", {})
    names = [f"{c}\n{shift.get(c, '')}" for c in cases]
    for ax in axes:
        ax.set_xticks(range(len(cases)), names, fontsize=8)
    axes[0].set(yscale="log", ylabel="λ_max of the loss Hessian on the probe data",
                title="sharpness: within the class vs across seeds")
    axes[1].set(yscale="log", ylabel="trace of the loss Hessian", title="Hessian trace")
    axes[2].set(yscale="log", ylabel="mean‖f − f_θ*‖² / mean‖f_θ*‖²",
                title="discrepancy to θ* off the data\n(filled: far inputs, open ▲: shifted data)")
    axes[3].set(ylabel="accuracy on the shifted data", title="accuracy under the shift (θ*: black bar)")
    axes[0].legend(fontsize=7, loc="best")
    from matplotlib.lines import Line2D
    axes[2].legend(handles=[Line2D([], [], color=UNDERSPEC_GROUPS[k][0], marker=UNDERSPEC_GROUPS[k][1], ls="",
                                   label=UNDERSPEC_GROUPS[k][2]) for k in ("class", "trained")], fontsize=7)
    fig.suptitle("Underspecification: what the data leave free among networks with θ*'s function on the probe "
                 "inputs, against independently trained networks")
    return fig
