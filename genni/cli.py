"""The ``genni`` command (also ``python -m genni``).

Exit status: 0 success, 2 bad input (one line on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from . import config as _config
from . import identifiability, pipeline, plots, report, store
from . import sweep as _sweep
from ._version import __version__
from .errors import GenniError


def _strict(obj):
    """NaN and ±inf (undefined coefficients, disconnected graphs) as null: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def _json(obj) -> str:
    return json.dumps(_strict(obj), indent=2, allow_nan=False)


class _Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless it states it, or there is none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2
        raise GenniError(f"{self.prog}: {message}")


QUIET = "no progress bars or messages on stderr (results and errors still print)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genni", description="Symmetries and identifiability of neural networks.",
                epilog="`genni COMMAND --help` lists a command's options with their defaults.")
    p.add_argument("--version", action="version", version=f"genni {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def common_find(sp):
        sp.add_argument("--n", type=int, help="number of equivalents (overrides [search] n)")
        sp.add_argument("--seed", type=int, help="overrides the config's seed")
        sp.add_argument("--device", help="torch device, e.g. cpu or cuda (overrides [search] device)")
        sp.add_argument("--quiet", action="store_true", help=QUIET)

    r = sub.add_parser("run", help="every stage in order (default experiment without CONFIG)")
    r.add_argument("config", nargs="?", help="experiment TOML (default: the built-in default)")
    r.add_argument("-o", "--output", help="run file (default: runs/<name>.h5)")
    r.add_argument("--figures", help="figure folder (default: <run file without .h5>_figures)")
    common_find(r)

    f = sub.add_parser("find", help="reference, probe data and N equivalents into RUN.h5 (resumes)")
    f.add_argument("config", help="experiment TOML")
    f.add_argument("-o", "--output", required=True, help="run file to create or resume")
    common_find(f)

    i = sub.add_parser("inspect", help="what is in a run file")
    i.add_argument("run", help="run file (HDF5) written by genni find or run")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--quiet", action="store_true", help=QUIET)

    idf = sub.add_parser("identify", help="Jacobian rank / null space, symmetry verdict on every element")
    idf.add_argument("run", help="run file (HDF5) written by genni find or run")
    idf.add_argument("--rtol", type=float, default=identifiability.DEFAULT_RTOL,
                     help="relative singular-value threshold for the numerical rank")
    idf.add_argument("--copy-factor", type=float, default=identifiability.DEFAULT_COPY_FACTOR,
                     help="c in the symmetry-copy threshold c·‖r‖/(σ_r‖θ*‖) (default %(default)g)")
    idf.add_argument("--agree-tol", "--heldout-tol", dest="agree_tol", type=float,
                     default=identifiability.DEFAULT_AGREE_TOL,
                     help="floor of the relative discrepancy at which an element agrees on held-out and far "
                          "inputs; the tolerance used is max(this, 100·tol/output power) (default %(default)g)")
    idf.add_argument("--rank-growth", dest="rank_growth", type=int, default=None, metavar="M",
                     help="also take the rank of J over fresh inputs, doubling from n_probe up to M until it stops "
                          "changing (generated data sets; default: the config's [identify] rank_growth_max, 0 = off)")
    idf.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    idf.add_argument("--quiet", action="store_true", help=QUIET)

    pr = sub.add_parser("project", help="subspace through the class + discrepancy grid + paths and barriers")
    pr.add_argument("run", help="run file (HDF5) written by genni find or run")
    pr.add_argument("--subspace", default="pca", help="pca | plane | null | random (default pca)")
    pr.add_argument("--dims", type=int, default=2, help="2 (default) or 3")
    pr.add_argument("--resolution", type=int, help="grid points per axis (default 101 in 2-D, 41 in 3-D)")
    pr.add_argument("--elements", type=int, nargs="+", help="element rows spanning the plane subspace")
    pr.add_argument("--epsilon-rel", type=float, default=1e-6,
                    help="ε for the equivalence mask and paths, relative to the output power (default 1e-6)")
    pr.add_argument("--paths", type=int, default=8, help="paths θ* → element to compute (0: none)")
    pr.add_argument("--device", help="torch device for the grids and paths (default: the run's search.device if present)")
    pr.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    pr.add_argument("--quiet", action="store_true", help=QUIET)

    pa = sub.add_parser("paths", help="layer-path geometry of the reference and its equivalents")
    pa.add_argument("run", help="run file (HDF5) written by genni find or run")
    pa.add_argument("--metric", default="angular_procrustes",
                    help="angular_cka | angular_procrustes | procrustes | zscore_procrustes | zscore_permutation")
    pa.add_argument("--max-networks", type=int, default=32, help="reference + up to N−1 converged elements")
    pa.add_argument("--max-inputs", type=int, default=512, help="probe inputs used for the representations")
    pa.add_argument("--pre-activations", action="store_true", help="put each hidden pre-activation before its activation")
    pa.add_argument("--cache", action="store_true", help="store the representations under /representations (reused later)")
    pa.add_argument("--floor", type=float, help="z-score metrics: drop units with variance < floor × the layer's largest "
                                               "(default 1e-8)")
    pa.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    pa.add_argument("--quiet", action="store_true", help=QUIET)

    ri = sub.add_parser("ricci", help="Ricci curvature of the layers' kNN graphs and the Ricci flow coefficient")
    ri.add_argument("run", help="run file (HDF5) written by genni find or run")
    ri.add_argument("--k", default="10", help="neighbours: a count (10) or a fraction of the points (0.02); default 10")
    ri.add_argument("--mode", default="or", help="kNN symmetrisation: or (default) | and | directed")
    ri.add_argument("--curvature", default="forman", help="forman (default) | augmented | ollivier")
    ri.add_argument("--alpha", type=float, help="Ollivier idleness (required with ollivier: 0 uniform, 0.5 lazy)")
    ri.add_argument("--connectivity", default="mst",
                    help="mst (default: kNN ∪ Euclidean MST) | none (the published recipe; ρ undefined if a graph "
                         "falls apart) | harmonic (Σ 1/γ)")
    ri.add_argument("--pairing", default="forward", help="forward (default: Ric_l with g_{l+1} − g_l) | shifted | same")
    ri.add_argument("--no-output", action="store_true", help="leave the output layer out of the layer sequence")
    ri.add_argument("--inputs", default="probe", help="probe (default) | heldout")
    ri.add_argument("--max-networks", type=int, default=32, help="reference + up to N−1 converged elements")
    ri.add_argument("--max-inputs", type=int, default=512, help="points per graph")
    ri.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    ri.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    ri.add_argument("--quiet", action="store_true", help=QUIET)

    wk = sub.add_parser("walk", help="extend a run by walking along the equivalence class")
    wk.add_argument("run", help="run file (HDF5) written by genni find or run")
    wk.add_argument("--from", dest="start", type=int, default=0, help="start element: 0 = θ* (default), k = row k − 1")
    wk.add_argument("--chains", type=int, default=4, help="chains (default %(default)s)")
    wk.add_argument("--steps", type=int, default=40, help="accepted steps per chain (default %(default)s)")
    wk.add_argument("--thin", type=int, help="store every thin-th state (default: the config's [search] thin)")
    wk.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    wk.add_argument("--quiet", action="store_true", help=QUIET)

    cn = sub.add_parser("connect", help="a certified path inside the class between elements I and J (0 = θ*)")
    cn.add_argument("run", help="run file (HDF5) written by genni find or run")
    cn.add_argument("i", type=int, help="first element: 0 = θ*, k = row k − 1")
    cn.add_argument("j", type=int, help="second element")
    cn.add_argument("--max-steps", type=int, default=200, help="step attempts of the directed walk (default %(default)s)")
    cn.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
    cn.add_argument("--quiet", action="store_true", help=QUIET)

    sw = sub.add_parser("sweep", help="many runs on Dask: one run file per cell and a table")
    sw.add_argument("sweep", help="sweep file (TOML: base, stages, seeds, [grid])")
    sw.add_argument("-o", "--output", help="folder for the cells and the table (default: runs/<sweep file name>)")
    _sweep.cluster_arguments(sw)
    sw.add_argument("--quiet", action="store_true", help=QUIET)

    pl = sub.add_parser("plot", help="every figure the run file supports")
    pl.add_argument("run", help="run file (HDF5) written by genni find or run")
    pl.add_argument("-o", "--output", required=True, help="figure folder")
    pl.add_argument("--format", default="png,pdf", help="comma-separated formats (default png,pdf)")
    pl.add_argument("--quiet", action="store_true", help=QUIET)

    return p


def _log(quiet: bool):
    return (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr))


def _find(args, cfg_path) -> tuple[dict, Path]:
    cfg = _config.with_overrides(_config.load(cfg_path), n=args.n, seed=args.seed, device=args.device)
    out = Path(args.output) if args.output else Path("runs") / f"{cfg['name']}.h5"
    info = pipeline.find(cfg, out, progress=not args.quiet, log=_log(args.quiet))
    _log(args.quiet)(f"{info['n_new']} new elements; {info['n_total']} stored in {out}")
    return cfg, out


def _inspect(path, as_json: bool) -> None:
    run = store.load_run(path)
    summary = report.summarise(run)
    tree = store.describe(path)
    if as_json:
        print(_json({**summary, "config": run.config, "tree": tree}))
    else:
        print(report.format_text(summary, tree))


def _plot(path, outdir, formats) -> list[Path]:
    fmts = tuple(s.strip() for s in formats.split(",") if s.strip())
    bad = [s for s in fmts if s not in ("png", "pdf", "svg")]
    if bad or not fmts:
        raise GenniError(f"unknown figure format {bad[0] if bad else formats!r} (use png, pdf, svg)")
    run = store.load_run(path)
    try:
        Path(outdir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenniError(f"cannot create the figure folder {outdir}: {exc.strerror or exc}") from None
    return plots.plot_run(run, outdir, fmts)


def main(argv: list[str] | None = None) -> int:
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `genni` alone: the usage and the commands
            parser.print_help()
            return 0
        if args.command == "find":
            _find(args, args.config)
        elif args.command == "run":
            _cfg, out = _find(args, args.config)
            info = pipeline.identify(out, progress=not args.quiet, log=_log(args.quiet))
            _log(args.quiet)(report.format_identify(info))
            for metric in ("angular_procrustes", "zscore_procrustes"):
                _log(args.quiet)(report.format_paths(pipeline.layer_paths(out, metric=metric, progress=not args.quiet)))
            _log(args.quiet)(report.format_ricci(pipeline.ricci(out, progress=not args.quiet)))
            for kind, dims in (("pca", 2), ("plane", 2), ("null", 2), ("pca", 3)):
                try:
                    info = pipeline.project(out, subspace=kind, dims=dims, paths=8 if kind == "pca" and dims == 2 else 0,
                                            progress=not args.quiet)
                except GenniError as exc:  # e.g. no null space for a full-rank tanh network
                    _log(args.quiet)(f"projection '{kind}' skipped: {exc}")
                    continue
                _log(args.quiet)(report.format_project(info))
            if not args.quiet:
                _inspect(out, as_json=False)
            figdir = Path(args.figures) if args.figures else out.with_name(out.stem + "_figures")
            written = _plot(out, figdir, "png,pdf")
            _log(args.quiet)(f"figures: {', '.join(str(w) for w in written if w.suffix == '.png')}")
        elif args.command == "identify":
            info = pipeline.identify(args.run, rtol=args.rtol, copy_factor=args.copy_factor,
                                     agree_tol=args.agree_tol, rank_growth_max=args.rank_growth,
                                     progress=not args.quiet, log=_log(args.quiet))
            print(_json(info) if args.json else report.format_identify(info))
        elif args.command == "project":
            info = pipeline.project(args.run, subspace=args.subspace, dims=args.dims, resolution=args.resolution,
                                    elements=tuple(args.elements) if args.elements else None,
                                    epsilon_rel=args.epsilon_rel, paths=args.paths, progress=not args.quiet,
                                    device=args.device)
            print(_json(info) if args.json else report.format_project(info))
        elif args.command == "paths":
            info = pipeline.layer_paths(args.run, metric=args.metric, max_networks=args.max_networks,
                                        max_inputs=args.max_inputs, preactivations=args.pre_activations,
                                        cache=args.cache, floor=args.floor, progress=not args.quiet)
            print(_json(info) if args.json else report.format_paths(info))
        elif args.command == "ricci":
            info = pipeline.ricci(args.run, k=args.k, mode=args.mode, curvature=args.curvature, alpha=args.alpha,
                                  connectivity=args.connectivity, pairing=args.pairing, include_output=not args.no_output,
                                  inputs=args.inputs, max_networks=args.max_networks, max_inputs=args.max_inputs,
                                  n_boot=args.bootstrap, progress=not args.quiet)
            print(_json(info) if args.json else report.format_ricci(info))
        elif args.command == "walk":
            info = pipeline.walk(args.run, start=args.start, chains=args.chains, steps=args.steps, thin=args.thin,
                                 progress=not args.quiet, log=_log(args.quiet))
            print(_json(info) if args.json else report.format_walk(info))
        elif args.command == "connect":
            info = pipeline.connect(args.run, args.i, args.j, max_steps=args.max_steps, log=_log(args.quiet))
            print(_json(info) if args.json else report.format_connect(info))
        elif args.command == "sweep":
            outdir = Path(args.output) if args.output else Path("runs") / Path(args.sweep).stem
            info = _sweep.run_sweep(args.sweep, outdir, workers=args.workers, scheduler=args.scheduler,
                                    progress=not args.quiet, log=_log(args.quiet))
            _log(args.quiet)(f"sweep: {info['cells']} cells ({info['ran']} run now, {info['skipped']} done before), "
                             f"{info['failed']} failed; table {info['table']} and {info['csv']}")
            if info["failed"]:
                print(f"genni: {info['failed']} of {info['cells']} cells failed: {', '.join(info['failed_cells'][:8])}"
                      f"{' …' if info['failed'] > 8 else ''} (status column of {info['csv']})", file=sys.stderr)
                return 1
        elif args.command == "inspect":
            _inspect(args.run, args.json)
        elif args.command == "plot":
            written = _plot(args.run, args.output, args.format)
            for w in written:
                print(w)
        return 0
    except GenniError as exc:
        print(f"genni: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `genni inspect RUN.h5 | head`: the reader has what it wanted
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print("genni: interrupted; everything stored so far is kept: re-run the same command to resume",
              file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
