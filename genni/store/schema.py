"""The run file's schema: its version, the per-element columns, and the validation of a file before it
is read or written (a one-line :class:`~genni.errors.GenniError` for anything that is not a readable
genni run)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..errors import GenniError

SCHEMA_VERSION = 1

# the per-element 1-D datasets under /equivalents, with their dtypes
ELEMENT_FIELDS: dict[str, str] = {
    "index": "i8",
    "discrepancy": "f8",
    "discrepancy_heldout": "f8",
    "relative_discrepancy": "f8",
    "relative_discrepancy_heldout": "f8",
    "converged": "?",
    "steps": "i8",
    "restarts": "i8",
    "init_seed": "i8",
    "status": "i1",
    "dead_units": "i4",
    "hops": "i8",
    "chain": "i8",
    "step": "i8",
    "parent": "i8",
    "segment_max": "f8",
}
# what rows without these columns hold (elements not from a walk; files written before walks existed)
ELEMENT_DEFAULTS: dict[str, float] = {"chain": -1, "step": 0, "parent": -1, "segment_max": np.nan}
# per-element results of `genni identify`; stale (and deleted) once more elements are appended
DERIVED_ELEMENT_FIELDS = ("verdict", "aligned_theta", "distance_to_reference", "symmetry_threshold",
                          "distance_row", "distance_null", "copy_score", "linearity_heldout", "linearity_far",
                          "discrepancy_far", "relative_discrepancy_far", "certified_sup", "certified_gap",
                          "certified_lower", "certified_status", "certified_witness", "certified_seconds",
                          "certified_relative")
_REQUIRED = ("reference/theta", "probe/X", "probe/X_heldout", "probe/Y", "probe/Y_heldout")


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _open(path: str | Path, mode: str = "r") -> h5py.File:
    """Open a validated genni run file."""
    p = Path(path)
    if not p.exists():
        raise GenniError(f"run file not found: {p}")
    if p.is_dir():
        raise GenniError(f"{p} is a directory, not a run file")
    if not h5py.is_hdf5(p):
        raise GenniError(f"{p} is not an HDF5 file")
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        raise GenniError(f"cannot open {p} (truncated or damaged HDF5 file?): {str(exc).splitlines()[0]}") from None
    try:
        if "genni_version" not in f.attrs or "schema_version" not in f.attrs:
            raise GenniError(f"{p} is an HDF5 file but not a genni run (no genni_version/schema_version attributes)")
        if int(f.attrs["schema_version"]) > SCHEMA_VERSION:
            raise GenniError(f"{p} has schema_version {int(f.attrs['schema_version'])}; this genni reads up to {SCHEMA_VERSION}")
        missing = [k for k in _REQUIRED if k not in f]
        if missing:
            raise GenniError(f"{p} is an incomplete genni run: missing /{missing[0]}")
        _check_structure(f, p)
    except GenniError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        f.close()
        raise GenniError(f"cannot read {p} (truncated or damaged HDF5 file?): {str(exc).splitlines()[0]}") from None
    return f


def _n_params(arch: dict) -> int:
    w = [int(x) for x in arch["widths"]]
    b = 1 if arch.get("bias", True) else 0
    return sum((w[i] + b) * w[i + 1] for i in range(len(w) - 1))


def _check_structure(f: h5py.File, p: Path) -> None:
    """Shapes and values that every reader relies on: the stored config and architecture parse, θ*,
    the probe arrays and the elements fit the architecture, and θ* and the probe data are finite."""
    for where, text in (("the config attribute", f.attrs.get("config", "{}")),
                        ("/reference/theta's architecture attribute", f["reference/theta"].attrs.get("architecture"))):
        try:
            value = json.loads(_attr(text)) if text is not None else None
        except (ValueError, TypeError):
            raise GenniError(f"{p}: {where} is not valid JSON (edited or damaged run file)") from None
        if value is None or not isinstance(value, dict):
            raise GenniError(f"{p}: {where} is missing or not a table (edited or damaged run file)")
    arch = json.loads(_attr(f["reference/theta"].attrs["architecture"]))
    try:
        if "widths" in arch:
            P, w_in, w_out = _n_params(arch), int(arch["widths"][0]), int(arch["widths"][-1])
        else:  # other kinds store their sizes (genni.stages.find writes n_params, in_dim, out_dim)
            P, w_in, w_out = int(arch["n_params"]), int(arch["in_dim"]), int(arch["out_dim"])
    except (KeyError, TypeError, ValueError, IndexError):
        raise GenniError(f"{p}: /reference/theta's architecture attribute has no valid widths or sizes") from None
    what = arch.get("widths", arch.get("description", arch.get("kind")))
    shapes = {"reference/theta": (P,), "equivalents/theta": (None, P), "probe/X": (None, w_in),
              "probe/X_heldout": (None, w_in), "probe/Y": (None, w_out), "probe/Y_heldout": (None, w_out),
              "probe/X_far": (None, w_in), "probe/Y_far": (None, w_out)}
    for name, want in shapes.items():
        if name in f:
            got = f[name].shape
            if len(got) != len(want) or any(a is not None and a != b for a, b in zip(want, got)):
                raise GenniError(f"{p}: /{name} has shape {got}, the architecture {what} needs "
                                 f"{tuple('n' if a is None else a for a in want)} (edited or damaged run file)")
    for a, b in (("probe/X", "probe/Y"), ("probe/X_heldout", "probe/Y_heldout"), ("probe/X_far", "probe/Y_far")):
        if a in f and b in f and f[a].shape[0] != f[b].shape[0]:
            raise GenniError(f"{p}: /{a} has {f[a].shape[0]} rows but /{b} has {f[b].shape[0]}")
    if "equivalents" in f:
        n = f["equivalents/theta"].shape[0] if "equivalents/theta" in f else 0
        for k, ds in f["equivalents"].items():
            if isinstance(ds, h5py.Dataset) and ds.ndim >= 1 and ds.shape[0] != n:
                raise GenniError(f"{p}: /equivalents/{k} has {ds.shape[0]} rows for {n} elements (edited or damaged)")
    for name in ("reference/theta", "probe/X", "probe/Y", "probe/X_heldout", "probe/Y_heldout"):
        if not np.isfinite(f[name][()]).all():
            raise GenniError(f"{p}: /{name} holds NaN or infinite values (edited or damaged run file)")


__all__ = ["SCHEMA_VERSION", "ELEMENT_FIELDS", "ELEMENT_DEFAULTS", "DERIVED_ELEMENT_FIELDS"]
