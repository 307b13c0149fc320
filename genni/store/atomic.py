"""Crash-safe writes of run files and the one-writer lock.

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
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import h5py

from ..errors import GenniError
from .schema import _open


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
                          f"{datetime.now(UTC).replace(microsecond=0).isoformat()})".encode(), 0)
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


__all__ = ["IN_PLACE", "writer_lock"]
