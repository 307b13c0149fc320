"""The handle a notebook holds on a run file: :class:`Run` and :func:`load_run`.

The run file stays the single source of truth: a :class:`Run` holds its path, reads the file when asked
(``run.data``, re-read whenever the file has changed) and runs each stage on the file, returning the
stage's typed result (:mod:`genni.stages`), whose ``repr`` is the stage's headline.  Figures come back as
matplotlib Figures, written to a folder only when asked.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import torch

from . import report, store
from .errors import ConfigError, GenniError
from .models import describe, from_dict
from .models import module as _module
from .stages import (
    ConnectOptions,
    ConnectResult,
    IdentifyResult,
    PathsResult,
    ProjectResult,
    RicciResult,
    TeleportResult,
    WalkOptions,
    WalkResult,
    calls,
)
from .stages import connect as _connect
from .stages import walk as _walk
from .store.schema import DERIVED_ELEMENT_FIELDS, ELEMENT_FIELDS

FIRST_COLUMNS = ("verdict", "status", "converged", "discrepancy", "relative_discrepancy", "relative_discrepancy_heldout",
                 "relative_discrepancy_far", "distance_to_reference", "copy_score", "certified_relative", "chain",
                 "step", "parent", "segment_max")
"""The columns :attr:`Run.elements` shows first (those a file holds), then the other per-element columns."""

CODED_COLUMNS = {"verdict": "verdict_codes", "status": "status_codes", "certified_status": "certified_status_codes"}
"""Per-element columns stored as codes -> the /equivalents attribute naming them; :attr:`Run.elements` shows names."""

FIGURE_NEEDS = {"discrepancy": "elements (genni.explore, run.walk())", "probe": "2-D inputs and one output",
                "identifiability": "run.identify()", "projections": "run.project()",
                "projection_3d": "run.project(dims=3)", "paths": "run.project() with paths > 0",
                "layer_paths": "run.paths()", "layer_geometry": "run.paths()", "ricci": "run.ricci()",
                "ricci_graphs": "run.ricci()", "walk": "run.walk()",
                "teleport": "run.teleport()"}
"""What each figure of :data:`genni.plots.FIGURES` draws from, for the message when a run has nothing for it."""

AGREEMENT = 1e-9
"""A module passed to :func:`load_run` must reproduce the stored outputs at θ* to this, relative to
max(1, max |output|)."""


class Figures(dict):
    """Figure name -> matplotlib Figure; in a notebook it shows every figure, one under the other."""

    def _repr_html_(self) -> str:
        parts = []
        for name, fig in self.items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            data = base64.b64encode(buf.getvalue()).decode()
            parts.append(f"<p><b>{html.escape(name)}</b></p><img src='data:image/png;base64,{data}'/>")
        return "".join(parts)


class Run:
    """A run file (:mod:`genni.store`) and the stages to run on it.

    path : the run file;  data : its contents (:class:`genni.store.RunData`), re-read when the file changes;
    elements : one row per stored equivalent (a pandas DataFrame of its scalar columns);
    identify / walk / connect / project / paths / ricci : the stages, each returning its result;
    plot : the figures.  Element numbers follow the command line: 0 is θ*, k is row k − 1 of /equivalents.
    """

    def __init__(self, path: str | Path):
        self._path = Path(path)
        store.check_run_file(self._path)
        self._stamp = None
        self._data: store.RunData | None = None

    # --- the file -----------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The run file."""
        return self._path

    @property
    def data(self) -> store.RunData:
        """Everything in the run file (:func:`genni.store.load_run`), re-read whenever the file has changed."""
        try:
            st = self._path.stat()
        except OSError:
            raise GenniError(f"run file not found: {self._path}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._data is None or stamp != self._stamp:
            self._data, self._stamp = store.load_run(self._path), stamp
        return self._data

    @property
    def model(self):
        """The run's model (:class:`genni.models.Model`), rebuilt from the stored architecture."""
        self._need_model()
        return from_dict(self.data.architecture)

    @property
    def in_memory(self) -> bool:
        """The run's model is a torch module held in memory: the file alone cannot rebuild it."""
        return self.data.architecture.get("memory") is not None

    @property
    def elements(self):
        """One row per stored equivalent (index ``element``: 1..N; 0 would be θ*), its scalar columns only
        (θ and other per-element vectors stay in ``run.data.equivalents``), codes as names (``verdict``:
        :data:`genni.identifiability.VERDICTS`; ``status``; ``certified_status``).

        returns : pandas.DataFrame, shape [N, columns]
        """
        import pandas as pd

        run = self.data
        eq, attrs = run.equivalents, run.equivalents_attrs
        n = run.n_equivalents
        order = [*FIRST_COLUMNS, "index", *ELEMENT_FIELDS, *DERIVED_ELEMENT_FIELDS, *sorted(eq)]
        cols = {}
        for k in dict.fromkeys(order):
            v = eq.get(k)
            if v is None or np.ndim(v) != 1 or len(v) != n:
                continue
            if k in CODED_COLUMNS:
                names = list(attrs.get(CODED_COLUMNS[k], []))
                v = pd.Categorical([names[i] if 0 <= i < len(names) else str(i) for i in np.asarray(v, int)],
                                   categories=list(dict.fromkeys(names)) or None)
            cols[k] = v
        return pd.DataFrame(cols, index=pd.RangeIndex(1, n + 1, name="element"))

    # --- the stages ---------------------------------------------------------------------------------
    def identify(self, **options) -> IdentifyResult:
        """Functional dimension and a verdict per element (:func:`genni.identify`; its keywords, e.g.
        ``exact=True``, ``rtol=``)."""
        self._need_model()
        return calls.identify(self._path, **options)

    def walk(self, chains: int = 4, steps: int = 40, *, start: int = 0, thin: int | None = None,
             progress: bool = False) -> WalkResult:
        """Extend the run by ``chains`` certified walks of ``steps`` accepted steps from element ``start``
        (0 = θ*), every ``thin``-th state stored (default: the config's ``[search] thin``)."""
        self._need_model()
        return _walk.run(self._path, WalkOptions(start=start, chains=chains, steps=steps, thin=thin),
                         progress=progress)

    def connect(self, i: int, j: int, *, max_steps: int = 200) -> ConnectResult:
        """A certified path inside the class between elements ``i`` and ``j`` (0 = θ*), or the reason there is none."""
        self._need_model()
        return _connect.run(self._path, ConnectOptions(i=i, j=j, max_steps=max_steps))

    def teleport(self, objective, goal: str = "min", *, start: int = 0, steps: int = 50, **options) -> TeleportResult:
        """Move along the class from element ``start`` (0 = θ*) so that ``objective`` (a name of
        :data:`genni.objectives.NAMES` or an :class:`~genni.objectives.Objective`) falls (``goal="min"``) or rises
        (:func:`genni.stages.calls.teleport`; its keywords, e.g. ``horizontal=False``, ``thin=``, ``inputs="far"``).  Its states
        become elements; the result's repr is the command line's headline."""
        self._need_model()
        return calls.teleport(self._path, objective=objective, goal=goal, start=start, steps=steps, **options)

    def project(self, **options) -> ProjectResult:
        """A subspace through the class and the discrepancy on a grid there (:func:`genni.project`; e.g.
        ``subspace="pca"``, ``dims=2``, ``resolution=41``, ``paths=8``)."""
        self._need_model()
        return calls.project(self._path, **options)

    def paths(self, **options) -> PathsResult:
        """Layer paths of the reference and the elements (:func:`genni.layer_paths`; e.g. ``metric=``)."""
        self._need_model()
        return calls.layer_paths(self._path, **options)

    def ricci(self, **options) -> RicciResult:
        """Ricci curvature along the layers and the Ricci flow coefficient (:func:`genni.ricci`; e.g. ``k=10``)."""
        self._need_model()
        return calls.ricci(self._path, **options)

    # --- figures ------------------------------------------------------------------------------------
    def plot(self, name: str | None = None, save: str | Path | None = None, formats: tuple[str, ...] = ("png",)):
        """The run's figures from the stored arrays (:data:`genni.plots.FIGURES`).

        name : one figure (a Figure back; an error naming the stage to run when the file holds nothing for
            it), or None for every figure the file supports (a dict name -> Figure)
        save : a folder to write them to as ``<name>.<format>`` for each of ``formats`` (nothing is written
            without it)
        """
        import matplotlib.pyplot as plt

        from . import plots

        if name is not None and name not in plots.FIGURES:
            raise ConfigError(f"unknown figure '{name}' (choose from: {', '.join(plots.FIGURES)})")
        run = self.data
        figs = Figures()
        for key in ([name] if name is not None else plots.FIGURES):
            fig = plots.FIGURES[key](run)
            if fig is not None:
                plt.close(fig)  # kept by the caller, not by pyplot: nothing is drawn twice or leaks
                figs[key] = fig
        if name is not None and name not in figs:
            raise GenniError(f"{self._path} holds nothing for the figure '{name}' yet (it needs {FIGURE_NEEDS[name]})")
        if save is not None:
            out = Path(save)
            try:
                out.mkdir(parents=True, exist_ok=True)
                for key, fig in figs.items():
                    for fmt in formats:
                        fig.savefig(out / f"{key}.{fmt}", dpi=130)
            except (OSError, ValueError) as exc:
                raise GenniError(f"cannot write figures to {out}: {str(exc).splitlines()[0]}") from None
        return figs[name] if name is not None else figs

    # --- what it is ---------------------------------------------------------------------------------
    def summary(self) -> dict:
        """The headline numbers behind ``genni inspect`` (:func:`genni.report.summarise`)."""
        return report.summarise(self.data)

    def _text(self) -> str:
        s = self.summary()
        arch = s["architecture"]
        lines = [f"genni run {self._path}",
                 f"  model: {describe(arch)}, P = {s['n_params']:,}"]
        if arch.get("memory") is not None:
            here = "remembered in this process" if _module.remembered(arch["memory"]) else "not in this process"
            lines.append(f"    held in memory only ({here}): another process needs genni.load_run(path, model=net)")
        p = s["probe"]
        far = f", {p['n_far']} far" if p["n_far"] else ""
        lines.append(f"  inputs: {p['n_probe']} probe, {p['n_heldout']} held-out{far} "
                     f"({self.data.config.get('data', {}).get('dataset')})")
        e = s["equivalents"]
        if e["n_found"]:
            lines.append(f"  elements: {e['n_found']} ({e['n_converged']} converged, tol {e['tol']:.3g})")
        else:
            lines.append("  elements: none yet")
        if "verdicts" in e:
            lines.append("  verdicts: " + ", ".join(f"{k} {v}" for k, v in e["verdicts"].items() if v))
        elif e["n_found"]:
            lines.append("  verdicts: none yet (run.identify())")
        if "identifiability" in s:
            i = s["identifiability"]
            lines.append(f"  functional dimension: rank(J) = {i['rank']} (bound {i['expected_rank']})")
        if "walks" in s:
            w = s["walks"]
            lines.append(f"  walks: {w['chains']} chains, {w['rows']} stored states")
        stored = [f"projection {k}" for k in s.get("projections", {})] + \
                 [f"layer paths {k}" for k in s.get("layer_paths", {})] + [f"ricci {k}" for k in s.get("ricci", {})]
        if stored:
            lines.append("  stored: " + ", ".join(stored))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._text()

    def _repr_html_(self) -> str:
        return f"<pre style='white-space: pre-wrap'>{html.escape(self._text())}</pre>"

    # --- the model held in memory -------------------------------------------------------------------
    def _need_model(self) -> None:
        """A stage is about to rebuild the model: refuse in one line when only a module in memory can."""
        arch = self.data.architecture
        token = arch.get("memory")
        if token is not None and not _module.remembered(token):
            raise GenniError(f"{self._path}: its model, the torch module {arch.get('module')}, lived only in the memory "
                             f"of the process that made the run and cannot be rebuilt from the file: pass it, "
                             f"genni.load_run({str(self._path)!r}, model=net)")

    def _adopt(self, net) -> None:
        """Remember the module ``net`` as this run's module held in memory, after checking that it is: the same
        parameter names and shapes, and the stored outputs at θ* on the probe inputs."""
        run = self.data
        arch = run.architecture
        if arch.get("memory") is None:
            raise ConfigError(f"load_run: model= is for runs whose module was held in memory; {self._path} rebuilds "
                              f"its model ({describe(arch)}) from the file")
        if not isinstance(net, torch.nn.Module):
            raise ConfigError(f"load_run: model= must be a torch.nn.Module, got a {type(net).__name__}")
        want = [(k, tuple(s)) for k, s in arch.get("about", {}).get("parameters", [])]
        got = [(k, tuple(p.shape)) for k, p in net.named_parameters()]
        if got != want:
            k = next(k for k in range(max(len(got), len(want))) if k >= min(len(got), len(want)) or got[k] != want[k])
            show = lambda e, k: f"{e[k][0]} {list(e[k][1])}" if k < len(e) else "nothing"  # noqa: E731
            raise ConfigError(f"load_run: the module passed does not fit {self._path}: its parameter {k} is "
                              f"{show(got, k)} where the run's module ({arch.get('module')}) has {show(want, k)}")
        check = "check-" + arch["memory"]
        _module.remember(net, check)
        try:
            model = from_dict({**arch, "memory": check})
            with torch.no_grad():
                Y = model.forward(torch.as_tensor(run.theta_ref), torch.as_tensor(run.X)).numpy()
        except Exception as exc:  # the module's own errors, of any type
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"load_run: the module passed fails on the run's inputs ({first})") from None
        finally:
            _module.forget(check)
        err = float(np.max(np.abs(Y - run.Y))) if Y.shape == run.Y.shape else float("inf")
        if not err <= AGREEMENT * max(1.0, float(np.max(np.abs(run.Y)))):
            raise ConfigError(f"load_run: the module passed computes other outputs at θ* than {self._path} stores "
                              f"(largest difference {err:.3g}): it is not this run's module")
        _module.remember(net, arch["memory"])


def load_run(path: str | Path, model=None) -> Run:
    """The :class:`Run` of an existing run file.

    model : for a run whose model was a torch module held in memory (``genni inspect`` says so), the module
        itself (any instance of it: θ* comes from the file); it must have the stored parameter names and
        shapes and reproduce the stored outputs at θ*.  Without it such a run reads, plots and inspects, and
        its stages refuse in one line naming this argument.

    :func:`genni.store.load_run` returns the file's contents (:class:`genni.store.RunData`), as ``run.data`` does.
    """
    run = Run(path)
    if model is not None:
        run._adopt(model)
    return run


__all__ = ["AGREEMENT", "Figures", "Run", "load_run"]
