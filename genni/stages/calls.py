"""The stages as functions of keyword arguments (``genni.find``, ``genni.identify``, ``genni.project``,
``genni.layer_paths``, ``genni.ricci``; ``teleport`` here only, as :mod:`genni.teleport` is the library's module):
each builds the stage's options and runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import identifiability, projection
from ..objectives import Objective
from . import find as _find
from . import identify as _identify
from . import paths as _paths
from . import project as _project
from . import ricci as _ricci
from . import teleport as _teleport
from .common import Log, quiet


def find(cfg: dict, path: str | Path, *, progress: bool = False, callback: Callable | None = None,
         log: Log | None = None, reference_only: bool = False) -> _find.FindResult:
    """Reference + probe data + ``cfg['search']['n']`` equivalents into ``path`` (:func:`genni.stages.find.run`)."""
    return _find.run(path, _find.FindOptions(cfg, reference_only=reference_only), progress=progress,
                     log=log or quiet, callback=callback)


def identify(path: str | Path, *, rtol: float = identifiability.DEFAULT_RTOL,
             copy_factor: float | None = None, agree_tol: float | None = None, rank_growth_max: int | None = None,
             exact: bool | None = None, domain_scale: float | None = None, max_regions: int | None = None,
             max_seconds: float | None = None, sup_seconds: float | None = None,
             progress: bool = False, log: Log | None = None) -> _identify.IdentifyResult:
    """Functional dimension and verdicts (:func:`genni.stages.identify.run`); ``exact``: the exact answers on the
    run's input box too (relu / leaky-relu MLPs).  None: the default (copy_factor, agree_tol) or the config's
    ``[identify]`` value (the rest)."""
    options = _identify.IdentifyOptions(rtol=rtol, copy_factor=copy_factor, agree_tol=agree_tol,
                                        rank_growth_max=rank_growth_max, exact=exact, domain_scale=domain_scale,
                                        max_regions=max_regions, max_seconds=max_seconds, sup_seconds=sup_seconds)
    return _identify.run(path, options, progress=progress, log=log or quiet)


def project(path: str | Path, *, subspace: str = "pca", dims: int = 2, resolution: int | None = None,
            elements: tuple[int, ...] | None = None, epsilon_rel: float = 1e-6, margin: float = 0.25,
            paths: int = 8, progress: bool = False, batch: int = projection.DEFAULT_BATCH,
            device: str | None = None) -> _project.ProjectResult:
    """A subspace, its discrepancy grid and paths (:func:`genni.stages.project.run`)."""
    options = _project.ProjectOptions(subspace=subspace, dims=dims, resolution=resolution, elements=elements,
                                      epsilon_rel=epsilon_rel, margin=margin, paths=paths, batch=batch, device=device)
    return _project.run(path, options, progress=progress)


def layer_paths(path: str | Path, *, metric: str = "angular_procrustes", max_networks: int = 32,
                max_inputs: int = 512, preactivations: bool = False, cache: bool = False, floor: float | None = None,
                progress: bool = False) -> _paths.PathsResult:
    """Layer paths under ``metric`` (:func:`genni.stages.paths.run`)."""
    options = _paths.PathsOptions(metric=metric, max_networks=max_networks, max_inputs=max_inputs,
                                  preactivations=preactivations, cache=cache, floor=floor)
    return _paths.run(path, options, progress=progress)


def ricci(path: str | Path, *, k: int | float | str = 10, mode: str = "or", curvature: str = "forman",
          alpha: float | None = None, connectivity: str = "mst", pairing: str = "forward", include_output: bool = True,
          inputs: str = "probe", max_networks: int = 32, max_inputs: int = 512, n_boot: int = 1000,
          progress: bool = False) -> _ricci.RicciResult:
    """Ricci flow along the layers (:func:`genni.stages.ricci.run`)."""
    options = _ricci.RicciOptions(k=k, mode=mode, curvature=curvature, alpha=alpha, connectivity=connectivity,
                                  pairing=pairing, include_output=include_output, inputs=inputs,
                                  max_networks=max_networks, max_inputs=max_inputs, n_boot=n_boot)
    return _ricci.run(path, options, progress=progress)


def teleport(path: str | Path, *, objective: str | Objective, goal: str = "min", start: int = 0, steps: int = 50,
             thin: int | None = None, horizontal: bool = True, inputs: str | None = None, metric: str | None = None,
             loss: str | None = None, step_size: float | None = None, progress: bool = False,
             log: Log | None = None) -> _teleport.TeleportResult:
    """Move along the class from element ``start`` (0 = θ*) so that ``objective`` falls (``goal="min"``) or rises
    (``"max"``) (:func:`genni.stages.teleport.run`).  ``objective``: a name of :data:`genni.objectives.NAMES` or an
    :class:`~genni.objectives.Objective` (e.g. :func:`genni.objectives.from_callable` of a user's function).
    The result is a mapping: ``rows`` (the stored elements, 1-based), ``values`` and ``canonical_values`` (the
    start first), ``start_value``, ``best_value``, ``reason``, ``accepted``, ``max_segment``, ``segment_epsilon``, ..."""
    options = _teleport.TeleportOptions(objective=objective, goal=goal, start=start, steps=steps, thin=thin,
                                        horizontal=horizontal, inputs=inputs, metric=metric, loss=loss,
                                        step_size=step_size)
    return _teleport.run(path, options, progress=progress, log=log or quiet)
