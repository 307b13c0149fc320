"""Stage ``identify``: the functional dimension at the reference and a verdict on every stored element.

The functional dimension is rank J, J = ∂ vec f_θ(X) / ∂θ [n·w_L, P] at the balanced θ* (the
minimum-norm point of its rescaling orbit), the number of singular values above rtol · σ_max; the
verdicts come from :func:`genni.identifiability.assess` (agreement on probe, held-out and far inputs,
the copy score against the per-element threshold).  Above :data:`IDENTIFY_SVD_MAX_P` parameters the rank
comes from J·v products alone (:func:`genni.identifiability.randomized_rank`) and no verdicts are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data as _data
from .. import identifiability, models, store
from ..geometry.statistics import min_median_max
from .common import Log, Result, far_inputs, need_int, need_positive, quiet, writes

RANK_GROWTH_PATIENCE = 3
"""rank_growth stops when 2³ = 8× more inputs changed nothing."""

IDENTIFY_SVD_MAX_P = 8192
"""Above this many parameters `identify` does not take the SVD of J (its right vectors alone would be
P² floats: 15 GB at LeNet's 44k) but the matrix-free functional dimension."""


@dataclass(frozen=True)
class IdentifyOptions:
    """What ``identify`` uses.

    rtol : relative singular-value threshold for the numerical rank
    copy_factor : c in the symmetry-copy threshold c·‖r‖/(σ_r‖θ*‖)
    agree_tol : floor of the relative discrepancy at which an element agrees on held-out and far inputs
    rank_growth_max : > 0: also the rank of J over fresh inputs, doubling from n_probe up to this many
        (None: the config's ``[identify] rank_growth_max``; 0: off)
    """

    rtol: float = identifiability.DEFAULT_RTOL
    copy_factor: float = identifiability.DEFAULT_COPY_FACTOR
    agree_tol: float = identifiability.DEFAULT_AGREE_TOL
    rank_growth_max: int | None = None

    def __post_init__(self):
        for name, v in (("rtol", self.rtol), ("copy factor", self.copy_factor),
                        ("agreement tolerance", self.agree_tol)):
            need_positive(name, v)
        if self.rank_growth_max is not None:
            need_int("--rank-growth", self.rank_growth_max, 0)


@dataclass(frozen=True)
class IdentifyResult(Result):
    """The headline facts of ``identify``: rank J of P (and the architecture's bound), the null space's
    dimension, the exact symmetries, verdict counts; with verdicts (P ≤ :data:`IDENTIFY_SVD_MAX_P`) the
    thresholds they rest on and quantiles (min, median, max) over converged elements; matrix-free, the
    method, its error bound and product count; with rank growth its last rank and input count."""

    optional = ("method", "rank_error_bound", "products", "gap", "meaning", "copy_factor", "sigma_r",
                "agreement_tolerance", "agree_tol", "n_far", "far_how", "median_threshold", "relative_discrepancy_far",
                "distance_to_reference", "rank_growth_rank", "rank_growth_inputs", "rank_growth_saturated",
                "rank_growth_how")

    rank: int
    expected_rank: int
    n_params: int
    rank_tolerance: float
    null_dim: int
    symmetries: dict
    n_elements: int
    verdicts: dict
    method: str | None = None
    rank_error_bound: float | None = None
    products: int | None = None
    gap: float | None = None
    meaning: dict | None = None
    copy_factor: float | None = None
    sigma_r: float | None = None
    agreement_tolerance: float | None = None
    agree_tol: float | None = None
    n_far: int | None = None
    far_how: str | None = None
    median_threshold: float | None = None
    relative_discrepancy_far: dict | None = None
    distance_to_reference: dict | None = None
    rank_growth_rank: int | None = None
    rank_growth_inputs: int | None = None
    rank_growth_saturated: bool | None = None
    rank_growth_how: str | None = None


def done(run: store.RunData) -> bool:
    """Every element has a verdict."""
    return "verdict" in run.equivalents


@writes("identify")
def run(path: str | Path, options: IdentifyOptions = IdentifyOptions(), *, progress: bool = False,
        log: Log = quiet) -> IdentifyResult:
    """Functional dimension at the reference and a verdict on every stored element, into ``path``.

    A run file without far inputs gets them here (``/probe/X_far``, ``/probe/Y_far``).  Stored:
    ``/identifiability`` (singular values, rank, null-space basis [P, P − r], rank against probe size,
    ``rank_growth`` [k, 2]) and per element ``verdict``, ``aligned_theta``, ``distance_to_reference``,
    ``distance_row``, ``distance_null``, ``symmetry_threshold``, ``copy_score``, ``linearity_heldout``,
    ``linearity_far``, ``discrepancy_far``, ``relative_discrepancy_far``.
    """
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    if stored.X_far is None:
        X_far, Y_far, far_attrs, power_far = far_inputs(stored.config, model, stored.theta_ref, stored.X,
                                                        stored.X_heldout)
        store.write_far_inputs(path, X_far, Y_far, far_attrs, {"output_power_far": power_far})
        log(f"added {len(X_far)} far inputs to {path} ({far_attrs['far_how']})")
        stored = store.load_run(path)
    if model.n_params > IDENTIFY_SVD_MAX_P:
        return _matrix_free(path, stored, model, options.rtol, log, progress)
    rtol, copy_factor, agree_tol = options.rtol, options.copy_factor, options.agree_tol
    tol = float(stored.equivalents_attrs.get("tol", stored.config.get("search", {}).get("tol", 0.0)))
    eq = stored.equivalents
    n = stored.n_equivalents
    thetas = eq["theta"] if n else np.zeros((0, model.n_params))
    a = identifiability.assess(model, stored.theta_ref, stored.X, stored.X_heldout, stored.X_far, thetas, tol,
                               rtol=rtol, copy_factor=copy_factor, agree_tol=agree_tol, progress=progress)
    sp, verdict = a.spectrum, a.verdict
    J_rows = len(stored.X) * model.out_dim
    table = identifiability.rank_vs_probe(model, a.reference_balanced, stored.X, rtol=rtol)
    expected = identifiability.expected_rank(model, J_rows)
    rank_growth_max = options.rank_growth_max
    if rank_growth_max is None:
        rank_growth_max = int(stored.config.get("identify", {}).get("rank_growth_max", 0))
    growth, growth_attrs = {}, {}
    if rank_growth_max > 0:
        growth, growth_attrs = _rank_growth(stored, model, a.reference_balanced, rank_growth_max, rtol, log)
    kinds = model.symmetry.kinds
    _write(path, results={"singular_values": sp.singular_values, "rank": sp.rank, "rank_tolerance": sp.rank_tolerance,
                          "expected_rank": expected, "null_basis": sp.null_basis, "rank_vs_probe": table, **growth},
           attrs={**growth_attrs, "rtol": rtol, "gap": sp.gap, "n_params": model.n_params, "n_rows": J_rows,
                  "symmetries": json.dumps(kinds),
                  "gauge": "balanced reference (minimum-norm point of its rescaling orbit)"},
           per_element={"verdict": verdict, "aligned_theta": a.aligned, "distance_to_reference": a.distance,
                        "symmetry_threshold": a.threshold, "distance_row": a.distance_row,
                        "distance_null": a.distance_null, "copy_score": a.score,
                        "linearity_heldout": a.linearity_heldout, "linearity_far": a.linearity_far,
                        "discrepancy_far": a.discrepancy_far, "relative_discrepancy_far": a.relative_far},
           element_attrs={"verdict_codes": list(identifiability.VERDICTS),
                          "verdict_meaning": json.dumps(identifiability.VERDICT_MEANING),
                          "copy_factor": copy_factor, "copy_threshold_formula": identifiability.COPY_THRESHOLD_FORMULA,
                          "copy_score_formula": identifiability.COPY_SCORE_FORMULA,
                          "linearity_limit": identifiability.LINEARITY_LIMIT,
                          "sigma_r": a.sigma_r, "agree_tol": agree_tol, "agreement_tolerance": a.agree,
                          "generalisation_factor": identifiability.GENERALISATION_FACTOR,
                          "far_how": str(stored.probe_attrs.get("far_how", ""))})
    conv = np.asarray(eq.get("converged", np.zeros(0, bool)), bool)
    return IdentifyResult(
        rank=sp.rank, expected_rank=expected, n_params=model.n_params, rank_tolerance=sp.rank_tolerance,
        gap=sp.gap, null_dim=model.n_params - sp.rank, symmetries=kinds, n_elements=n, verdicts=a.counts(),
        meaning=identifiability.VERDICT_MEANING, copy_factor=copy_factor, sigma_r=a.sigma_r,
        agreement_tolerance=a.agree, agree_tol=agree_tol, n_far=len(stored.X_far),
        far_how=str(stored.probe_attrs.get("far_how", "")),
        median_threshold=float(np.median(a.threshold[conv])) if conv.any() else float("nan"),
        relative_discrepancy_far=min_median_max(a.relative_far[conv]),
        distance_to_reference=min_median_max(a.distance[conv]), **growth_attrs)


def _write(path: str | Path, *, results: dict, attrs: dict, per_element: dict, element_attrs: dict) -> None:
    """``/identifiability`` (datasets ``results``, attributes ``attrs``) and the per-element datasets and
    attributes under /equivalents (:func:`genni.store.write_identifiability`)."""
    store.write_identifiability(path, results=results, attrs=attrs, per_element=per_element,
                                element_attrs=element_attrs)


def _rank_growth(stored: store.RunData, model: models.Model, reference: np.ndarray, rank_growth_max: int,
                 rtol: float, log: Log) -> tuple[dict, dict]:
    """rank J over fresh inputs, doubling from n_probe until it stops changing (:data:`RANK_GROWTH_PATIENCE`
    doublings) or reaches ``rank_growth_max`` (:func:`identifiability.rank_growth`).

    The inputs follow ``[identify] rank_inputs`` (default :func:`genni.config.default_rank_inputs`):
    ``"data"``, i.i.d. from the data's distribution (generated data sets); ``"kinks"``, pairs on both sides
    of every hidden unit's kink in the run's default domain box (:func:`genni.exact.default_domain` of the
    probe inputs; :class:`genni.exact.KinkStream`), which reach the rank over the box with far fewer inputs.

    returns : ({"rank_growth": [k, 2] (inputs, rank)}, its attributes)
    """
    from ..config import default_rank_inputs
    from ..exact import KinkStream, default_domain

    d = stored.config["data"]
    seed = int(stored.config.get("seed", 0))
    inputs = stored.config.get("identify", {}).get("rank_inputs") or default_rank_inputs(stored.architecture)
    if inputs == "kinks":
        domain = default_domain(d["dataset"], stored.X)
        draw = KinkStream(model, reference, domain, np.random.SeedSequence([seed, 4]))
        what = (f"inputs on both sides of every hidden unit's kink in the box {domain.how} (round robin over the "
                "units)")
    else:
        draw = _data.input_stream(d["dataset"], seed=seed, noise=d.get("noise"), dim=d.get("dim"))
        what = f"fresh {d['dataset']} inputs"
    g = identifiability.rank_growth(model, reference, draw, len(stored.X), rank_growth_max, rtol=rtol,
                                    patience=RANK_GROWTH_PATIENCE)
    attrs = {"rank_growth_rank": int(g[-1, 1]), "rank_growth_inputs": int(g[-1, 0]),
             "rank_growth_saturated": bool(len(g) > RANK_GROWTH_PATIENCE
                                           and g[-1 - RANK_GROWTH_PATIENCE, 1] == g[-1, 1]),
             "rank_growth_how": f"{what}, doubling from {len(stored.X)}; saturated = "
                                f"unchanged over the last {RANK_GROWTH_PATIENCE} doublings"}
    log(f"rank over fresh inputs ({inputs}): {g[-1, 1]} at m = {g[-1, 0]} "
        f"({'unchanged' if attrs['rank_growth_saturated'] else 'still changing'} over the last "
        f"{2 ** RANK_GROWTH_PATIENCE}× inputs)")
    return {"rank_growth": g}, attrs


def _matrix_free(path, stored: store.RunData, model: models.Model, rtol: float, log: Log,
                 progress: bool) -> IdentifyResult:
    """`identify` for large P: rank J at the balanced θ* from J·v products only
    (:func:`identifiability.randomized_rank`, with its error bound) and each element's discrepancy on the
    far inputs; no per-element verdicts (they rest on J's right singular vectors: the resolved part of each
    displacement), which the log says."""
    ref = model.symmetry.balance(stored.theta_ref)
    rr = identifiability.randomized_rank(model, ref, stored.X, rtol=rtol, progress=progress)
    far = identifiability.far_discrepancies(model, stored.equivalents["theta"], stored.X_far, stored.Y_far)
    J_rows = len(stored.X) * model.out_dim
    expected = identifiability.expected_rank(model, J_rows)
    kinds = model.symmetry.kinds
    how = ("randomized range finder on J·v products (Halko, Martinsson & Tropp 2011): every direction missing "
           "from the range has singular value ≤ rank_error_bound with probability ≥ 1 − min(m, P)·1e-10")
    _write(path, results={"rank": rr["rank"], "rank_tolerance": rr["epsilon"], "expected_rank": expected},
           attrs={"rtol": rtol, "n_params": model.n_params, "n_rows": J_rows, "symmetries": json.dumps(kinds),
                  "rank_method": "randomized", "rank_how": how, "rank_error_bound": rr["bound"],
                  "sigma_max": rr["sigma_max"], "products": rr["products"], "gauge": "balanced reference"},
           per_element=far, element_attrs={})
    log(f"P = {model.n_params:,} > {IDENTIFY_SVD_MAX_P:,}: functional dimension from J·v products only; no "
        "per-element verdicts (they need J's right singular vectors); discrepancies on far inputs stored")
    return IdentifyResult(rank=rr["rank"], expected_rank=expected, n_params=model.n_params,
                          rank_tolerance=rr["epsilon"], method="randomized", rank_error_bound=rr["bound"],
                          products=rr["products"], null_dim=model.n_params - rr["rank"], symmetries=kinds,
                          n_elements=stored.n_equivalents, verdicts={})


def arguments(parser) -> None:
    """``genni identify``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("--rtol", type=float, default=identifiability.DEFAULT_RTOL,
                        help="relative singular-value threshold for the numerical rank")
    parser.add_argument("--copy-factor", type=float, default=identifiability.DEFAULT_COPY_FACTOR,
                        help="c in the symmetry-copy threshold c·‖r‖/(σ_r‖θ*‖) (default %(default)g)")
    parser.add_argument("--agree-tol", "--heldout-tol", dest="agree_tol", type=float,
                        default=identifiability.DEFAULT_AGREE_TOL,
                        help="floor of the relative discrepancy at which an element agrees on held-out and far "
                             "inputs; the tolerance used is max(this, 100·tol/output power) (default %(default)g)")
    parser.add_argument("--rank-growth", dest="rank_growth", type=int, default=None, metavar="M",
                        help="also take the rank of J over fresh inputs, doubling from n_probe up to M until it stops "
                             "changing (generated data sets; default: the config's [identify] rank_growth_max, 0 = off)")


def from_args(args) -> tuple[str, IdentifyOptions]:
    return args.run, IdentifyOptions(rtol=args.rtol, copy_factor=args.copy_factor, agree_tol=args.agree_tol,
                                     rank_growth_max=args.rank_growth)
