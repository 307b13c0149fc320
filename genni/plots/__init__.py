"""Figures drawn from a run file's stored arrays (no computation beyond cosmetics).

Each ``figure_*`` function of a run takes a :class:`~genni.store.RunData` and returns a matplotlib
Figure, or None when the run holds nothing for it; :func:`plot_run` writes every figure the file
supports.  The study figures (:mod:`genni.plots.studies`) take the tables experiment scripts build.

One module per family: ``run`` (discrepancy, probe, identifiability, walk, teleport), ``projection``
(2-D and 3-D subspaces, paths and barriers), ``paths`` (layer paths and their geometry), ``ricci``
(curvature along the layers, kNN graphs), ``studies``; ``common`` holds what they share.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

# the non-interactive backend, chosen before any module of this package imports pyplot; a notebook's kernel
# keeps its own (inline) backend, where the Figures genni.Run.plot returns are shown
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..store import RunData  # noqa: E402
from .paths import figure_layer_geometry, figure_layer_paths  # noqa: E402
from .projection import figure_paths, figure_projection_3d, figure_projections  # noqa: E402
from .ricci import figure_ricci, figure_ricci_graphs  # noqa: E402
from .run import figure_discrepancy, figure_identifiability, figure_probe, figure_teleport, figure_walk  # noqa: E402
from .studies import (  # noqa: E402
    figure_equivalent_paths,
    figure_functional_dimension,
    figure_layer_paths_study,
    figure_ricci_accuracy,
    figure_underspecification,
)

__all__ = [
    "FIGURES", "plot_run",
    "figure_discrepancy", "figure_probe", "figure_identifiability", "figure_walk", "figure_teleport",
    "figure_projections", "figure_projection_3d", "figure_paths",
    "figure_layer_paths", "figure_layer_geometry",
    "figure_ricci", "figure_ricci_graphs",
    "figure_functional_dimension", "figure_equivalent_paths", "figure_ricci_accuracy", "figure_layer_paths_study",
    "figure_underspecification",
]

FIGURES = {"discrepancy": figure_discrepancy, "probe": figure_probe, "identifiability": figure_identifiability,
           "projections": figure_projections, "projection_3d": figure_projection_3d, "paths": figure_paths,
           "layer_paths": figure_layer_paths, "layer_geometry": figure_layer_geometry,
           "ricci": figure_ricci, "ricci_graphs": figure_ricci_graphs, "walk": figure_walk,
           "teleport": figure_teleport}
"""A run's figures by file name, in the order :func:`plot_run` writes them."""


def plot_run(run: RunData, outdir: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write every figure the run supports to ``outdir``; returns the written paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        fig = make(run)
        if fig is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=130)
            written.append(path)
        plt.close(fig)
    return written
