"""What a run file holds, as numbers: the summary behind ``genni inspect``."""

from __future__ import annotations

import numpy as np

from . import store
from .geometry.statistics import min_median_max, quantiles
from .models import describe

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


FAR_FIELDS = ("discrepancy_far", "relative_discrepancy_far")
"""Per element: the mean squared discrepancy on the far inputs (/probe/X_far), absolute and relative to the
reference's output power there; `identify` stores them."""


def summarise(run: store.RunData) -> dict:
    """Headline numbers of a run: reference facts, element counts, discrepancy quantiles (probe, held-out
    and, once `identify` has run, far inputs), verdict counts by name."""
    eq = run.equivalents
    codes = run.equivalents_attrs.get("status_codes", [])
    n = run.n_equivalents
    out = {
        "name": run.config.get("name"),
        "file": str(run.path),
        "genni_version": run.attrs.get("genni_version"),
        "schema_version": run.attrs.get("schema_version"),
        "created": run.attrs.get("created"),
        "seed": run.attrs.get("seed"),
        "architecture": run.architecture,
        "n_params": int(run.theta_ref.shape[0]),
        "reference": dict(run.reference),
        "probe": {"n_probe": int(len(run.X)), "n_heldout": int(len(run.X_heldout)),
                  "n_far": 0 if run.X_far is None else int(len(run.X_far)), "far_how": run.probe_attrs.get("far_how")},
        "equivalents": {
            "n_requested": run.equivalents_attrs.get("n_requested"),
            "n_found": n,
            "tol": run.equivalents_attrs.get("tol"),
            "method": run.equivalents_attrs.get("method"),
        },
    }
    if n:
        e = out["equivalents"]
        e["n_converged"] = int(eq["converged"].sum())
        e["status"] = {name: int((eq["status"] == i).sum()) for i, name in enumerate(codes)}
        for key in ("discrepancy", "discrepancy_heldout", "relative_discrepancy", "relative_discrepancy_heldout"):
            e[key] = quantiles(eq[key], QUANTILES)
        e["steps"] = quantiles(eq["steps"].astype(float), QUANTILES)
        for key in FAR_FIELDS:  # with or without verdicts (large models get far discrepancies only)
            if key in eq:
                e[key] = quantiles(eq[key], QUANTILES)
        if "verdict" in eq:
            names = run.equivalents_attrs.get("verdict_codes", [])
            e["verdicts"] = {name: int((eq["verdict"] == i).sum()) for i, name in enumerate(names)}
            e["distance_to_reference"] = quantiles(eq["distance_to_reference"], QUANTILES)
            if "relative_discrepancy_far" in eq:
                e["symmetry_threshold"] = quantiles(eq["symmetry_threshold"], QUANTILES)
                e["agreement_tolerance"] = run.equivalents_attrs.get("agreement_tolerance")
    if n and (eq["chain"] >= 0).any():
        w = eq["chain"] >= 0
        eps = run.equivalents_attrs.get("segment_epsilon")
        out["walks"] = {"chains": int(len(set(eq["chain"][w].tolist()))), "rows": int(w.sum()),
                        "max_step": int(eq["step"][w].max()), "segment_epsilon": eps,
                        "max_segment": float(np.nanmax(eq["segment_max"][w])),
                        "certified": int((eq["segment_max"][w] <= (eps if eps is not None else np.inf)).sum())}
    if run.teleports:
        out["teleports"] = {name: {k: t["attrs"].get(k) for k in ("objective", "goal", "start", "horizontal", "stopped",
                                                                  "accepted", "reason")}
                            | {"rows": int(len(t["rows"])), "start_value": float(t["values"][0]),
                               "final_value": float(t["values"][-1])}
                            for name, t in run.teleports.items()}
    if run.projections:
        out["projections"] = {name: {"shape": list(p["values"].shape), "filled": float(np.mean(~np.isnan(p["values"]))),
                                     "median_residual": float(np.median(p["residuals"]))}
                              for name, p in run.projections.items() if "values" in p}
    if run.layer_paths:
        out["layer_paths"] = {m: {"networks": int(p["attrs"]["n_networks"]), "layers": int(p["attrs"]["n_layers"]),
                                  "median_straightness": float(np.nanmedian(p["straightness"]))}
                              for m, p in run.layer_paths.items()}
    if run.ricci:
        out["ricci"] = {name: {"networks": int(r["attrs"]["n_networks"]), "reference_rho": float(r["rho"][0]),
                               "reference_reason": r["rho_reason"][0].decode(), "pooled_rho": float(r["attrs"]["pooled_rho"]),
                               "pooled_reason": str(r["attrs"]["pooled_reason"]), "pooled_n": int(r["attrs"]["pooled_n"])}
                        for name, r in run.ricci.items()}
    ident = run.identifiability
    if ident:
        out["identifiability"] = {k: ident[k].item() for k in ("rank", "expected_rank", "rank_tolerance")}
        out["identifiability"]["null_dim"] = (int(ident["null_basis"].shape[1]) if "null_basis" in ident
                                              else len(run.theta_ref) - int(ident["rank"]))
    if "certified_sup" in run.equivalents:
        u = run.equivalents["certified_sup"]
        rel = run.equivalents["certified_relative"]
        out["certified"] = {"elements": int(np.isfinite(u).sum()), "of": int(len(u)),
                            "sup": min_median_max(u[np.isfinite(u)]),
                            "median_relative": float(np.nanmedian(rel)) if np.isfinite(rel).any() else float("nan")}
    if run.exact:
        a = run.exact["attrs"]
        out["exact"] = {k: a[k] for k in ("rank", "bound", "status", "n_regions", "complete", "walk_status", "seconds",
                                          "gap", "domain")}
    return out


def format_exact(e: dict) -> str:
    """One line: the functional dimension on the box and what certifies it."""
    how = (f"complete enumeration of {e['n_regions']} linear regions" if e["complete"]
           else f"walk {e['walk_status']}")
    return (f"functional dimension on the box: {e['rank']} of bound {e['bound']}, {e['status']} ({how}, "
            f"{e['seconds']:.1f} s; singular-value gap {e['gap']:.2g}); box: {e['domain']}")


def format_text(summary: dict, tree: list[dict]) -> str:
    """A human-readable page: the file's tree, then the summary."""
    lines = [f"{summary['file']}  (genni {summary['genni_version']}, schema {summary['schema_version']}, "
             f"created {summary['created']})", ""]
    rows = []
    for entry in tree:
        depth = entry["path"].count("/") - 1
        label = "  " * depth + entry["path"].rsplit("/", 1)[-1] + ("/" if entry["kind"] == "group" else "")
        shape = str(tuple(entry["shape"])) if entry["kind"] == "dataset" else ""
        rows.append((label, shape, entry.get("dtype", "") if entry["kind"] == "dataset" else ""))
    w_label = max((len(r[0]) for r in rows if r[1]), default=0)
    w_shape = max((len(r[1]) for r in rows), default=0)
    for label, shape, dtype in rows:  # names, shapes and dtypes in columns
        lines.append(f"{label:<{w_label}}  {shape:>{w_shape}}  {dtype}".rstrip() if shape else label)
    a = summary["architecture"]
    r = summary["reference"]
    lines += ["", f"run '{summary['name']}', seed {summary['seed']}: {describe(a)}, "
                  f"P = {summary['n_params']} parameters"]
    if a.get("memory") is not None:
        lines.append(f"model held in memory only: {a.get('in_memory') or 'the file cannot rebuild it'}")
    acc = f", accuracy {r['accuracy']:.3f} on held-out labels" if r.get("accuracy") is not None else ""
    lines.append(f"reference: {r.get('source')}{acc}, output power {r.get('output_power', float('nan')):.4g}, "
                 f"dead units per hidden layer {r.get('dead_units')}")
    if r.get("degenerate"):
        lines.append("WARNING: the reference is nearly the zero function on the probe set; "
                     "'converged' elements need not be equivalent")
    p = summary["probe"]
    far = f", far: {p['n_far']} inputs ({p['far_how']})" if p.get("n_far") else \
        ", far: none yet (genni identify adds them)"
    lines.append(f"probe: {p['n_probe']} inputs, held-out: {p['n_heldout']} inputs{far}")
    e = summary["equivalents"]
    if not e["n_found"]:
        lines.append(f"equivalents: none stored yet (requested {e['n_requested']})")
        return "\n".join(lines)
    lines.append(f"equivalents: {e['n_found']} of {e['n_requested']} requested, {e['n_converged']} converged "
                 f"(probe discrepancy ≤ tol = {e['tol']:.3g}, method {e['method']})")
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in e["status"].items() if v))
    head = "                               " + "  ".join(f"{k:>9}" for k in e["discrepancy"])
    lines.append(head)
    for key in ("discrepancy", "discrepancy_heldout", "discrepancy_far", "relative_discrepancy",
                "relative_discrepancy_heldout", "relative_discrepancy_far", "distance_to_reference",
                "symmetry_threshold"):
        if key in e:
            lines.append(f"  {key:<29}" + "  ".join(f"{v:9.2e}" for v in e[key].values()))
    lines.append(f"  {'steps':<29}" + "  ".join(f"{v:9.0f}" for v in e["steps"].values()))
    far = any(k in e for k in FAR_FIELDS)
    if not far:
        lines.append(f"far discrepancies and verdicts: not yet made (genni identify measures every element on the "
                     f"{p['n_far']} far inputs)" if p.get("n_far") else "far discrepancies and verdicts: not yet made "
                     "(genni identify)")
    elif "verdicts" not in e:
        lines.append("verdicts: none (identify makes no per-element verdicts for a model this large; far "
                     "discrepancies above)")
    if "verdicts" in e:
        lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in e["verdicts"].items()))
        if e.get("agreement_tolerance") is not None:
            lines.append(f"  (agree = relative discrepancy ≤ {e['agreement_tolerance']:.2g}; symmetry_copy: agrees on "
                         "probe, held-out and far inputs and lies within its threshold; hidden_equivalent: agrees on all "
                         "three, no copy; data_equivalent: probe and held-out only; probe_only: probe only)")
        else:
            lines.append("  (verdicts from a genni without far inputs: re-run genni identify)")
    if "walks" in summary:
        w = summary["walks"]
        what = "walks and teleports" if "teleports" in summary else "walks"
        lines.append(f"{what}: {w['chains']} chains, {w['rows']} stored states (up to {w['max_step']} accepted steps), "
                     f"{w['certified']} of {w['rows']} segments certified ≤ ε = {w['segment_epsilon']} "
                     f"(largest {w['max_segment']:.2g})")
    for name, t in summary.get("teleports", {}).items():
        lines.append(f"teleport {name}: {t['goal']} {t['objective']} from element {t['start']} "
                     f"({'horizontal' if t['horizontal'] else 'horizontal and vertical'}), {t['accepted']} accepted "
                     f"steps, {t['rows']} stored states, J {t['start_value']:.4g} → {t['final_value']:.4g}; "
                     f"{t['reason']}")
    for name, p in summary.get("projections", {}).items():
        lines.append(f"projection {name}: grid {' × '.join(map(str, p['shape']))}, {p['filled'] * 100:.0f}% evaluated, "
                     f"median element residual {p['median_residual']:.3g}")
    for m, p in summary.get("layer_paths", {}).items():
        lines.append(f"layer paths {m}: {p['networks']} networks × {p['layers']} layers, "
                     f"median straightness {p['median_straightness']:.3g}")
    for name, r in summary.get("ricci", {}).items():
        ref = f"{r['reference_rho']:+.3f}" if r["reference_reason"] == "ok" else f"undefined ({r['reference_reason']})"
        pooled = f"{r['pooled_rho']:+.3f} over {r['pooled_n']} pairs" if r["pooled_reason"] == "ok" else \
            f"undefined ({r['pooled_reason']})"
        lines.append(f"ricci {name}: {r['networks']} networks, reference ρ {ref}, pooled ρ {pooled}")
    if "identifiability" in summary:
        i = summary["identifiability"]
        lines.append(f"functional dimension: rank(J) = {i['rank']} (bound {i['expected_rank']}), "
                     f"null space dim {i['null_dim']}")
    if "exact" in summary:
        lines.append(format_exact(summary["exact"]))
    if "certified" in summary:
        c = summary["certified"]
        sup = c["sup"]
        lines.append(f"certified sup-norm discrepancy on the box: {c['elements']} of {c['of']} elements, U "
                     + (f"{sup['min']:.2g} … {sup['median']:.2g} … {sup['max']:.2g}" if sup else "—")
                     + f" (median K·U²/output power {c['median_relative']:.2g})")
    return "\n".join(lines)


VERDICT_LABELS = {"symmetry_copy": "symmetry copies", "hidden_equivalent": "hidden equivalents",
                  "data_equivalent": "data-equivalents", "probe_only": "probe-only", "not_converged": "not converged",
                  "certified_equivalent": "certified equivalents"}


def _q(d: dict) -> str:
    return f"{d['min']:.1e} … {d['median']:.1e} … {d['max']:.1e}" if d else "—"


def format_find(info: dict) -> str:
    """The headline of `genni find`."""
    return f"{info['n_new']} new elements; {info['n_total']} stored in {info['path']}"


def format_identify(info: dict) -> str:
    """The headline of `genni identify`: verdict counts with what each rests on, then the functional dimension."""
    if info.get("method") == "randomized":  # large P: no SVD, no verdicts
        return (f"functional dimension at the reference: rank(J) = {info['rank']:,} of P = {info['n_params']:,} "
                f"(bound {info['expected_rank']:,}); from {info['products']} J·v products (randomized range finder): "
                f"every missed direction has σ ≤ {info['rank_error_bound']:.2g} (tolerance {info['rank_tolerance']:.2g})"
                f"\nno per-element verdicts at this P ({info['n_elements']} elements): they need J's right singular "
                "vectors")
    v = info["verdicts"]
    width = max(len(lab) for lab in VERDICT_LABELS.values())
    lines = [f"{info['n_elements']} elements; verdicts, and the inputs each rests on:"]
    for name, label in VERDICT_LABELS.items():
        lines.append(f"  {v.get(name, 0):6d}  {label:<{width}}  {info['meaning'][name]}")
    lines += [
        f"  agree (held-out, far): relative discrepancy ≤ {info['agreement_tolerance']:.2g} = max({info['agree_tol']:g}, "
        "100·tol/output power), or the search's own error propagated (ρ ≤ 0.5)",
        f"  far inputs: {info['n_far']}, {info['far_how']}",
        f"  symmetry copy: copy score ≤ 1, i.e. aligned displacement seen by J ≤ τ = {info['copy_factor']:g}·√(nL)/(σ_r‖θ*‖) "
        f"with σ_r = {info['sigma_r']:.3g} (median τ {info['median_threshold']:.2g}), unseen part second order only",
        f"  converged elements, min … median … max: relative far discrepancy {_q(info['relative_discrepancy_far'])}; "
        f"relative distance to θ* {_q(info['distance_to_reference'])}",
    ]
    kinds = ", ".join(k for k, ok in info["symmetries"].items() if ok)
    lines += [
        f"functional dimension at the reference: rank(J) = {info['rank']} of P = {info['n_params']} "
        f"(bound {info['expected_rank']} for the architecture; null space dim {info['null_dim']}; "
        f"singular-value gap {info['gap']:.2g} at tolerance {info['rank_tolerance']:.2g})",
        f"exact symmetries of the architecture: {kinds}",
    ]
    if "rank_growth_rank" in info:
        how = ("saturated: unchanged over the last 8× inputs" if info["rank_growth_saturated"]
               else "still changing: probe-limited")
        lines.append(f"rank over fresh inputs: {info['rank_growth_rank']} at m = {info['rank_growth_inputs']} ({how})")
    if info["rank"] < info["expected_rank"]:
        lines.append("  rank below the bound: dead or always-active units, or too few probe points, "
                     "make more directions functionally invisible")
    if info.get("exact"):
        e = info["exact"]
        if "rank" in e:
            lines.append(format_exact(e))
        if "certified" in e:
            c = e["certified"]
            lines.append(f"certified on the box: {c['elements']} of {info['n_elements']} elements have a proven sup-norm "
                         f"discrepancy (median bound on the relative discrepancy K·U²/power {c['median_relative']:.2g}); "
                         f"{c['certified_equivalent']} proved equivalent on all of it")
    return "\n".join(lines)


def format_walk(info: dict) -> str:
    """The headline of `genni walk`."""
    refused = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["refused"].items())
    stopped = {s: info["stopped"].count(s) for s in dict.fromkeys(info["stopped"])}
    return (f"walk: {len(info['chains'])} chain(s), {sum(info['accepted'])} accepted steps, {info['rows_added']} rows stored "
            f"in {info['seconds']:.1f} s; refused: {refused}; steps that changed a relu pattern: {info['pattern_changes']}; "
            f"early stores: {info['forced_stores']}\n"
            f"  farthest from θ*: {info['max_raw_distance']:.1%} of ‖θ*‖ (raw; `genni identify` gives it modulo the "
            f"exact symmetries); largest segment certificate {info['max_segment']:.2g} (ε = {info['segment_epsilon']:g}); "
            f"chains: " + ", ".join(f"{v} {k}" for k, v in stopped.items()))


def format_teleport(info: dict) -> str:
    """The headline of `genni teleport`: where J went, raw and at the canonical points, and why it stopped."""
    where = "horizontal" if info["horizontal"] else "horizontal and vertical"
    start = "θ*" if info["start"] == 0 else f"element {info['start']}"
    rows = info["rows"]
    stored = f"elements {rows[0]}–{rows[-1]}" if len(rows) > 1 else (f"element {rows[0]}" if rows else "nothing")
    refused = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["refused"].items() if v) or "none"
    return (f"teleport {info['group']}: {info['goal']} {info['objective']} ({info['formula']}; on "
            f"{info['evaluated_on']}) from {start} along {where} directions\n"
            f"  J {info['start_value']:.6g} → {info['final_value']:.6g} ({info['change']:+.3g}); at the canonical "
            f"points {info['canonical_values'][0]:.6g} → {info['canonical_values'][-1]:.6g} "
            f"({info['canonical_change']:+.3g})\n"
            f"  {info['accepted']} accepted steps ({info['escapes']} second-order), refused: {refused}; stored "
            f"{stored}" + (f"; farthest {info['max_raw_distance']:.1%} of ‖θ*‖; largest segment certificate "
                           f"{info['max_segment']:.2g} (ε = {info['segment_epsilon']:g})" if rows else "")
            + f"; {info['seconds']:.1f} s\n"
            f"  stopped: {info['reason']}")


def format_connect(info: dict) -> str:
    """The headline of `genni connect`."""
    if info["certified"]:
        return (f"connected {info['from']} → {info['to']}: {info['vertices']} vertices, every straight segment ≤ ε = "
                f"{info['epsilon']:g} (largest {info['max_segment']:.2g}); path length {info['length']:.1%} of ‖θ*‖; "
                f"{info['method']}")
    return f"no certified path {info['from']} → {info['to']}: {info['reason']} ({info['method']})"


def format_project(info: dict) -> str:
    """The headline of `genni project`."""
    line = (f"projection '{info['name']}': {info['dims']}-D {info['kind']} subspace through θ*, "
            f"{info['resolution']}^{info['dims']} grid, ε = {info['epsilon']:.3g}; elements {info['elements']}, "
            f"median residual (distance to the subspace) {info['median_residual']:.3g}")
    if "n_paths" in info:
        line += (f"\npaths θ* → {info['n_paths']} elements: largest straight-path barrier {info['max_linear_barrier']:.3g}, "
                 f"largest Bézier barrier {info['max_bezier_barrier']:.3g}; {info['components']} connected "
                 f"component(s) of the 'straight path stays below ε' graph (an upper bound on separation only)"
                 + (f"\ncertified: {info['certified_with_reference']} of {info['n_elements']} elements joined to θ* by "
                    f"certified segments (walks, genni connect; ε = {info['certified_epsilon']:g})"
                    if info["certified_epsilon"] == info["certified_epsilon"] else
                    "\ncertified: none (no walk or genni connect certificates in this file)"))
    return line


def format_paths(info: dict) -> str:
    """The headline of `genni paths`."""
    spread = ", ".join(f"{v:.3g}" for v in info["max_spread_per_layer"])
    line = (f"layer paths under {info['metric']}: {info['n_networks']} networks × {info['n_layers']} layers; "
            f"median length {info['median_length']:.3g}, median straightness {info['median_straightness']:.3g}; "
            f"largest distance between networks at each layer: {spread}")
    names = info.get("layers") or [str(l) for l in range(info["n_layers"])]
    if info.get("reference_geodesic_t"):
        pos = ", ".join(f"{n} {t:.2f}" for n, t in zip(names, info["reference_geodesic_t"]))
        line += f"\n  reference: position along the input→output geodesic (0 = input, 1 = output): {pos}"
    if info.get("reference_to_labels"):
        dist = ", ".join(f"{n} {d:.3g}" for n, d in zip(names, info["reference_to_labels"]))
        line += f"\n  reference: distance to the one-hot labels by layer: {dist}"
    if info.get("warning"):
        line += f"\n  warning: {info['warning']}"
    return line


def _coef(c: dict) -> str:
    if c["reason"] != "ok":
        return f"undefined ({c['reason']}, {c['n']} pairs)"
    lo, hi = c["ci"]
    return f"{c['rho']:+.3f} [{lo:+.2f}, {hi:+.2f}] over {c['n']} pairs"


def format_ricci(info: dict) -> str:
    """The headline of `genni ricci`."""
    r = info["reference"]
    sign = "negative" if info["flow_sign"] < 0 else "positive"
    comps = ", ".join(f"{n} {c}" for n, c in zip(info["layers"], r["components"]))
    return (f"ricci '{info['name']}': {info['curvature']} curvature of {info['mode']}-symmetrised kNN graphs "
            f"(k = {info['k']}, connectivity fix: {info['connectivity']}) on {info['n_inputs']} inputs, "
            f"layers {' → '.join(info['layers'])}, {info['n_networks']} network(s)\n"
            f"  reference ρ = {_coef(r)}; pooled ρ over {info['pooled']['networks']} networks = {_coef(info['pooled'])}; "
            f"ρ defined for {info['rho_defined']}/{info['n_networks']} networks (median {info['median_rho']:+.3f}); "
            f"{sign} ρ reads as Ricci-flow-like\n"
            f"  reference graph components by layer: {comps}")
