"""Every byte genni reads from or writes to HDF5 (the only package importing h5py).

One self-describing file per run (layout: docs/run-file.md).  Crash-safe writes and the one-writer
lock: :mod:`genni.store.atomic`; the file's schema and its validation: :mod:`genni.store.schema`.

Anything wrong with a file (missing, not HDF5, truncated, not a genni run, missing
pieces) raises :class:`~genni.errors.GenniError` with a one-line reason, and a file
is only ever opened for writing after it has been validated.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..errors import GenniError
from . import atomic
from .atomic import writer_lock
from .schema import DERIVED_ELEMENT_FIELDS, ELEMENT_DEFAULTS, ELEMENT_FIELDS, SCHEMA_VERSION, _attr, _open


@dataclass
class RunData:
    """A run file's contents in memory (numpy arrays).

    theta_ref : shape [P];  X, X_heldout : [n, w_0];  Y, Y_heldout : [n, w_L]
    equivalents : field name -> array with N rows (``theta`` : [N, P]); empty dict if none yet
    """

    path: Path
    attrs: dict
    config: dict
    architecture: dict
    theta_ref: np.ndarray
    reference: dict
    X: np.ndarray
    X_heldout: np.ndarray
    Y: np.ndarray
    Y_heldout: np.ndarray
    labels: np.ndarray | None
    labels_heldout: np.ndarray | None
    X_far: np.ndarray | None = None
    """[n_far, w_0] inputs far outside the data (None in files written before they existed)"""
    Y_far: np.ndarray | None = None
    probe_attrs: dict = field(default_factory=dict)
    """attributes of /probe: how the far inputs were drawn (``far_how``, ``far_radius``, ...)"""
    equivalents: dict = field(default_factory=dict)
    equivalents_attrs: dict = field(default_factory=dict)
    identifiability: dict = field(default_factory=dict)
    identifiability_attrs: dict = field(default_factory=dict)
    exact: dict = field(default_factory=dict)
    """/identifiability/exact: {dataset: array, ..., "attrs": {...}} (empty when the file has none)"""
    projections: dict = field(default_factory=dict)
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /projections"""
    layer_paths: dict = field(default_factory=dict)
    """metric -> {dataset: array, ..., "attrs": {...}} for every group under /paths"""
    ricci: dict = field(default_factory=dict)
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /ricci"""
    teleports: dict = field(default_factory=dict)
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /teleports (``genni teleport``)"""

    @property
    def n_equivalents(self) -> int:
        return len(self.equivalents.get("index", ()))


def check_run_file(path: str | Path) -> None:
    """Raise GenniError unless ``path`` is a readable genni run file."""
    _open(path).close()


def read_config(path: str | Path) -> dict:
    """The resolved config stored in a run file."""
    with _open(path) as f:
        return json.loads(_attr(f.attrs["config"]))


def create_run(path: str | Path, *, config: dict, architecture: dict, theta_ref: np.ndarray,
               reference: dict, X: np.ndarray, X_heldout: np.ndarray, Y: np.ndarray, Y_heldout: np.ndarray,
               labels: np.ndarray | None = None, labels_heldout: np.ndarray | None = None,
               X_far: np.ndarray | None = None, Y_far: np.ndarray | None = None, probe_attrs: dict | None = None,
               equivalents_attrs: dict | None = None) -> None:
    """Write a new run file holding the reference and probe data, and an empty /equivalents.

    theta_ref : shape [P];  X, X_heldout : shape [n, w_0];  Y, Y_heldout : shape [n, w_L]
    X_far, Y_far : shape [n_far, w_0], [n_far, w_L]: inputs far outside the data and the reference's
        outputs there;  probe_attrs : attributes of /probe (how the far inputs were drawn)
    reference : scalar facts about the reference (``accuracy`` becomes /reference/accuracy,
        the rest attributes of /reference)
    Refuses to overwrite an existing file.  Written under a temporary name and renamed,
    so a crash never leaves a half-written file at ``path``.
    """
    p = Path(path)
    if p.exists():
        raise GenniError(f"{p} already exists")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenniError(f"cannot create the folder {p.parent}: {exc.strerror or exc}") from None
    P = int(np.asarray(theta_ref).shape[0])
    buf = io.BytesIO()  # built in memory, then written by _write_bytes (see _write)
    with atomic._interrupts_deferred(), h5py.File(buf, "w") as f:
        f.attrs["genni_version"] = __version__
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = datetime.now(UTC).replace(microsecond=0).isoformat()
        f.attrs["config"] = json.dumps(config, sort_keys=True)
        f.attrs["seed"] = int(config.get("seed", 0))
        ref = f.create_group("reference")
        d = ref.create_dataset("theta", data=np.asarray(theta_ref, dtype="f8"))
        d.attrs["architecture"] = json.dumps(architecture, sort_keys=True)
        for k, v in reference.items():
            if k == "accuracy":
                if v is not None:
                    ref.create_dataset("accuracy", data=float(v))
            elif v is not None:
                ref.attrs[k] = v
        probe = f.create_group("probe")
        for name, arr in (("X", X), ("X_heldout", X_heldout), ("Y", Y), ("Y_heldout", Y_heldout),
                          ("labels", labels), ("labels_heldout", labels_heldout), ("X_far", X_far),
                          ("Y_far", Y_far)):
            if arr is not None:
                probe.create_dataset(name, data=np.asarray(arr))
        for k, v in (probe_attrs or {}).items():
            probe.attrs[k] = v
        eq = f.create_group("equivalents")
        eq.create_dataset("theta", shape=(0, P), maxshape=(None, P), dtype="f8",
                          chunks=(max(1, min(64, (1 << 20) // (8 * P))), P))
        for name, dt in ELEMENT_FIELDS.items():
            eq.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
        for k, v in (equivalents_attrs or {}).items():
            eq.attrs[k] = v
    atomic._write_bytes(p, buf.getbuffer())


def update_attrs(path: str | Path, group: str, attrs: dict) -> None:
    """Set attributes of a group (e.g. ``/equivalents`` n_requested on resume)."""
    with atomic._write(path) as f:
        for k, v in attrs.items():
            f[group].attrs[k] = v


def done_indices(path: str | Path) -> np.ndarray:
    """Element indices already stored under /equivalents/index."""
    with _open(path) as f:
        return f["equivalents/index"][()] if "equivalents/index" in f else np.zeros(0, np.int64)


def append_equivalents(path: str | Path, found) -> None:
    """Append a chunk of finished elements (anything with the attributes of
    :data:`ELEMENT_FIELDS` and ``theta`` : [k, P]) and flush it to disk."""
    k = len(found.index)
    if k == 0:
        return
    with atomic._write(path) as f:
        eq = f["equivalents"]
        n = eq["theta"].shape[0]
        theta = np.asarray(found.theta, dtype="f8")
        if theta.shape != (k, eq["theta"].shape[1]):
            raise GenniError(f"cannot append θ of shape {theta.shape} to {path}: expected ({k}, {eq['theta'].shape[1]})")
        for name in DERIVED_ELEMENT_FIELDS:
            if name in eq:
                del eq[name]
        for name, dt in ELEMENT_FIELDS.items():
            if name not in eq:  # a column added after this file was written: earlier rows get its default
                eq.create_dataset(name, data=np.full(n, ELEMENT_DEFAULTS[name], dtype=dt), maxshape=(None,),
                                  chunks=(1024,))
        for name in ("theta", *ELEMENT_FIELDS):
            ds = eq[name]
            ds.resize(n + k, axis=0)
            value = theta if name == "theta" else getattr(found, name, None)
            if value is None:
                value = np.full(k, ELEMENT_DEFAULTS[name])
            ds[n:n + k] = np.asarray(value).astype(ds.dtype)
        f.flush()


def load_run(path: str | Path) -> RunData:
    """Everything in a run file that the figures and reports need."""
    p = Path(path)
    with _open(p) as f:
        try:
            cfg = json.loads(_attr(f.attrs["config"]))
            arch = json.loads(_attr(f["reference/theta"].attrs["architecture"]))
            ref = {k: _attr(v) for k, v in f["reference"].attrs.items()}
            if "accuracy" in f["reference"]:
                ref["accuracy"] = float(f["reference/accuracy"][()])
            g = f["probe"]
            get = lambda name: g[name][()] if name in g else None  # noqa: E731
            eq, eq_attrs = {}, {}
            if "equivalents" in f:
                eq_attrs = {k: _attr(v) for k, v in f["equivalents"].attrs.items()}
                eq = {k: ds[()] for k, ds in f["equivalents"].items() if isinstance(ds, h5py.Dataset)}
            ident, ident_attrs = _read_group(f, "identifiability")
            exact, exact_attrs = _read_group(f, "identifiability/exact")
            exact = {**exact, "attrs": exact_attrs} if exact_attrs else {}
            projections, layer_paths, ricci, teleports = (_read_family(f, fam) for fam in
                                                          ("projections", "paths", "ricci", "teleports"))
            run = RunData(path=p, attrs={k: _attr(v) for k, v in f.attrs.items()}, config=cfg, architecture=arch,
                          theta_ref=f["reference/theta"][()], reference=ref, X=get("X"), X_heldout=get("X_heldout"),
                          Y=get("Y"), Y_heldout=get("Y_heldout"), labels=get("labels"),
                          labels_heldout=get("labels_heldout"), X_far=get("X_far"), Y_far=get("Y_far"),
                          probe_attrs={k: _attr(v) for k, v in g.attrs.items()}, equivalents=eq, equivalents_attrs=eq_attrs,
                          identifiability=ident, identifiability_attrs=ident_attrs, exact=exact, projections=projections,
                          layer_paths=layer_paths, ricci=ricci, teleports=teleports)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise GenniError(f"cannot read {p} (damaged run file?): {str(exc).splitlines()[0]}") from None
    if run.equivalents:
        n = len(run.equivalents["index"])
        for name, default in ELEMENT_DEFAULTS.items():  # files written before walks existed
            run.equivalents.setdefault(name, np.full(n, default, dtype=ELEMENT_FIELDS[name]))
    lengths = {k: len(v) for k, v in run.equivalents.items()}
    if len(set(lengths.values())) > 1:
        raise GenniError(f"{p}: /equivalents datasets have different lengths {lengths}")
    return run


def _read_family(f: h5py.File, family: str) -> dict:
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /<family>."""
    out = {}
    for name in f.get(family, {}):
        arrays, attrs = _read_group(f[family], name)
        out[name] = {**arrays, "attrs": attrs}
    return out


def _read_group(f: h5py.File | h5py.Group, name: str) -> tuple[dict, dict]:
    if name not in f:
        return {}, {}
    g = f[name]
    return ({k: ds[()] for k, ds in g.items() if isinstance(ds, h5py.Dataset)},
            {k: _attr(v) for k, v in g.attrs.items()})


def write_identifiability(path: str | Path, *, results: dict, attrs: dict, per_element: dict,
                          element_attrs: dict, exact: tuple[dict, dict] | None = None) -> None:
    """Replace /identifiability (datasets ``results``, attributes ``attrs``) and the
    per-element datasets of :data:`DERIVED_ELEMENT_FIELDS` under /equivalents.  ``exact``: (datasets,
    attributes) of /identifiability/exact; None keeps the group a run file already holds."""
    with atomic._write(path) as f:
        n = f["equivalents/index"].shape[0]
        for k, v in per_element.items():
            if k not in DERIVED_ELEMENT_FIELDS or len(v) != n:
                raise GenniError(f"cannot store /equivalents/{k} with {len(v)} rows in a run of {n} elements")
        kept = "identifiability/exact" in f and exact is None
        if kept:
            f.move("identifiability/exact", "exact_kept")
        _replace_group(f, "identifiability", results, attrs)
        if kept:
            f.move("exact_kept", "identifiability/exact")
        elif exact is not None:
            _replace_group(f, "identifiability/exact", *exact)
        eq = f["equivalents"]
        for k, v in per_element.items():
            if k in eq:
                del eq[k]
            eq.create_dataset(k, data=np.asarray(v))
        for k, v in element_attrs.items():
            eq.attrs[k] = v
        f.flush()


def write_far_inputs(path: str | Path, X_far: np.ndarray, Y_far: np.ndarray, probe_attrs: dict,
                     reference_attrs: dict) -> None:
    """Add /probe/X_far [n_far, w_0] and /probe/Y_far [n_far, w_L] to a run file written before
    far inputs existed (attributes of /probe and /reference alongside).  Refuses to replace
    existing far inputs: the verdicts stored with them rest on those very points."""
    with atomic._write(path) as f:
        if "X_far" in f["probe"]:
            raise GenniError(f"{path} already holds far inputs (/probe/X_far)")
        X_far, Y_far = np.asarray(X_far, dtype="f8"), np.asarray(Y_far, dtype="f8")
        if X_far.shape != (len(X_far), f["probe/X"].shape[1]) or Y_far.shape != (len(X_far), f["probe/Y"].shape[1]):
            raise GenniError(f"far inputs of shapes {X_far.shape}, {Y_far.shape} do not fit {path}")
        f["probe"].create_dataset("X_far", data=X_far)
        f["probe"].create_dataset("Y_far", data=Y_far)
        for k, v in probe_attrs.items():
            f["probe"].attrs[k] = v
        for k, v in reference_attrs.items():
            f["reference"].attrs[k] = v
        f.flush()


def contents(path: str | Path) -> list[dict]:
    """Every group and dataset in the file: path, kind, shape, dtype and small attributes."""
    out: list[dict] = []
    with _open(path) as f:
        def visit(name, obj):
            entry = {"path": "/" + name, "kind": "group" if isinstance(obj, h5py.Group) else "dataset"}
            if isinstance(obj, h5py.Dataset):
                entry.update(shape=list(obj.shape), dtype=str(obj.dtype))
            attrs = {k: _attr(v) for k, v in obj.attrs.items() if k != "config"}
            if attrs:
                entry["attrs"] = attrs
            out.append(entry)
        f.visititems(visit)
    return out


def prepare_projection(path: str | Path, name: str, *, arrays: dict, attrs: dict, grid_shape: tuple[int, ...]) -> dict:
    """Create (or keep, to resume) ``/projections/<name>`` with NaN-filled grids.

    arrays : ``basis`` [k, P], ``origin`` [P], ``coords`` [N, k], ``residuals`` [N], ``axes`` [k, R], ...
    attrs : must include ``signature`` (JSON text): a group whose signature matches is kept
        with its values, so an interrupted grid resumes; otherwise it is replaced.
    returns : the done masks ``{"values": bool [R]*k, "values_heldout": ...}``
    """
    with atomic._write(path) as f:
        g = f.require_group("projections")
        if name in g and _attr(g[name].attrs.get("signature", "")) != attrs["signature"]:
            del g[name]
        if name not in g:
            grp = g.create_group(name)
            for k, v in arrays.items():
                grp.create_dataset(k, data=np.asarray(v))
            for which in ("values", "values_heldout"):
                grp.create_dataset(which, shape=grid_shape, dtype="f8", fillvalue=np.nan,
                                   chunks=True if len(grid_shape) else None)
            for k, v in attrs.items():
                grp.attrs[k] = v
            f.flush()
        grp = g[name]
        return {which: ~np.isnan(grp[which][()]) for which in ("values", "values_heldout")}


def write_grid_values(path: str | Path, name: str, which: str, flat_index: np.ndarray, values: np.ndarray) -> None:
    """Store one contiguous run of grid values (flat C-order indices) and flush."""
    write_grid_runs(path, name, which, [(flat_index, values)])


def write_grid_runs(path: str | Path, name: str, which: str, runs: list) -> None:
    """Store several contiguous runs of grid values in one write (one copy of the file).

    runs : list of (flat C-order indices [m] — one contiguous run each —, values [m])
    Writes row segments of the grid in place (no read-back of the whole grid)."""
    checked = []
    for flat_index, values in runs:
        idx = np.asarray(flat_index, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if len(idx) != len(values) or np.any(np.diff(idx) != 1):
            raise GenniError("grid values must come as contiguous runs of flat indices")
        if len(idx):
            checked.append((idx, values))
    if not checked:
        return
    with atomic._write(path) as f:
        ds = f["projections"][name][which]
        R = ds.shape[-1]
        for idx, values in checked:
            start, stop = int(idx[0]), int(idx[-1]) + 1
            pos = start
            while pos < stop:
                row, col = divmod(pos, R)
                end = min(stop, (row + 1) * R)
                lead = np.unravel_index(row, ds.shape[:-1]) if ds.ndim > 1 else ()
                ds[tuple(int(i) for i in lead) + (slice(col, col + end - pos),)] = values[pos - start:end - start]
                pos = end


def read_family(path: str | Path, family: str) -> dict:
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /<family> (e.g. paths_between)."""
    with _open(path) as f:
        return _read_family(f, family)


def group_names(path: str | Path, group: str) -> list[str]:
    """Names of the members of ``group`` (an empty list when it is absent)."""
    with _open(path) as f:
        return sorted(f[group].keys()) if group in f else []


def read_group(path: str | Path, group: str) -> tuple[dict, dict]:
    """The datasets (as arrays) and attributes of ``group``; two empty dicts when it is absent."""
    with _open(path) as f:
        return _read_group(f, group)


def write_group(path: str | Path, group: str, arrays: dict, attrs: dict) -> None:
    """Replace the group ``group`` (e.g. ``projections/barriers``) with these datasets and attributes."""
    with atomic._write(path) as f:
        _replace_group(f, group, arrays, attrs)
        f.flush()


def write_teleport(path: str | Path, name: str, arrays: dict, attrs: dict, *,
                   segment_epsilon: float | None = None) -> None:
    """One teleport's record as ``/teleports/<name>`` (datasets ``arrays``, attributes ``attrs``) and, when it
    stored rows, the ε their segments satisfy as /equivalents' ``segment_epsilon``, in one write."""
    with atomic._write(path) as f:
        _replace_group(f, f"teleports/{name}", arrays, attrs)
        if segment_epsilon is not None:
            f["equivalents"].attrs["segment_epsilon"] = segment_epsilon
        f.flush()


def _replace_group(f: h5py.File, group: str, arrays: dict, attrs: dict) -> None:
    if group in f:
        del f[group]
    g = f.create_group(group)
    for k, v in arrays.items():
        g.create_dataset(k, data=np.asarray(v))
    for k, v in attrs.items():
        g.attrs[k] = v


def write_table(path: str | Path, columns: dict, attrs: dict) -> None:
    """A sweep's table: one dataset per column under /cells (all of one length), written to a temporary
    file and renamed over ``path``, so a reader never sees half a table.  Text columns are stored as
    UTF-8 strings.  columns : name -> 1-D array or list of str."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with atomic._interrupts_deferred(), h5py.File(buf, "w") as f:
        f.attrs["genni_version"] = __version__
        f.attrs["kind"] = "genni sweep table"
        f.attrs["created"] = datetime.now(UTC).replace(microsecond=0).isoformat()
        for k, v in attrs.items():
            f.attrs[k] = v
        g = f.create_group("cells")
        for name, col in columns.items():
            arr = np.asarray(col)
            if arr.dtype.kind in "UO":
                g.create_dataset(name, data=[str(x) for x in col], dtype=h5py.string_dtype("utf-8"))
            else:
                g.create_dataset(name, data=arr)
    atomic._write_bytes(p, buf.getbuffer())


def read_table(path: str | Path) -> tuple[dict, dict]:
    """(columns, attributes) of a sweep table written by :func:`write_table`."""
    p = Path(path)
    if not p.is_file() or not h5py.is_hdf5(p):
        raise GenniError(f"{p} is not a sweep table (missing or not HDF5)")
    with h5py.File(p, "r") as f:
        if f.attrs.get("kind") != "genni sweep table" or "cells" not in f:
            raise GenniError(f"{p} is not a genni sweep table")
        cols = {}
        for name, ds in f["cells"].items():
            v = ds[()]
            cols[name] = [x.decode() if isinstance(x, bytes) else x for x in v] if ds.dtype.kind == "O" else v
        return cols, {k: _attr(v) for k, v in f.attrs.items()}


__all__ = ["SCHEMA_VERSION", "ELEMENT_FIELDS", "ELEMENT_DEFAULTS", "DERIVED_ELEMENT_FIELDS", "RunData", "atomic", "writer_lock",
           "check_run_file", "read_config", "create_run", "update_attrs", "done_indices", "append_equivalents",
           "load_run", "write_identifiability", "write_far_inputs", "contents", "prepare_projection",
           "write_grid_values", "write_grid_runs", "read_family", "group_names", "read_group", "write_group",
           "write_teleport", "write_table", "read_table"]
