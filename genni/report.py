"""What a run file holds, as numbers: the summary behind ``genni inspect``."""

from __future__ import annotations

import numpy as np

from . import store

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


def _quantiles(x: np.ndarray) -> dict:
    if len(x) == 0:
        return {}
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES))}


def summarise(run: store.RunData) -> dict:
    """Headline numbers of a run: reference facts, element counts, discrepancy quantiles."""
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
        "probe": {"n_probe": int(len(run.X)), "n_heldout": int(len(run.X_heldout))},
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
            e[key] = _quantiles(eq[key])
        e["steps"] = _quantiles(eq["steps"].astype(float))
    return out


def format_text(summary: dict, tree: list[dict]) -> str:
    """A human-readable page: the file's tree, then the summary."""
    lines = [f"{summary['file']}  (genni {summary['genni_version']}, schema {summary['schema_version']}, "
             f"created {summary['created']})", ""]
    for entry in tree:
        depth = entry["path"].count("/") - 1
        label = entry["path"].rsplit("/", 1)[-1] + ("/" if entry["kind"] == "group" else "")
        shape = f"  {tuple(entry['shape'])} {entry['dtype']}" if entry["kind"] == "dataset" else ""
        lines.append(f"{'  ' * depth}{label}{shape}")
    a = summary["architecture"]
    r = summary["reference"]
    lines += ["", f"run '{summary['name']}', seed {summary['seed']}: {a['activation']} MLP {a['widths']}, "
                  f"P = {summary['n_params']} parameters"]
    acc = f", accuracy {r['accuracy']:.3f} on held-out labels" if r.get("accuracy") is not None else ""
    lines.append(f"reference: {r.get('source')}{acc}, output power {r.get('output_power', float('nan')):.4g}, "
                 f"dead units per hidden layer {r.get('dead_units')}")
    if r.get("degenerate"):
        lines.append("WARNING: the reference is nearly the zero function on the probe set; "
                     "'converged' elements need not be equivalent")
    p = summary["probe"]
    lines.append(f"probe: {p['n_probe']} inputs, held-out: {p['n_heldout']} inputs")
    e = summary["equivalents"]
    if not e["n_found"]:
        lines.append(f"equivalents: none stored yet (requested {e['n_requested']})")
        return "\n".join(lines)
    lines.append(f"equivalents: {e['n_found']} of {e['n_requested']} requested, {e['n_converged']} converged "
                 f"(probe discrepancy ≤ tol = {e['tol']:.3g}, method {e['method']})")
    lines.append("status: " + ", ".join(f"{k} {v}" for k, v in e["status"].items() if v))
    head = "                               " + "  ".join(f"{k:>9}" for k in e["discrepancy"])
    lines.append(head)
    for key in ("discrepancy", "discrepancy_heldout", "relative_discrepancy", "relative_discrepancy_heldout"):
        lines.append(f"  {key:<29}" + "  ".join(f"{v:9.2e}" for v in e[key].values()))
    lines.append(f"  {'steps':<29}" + "  ".join(f"{v:9.0f}" for v in e["steps"].values()))
    return "\n".join(lines)
