"""The run's own figures: discrepancy of the found elements, the probe inputs, identifiability, walks, teleports."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..store import RunData
from .common import run_title, wrap

_STATUS_COLOURS = {"converged": "#1b9e77", "stalled": "#d95f02", "max_steps": "#7570b3",
                   "diverged": "#e7298a", "dead_units": "#66a61e"}
_FLOOR = 1e-20  # discrepancies below this are drawn at this value on log axes


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
    fig.suptitle(wrap(run_title(run) + f"  (output power {power:.3g}; values below {_FLOOR:g} drawn at {_FLOOR:g})",
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
                    "probe_only": "#d95f02", "not_converged": "#999999", "certified_equivalent": "#66a61e"}
_VERDICT_INPUTS = {"symmetry_copy": "all, within τ", "hidden_equivalent": "probe, held-out,\nfar",
                   "data_equivalent": "probe,\nheld-out", "probe_only": "probe", "not_converged": "none",
                   "certified_equivalent": "probe, held-out,\nall of the box"}


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
    if "copy_score" in eq and "relative_discrepancy_far" in eq and "verdict" in eq and run.n_equivalents:
        _verdict_map(ax, run, names)
    elif "distance_to_reference" in eq and run.n_equivalents:  # verdicts without the far check or copy score
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
    fig.suptitle(run_title(run) + "  — identifiability")
    return fig


def _verdict_map(ax, run: RunData, names: list[str]) -> None:
    """Both checks behind a verdict, one point per element: far-input discrepancy (x) against the copy
    score (y: the share of the displacement from θ* that the residual does not explain)."""
    eq = run.equivalents
    far = np.maximum(eq["relative_discrepancy_far"], _FLOOR)
    score = np.clip(eq["copy_score"], 1e-6, 1e12)  # the stored score, clipped to the log axis
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
    power = run.reference.get("output_power", 1.0)
    tol_rel = run.equivalents_attrs.get("tol", np.nan) / power
    # the floor sits below the tolerance line, so a state under it is never drawn above it
    floor = min(_FLOOR, tol_rel * 1e-3) if np.isfinite(tol_rel) and tol_rel > 0 else _FLOOR
    for key, lab, mk, col in (("relative_discrepancy", "probe", "o", "#1b9e77"),
                              ("relative_discrepancy_heldout", "held-out", "^", "#d95f02"),
                              ("relative_discrepancy_far", "far (3× radius)", "s", "#7570b3")):
        if key in eq:
            ax.scatter(step, np.maximum(eq[key][walked], floor), s=14, marker=mk, color=col, alpha=0.8, label=lab)
    ax.axhline(tol_rel, color="k", ls=":", lw=1, label="tol / output power")
    ax.set(yscale="log", xlabel="accepted steps", ylabel=f"relative discrepancy (below {floor:.0e} drawn at it)",
           title="each stored state: where it still computes f_θ*")
    ax.legend(fontsize=8)
    fig.suptitle(run_title(run) + "  — walks along the equivalence class")
    return fig


def figure_teleport(run: RunData):
    """Teleports: the objective J by accepted step, at every accepted step (thin line), at each stored state
    (dots) and at the canonical point of each stored state's symmetry orbit (dashed, what is not a change of
    gauge); one panel per objective."""
    if not run.teleports:
        return None
    names = list(dict.fromkeys(t["attrs"]["objective"] for t in run.teleports.values()))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.4), constrained_layout=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, t) in enumerate(run.teleports.items()):
        a = t["attrs"]
        ax = axes[0, names.index(a["objective"])]
        col = colours[i % len(colours)]
        s0 = int(t["steps"][0])
        ax.plot(s0 + np.arange(len(t["trace_value"])), t["trace_value"], color=col, lw=0.8, alpha=0.6)
        where = "horizontal" if a["horizontal"] else "horizontal + vertical"
        ax.plot(t["steps"], t["values"], "o", color=col, ms=4,
                label=f"{name}: {a['goal']} from element {a['start']} ({where})")
        ax.plot(t["steps"], t["canonical_values"], "--", color=col, lw=1, label="  at the canonical points")
        ax.set(xlabel="accepted steps", ylabel=wrap(f"{a['objective']}: {a['formula']}", 50),
               title=wrap(f"{a['goal']} {a['objective']}: {str(a.get('reason', a['stopped'])).split(' (')[0].split(':')[0]}", 50))
    for ax in axes[0]:
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.legend(fontsize=7)
    fig.suptitle(run_title(run) + "  — teleports along the equivalence class")
    return fig
