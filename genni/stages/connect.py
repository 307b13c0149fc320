"""Stage ``connect``: a certified path inside the class between two stored elements, or an honest failure.

A path θ_I = v_0, v_1, …, v_K = θ_J is certified when every straight segment v_k → v_{k+1} keeps the
relative discrepancy mean‖f_θ(x) − f_θ*(x)‖² / mean‖f_θ*(x)‖² ≤ ε along its whole length (``segment_max``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import discrepancy, models, report, store
from .. import walk as walk_
from ..errors import ConfigError, GenniError
from .common import Log, Result, need_int, quiet, tolerance, writes
from .walk import walk_settings


@dataclass(frozen=True)
class ConnectOptions:
    """What ``connect`` joins: elements ``i`` and ``j`` (0 = θ*, k = row k − 1 of /equivalents);
    ``max_steps`` step attempts of the directed walk."""

    i: int
    j: int
    max_steps: int = 200

    def __post_init__(self):
        need_int("connect I", self.i, 0)
        need_int("connect J", self.j, 0)
        need_int("connect --max-steps", self.max_steps, 1)
        if self.i == self.j:
            raise ConfigError("I and J are the same element")


@dataclass(frozen=True, repr=False)
class ConnectResult(Result):
    """The path found: its ends, whether it is certified (else the reason), how it was found, its vertex
    count K, ε, the largest segment certificate and its length Σ‖v_{k+1} − v_k‖ / ‖θ*‖."""

    headline = staticmethod(report.format_connect)

    from_: int
    to: int
    certified: bool
    reason: str
    method: str
    vertices: int
    epsilon: float
    max_segment: float
    length: float


def done(run: store.RunData) -> bool:
    """The run holds a connecting path."""
    return bool(store.group_names(run.path, "paths_between"))


@writes("connect")
def run(path: str | Path, options: ConnectOptions, *, progress: bool = False, log: Log = quiet) -> ConnectResult:
    """A certified path between element i and element j into ``/paths_between/<i>_<j>``.

    When i and j lie on the same walk tree (parent links), the path follows the stored rows and every
    segment is certified again here; otherwise a walk leaning toward j modulo the exact symmetries
    (:func:`genni.walk.connect`).  An unreachable target is reported (certified = false, a reason),
    never raised.
    """
    i, j = options.i, options.j
    stored = store.load_run(path)
    model = models.from_dict(stored.architecture)
    n = stored.n_equivalents
    for name, v in (("I", i), ("J", j)):
        if not 0 <= v <= n:
            raise GenniError(f"element {name} = {v} is out of range: 0 is θ*, 1..{n} the stored elements")
    eq = stored.equivalents
    tol = tolerance(stored)
    for v in (i, j):
        if v > 0 and not eq["converged"][v - 1]:
            raise GenniError(f"element {v} is not on the class (probe discrepancy {eq['discrepancy'][v - 1]:.3g} > tol)")
    wset = walk_settings(stored.config["search"])
    eps = float(stored.equivalents_attrs.get("segment_epsilon", wset.segment_epsilon))
    theta = lambda v: stored.theta_ref if v == 0 else eq["theta"][v - 1]  # noqa: E731
    x = torch.as_tensor(stored.X)
    Y = torch.as_tensor(stored.Y)
    power = discrepancy.output_power(stored.Y)
    rows = tree_path(eq, i - 1, j - 1) if n else None
    if rows is not None:
        verts = np.stack([stored.theta_ref if r < 0 else eq["theta"][r] for r in rows])
        certs = np.array([discrepancy.segment_max(model, verts[k], verts[k + 1], x, Y, power) for k in range(len(verts) - 1)])
        ok = bool((certs <= eps).all())
        conn = walk_.Connection(verts, certs, ok, "along the stored walk chain" if ok else
                                "a stored segment fails its certificate when recomputed", 0)
        method = "walk tree (parent links), segments re-certified"
    else:
        a = theta(i)
        b, _ = model.symmetry.align(theta(j), a)
        log(f"walking from element {i} toward element {j} (aligned to {i} modulo the exact symmetries)")
        conn = walk_.connect(model, stored.theta_ref, stored.X, a, b, replace(wset, segment_epsilon=eps), tol=tol,
                             max_steps=options.max_steps, seed=int(stored.attrs.get("seed", 0)))
        method = "directed walk toward the target aligned modulo the exact symmetries"
    _write(path, i, j, conn, eps, method)
    length = float(np.linalg.norm(np.diff(conn.vertices, axis=0), axis=1).sum()) if len(conn.vertices) > 1 else 0.0
    return ConnectResult(i, j, conn.certified, conn.reason, method, len(conn.vertices), eps,
                         float(conn.segment_max.max()) if len(conn.segment_max) else float("nan"),
                         length / float(np.linalg.norm(stored.theta_ref)))


def _write(path: str | Path, i: int, j: int, conn: walk_.Connection, eps: float, method: str) -> None:
    """``/paths_between/<i>_<j>``: ``theta`` [K, P] (first = i, last = j or its symmetry copy nearest i),
    ``segment_max`` [K − 1]; attributes ``certified``, ``epsilon``, ``reason``, ``method``, ``from``, ``to``."""
    store.write_group(path, f"paths_between/{i}_{j}", {"theta": conn.vertices, "segment_max": conn.segment_max},
                      {"certified": conn.certified, "epsilon": eps, "reason": conn.reason, "method": method,
                       "from": i, "to": j, "note": "0 = θ*, k = /equivalents row k − 1; the last vertex is J or, "
                       "for a directed walk, J's symmetry copy nearest I (the same function)"})


def tree_path(eq: dict, i: int, j: int) -> list[int] | None:
    """Rows of the path i → j through walk parent links (rows; −1 = θ*), or None if they share no tree."""
    def up(r):
        out = [r]
        while r >= 0:
            r = int(eq["parent"][r])
            out.append(r)
            if len(out) > len(eq["parent"]) + 2:
                return None
        return out
    if not ((i < 0 or eq["chain"][i] >= 0 or i == j) and (j < 0 or eq["chain"][j] >= 0)):
        return None
    a, b = up(i), up(j)
    if a is None or b is None:
        return None
    common = next((r for r in a if r in set(b)), None)
    if common is None:
        return None
    return a[: a.index(common) + 1] + list(reversed(b[: b.index(common)]))


def arguments(parser) -> None:
    """``genni connect``'s arguments."""
    parser.add_argument("run", help="run file (HDF5) written by genni find or run")
    parser.add_argument("i", type=int, help="first element: 0 = θ*, k = row k − 1")
    parser.add_argument("j", type=int, help="second element")
    parser.add_argument("--max-steps", type=int, default=200, help="step attempts of the directed walk (default %(default)s)")


def from_args(args) -> tuple[str, ConnectOptions]:
    return args.run, ConnectOptions(args.i, args.j, max_steps=args.max_steps)
