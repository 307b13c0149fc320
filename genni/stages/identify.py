"""Stage ``identify``: the functional dimension at the reference and a verdict on every stored element.

The functional dimension is rank J, J = ∂ vec f_θ(X) / ∂θ [n·w_L, P] at the balanced θ* (the
minimum-norm point of its rescaling orbit), the number of singular values above rtol · σ_max; the
verdicts come from :func:`genni.identifiability.assess` (agreement on probe, held-out and far inputs,
the copy score against the per-element threshold).  Above :data:`IDENTIFY_SVD_MAX_P` parameters the rank
comes from J·v products alone (:func:`genni.identifiability.randomized_rank`) and no verdicts are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import data as _data
from .. import exact as _exact
from .. import identifiability, models, report, store
from ..errors import ConfigError, GenniError
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
    copy_factor : c in the symmetry-copy threshold c·‖r‖/(σ_r‖θ*‖) (None: ``DEFAULT_COPY_FACTOR``)
    agree_tol : floor of the relative discrepancy at which an element agrees on held-out and far inputs
        (None: ``DEFAULT_AGREE_TOL``); these two set the verdicts, which large models (P above
        :data:`IDENTIFY_SVD_MAX_P`) do not get: there they are refused
    rank_growth_max : > 0: also the rank of J over fresh inputs, doubling from n_probe up to this many
        (None: the config's ``[identify] rank_growth_max``; 0: off)
    exact : relu / leaky-relu MLPs: also the exact answers on an input box (:mod:`genni.exact`)
    domain_scale, max_regions, max_seconds, sup_seconds : the box (the probe's bounding box × scale;
        normal data: ± scale sd), the region walk's budget, each element's MILP time limit
    (None, for these five: the config's ``[identify]`` value; the last four apply to the exact answers
    only and are refused without them)
    """

    rtol: float = identifiability.DEFAULT_RTOL
    copy_factor: float | None = None
    agree_tol: float | None = None
    rank_growth_max: int | None = None
    exact: bool | None = None
    domain_scale: float | None = None
    max_regions: int | None = None
    max_seconds: float | None = None
    sup_seconds: float | None = None

    def __post_init__(self):
        need_positive("rtol", self.rtol)
        for name, v in (("copy factor", self.copy_factor), ("agreement tolerance", self.agree_tol)):
            if v is not None:
                need_positive(name, v)
        if self.rank_growth_max is not None:
            need_int("--rank-growth", self.rank_growth_max, 0)
        for name, v in (("--domain-scale", self.domain_scale), ("--max-seconds", self.max_seconds),
                        ("--sup-seconds", self.sup_seconds)):
            if v is not None:
                need_positive(name, v)
        if self.max_regions is not None:
            need_int("--max-regions", self.max_regions, 1)

    def resolved(self, config: dict) -> IdentifyOptions:
        """These options with every None taken from the config's ``[identify]`` table (the verdicts'
        copy_factor and agree_tol from their defaults)."""
        table = config.get("identify", {})
        out = replace(self, **{k: table.get(k, d) for k, d in (
            ("rank_growth_max", 0), ("exact", False), ("domain_scale", _exact.DEFAULT_DOMAIN_SCALE),
            ("max_regions", 100_000), ("max_seconds", 600.0), ("sup_seconds", 60.0)) if getattr(self, k) is None})
        return replace(out, copy_factor=identifiability.DEFAULT_COPY_FACTOR if self.copy_factor is None
                       else self.copy_factor,
                       agree_tol=identifiability.DEFAULT_AGREE_TOL if self.agree_tol is None else self.agree_tol)

    def unused(self, resolved: IdentifyOptions, n_params: int) -> str | None:
        """The first option given here that the run would not use, with why (None when all are used):
        the box and budgets without the exact answers; the verdicts' options and rank growth above
        :data:`IDENTIFY_SVD_MAX_P` parameters, where ``identify`` makes no verdicts."""
        box = [(f, v) for f, v in (("--domain-scale", self.domain_scale), ("--max-regions", self.max_regions),
                                   ("--max-seconds", self.max_seconds), ("--sup-seconds", self.sup_seconds))
               if v is not None]
        if box and not resolved.exact:
            return (f"{box[0][0]} applies to the exact answers: add --exact (or set [identify] exact = true in the "
                    "config)")
        if n_params > IDENTIFY_SVD_MAX_P:
            large = [f for f, v in (("--copy-factor", self.copy_factor), ("--agree-tol", self.agree_tol),
                                    ("--rank-growth", self.rank_growth_max or None)) if v is not None]
            if large:
                return (f"{large[0]}: above P = {IDENTIFY_SVD_MAX_P:,} parameters (this model has {n_params:,}) "
                        "identify takes the rank from J·v products and makes no verdicts, so it would not be used")
        return None


@dataclass(frozen=True, repr=False)
class IdentifyResult(Result):
    """The headline facts of ``identify``: rank J of P (and the architecture's bound), the null space's
    dimension, the exact symmetries, verdict counts; with verdicts (P ≤ :data:`IDENTIFY_SVD_MAX_P`) the
    thresholds they rest on and quantiles (min, median, max) over converged elements; matrix-free, the
    method, its error bound and product count; with rank growth its last rank and input count."""

    headline = staticmethod(report.format_identify)

    optional = ("method", "rank_error_bound", "products", "gap", "meaning", "copy_factor", "sigma_r",
                "agreement_tolerance", "agree_tol", "n_far", "far_how", "median_threshold", "relative_discrepancy_far",
                "distance_to_reference", "rank_growth_rank", "rank_growth_inputs", "rank_growth_saturated",
                "rank_growth_how", "exact")

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
    exact: dict | None = None


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
    given, options = options, options.resolved(stored.config)
    unused = given.unused(options, model.n_params)
    if unused:
        raise ConfigError(unused)
    if options.exact:
        _exact.check_piecewise_linear(model)
    if stored.X_far is None:
        X_far, Y_far, far_attrs, power_far = far_inputs(stored.config, model, stored.theta_ref, stored.X,
                                                        stored.X_heldout)
        store.write_far_inputs(path, X_far, Y_far, far_attrs, {"output_power_far": power_far})
        log(f"added {len(X_far)} far inputs to {path} ({far_attrs['far_how']})")
        stored = store.load_run(path)
    if model.n_params > IDENTIFY_SVD_MAX_P:
        if options.exact:
            raise GenniError(f"exact answers enumerate linear regions; P = {model.n_params:,} is beyond that")
        if options.rank_growth_max > 0:
            log(f"[identify] rank_growth_max = {options.rank_growth_max} not used: above P = {IDENTIFY_SVD_MAX_P:,} "
                "the rank comes from J·v products at the probe inputs only")
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
    rank_growth_max = int(options.rank_growth_max)
    growth, growth_attrs = {}, {}
    if rank_growth_max > 0:
        growth, growth_attrs = _rank_growth(stored, model, a.reference_balanced, rank_growth_max, rtol, log)
    exact_group, exact_facts, certs, cert_attrs = None, None, {}, {}
    if options.exact:
        exact_group, exact_facts = _exact_rank(stored, model, a.reference_balanced, options, log, progress)
        certs, cert_attrs = _certified_sups(stored, model, thetas, options, log, progress)
    elif "certified_sup" in stored.equivalents:  # certificates from an earlier `identify --exact` of these rows
        certs = {k: stored.equivalents[k] for k in CERTIFIED_FIELDS}
    if certs:
        verdict = identifiability.certify(verdict, certs["certified_relative"], a.agree)
        exact_facts = {**(exact_facts or {}), "certified": _certified_counts(certs, verdict)}
    kinds = model.symmetry.kinds
    _write(path, exact=exact_group,
           results={"singular_values": sp.singular_values, "rank": sp.rank, "rank_tolerance": sp.rank_tolerance,
                          "expected_rank": expected, "null_basis": sp.null_basis, "rank_vs_probe": table, **growth},
           attrs={**growth_attrs, "rtol": rtol, "gap": sp.gap, "n_params": model.n_params, "n_rows": J_rows,
                  "symmetries": json.dumps(kinds),
                  "gauge": "balanced reference (minimum-norm point of its rescaling orbit)"},
           per_element={"verdict": verdict, "aligned_theta": a.aligned, "distance_to_reference": a.distance,
                        "symmetry_threshold": a.threshold, "distance_row": a.distance_row,
                        "distance_null": a.distance_null, "copy_score": a.score,
                        "linearity_heldout": a.linearity_heldout, "linearity_far": a.linearity_far,
                        "discrepancy_far": a.discrepancy_far, "relative_discrepancy_far": a.relative_far, **certs},
           element_attrs={**cert_attrs, "verdict_codes": list(identifiability.VERDICTS),
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
        distance_to_reference=min_median_max(a.distance[conv]), exact=exact_facts, **growth_attrs)


def _write(path: str | Path, *, results: dict, attrs: dict, per_element: dict, element_attrs: dict,
           exact: tuple[dict, dict] | None = None) -> None:
    """``/identifiability`` (datasets ``results``, attributes ``attrs``; ``exact``: the datasets and attributes
    of /identifiability/exact, kept from before when None) and the per-element datasets and attributes under
    /equivalents (:func:`genni.store.write_identifiability`)."""
    store.write_identifiability(path, results=results, attrs=attrs, per_element=per_element,
                                element_attrs=element_attrs, exact=exact)


def domain(stored: store.RunData, scale: float) -> _exact.Domain:
    """The run's input box: the probe inputs' bounding box × scale about its centre; ± scale sd for normal data."""
    return _exact.default_domain(stored.config["data"]["dataset"], stored.X, scale)


EXACT_HOW = ("linear regions of the balanced θ* inside the box: those of the probe, held-out and 8192 uniform points, "
             "then every region, walked across facets (genni.exact.regions); on each, "
             "the rows of J at d_in + 1 affinely independent points with the region's slopes fixed, accumulated as "
             "Σ Vᵀ; rank read with every column scaled to unit norm (genni.exact.rank)")


CERTIFIED_FIELDS = ("certified_sup", "certified_gap", "certified_lower", "certified_status", "certified_witness",
                    "certified_seconds", "certified_relative")
"""Per element, from `identify --exact`: the proven upper bound U on max over the box of max_k |Δf_k|, U − L
(L attained at the witness), L, the solve's status (index into the attribute ``certified_status_codes``), the
witness x [d], seconds, and K·U² / output power (a bound on the relative discrepancy of any inputs in the box)."""


CERTIFIED_HOW = ("U: a proven upper bound on max over the box of max_k |f_θ(x)_k − f_θ*(x)_k|, by best-first branch and "
                 "bound over sub-boxes with a HiGHS MILP (scipy.optimize.milp) on each small enough one, every solver "
                 "bound raised by its gap (sound up to HiGHS's feasibility tolerances); L: the exact value at the "
                 "witness input, from a plain forward pass (genni.exact.sup)")


def _certified_sups(stored: store.RunData, model: models.Model, thetas: np.ndarray, options: IdentifyOptions,
                    log: Log, progress: bool) -> tuple[dict, dict]:
    """Every element's certified sup-norm discrepancy from θ* on the run's box (:func:`genni.exact.certified_sups`).

    returns : (the :data:`CERTIFIED_FIELDS` arrays [N] (witness [N, d]), the attributes for /equivalents)
    """
    box = domain(stored, float(options.domain_scale))
    out = _exact.certified_sups(model, thetas, stored.theta_ref, box, time_limit_each=float(options.sup_seconds),
                                progress=progress)
    power = float(stored.reference.get("output_power", np.nan))
    rel = (_exact.relative_bound(out["certified_sup"], power, model.out_dim) if np.isfinite(power) and power > 0
           else np.full(len(thetas), np.nan))
    fields = {k: out[k] for k in CERTIFIED_FIELDS if k != "certified_relative"}
    fields["certified_relative"] = rel
    done = np.isfinite(out["certified_sup"])
    log(f"certified sup-norm discrepancy on the box: {done.sum()} of {len(thetas)} elements"
        + (f", U from {np.nanmin(out['certified_sup']):.2g} to {np.nanmax(out['certified_sup']):.2g}" if done.any() else ""))
    attrs = {"certified_status_codes": out["certified_status_codes"], "certified_domain_lo": box.lo,
             "certified_domain_hi": box.hi, "certified_how": CERTIFIED_HOW}
    return fields, attrs


def _certified_counts(certs: dict, verdict: np.ndarray) -> dict:
    """How many elements have a certificate, and how many the certificate proves equivalent on the box."""
    return {"elements": int(np.isfinite(certs["certified_sup"]).sum()),
            "certified_equivalent": int((verdict == identifiability.VERDICTS.index("certified_equivalent")).sum()),
            "median_relative": float(np.nanmedian(certs["certified_relative"])) if np.isfinite(
                certs["certified_relative"]).any() else float("nan")}


def _exact_rank(stored: store.RunData, model: models.Model, reference: np.ndarray, options: IdentifyOptions,
                log: Log, progress: bool) -> tuple[tuple[dict, dict], dict]:
    """The functional dimension on the run's box (:func:`genni.exact.exact_rank`).

    returns : ((datasets, attributes) of /identifiability/exact, the headline facts)
    """
    box = domain(stored, float(options.domain_scale))
    e = _exact.exact_rank(model, reference, box, rtol=options.rtol, max_regions=int(options.max_regions),
                          max_seconds=float(options.max_seconds), points=np.concatenate([stored.X, stored.X_heldout]),
                          seed=int(stored.config.get("seed", 0)), progress=progress)
    log(e.summary())
    w = e.regions.arrays()
    arrays = {"singular_values": e.singular_values, "by_tolerance": e.by_tolerance, "trace": e.trace,
              "patterns": w["patterns"], "points": w["points"], "radii": w["radii"]}
    facts = {"rank": e.rank, "bound": e.bound, "status": e.status, "n_regions": e.n_regions, "n_sampled": e.n_sampled,
             "complete": e.regions.complete, "walk_status": e.regions.status, "seconds": round(e.seconds, 3),
             "gap": e.gap, "domain": box.how}
    attrs = {**facts, "statuses": json.dumps(list(_exact.STATUSES)), "lps": e.regions.lps, "rtol": e.rtol,
             "rank_tolerance": e.rank_tolerance, "how": EXACT_HOW, "gauge": "balanced reference",
             **box.to_attrs()}
    return (arrays, attrs), facts


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
    parser.add_argument("--copy-factor", type=float, default=None, metavar="C",
                        help="c in the symmetry-copy threshold c·‖r‖/(σ_r‖θ*‖) (default "
                             f"{identifiability.DEFAULT_COPY_FACTOR:g})")
    parser.add_argument("--agree-tol", "--heldout-tol", dest="agree_tol", type=float, default=None, metavar="A",
                        help="floor of the relative discrepancy at which an element agrees on held-out and far "
                             "inputs; the tolerance used is max(this, 100·tol/output power) (default "
                             f"{identifiability.DEFAULT_AGREE_TOL:g})")
    parser.add_argument("--rank-growth", dest="rank_growth", type=int, default=None, metavar="M",
                        help="also take the rank of J over fresh inputs, doubling from n_probe up to M until it stops "
                             "changing (generated data sets; default: the config's [identify] rank_growth_max, 0 = off)")
    parser.add_argument("--exact", action="store_true", default=None,
                        help="relu / leaky-relu MLPs: also the exact functional dimension on an input box from its "
                             "linear regions, and each element's certified sup-norm discrepancy there")
    parser.add_argument("--domain-scale", type=float, default=None, metavar="S",
                        help="with --exact: the box, the probe inputs' bounding box enlarged S× about its centre; "
                             "normal data: ±S standard deviations (default: the config's [identify] domain_scale, 3)")
    parser.add_argument("--max-regions", type=int, default=None, metavar="N",
                        help="with --exact: stop the region walk after N regions (default: [identify] max_regions, "
                             "100000)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="T",
                        help="with --exact: stop the region walk after T seconds (default: [identify] max_seconds, "
                             "600)")
    parser.add_argument("--sup-seconds", type=float, default=None, metavar="T",
                        help="with --exact: time limit of each element's MILP (default: [identify] sup_seconds, 60)")


def from_args(args) -> tuple[str, IdentifyOptions]:
    return args.run, IdentifyOptions(rtol=args.rtol, copy_factor=args.copy_factor, agree_tol=args.agree_tol,
                                     rank_growth_max=args.rank_growth, exact=args.exact, domain_scale=args.domain_scale,
                                     max_regions=args.max_regions, max_seconds=args.max_seconds,
                                     sup_seconds=args.sup_seconds)
