"""What every stage shares: the writer lock around a stage, the torch device, warnings, the reference's
facts, the run's far inputs, the networks a stage looks at, option checks and the result base class."""

from __future__ import annotations

import functools
import html
import math
import numbers
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .. import data as _data
from .. import discrepancy, models, search, store
from ..errors import ConfigError, GenniError

Log = Callable[[str], None]

DEGENERATE_RATIO = 1e-4
"""A reference is flagged degenerate when tol / output power exceeds this: the zero
function would then be (nearly) close enough to count as an equivalent."""


def quiet(message: str) -> None:
    """The default ``log``: drop the message."""


def writes(stage: str, *, create: bool = False) -> Callable:
    """Run the decorated ``run(path, options, ...)`` holding the run file's one-writer lock
    (:func:`genni.store.writer_lock`, labelled ``genni <stage>``): a second process writing the same file is
    refused at once, naming the first.  ``create``: the stage may create the file."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(path: str | Path, options, *args, **kwargs):
            with store.writer_lock(path, stage, create=create):
                return fn(path, options, *args, **kwargs)
        wrapper.stage = stage
        return wrapper
    return decorate


def warn(msg: str) -> None:
    """A one-line warning on stderr."""
    print(f"genni: warning: {msg}", file=sys.stderr)


def device(name: str) -> torch.device:
    """The torch device called ``name``; :class:`GenniError` when it is unknown or absent here."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise GenniError(f"unknown device '{name}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenniError(f"device '{name}' requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GenniError(f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def architecture(model: models.Model) -> dict:
    """The JSON description stored on /reference/theta: the model's own, its phrase and its sizes (so
    readers check shapes without building the model)."""
    return {**model.to_dict(), "description": model.describe(), "n_params": model.n_params, "in_dim": model.in_dim,
            "out_dim": model.out_dim}


def reference_facts(model: models.Model, problem: search.Problem, tol: float) -> dict:
    """Output power (mean ‖f_θ*(x)‖² on probe and held-out inputs), the degeneracy flag
    (tol / output power > :data:`DEGENERATE_RATIO`) and the dead units of the reference."""
    power = problem.output_power
    dead = model.dead_units(problem.theta_ref.cpu().numpy(), problem.X.cpu().numpy())
    return {
        "output_power": power,
        "output_power_heldout": problem.output_power_heldout,
        "degenerate": bool(power <= 0 or tol / power > DEGENERATE_RATIO),
        "dead_units": dead,
    }


def far_inputs(cfg: dict, model: models.Model, theta_ref: np.ndarray, X: np.ndarray,
               X_heldout: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict, float]:
    """The run's far inputs (:func:`genni.data.far_inputs` around the probe and held-out inputs,
    ``[data] n_far`` of them at ``far_scale`` × the data's radius, seeded by the run's seed) and
    the reference's outputs there.

    theta_ref : array, shape [P];  X : array, shape [n, w_0];  X_heldout : array, shape [m, w_0]
    returns : (X_far [n_far, w_0], Y_far [n_far, w_L], attributes for /probe, output power on them)
    """
    d = cfg.get("data", {})
    n_far = d.get("n_far", _data.DEFAULT_N_FAR)
    scale = d.get("far_scale", _data.DEFAULT_FAR_SCALE)
    X_far, facts = _data.far_inputs(np.concatenate([X, X_heldout]), n_far, scale=scale, seed=int(cfg.get("seed", 0)))
    with torch.no_grad():
        Y_far = model.forward(torch.as_tensor(theta_ref), torch.as_tensor(X_far)).numpy()
    attrs = {"far_how": facts["how"], "far_radius": facts["radius"], "far_scale": facts["scale"],
             "far_centre": facts["centre"]}
    return X_far, Y_far, attrs, discrepancy.output_power(Y_far)


def networks(run: store.RunData, max_networks: int) -> tuple[np.ndarray, np.ndarray]:
    """The networks a geometry stage looks at: the reference, then up to ``max_networks − 1`` converged elements.

    returns : (rows of /equivalents used [M − 1], θ [M, P])
    """
    rows = np.flatnonzero(run.equivalents["converged"])[: max_networks - 1] if run.n_equivalents else np.zeros(0, int)
    thetas = np.concatenate([run.theta_ref[None], run.equivalents["theta"][rows]]) if len(rows) else run.theta_ref[None]
    return rows, thetas


def tolerance(run: store.RunData) -> float:
    """The run's convergence tolerance (absolute mean squared discrepancy)."""
    return float(run.equivalents_attrs.get("tol", run.config["search"]["tol"]))


def next_chain(run: store.RunData) -> int:
    """The first chain id (a walk's or a teleport's) no stored row uses and no walk config reserves for ``find``."""
    eq = run.equivalents
    section = run.config["search"]
    reserved = int(section.get("chains", 0)) if section.get("init") == "walk" else 0
    return max(int(eq["chain"].max()) + 1 if run.n_equivalents else 0, reserved)


def start_state(run: store.RunData, start: int, what: str) -> tuple[np.ndarray, int, int]:
    """Where a chain (a walk's or a teleport's) starts: element ``start`` (0 = θ*, k = row k − 1 of
    /equivalents), which must lie on the class.  A one-line GenniError naming ``what`` otherwise.

    returns : (θ [P], its row (−1 for θ*), the accepted steps of its chain there (0 off a chain))
    """
    n = run.n_equivalents
    if not 0 <= start <= n:
        raise GenniError(f"--from {start} is out of range: 0 is θ*, 1..{n} the stored elements")
    if start == 0:
        return run.theta_ref, -1, 0
    eq, row = run.equivalents, start - 1
    if not eq["converged"][row]:
        raise GenniError(f"element {start} (row {row}) is not on the class (probe discrepancy "
                         f"{eq['discrepancy'][row]:.3g} > tol {tolerance(run):.3g}): {what} must start on it")
    return eq["theta"][row], row, int(eq["step"][row]) if int(eq["chain"][row]) >= 0 else 0


# option checks: each raises ConfigError naming the option, on one line

def need_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} '{value}' (choose from: {', '.join(allowed)})")


def need_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {value}")


def need_int(name: str, value, at_least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < at_least:
        raise ConfigError(f"{name} must be a whole number ≥ {at_least}, got {value!r}")


class Result(Mapping):
    """Base of every stage's result (a frozen dataclass): it reads as the mapping that ``--json`` prints
    and the ``genni.report.format_*`` functions take.  Fields named in ``optional`` are left out of the
    mapping while they are None; a trailing underscore (``from_``, a Python keyword) is left out of the key.

    ``repr`` (and ``_repr_html_``, for notebooks) is the stage's text headline, ``headline`` (the
    ``genni.report.format_*`` function the command line prints), under the result's name: a summary, never
    the arrays.  A subclass is declared ``@dataclass(frozen=True, repr=False)`` to keep it."""

    optional: ClassVar[tuple[str, ...]] = ()
    headline: ClassVar[Callable[[Mapping], str] | None] = None

    def _text(self) -> str:
        """The headline, or (when a result lacks what its headline needs) the scalar fields."""
        fn = type(self).headline
        try:
            if fn is not None:
                return fn(self)
        except (KeyError, TypeError, ValueError, IndexError):
            pass
        return ", ".join(f"{k} = {v!r}" for k, v in self.to_dict().items()
                         if isinstance(v, (str, bool, numbers.Number)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}\n" + "\n".join("  " + line for line in self._text().splitlines())

    def _repr_html_(self) -> str:
        return (f"<b>{html.escape(type(self).__name__)}</b>"
                f"<pre style='white-space: pre-wrap'>{html.escape(self._text())}</pre>")

    def to_dict(self) -> dict:
        """The fields in order, as a plain dict (``optional`` fields only when set)."""
        return {f.name.removesuffix("_"): getattr(self, f.name) for f in fields(self)
                if not (f.name in self.optional and getattr(self, f.name) is None)}

    def __getitem__(self, key: str):
        d = self.to_dict()
        if key not in d:
            raise KeyError(key)
        return d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
