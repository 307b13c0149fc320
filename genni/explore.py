"""``genni.explore``: a trained model and its inputs, from memory, into a run file and a :class:`~genni.notebook.Run`.

No config file, factory file or state_dict is needed: the model object is the reference (θ* its
parameters), X the probe inputs, and every config key is a keyword (:func:`genni.config.explore_config`).
explore runs the find stage (reference, probe data, n equivalents) and returns the run's handle, whose
methods run the other stages.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import torch

from . import config as _config
from .errors import ConfigError
from .models import Model
from .models.base import _shape
from .models.convert import from_module
from .notebook import Run
from .stages import find as _find

DEFAULT_N = 32
"""Elements explore finds when neither ``n`` nor ``search={"n": ...}`` says."""

HELDOUT_FRACTION = 0.25
"""The share of X's rows held out when no held-out inputs are given."""

DEFAULT_NAME = "explore"
"""The run's name (and the file ``runs/<name>.h5``) when no ``name`` or ``path`` is given."""


def explore(model, X, n: int | None = None, *, path: str | Path | None = None, heldout=None, theta=None,
            progress: bool = False, **keys) -> Run:
    """Find ``n`` functionally equivalent parameter sets of ``model`` on the inputs ``X``; the run's handle.

    model : a ``torch.nn.Module`` (its parameters are θ*), or a :class:`genni.models.Model` with ``theta``.
        A plain ``nn.Sequential`` of Linear layers and one activation (relu, leaky_relu, tanh, sigmoid, gelu)
        becomes genni's own MLP (every stage, exact relu answers included; the file rebuilds it); any other
        module is held in memory (:mod:`genni.models.convert`): its run file cannot rebuild it, so another
        process passes it again, ``genni.load_run(path, model=net)``.  The module is never changed.
    X : tensor or ndarray, shape [n, d_in] (or [n, C, H, W] for a module taking images): the probe inputs
    n : elements to find (default 32, or ``search={"n": ...}``)
    path : the run file (default ``runs/<name>.h5``; name default ``"explore"``).  An existing file of the same
        model, θ* and inputs is resumed (only missing elements are searched); one of another run is refused
    heldout : tensor or ndarray, shape [m, ...] as X: inputs on which agreement is checked.  Default: a seeded
        quarter of X's rows (:data:`HELDOUT_FRACTION`; the rest are the probe); a number in (0, 1): that share
    theta : ndarray or tensor, shape [P]: θ* of a genni Model (only with one)
    progress : progress bars on stderr
    keys : config keys by name: ``name``, ``seed``, ``n_far``, ``far_scale`` and every ``[search]`` and
        ``[identify]`` key (``tol=1e-12``, ``init="perturb"``, ``method="lm"``), or whole sections
        (``search={"tol": 1e-12}``, ``identify={...}``, ``data={"n_far": 256}``); an unknown key is a one-line
        :class:`~genni.errors.ConfigError` naming it

    returns : :class:`genni.notebook.Run` of the run file
    """
    X = _rows("X", X)
    if isinstance(model, Model):
        if theta is None:
            raise ConfigError("explore: a genni Model needs its parameters: theta= (θ*, shape [P])")
        net, theta_ref = model, _theta(theta, model.n_params)
        if int(np.prod(X.shape[1:])) != model.in_dim:
            raise ConfigError(f"explore: X has {int(np.prod(X.shape[1:]))} features per row ({_shape(X.shape[1:])}) "
                              f"but {model.describe()} takes {model.in_dim}")
    elif isinstance(model, torch.nn.Module):
        if theta is not None:
            raise ConfigError("explore: theta= goes with a genni Model; a torch module's own parameters are θ*")
        net, theta_ref = from_module(model, X)
    else:
        raise ConfigError(f"explore: the model must be a torch.nn.Module or a genni Model, got a {type(model).__name__}")
    seed = keys.get("seed", 0)
    X_probe, X_heldout = _split(X, heldout, seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    flat = lambda A: np.ascontiguousarray(A.reshape(len(A), -1))  # noqa: E731
    X_probe, X_heldout = flat(X_probe), flat(X_heldout)
    _finite_outputs(net, theta_ref, X_probe)
    section = keys.get("search")
    if n is not None:
        keys["n"] = n
    elif not (isinstance(section, dict) and "n" in section):
        keys["n"] = DEFAULT_N
    if "name" not in keys:
        keys["name"] = DEFAULT_NAME
    cfg = _config.explore_config(keys, model=_config.model_table(net), n_probe=len(X_probe), n_heldout=len(X_heldout),
                                 d_in=X_probe.shape[1], shape=X.shape[1:] if X.ndim > 2 else None)
    p = Path(path) if path is not None else Path("runs") / f"{cfg['name']}.h5"
    given = _find.Given(model=net, theta=theta_ref, X=X_probe, X_heldout=X_heldout)
    _find.run(p, _find.FindOptions(cfg, given=given), progress=progress)
    return Run(p)


def _rows(name: str, A) -> np.ndarray:
    """``A`` as a float64 array of rows, shape [n, ...] with n ≥ 1 and every value finite; ConfigError otherwise."""
    if isinstance(A, torch.Tensor):
        A = A.detach().cpu().numpy()
    try:
        A = np.asarray(A)
    except Exception as exc:  # ragged lists and the like
        raise ConfigError(f"explore: {name} is not an array of numbers ({str(exc).splitlines()[0][:120]})") from None
    if A.dtype.kind not in "biuf":
        raise ConfigError(f"explore: {name} must hold numbers, got dtype {A.dtype}")
    if A.ndim < 2 or len(A) == 0 or A.size == 0:
        raise ConfigError(f"explore: {name} must have one row per input, shape [n, d_in] (or [n, C, H, W]) with n ≥ 1, "
                          f"got shape {_shape(A.shape)}")
    A = A.astype(np.float64)
    bad = ~np.isfinite(A.reshape(len(A), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ConfigError(f"explore: {name} holds NaN or infinite values ({len(rows)} row(s), the first row "
                          f"{int(rows[0])})")
    return A


def _theta(theta, P: int) -> np.ndarray:
    """θ* as float64, shape [P], finite; ConfigError otherwise."""
    th = theta.detach().cpu().numpy() if isinstance(theta, torch.Tensor) else np.asarray(theta)
    if th.dtype.kind not in "biuf" or th.ndim != 1 or len(th) != P:
        raise ConfigError(f"explore: theta must be a vector of the model's {P} parameters, got shape "
                          f"{_shape(np.shape(th))} ({th.dtype})")
    th = th.astype(np.float64)
    if not np.isfinite(th).all():
        raise ConfigError("explore: theta holds NaN or infinite values")
    return th


def _split(X: np.ndarray, heldout, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(probe, held-out) rows: ``heldout`` itself when it is an array of X's row shape, else a seeded random
    split of X holding out ``heldout`` (a share in (0, 1); default :data:`HELDOUT_FRACTION`) of its rows."""
    if heldout is None or (isinstance(heldout, numbers.Real) and not isinstance(heldout, bool)):
        share = HELDOUT_FRACTION if heldout is None else float(heldout)
        if not 0 < share < 1:
            raise ConfigError(f"explore: heldout as a share of X's rows must lie strictly between 0 and 1, got {heldout!r}")
        if len(X) < 2:
            raise ConfigError("explore: X has 1 row; holding some out needs at least 2 (or pass heldout= inputs)")
        m = min(len(X) - 1, max(1, round(share * len(X))))
        order = np.random.default_rng([int(seed), 0x4E1D]).permutation(len(X))
        return X[np.sort(order[m:])], X[np.sort(order[:m])]
    Xh = _rows("heldout", heldout)
    if Xh.shape[1:] != X.shape[1:]:
        raise ConfigError(f"explore: heldout rows have shape {_shape(Xh.shape[1:])} but X's rows have "
                          f"{_shape(X.shape[1:])}")
    return X, Xh


def _finite_outputs(model: Model, theta: np.ndarray, X: np.ndarray) -> None:
    """The reference's outputs on the probe inputs are finite; ConfigError otherwise."""
    with torch.no_grad():
        Y = model.forward(torch.as_tensor(theta), torch.as_tensor(X))
    if not torch.isfinite(Y).all():
        raise ConfigError("explore: the model's outputs on X hold NaN or infinite values")


__all__ = ["DEFAULT_N", "DEFAULT_NAME", "HELDOUT_FRACTION", "explore"]
