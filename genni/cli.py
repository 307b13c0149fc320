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

from . import plots, report, stages, store
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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it states it, or there is none); descriptions and
    epilogs keep their line breaks."""

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

EXAMPLES = {
    "run": "genni run experiments/moons_tanh.toml -o runs/moons_tanh.h5",
    "inspect": "genni inspect runs/moons_relu.h5 --json",
    "sweep": "genni sweep experiments/sweeps/moons_widths.toml -o runs/moons_widths --workers 2",
    "plot": "genni plot runs/moons_relu.h5 -o figures/moons_relu",
    **{name: stage.example for name, stage in stages.REGISTRY.items()},
}
"""One command line per subcommand, the last thing its ``--help`` shows (run from the repository's root;
runs/moons_relu.h5 is what ``genni run`` writes)."""


def _epilog(command: str) -> str:
    example = EXAMPLES[command]
    on = " (runs/moons_relu.h5: what `genni run` writes)" if "runs/moons_relu.h5" in example else ""
    return f"example{on}:\n  {example}"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genni", description="Symmetries and identifiability of neural networks.",
                epilog="`genni COMMAND --help` lists a command's options with their defaults and one example.")
    p.add_argument("--version", action="version", version=f"genni {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="every stage in order (default experiment without CONFIG)", epilog=_epilog("run"))
    r.add_argument("config", nargs="?", help="experiment TOML (default: the built-in default)")
    r.add_argument("-o", "--output", help="run file (default: runs/<name>.h5)")
    r.add_argument("--figures", help="figure folder (default: <run file without .h5>_figures)")
    stages.find.search_arguments(r)
    r.add_argument("--quiet", action="store_true", help=QUIET)

    for stage in stages.REGISTRY.values():
        sp = sub.add_parser(stage.name, help=stage.help, epilog=_epilog(stage.name))
        stage.module.arguments(sp)
        if stage.prints:
            sp.add_argument("--json", action="store_true", help="machine-readable output (JSON) instead of text")
        sp.add_argument("--quiet", action="store_true", help=QUIET)

    i = sub.add_parser("inspect", help="what is in a run file", epilog=_epilog("inspect"))
    i.add_argument("run", help="run file (HDF5) written by genni find or run")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--quiet", action="store_true", help=QUIET)

    sw = sub.add_parser("sweep", help="many runs on Dask: one run file per cell and a table", epilog=_epilog("sweep"))
    sw.add_argument("sweep", help="sweep file (TOML: base, stages, seeds, [grid])")
    sw.add_argument("-o", "--output", help="folder for the cells and the table (default: runs/<sweep file name>)")
    _sweep.cluster_arguments(sw)
    sw.add_argument("--quiet", action="store_true", help=QUIET)

    pl = sub.add_parser("plot", help="every figure the run file supports", epilog=_epilog("plot"))
    pl.add_argument("run", help="run file (HDF5) written by genni find or run")
    pl.add_argument("-o", "--output", required=True, help="figure folder")
    pl.add_argument("--format", default="png,pdf", help="comma-separated formats (default png,pdf)")
    pl.add_argument("--quiet", action="store_true", help=QUIET)

    return p


def _log(quiet: bool):
    return (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr))


def _stage(args) -> None:
    """One stage's subcommand: its options from the arguments, its run, its headline (or JSON)."""
    stage = stages.REGISTRY[args.command]
    path, options = stage.module.from_args(args)
    result = stage.run(path, options, progress=not args.quiet, log=_log(args.quiet))
    if not stage.prints:
        _log(args.quiet)(stage.format(result))
    elif args.json:
        print(_json(result.to_dict()))
    else:
        print(stage.format(result))


def _run(args) -> None:
    """`genni run`: every step of :data:`genni.stages.RUN` in order, a summary, then the figures."""
    log = _log(args.quiet)
    out, find_options = stages.find.from_args(args)
    for step in stages.RUN:
        stage = stages.REGISTRY[step.stage]
        try:
            options = find_options if step.stage == "find" else step.make_options()
            result = stage.run(out, options, progress=not args.quiet, log=log)
        except GenniError as exc:
            if not step.optional:
                raise
            log(f"{step.label} skipped: {exc}")
            continue
        log(stage.format(result))
    if not args.quiet:
        _inspect(out, as_json=False)
    figdir = Path(args.figures) if args.figures else out.with_name(out.stem + "_figures")
    written = _plot(out, figdir, "png,pdf")
    log(f"figures: {', '.join(str(w) for w in written if w.suffix == '.png')}")


def _inspect(path, as_json: bool) -> None:
    run = store.load_run(path)
    summary = report.summarise(run)
    tree = store.contents(path)
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
        if args.command == "run":
            _run(args)
        elif args.command in stages.REGISTRY:
            _stage(args)
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
