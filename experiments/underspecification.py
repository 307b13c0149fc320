"""What do the data leave free?  Sharpness and off-data behaviour within an equivalence class.
(Dinh et al. 2017, "Sharp minima can generalize for deep nets"; D'Amour et al. 2020, "Underspecification
presents challenges for credibility in modern machine learning"; Zhao et al. 2022, "Symmetry teleportation")

Three references: the built-in default (2-16-16-1 relu trained on moons, experiments/moons_relu.toml),
the same architecture with tanh (experiments/moons_tanh.toml), and a 64-16-10 tanh network on the
shipped digits.  For each, the members of θ*'s class (f_θ = f_θ* on the probe inputs): equivalents
found by the search (walks for relu, random starts for tanh on moons, θ* moved by 1 % for digits) and
teleports from θ* (walks directed by an objective: sharpness down and up, the relative discrepancy on
far inputs and on a shifted copy of the held-out data up; with --full the Hessian trace down and up
too); symmetry copies of θ* (per-unit rescalings by factors in [1/e, e] and permutations: what
rescaling alone does); and networks of the same config trained from other seeds (a sweep).  On every
one: λ_max and trace of the loss Hessian on the probe inputs and their labels (the same loss value for
every member of the class), raw and at the canonical point of the orbit
(``genni.objectives.at_canonical``), the relative discrepancy to θ* on far inputs and on the shifted
data, and the accuracy on held-out and on shifted data.

    python experiments/underspecification.py [--full] [--tiny] [--workers 2]
Writes runs/underspecification/ (a run file per case, trained/ with the sweep, measures.h5),
figures/underspecification/ (underspecification.png, results.md); --full: runs/underspecification_full/,
figures/underspecification_full/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import genni
from genni import config, data, objectives, plots, store, sweep, train
from genni.models import MLP
from genni.stages import calls

ROOT = Path(__file__).resolve().parents[1]
NAME = "underspecification"
ON_CLASS = 1e-6  # relative discrepancy on the probe inputs below which a state counts as a member of the class
TELEPORTS = (("sharpness", "min"), ("sharpness", "max"), ("far", "max"), ("shift", "max"))
FULL_TELEPORTS = TELEPORTS + (("trace", "min"), ("trace", "max"))
CLAIMS = ("Dinh et al. (2017): sharpness is not a property of the function: reparametrising a relu network changes it "
          "at will.  D'Amour et al. (2020): networks that agree on the training distribution can disagree under a "
          "shift of it.  Zhao et al. (2022): teleporting along the class changes curvature while the loss stays.")


def cases(size: str) -> list[dict]:
    """Each case's raw config and its shift.  size: tiny | default | full."""
    tiny, full = size == "tiny", size == "full"
    n = 2 if tiny else (32 if full else 8)
    relu = config.load(ROOT / "experiments" / "moons_relu.toml")
    tanh = config.load(ROOT / "experiments" / "moons_tanh.toml")
    out = []
    for label, cfg, search in (("relu moons", relu, {"init": "walk", "chains": 2, "thin": 2 if tiny else 5}),
                               ("tanh moons", tanh, {"init": "random"})):
        raw = {"name": f"{NAME}_{cfg['model']['activation']}", "seed": 0,
               "data": {"dataset": "moons", "n_probe": cfg["data"]["n_probe"], "n_heldout": cfg["data"]["n_heldout"]},
               "model": {"widths": list(cfg["model"]["widths"]), "activation": cfg["model"]["activation"]},
               "reference": {"source": "train", "weight_decay": cfg["reference"]["weight_decay"]},
               "search": {"n": n, **search}}
        if tiny:
            raw["data"].update(n_probe=64, n_heldout=64, n_far=256)
            raw["model"]["widths"] = [2, 8, 8, 1]
            raw["reference"]["epochs"] = 200
        out.append({"label": label, "raw": raw, "shift": {"rotate": 30.0}, "shift_words": "rotated 30°"})
    digits = {"name": f"{NAME}_digits", "seed": 0,
              "data": {"dataset": "digits", "n_probe": 48 if tiny else 100, "n_heldout": 100 if tiny else 300,
                       "n_far": 256 if tiny else 1024},
              "model": {"widths": [64, 8, 10] if tiny else [64, 16, 10], "activation": "tanh"},
              "reference": {"source": "train", "weight_decay": 1e-3, "epochs": 200 if tiny else 2000},
              # random starts stall here for minutes (1,210 parameters, 1,000 residuals); θ* moved by 1 % converges
              "search": {"n": 16 if full else (2 if tiny else 4), "init": "perturb", "init_scale": 0.01}}
    out.append({"label": "tanh digits", "raw": digits, "shift": {"noise": 1.0}, "shift_words": "noise σ = 1"})
    return out


def trained_sweep(folder: Path, items: list[dict], seeds: int) -> Path:
    """One sweep (stage train) over every case's config × reference seeds 1 … seeds: the same data (the
    cases' data seed 0) and training, other initialisations."""
    keys = ["data.dataset", "data.n_probe", "data.n_heldout", "model.widths", "model.activation", "reference.epochs"]
    combos = []
    for c in items:
        r = config.resolve(c["raw"])
        combos.append([r["data"]["dataset"], r["data"]["n_probe"], r["data"]["n_heldout"], r["model"]["widths"],
                       r["model"]["activation"], r["reference"]["epochs"]])
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "sweep.toml"
    p.write_text("\n".join([
        'stages = ["train"]', "[base]", f'name = "{NAME}_trained"', "seed = 0",
        "[base.data]", 'dataset = "moons"', "n_probe = 64", "n_heldout = 64", "n_far = 64",
        "[base.model]", 'activation = "relu"', "[base.reference]", 'source = "train"', "weight_decay = 1e-3",
        "[base.search]", "n = 1", "[grid]", f'"{", ".join(keys)}" = {json.dumps(combos)}',
        f'"reference.seed" = {json.dumps(list(range(1, seeds + 1)))}']) + "\n")
    return p


def measure(model, run, thetas: np.ndarray, objs: dict, X_shift, y_shift) -> dict:
    """Every column of the table for the networks ``thetas`` [N, P] (library calls, one per quantity)."""
    out = {}
    for col in ("sharpness", "trace"):
        out[col] = objectives.evaluate(objs[col], thetas)
        out[f"{col}_canonical"] = objectives.evaluate(objs[col], thetas, model=model, canonical=True)
    for col in ("probe", "far", "shift"):
        out[f"rel_{col}"] = objectives.evaluate(objs[col], thetas)
    out["acc_shift"] = np.array([train.accuracy(model, t, X_shift, y_shift) for t in thetas])
    out["acc_heldout"] = np.array([train.accuracy(model, t, run.X_heldout, run.labels_heldout) for t in thetas])
    return out


def orders(v: np.ndarray) -> float:
    """log10(max / min) of the finite positive values (NaN when there are fewer than two)."""
    v = np.asarray(v, float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.log10(v.max() / v.min())) if len(v) > 1 else float("nan")


def span(v) -> str:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return f"{v.min():.3g} … {v.max():.3g}" if len(v) else "–"


def summarise(table: dict, c: str) -> dict:
    """The numbers one case's answer rests on, from the table."""
    case, kind = np.asarray(table["case"]), np.asarray(table["kind"])
    m = {k: (case == c) & (kind == k) for k in ("reference", "class", "copies", "trained")}
    m["class"] = m["class"] | m["reference"]  # θ* is a member of its own class
    g = lambda col, k: np.asarray(table[col], float)[m[k]]  # noqa: E731
    s = {"n_class": int(m["class"].sum()), "n_trained": int(m["trained"].sum()), "n_copies": int(m["copies"].sum())}
    for col in ("sharpness", "trace"):
        s[col] = {"ref": float(g(col, "reference")[0]),
                  "class": g(col, "class"), "class_canonical": g(f"{col}_canonical", "class"),
                  "copies": g(col, "copies"), "trained": g(col, "trained"),
                  "trained_canonical": g(f"{col}_canonical", "trained")}
        for k in ("class", "class_canonical", "copies", "trained", "trained_canonical"):
            s[col][f"orders_{k}"] = orders(s[col][k])
    for col in ("rel_far", "rel_shift", "acc_shift", "acc_heldout"):
        s[col] = {k: g(col, k) for k in ("reference", "class", "trained")}
    return s


def answer(c: str, s: dict, shift: str) -> str:
    """One case's answer in words, with its numbers."""
    sh, tr = s["sharpness"], s["trace"]
    raw = lambda d: orders(np.concatenate([d["class"], d["copies"]]))  # noqa: E731 - the class holds θ*'s orbit
    acc = s["acc_shift"]
    a0 = float(acc["reference"][0])
    cl, tn = acc["class"], acc["trained"]
    return (f"**{c}** ({s['n_class']} members of θ*'s class, θ* among them; {s['n_copies']} symmetry copies; "
            f"{s['n_trained']} independently trained networks).  λ_max within the class spans {raw(sh):.2f} orders of "
            f"magnitude raw, of which rescaling alone (symmetry copies of θ*, per-unit factors in [1/e, e]) gives "
            f"{sh['orders_copies']:.2f}, and {sh['orders_class_canonical']:.2f} at the canonical points "
            f"({span(sh['class_canonical'])}; θ*: {sh['ref']:.3g}); across trained seeds it spans "
            f"{sh['orders_trained']:.2f} raw, {sh['orders_trained_canonical']:.2f} canonical ({span(sh['trained'])}).  "
            f"tr H: {raw(tr):.2f} orders raw within the class (rescaling alone {tr['orders_copies']:.2f}), "
            f"{tr['orders_class_canonical']:.2f} canonical; seeds {tr['orders_trained']:.2f}.  Off the data, "
            f"members of the class reach a relative discrepancy to θ* of {np.nanmax(s['rel_far']['class']):.3g} on far "
            f"inputs and {np.nanmax(s['rel_shift']['class']):.3g} on the shifted data ({shift}), against a median of "
            f"{np.nanmedian(s['rel_far']['trained']):.3g} and {np.nanmedian(s['rel_shift']['trained']):.3g} for "
            f"trained seeds; accuracy on the shifted data: θ* {a0:.3f}, members of the class {span(cl)} (range "
            f"{np.ptp(cl):.3f}), trained seeds {span(tn)} (range {np.ptp(tn):.3f}).")


def verdicts(summaries: dict, tele: dict) -> list[str]:
    """Each claim's verdict at the scale run, from the cases' numbers."""
    dinh, damour, zhao = [], [], []
    for c, s in summaries.items():
        sh, acc = s["sharpness"], s["acc_shift"]
        within = orders(np.concatenate([sh["class"], sh["copies"]]))
        dinh.append((c, within, sh["orders_copies"], sh["orders_class_canonical"], sh["orders_trained"]))
        damour.append((c, float(np.ptp(acc["class"])), float(np.ptp(acc["trained"]))))
        t = tele.get(c, {})
        moves = [100 * (t[k]["best_value"] / t[k]["start_value"] - 1) for k in ("sharpness min", "sharpness max") if k in t]
        if moves:
            zhao.append(f"{c} {' … '.join(f'{m:+.0f} %' for m in moves)}")
    dinh_holds = [c for c, w, _, _, tr in dinh if w > tr]
    amour_holds = [c for c, cl, tr in damour if cl > tr]
    return [
        "## Does each claim hold at this scale?", "",
        "- Dinh et al. (sharpness is not a function of the function): "
        + ("holds" if dinh_holds else "not seen") + ": λ_max within the class against trained seeds, orders of "
        "magnitude (within the class raw / rescaling alone / modulo the symmetries; seeds): "
        + "; ".join(f"{c} {w:.2f} / {cp:.2f} / {cc:.2f} vs seeds {tr:.2f}" for c, w, cp, cc, tr in dinh)
        + (f".  The class spans more than the seeds in: {', '.join(dinh_holds)}." if dinh_holds else "."),
        "- D'Amour et al. (equal on the data, unequal under a shift): accuracy on the shifted data, range within the "
        "class against the seeds' range: " + "; ".join(f"{c} {cl:.3f} vs {tr:.3f}" for c, cl, tr in damour)
        + (f".  Holds in: {', '.join(amour_holds)}" if amour_holds else ".  Not seen in any case")
        + (f"; not in: {', '.join(c for c, _, _ in damour if c not in amour_holds)}."
           if amour_holds and len(amour_holds) < len(damour) else "."),
        "- Zhao et al. (teleports change the curvature at a fixed loss): λ_max from θ* to the teleports' best, down "
        "and up: " + "; ".join(zhao) + ".", ""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="32 equivalents, 32 trained seeds and 200-step teleports")
    ap.add_argument("--tiny", action="store_true", help="smoke test sizes")
    sweep.cluster_arguments(ap)
    ap.add_argument("--threads", type=int, default=1, help="torch threads here (default 1: the products are small, "
                    "and a second thread costs more than it gives on a busy machine)")
    ap.add_argument("--root", default=str(ROOT))
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    size = "full" if args.full else ("tiny" if args.tiny else "default")
    # trained seeds, teleport steps (moons, digits), stored every thin-th, symmetry copies of θ*
    seeds, steps, thin, copies = {"tiny": (2, (2, 2), 1, 4), "default": (6, (20, 10), 5, 16),
                                  "full": (32, (200, 100), 10, 64)}[size]
    teleports_asked = FULL_TELEPORTS if size == "full" else TELEPORTS
    root = Path(args.root)
    folder = NAME + ("_full" if args.full else "")  # the full scale beside the default, not over it
    runs, figs = root / "runs" / folder, root / "figures" / folder
    runs.mkdir(parents=True, exist_ok=True)
    items = cases(size)
    sw = sweep.run_sweep(trained_sweep(runs / "trained", items, seeds), runs / "trained", workers=args.workers,
                         scheduler=args.scheduler)
    cols_t, _ = store.read_table(runs / "trained" / "sweep.h5")
    columns: dict = {}
    teleports = {}

    def add(label: str, kind: str, source: str, values: dict) -> None:
        n = len(values["sharpness"])
        for key, v in (("case", [label] * n), ("kind", [kind] * n), ("source", [source] * n), *values.items()):
            columns.setdefault(key, []).extend(list(v))

    for c in items:
        cfg = config.resolve(c["raw"])
        path = runs / f"{cfg['name'].removeprefix(NAME + '_')}.h5"
        path.unlink(missing_ok=True)  # a fresh file: teleports add rows, and a rerun must not count old ones
        genni.find(cfg, path)
        run = store.load_run(path)
        model = MLP.from_dict(run.architecture)
        X_shift = data.shift_inputs(run.X_heldout, **c["shift"], seed=1)
        y_shift = run.labels_heldout
        objs = {"sharpness": objectives.make("sharpness", model, X=run.X, labels=run.labels),
                "trace": objectives.make("hessian_trace", model, X=run.X, labels=run.labels, probes="basis"),
                "probe": objectives.make("relative_discrepancy", model, theta_ref=run.theta_ref, X=run.X),
                "far": objectives.make("relative_discrepancy", model, theta_ref=run.theta_ref, X=run.X_far),
                "shift": objectives.make("relative_discrepancy", model, theta_ref=run.theta_ref, X=X_shift)}
        teleports[c["label"]] = {}
        n_steps = steps[cfg["data"]["dataset"] == "digits"]
        for what, goal in teleports_asked:
            res = calls.teleport(path, objective=objs[what], goal=goal, start=0, steps=n_steps, thin=thin)
            teleports[c["label"]][f"{what} {goal}"] = {k: res[k] for k in ("rows", "start_value", "best_value",
                                                                           "reason", "accepted", "max_segment")}
        run = store.load_run(path)  # the teleports' states are rows of /equivalents
        eq = run.equivalents
        add(c["label"], "reference", "θ*", measure(model, run, run.theta_ref[None], objs, X_shift, y_shift))
        group = model.symmetry.sample(copies, np.random.default_rng(0), log_scale=1.0)
        thetas = np.stack([model.symmetry.act(run.theta_ref, g) for g in group])
        add(c["label"], "copies", "symmetry copies of θ*", measure(model, run, thetas, objs, X_shift, y_shift))
        tele_rows = {int(r) for t in teleports[c["label"]].values() for r in t["rows"]}
        for source, rows in (("search", [i for i in range(run.n_equivalents) if i + 1 not in tele_rows]),
                             ("teleport", sorted(r - 1 for r in tele_rows if r > 0))):
            if rows:
                add(c["label"], "class", source, measure(model, run, eq["theta"][rows], objs, X_shift, y_shift))
        key = json.dumps([cfg["data"]["dataset"], cfg["data"]["n_probe"], cfg["data"]["n_heldout"],
                          cfg["model"]["widths"], cfg["model"]["activation"], cfg["reference"]["epochs"]])
        files = [f for f, st, k in zip(cols_t["file"], cols_t["status"], cols_t[next(k for k in cols_t if "," in k)])
                 if st == "done" and k == key]
        thetas = np.stack([store.load_run(runs / "trained" / f).theta_ref for f in files])
        add(c["label"], "trained", "other seeds", measure(model, run, thetas, objs, X_shift, y_shift))
    # members of the class only where they agree with θ* on the probe inputs
    rel = np.asarray(columns["rel_probe"], float)
    off = (np.asarray(columns["kind"]) == "class") & ~(rel <= ON_CLASS)
    columns["kind"] = ["class (off)" if o else k for k, o in zip(columns["kind"], off)]
    arrays = {k: (list(map(str, v)) if isinstance(v[0], str) else np.asarray(v, float)) for k, v in columns.items()}
    attrs = {"shift": json.dumps({c["label"]: c["shift_words"] for c in items}), "size": size, "seeds": seeds,
             "steps": " and ".join(map(str, steps)), "thin": thin,
             "teleported": ", ".join(f"{w} {g}" for w, g in teleports_asked),
             "teleports": json.dumps(teleports, default=lambda o: np.asarray(o).tolist()),
             "on_class": ON_CLASS, "failed_trained": sw["failed"]}
    store.write_table(runs / "measures.h5", arrays, attrs)

    # everything below reads the table it wrote
    table, attrs = store.read_table(runs / "measures.h5")
    table = {k: (np.asarray(v) if k in ("case", "kind", "source") else np.asarray(v, float)) for k, v in table.items()}
    shift = json.loads(attrs["shift"])
    figs.mkdir(parents=True, exist_ok=True)
    plots.figure_underspecification({**table, "shift": shift}).savefig(figs / "underspecification.png", dpi=130)
    tele = json.loads(attrs["teleports"])
    lines = [f"# {NAME}", "", CLAIMS, "",
             f"Scale ({attrs['size']}): {attrs['seeds']} trained seeds per case; teleports from θ* of {attrs['steps']} "
             f"steps (moons, digits; every {attrs['thin']}th state stored): {attrs['teleported']}; members of the "
             f"class: relative discrepancy on the probe ≤ {ON_CLASS:g}; λ_max, tr H: cross-entropy loss on the probe "
             "inputs and labels (tr H exact, P Hessian-vector products); canonical: `genni.objectives.at_canonical`.",
             "",
             "| case | networks | λ_max [min, max] | orders: raw / canonical | tr H [min, max] | orders: raw / canonical "
             "| rel. discrepancy far, max | shifted, max | accuracy held-out | accuracy shifted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    summaries = {}
    for c in dict.fromkeys(table["case"].tolist()):
        s = summaries[c] = summarise(table, c)
        ref = (table["case"] == c) & (table["kind"] == "reference")
        for k, words in (("reference", "θ*"), ("copies", f"{s['n_copies']} symmetry copies of θ*"),
                         ("class", f"{s['n_class']} members of the class (θ* among them)"),
                         ("trained", f"{s['n_trained']} trained seeds")):
            m = ((table["case"] == c) & (table["kind"] == k)) | (ref if k == "class" else False)
            cells = []
            for col in ("sharpness", "trace"):
                v = table[col][m]
                o = ("–" if k == "reference" else f"{orders(v):.2f} / –" if k == "copies" else
                     f"{orders(v):.2f} / {orders(table[col + '_canonical'][m]):.2f}")
                cells += [span(v), o]
            for col in ("rel_far", "rel_shift"):
                cells.append("–" if k in ("reference", "copies") else f"{np.nanmax(table[col][m]):.3g}")
            cells += [span(table["acc_heldout"][m]), span(table["acc_shift"][m])]
            lines.append(f"| {c} ({shift[c]}) | {words} | " + " | ".join(cells) + " |")
    lines += ["", "Teleports (objective goal: start → best value, steps accepted, why it stopped):", ""]
    for c, ts in tele.items():
        lines.append(f"- {c}: " + "; ".join(f"{k}: {t['start_value']:.3g} → {t['best_value']:.3g} "
                                            f"({t['accepted']} steps, {t['reason']})" for k, t in ts.items()))
    lines += ["", "## Answers", ""]
    lines += [answer(c, s, shift[c]) + "\n" for c, s in summaries.items()]
    lines += verdicts(summaries, tele)
    (figs / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
