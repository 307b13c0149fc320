"""Every byte genni reads from or writes to HDF5 (the only module importing h5py).

One self-describing file per run (layout in DESIGN.md and the README).

Crash safety.  A run file is never modified in place.  Every write — creating the file, appending a
chunk of elements, a run of grid cells, a group of results — is made by HDF5 on an in-memory copy of
the file, which is then written to ``.RUN.h5.<pid>.<thread>.tmp`` beside it, fsync'ed and renamed over
the run file (``os.replace``, atomic on POSIX).  HDF5 never writes to disk itself, so a full disk or a
file-size limit is a clean error of that last plain write (HDF5 failing a write of its own can leave
its library state broken and crash the process).  Whenever a process dies (kill -9, a power loss, a
full disk), the run file is either the state before that write or the state after it, never a
mixture; a reader that opened it
keeps reading the snapshot it opened.  What a command finished before it died is therefore in the file,
and resuming recomputes only what was in flight.  Left-over ``.tmp`` copies are removed by the next
writer.  The cost is one copy of the file per write, in memory and on disk (benchmarks/bench_crash.py).

One writer at a time.  :func:`writer_lock` holds an exclusive ``flock`` on ``.RUN.h5.lock`` for the
whole of a writing command; a second writer is refused at once with a message naming the first (the
kernel drops the lock when its holder dies, so a killed writer never leaves a stale lock).  Readers take
no lock.

Anything wrong with a file (missing, not HDF5, truncated, not a genni run, missing
pieces) raises :class:`~genni.errors.GenniError` with a one-line reason, and a file
is only ever opened for writing after it has been validated.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from ._version import __version__
from .errors import GenniError

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
                          "discrepancy_far", "relative_discrepancy_far")
_REQUIRED = ("reference/theta", "probe/X", "probe/X_heldout", "probe/Y", "probe/Y_heldout")


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
    projections: dict = field(default_factory=dict)
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /projections"""
    layer_paths: dict = field(default_factory=dict)
    """metric -> {dataset: array, ..., "attrs": {...}} for every group under /paths"""
    ricci: dict = field(default_factory=dict)
    """name -> {dataset: array, ..., "attrs": {...}} for every group under /ricci"""

    @property
    def n_equivalents(self) -> int:
        return len(self.equivalents.get("index", ()))


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


def _tmp_name(p: Path) -> Path:
    return p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C back until the block ends, so that KeyboardInterrupt is never raised inside h5py's
    Python file-driver callbacks on the in-memory copy (HDF5 calls them from C and would have to unwind
    it through its own state).  In the main thread, while Python's default SIGINT handler is installed,
    a recording handler stands in for it; a SIGINT that came meanwhile is raised as KeyboardInterrupt
    right after the block (a handler, not a signal mask: the kernel may deliver a process-directed
    signal to any thread, e.g. one of torch's)."""
    import signal

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    came: list = []
    signal.signal(signal.SIGINT, lambda *_: came.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if came:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _write(path: str | Path):
    """Open a validated run file for writing, copy-on-write: yields an h5py.File on a copy that replaces
    the file only when the block ends without an exception (see the module docstring).  Ctrl-C waits
    until the write is done (:func:`_interrupts_deferred`)."""
    with _interrupts_deferred():
        with _write_unmasked(path) as f:
            yield f


@contextlib.contextmanager
def _write_unmasked(path: str | Path):
    p = Path(path)
    if IN_PLACE or os.environ.get("GENNI_UNSAFE_IN_PLACE_WRITES") == "1":  # the baseline of benchmarks/stress only
        with _open(p, "r+") as f:
            yield f
        return
    _open(p).close()  # validates: a clear error for anything that is not a genni run
    # HDF5 works on an in-memory copy; only plain Python file writes touch the disk, so a full disk or
    # a size limit is a clean OSError here (HDF5 itself, failing a write, can leave its library state
    # broken and crash the process at exit)
    buf = io.BytesIO(p.read_bytes())
    with h5py.File(buf, "r+") as f:
        yield f
        f.flush()
    _write_bytes(p, buf.getbuffer())


def _write_bytes(p: Path, data) -> None:
    """Write ``data`` to a temporary copy beside ``p``, fsync it, rename it over ``p``."""
    tmp = _tmp_name(p)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if p.exists():
            shutil.copymode(p, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        raise GenniError(f"cannot write {p}: {exc.strerror or exc} (the file is unchanged)") from None
    finally:
        if tmp.exists():
            tmp.unlink()


IN_PLACE = False
"""True: write run files in place, as genni did before copy-on-write (not crash-safe).  Only for the
baselines of benchmarks/bench_crash.py and the stress harness; also ``GENNI_UNSAFE_IN_PLACE_WRITES=1``."""

_HELD: dict[str, list] = {}  # resolved lock path -> [fd, depth]: re-entrant within a process
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def writer_lock(path: str | Path, what: str = "write", *, create: bool = False, wait: float = 0.0):
    """Hold the one-writer lock of ``path`` (``.NAME.lock`` beside it) for the block.

    ``create``: the command may create the run file (and its folder); otherwise a path that is not an
    existing file takes no lock (the command itself then reports what is wrong with it).
    ``wait``: seconds to wait for another holder to finish (a sweep cell still being finished by an
    orphaned task of a killed sweep) before refusing.

    Refuses at once with :class:`GenniError` when another process holds it, naming that process.
    Re-entrant within a process (``genni run`` = find, then identify, ... under one lock).  Removes
    copies left by writers that died (``.NAME.*.tmp``) once the lock is held."""
    import fcntl

    p = Path(path)
    if not create and not p.is_file():
        yield
        return
    lock = p.with_name(f".{p.name}.lock")
    key = str(lock.resolve()) if lock.parent.exists() else ""
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise GenniError(f"cannot write in {p.parent}: {exc.strerror or exc}") from None
            key = str(lock.resolve())
            give_up = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() < give_up:
                        time.sleep(0.1)
                        continue
                    holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another process"
                    os.close(fd)
                    raise GenniError(f"{p} is being written by {holder}; wait for it to finish "
                                     f"(readers such as inspect and plot work meanwhile)") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} (genni {what}, since "
                          f"{datetime.now(UTC).isoformat(timespec='seconds')})".encode(), 0)
            _HELD[key] = [fd, 1]
            for stale in p.parent.glob(f".{p.name}.*.tmp"):
                with contextlib.suppress(OSError):
                    stale.unlink()
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                fd = _HELD.pop(key)[0]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


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
    with _interrupts_deferred(), h5py.File(buf, "w") as f:
        f.attrs["genni_version"] = __version__
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = datetime.now(UTC).isoformat(timespec="seconds")
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
    _write_bytes(p, buf.getbuffer())


def update_attrs(path: str | Path, group: str, attrs: dict) -> None:
    """Set attributes of a group (e.g. ``/equivalents`` n_requested on resume)."""
    with _write(path) as f:
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
    with _write(path) as f:
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
            projections, layer_paths, ricci = (_read_family(f, fam) for fam in ("projections", "paths", "ricci"))
            run = RunData(path=p, attrs={k: _attr(v) for k, v in f.attrs.items()}, config=cfg, architecture=arch,
                          theta_ref=f["reference/theta"][()], reference=ref, X=get("X"), X_heldout=get("X_heldout"),
                          Y=get("Y"), Y_heldout=get("Y_heldout"), labels=get("labels"),
                          labels_heldout=get("labels_heldout"), X_far=get("X_far"), Y_far=get("Y_far"),
                          probe_attrs={k: _attr(v) for k, v in g.attrs.items()}, equivalents=eq, equivalents_attrs=eq_attrs,
                          identifiability=ident, identifiability_attrs=ident_attrs, projections=projections,
                          layer_paths=layer_paths, ricci=ricci)
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
                          element_attrs: dict) -> None:
    """Replace /identifiability (datasets ``results``, attributes ``attrs``) and the
    per-element datasets of :data:`DERIVED_ELEMENT_FIELDS` under /equivalents."""
    with _write(path) as f:
        n = f["equivalents/index"].shape[0]
        for k, v in per_element.items():
            if k not in DERIVED_ELEMENT_FIELDS or len(v) != n:
                raise GenniError(f"cannot store /equivalents/{k} with {len(v)} rows in a run of {n} elements")
        _replace_group(f, "identifiability", results, attrs)
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
    with _write(path) as f:
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


def describe(path: str | Path) -> list[dict]:
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
    with _write(path) as f:
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
    with _write(path) as f:
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
    with _write(path) as f:
        _replace_group(f, group, arrays, attrs)
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
    with _interrupts_deferred(), h5py.File(buf, "w") as f:
        f.attrs["genni_version"] = __version__
        f.attrs["kind"] = "genni sweep table"
        f.attrs["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        for k, v in attrs.items():
            f.attrs[k] = v
        g = f.create_group("cells")
        for name, col in columns.items():
            arr = np.asarray(col)
            if arr.dtype.kind in "UO":
                g.create_dataset(name, data=[str(x) for x in col], dtype=h5py.string_dtype("utf-8"))
            else:
                g.create_dataset(name, data=arr)
    _write_bytes(p, buf.getbuffer())


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
