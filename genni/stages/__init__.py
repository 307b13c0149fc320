"""The stages of a run, one module each, and the ordered registry that the command line, ``genni run``
and sweeps share.

Every stage module holds a frozen options class (checked on construction: a bad value is a one-line
:class:`~genni.errors.ConfigError` naming the option), ``run(path, options, *, progress, log) -> result``
(holding the run file's writer lock), a frozen result class (a mapping: what ``--json`` prints), the one
function that stores its result, ``done(run)`` (the result is in the file), and its command-line
``arguments`` / ``from_args``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

from .. import report, store
from . import connect, find, identify, paths, project, ricci, teleport, walk
from .common import Result
from .connect import ConnectOptions, ConnectResult
from .find import FindOptions, FindResult
from .identify import IdentifyOptions, IdentifyResult
from .paths import PathsOptions, PathsResult
from .project import ProjectOptions, ProjectResult
from .ricci import RicciOptions, RicciResult
from .teleport import TeleportOptions, TeleportResult
from .walk import WalkOptions, WalkResult


@dataclass(frozen=True)
class Stage:
    """One stage: its name (the ``genni`` subcommand and a sweep's stage name), its module, its options
    class, its one-line help, the function that turns its result into the text headline, and one example
    command line (``genni <name> --help`` ends with it).  ``prints``:
    the headline goes to stdout (with ``--json`` as an option); otherwise to the log.  ``extends``: every
    call adds to the run (a walk adds chains), so running it again is not a resume."""

    name: str
    module: ModuleType
    options: type
    help: str
    format: Callable[[Mapping], str]
    example: str = ""
    prints: bool = True
    extends: bool = False

    @property
    def run(self) -> Callable:
        return self.module.run

    def done(self, run: store.RunData) -> bool:
        """The stage's result is in the run file."""
        return self.module.done(run)


REGISTRY: dict[str, Stage] = {s.name: s for s in (
    Stage("find", find, FindOptions, "reference, probe data and N equivalents into RUN.h5 (resumes)", report.format_find,
          "genni find experiments/moons_tanh.toml -o runs/moons_tanh.h5 --n 128", prints=False),
    Stage("walk", walk, WalkOptions, "extend a run by walking along the equivalence class", report.format_walk,
          "genni walk runs/moons_relu.h5 --chains 4 --steps 40", extends=True),
    Stage("connect", connect, ConnectOptions, "a certified path inside the class between elements I and J (0 = θ*)",
          report.format_connect, "genni connect runs/moons_relu.h5 0 5"),
    Stage("teleport", teleport, TeleportOptions, "move along the class so that an objective falls or rises",
          report.format_teleport, "genni teleport runs/moons_relu.h5 --objective sharpness --goal min --steps 20",
          extends=True),
    Stage("identify", identify, IdentifyOptions, "Jacobian rank / null space, symmetry verdict on every element",
          report.format_identify, "genni identify runs/moons_relu.h5 --exact"),
    Stage("project", project, ProjectOptions, "subspace through the class + discrepancy grid + paths and barriers",
          report.format_project, "genni project runs/moons_relu.h5 --subspace plane --elements 0 1"),
    Stage("paths", paths, PathsOptions, "layer-path geometry of the reference and its equivalents", report.format_paths,
          "genni paths runs/moons_relu.h5 --metric zscore_procrustes"),
    Stage("ricci", ricci, RicciOptions, "Ricci curvature of the layers' kNN graphs and the Ricci flow coefficient",
          report.format_ricci, "genni ricci runs/moons_relu.h5 --curvature ollivier --alpha 0.5"),
)}
"""Every stage, in the order of a run."""


@dataclass(frozen=True)
class Step:
    """One step of a plan: a registered stage with options (keyword arguments of its options class).
    ``optional``: a :class:`~genni.errors.GenniError` skips the step (e.g. no null space for a full-rank
    network) and ``label`` names it in the message."""

    stage: str
    options: dict = field(default_factory=dict)
    optional: bool = False
    label: str = ""

    def make_options(self, **extra):
        """The stage's options for this step (``extra`` on top of the step's own)."""
        return REGISTRY[self.stage].options(**{**self.options, **extra})


RUN: tuple[Step, ...] = (
    Step("find"),
    Step("identify"),
    Step("paths", {"metric": "angular_procrustes"}),
    Step("paths", {"metric": "zscore_procrustes"}),
    Step("ricci"),
    *(Step("project", {"subspace": kind, "dims": dims, "paths": 8 if (kind, dims) == ("pca", 2) else 0}, optional=True,
           label=f"projection '{kind}'")
      for kind, dims in (("pca", 2), ("plane", 2), ("null", 2), ("pca", 3))),
)
"""`genni run`: every step in order (find's options come from the command line); figures follow."""

SWEEP: dict[str, Step] = {
    "train": Step("find", {"reference_only": True}),
    "find": Step("find"),
    "identify": Step("identify"),
    "paths": Step("paths", {"metric": "zscore_procrustes"}),
    "ricci": Step("ricci"),
}
"""The stages a sweep may name, in order, and what each runs in a cell (``train``: find's reference alone)."""


def done(run: store.RunData, name: str) -> bool:
    """The sweep stage ``name``'s result is in the run file (``train``: always, once the file exists)."""
    return True if name == "train" else REGISTRY[SWEEP[name].stage].done(run)


__all__ = ["REGISTRY", "RUN", "SWEEP", "Stage", "Step", "Result", "done",
           "FindOptions", "FindResult", "WalkOptions", "WalkResult", "ConnectOptions", "ConnectResult",
           "IdentifyOptions", "IdentifyResult", "ProjectOptions", "ProjectResult", "PathsOptions", "PathsResult",
           "RicciOptions", "RicciResult",
           "TeleportOptions", "TeleportResult"]
