"""kill -9 harness: start a long-running genni command, SIGKILL it at a random moment, check the file,
resume, and repeat until the command has been killed mid-work ``kills`` times.

Used by ``tests/system/test_crash.py`` (small sizes, in CI) and ``tools/stress_crash.py`` (``make stress``).
Two ways to launch a command:

- ``fork``: a child of a forkserver that has imported genni already, running ``genni.cli.main(argv)``
  (the command's own code path, 40 ms to start instead of 2 s), killed with SIGKILL;
- ``exec``: ``python -m genni ARGV`` in a new session, the whole process group killed with SIGKILL
  (what a user's kill -9 or the OOM killer does; used by make stress).

After every kill a :class:`Checker` verifies (1) the file opens with plain h5py, (2) every element /
grid cell / sweep cell marked done is intact (recomputed from what is stored and compared), (3) what was
done before the launch is still there, byte for byte (nothing lost, nothing recomputed).  A final
uninterrupted run must complete the work.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from genni.models import MLP

_CTX = None


def _forkserver():
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["genni.cli", "genni.stages", "genni.sweep"])
    return _CTX


def _child(argv: list[str], cwd: str) -> None:
    os.setsid()  # its own process group: a sweep's local workers die with it
    os.chdir(cwd)
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch

    torch.set_num_threads(1)
    from genni import cli

    os._exit(cli.main(argv) or 0)


class Launched:
    """A running genni command: ``alive()``, ``kill()`` (SIGKILL to its process group), ``wait()``."""

    def __init__(self, argv: list[str], mode: str, cwd: str):
        self.mode = mode
        if mode == "fork":
            self.proc = _forkserver().Process(target=_child, args=(argv, cwd))
            self.proc.start()
            self.pid = self.proc.pid
        else:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            self.proc = subprocess.Popen([sys.executable, "-m", "genni", *argv], cwd=cwd, start_new_session=True,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.is_alive() if self.mode == "fork" else self.proc.poll() is None

    def kill(self) -> None:
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        if self.mode == "fork":
            self.proc.join(timeout)
            return self.proc.exitcode
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def run_to_end(argv: list[str], mode: str, cwd: str, timeout: float = 600) -> int:
    """Run a command uninterrupted; returns its exit status."""
    h = Launched(argv, mode, cwd)
    code = h.wait(timeout)
    if code is None:
        h.kill()
        raise AssertionError(f"genni {' '.join(argv)} did not finish in {timeout} s")
    return code


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class Checker:
    """What is done in the file, and whether it is intact.  ``snapshot`` -> {item: digest}."""

    def snapshot(self, path: Path) -> dict:
        raise NotImplementedError

    def check(self, path: Path) -> None:
        """Raise AssertionError unless every done item is intact."""
        raise NotImplementedError

    def complete(self, path: Path) -> bool:
        raise NotImplementedError


class ElementsChecker(Checker):
    """A run file's /equivalents (``genni find``, also with ``init = "walk"``): each stored element's
    probe and held-out discrepancies are recomputed from its stored θ and compared; indices are unique;
    walk rows point at earlier rows."""

    def __init__(self, n: int, rtol: float = 1e-9):
        self.n, self.rtol = n, rtol

    def snapshot(self, path):
        if not path.exists():
            return {}
        with h5py.File(path, "r") as f:
            eq = f["equivalents"]
            idx, theta = eq["index"][()], eq["theta"][()]
            return {int(i): _digest(theta[r]) for r, i in enumerate(idx)}

    def check(self, path):
        if not path.exists():
            return  # killed before the file was created: nothing to check
        with h5py.File(path, "r") as f:  # plain h5py
            eq = {k: f["equivalents"][k][()] for k in f["equivalents"]}
            tol = float(f["equivalents"].attrs.get("tol", json.loads(f.attrs["config"])["search"]["tol"]))
        from genni import search, store

        run = store.load_run(path)
        n = len(eq["index"])
        assert len(np.unique(eq["index"])) == n, "duplicate element indices"
        assert all(len(v) == n for k, v in eq.items() if k != "theta") and eq["theta"].shape[0] == n
        if n == 0:
            return
        spec = MLP.from_dict(run.architecture)
        problem = search.Problem.from_arrays(spec, run.theta_ref, run.X, run.X_heldout)
        again = search.as_found(problem, eq["theta"], eq["index"], tol)
        np.testing.assert_allclose(eq["discrepancy"], again.discrepancy, rtol=self.rtol, atol=1e-300)
        np.testing.assert_allclose(eq["discrepancy_heldout"], again.discrepancy_heldout, rtol=self.rtol, atol=1e-300)
        assert np.array_equal(eq["converged"], again.converged)
        if "parent" in eq:
            assert np.all(eq["parent"] < np.arange(n)), "a walk row points at a later row"

    def complete(self, path):
        return path.exists() and len(self.snapshot(path)) >= self.n


class GridChecker(Checker):
    """``/projections/<name>``: every filled grid cell (not NaN) is recomputed at its grid point."""

    def __init__(self, name: str, rtol: float = 1e-8):
        self.name, self.rtol = name, rtol

    def _grids(self, path):
        with h5py.File(path, "r") as f:
            g = f.get(f"projections/{self.name}")
            if g is None:
                return None
            return {k: g[k][()] for k in ("values", "values_heldout", "axes", "origin", "basis")}

    def snapshot(self, path):
        g = self._grids(path)
        if g is None:
            return {}
        out = {}
        for which in ("values", "values_heldout"):
            flat = g[which].ravel()
            out.update({(which, int(i)): _digest(flat[i:i + 1]) for i in np.flatnonzero(~np.isnan(flat))})
        return out

    def check(self, path):
        g = self._grids(path)
        if g is None:
            return
        from genni import projection, store

        run = store.load_run(path)
        spec = MLP.from_dict(run.architecture)
        for which, X, Y in (("values", run.X, run.Y), ("values_heldout", run.X_heldout, run.Y_heldout)):
            flat = g[which].ravel()
            done = np.flatnonzero(~np.isnan(flat))
            if len(done) == 0:
                continue
            pick = done if len(done) <= 200 else np.random.default_rng(len(done)).choice(done, 200, replace=False)
            pts = projection.grid_points(g["axes"], g["origin"], g["basis"], np.sort(pick))
            again = projection.path_discrepancy(spec, X, Y, pts)
            np.testing.assert_allclose(flat[np.sort(pick)], again, rtol=self.rtol, atol=1e-14)

    def complete(self, path):
        g = self._grids(path)
        return g is not None and not np.isnan(g["values"]).any() and not np.isnan(g["values_heldout"]).any()


class SweepChecker(Checker):
    """A sweep folder: every cell the table marks done opens and summarises to its table row; every
    cell file that exists opens with plain h5py."""

    def __init__(self, cells: int):
        self.cells = cells

    def _done(self, out: Path) -> list[str]:
        if not (out / "sweep.csv").exists():
            return []
        with open(out / "sweep.csv") as fh:
            return [r["file"] for r in csv.DictReader(fh) if r["status"] == "done"]

    def snapshot(self, out):
        return {f: _digest(np.frombuffer((out / f).read_bytes(), np.uint8)) for f in self._done(out)}

    def check(self, out):
        from genni import store, sweep

        if (out / "sweep.h5").exists():
            cols, _ = store.read_table(out / "sweep.h5")  # the table itself is readable
            assert len(cols["file"]) == self.cells
        for f in self._done(out):
            with h5py.File(out / f, "r") as h:
                assert "equivalents" in h
            row = sweep.summarise_run(store.load_run(out / f))
            i = cols["file"].index(f)
            for k, v in row.items():
                same = v == cols[k][i] or (isinstance(v, float) and np.isnan(v) and np.isnan(cols[k][i]))
                assert same, (f, k, v, cols[k][i])
        for p in out.glob("cell_*.h5"):
            with h5py.File(p, "r"):
                pass

    def complete(self, out):
        return len(self._done(out)) == self.cells


@dataclass
class Report:
    command: str
    kills: int = 0           # SIGKILLs that landed while the command was working
    finished_first: int = 0  # launches that ended before their kill (not counted)
    restarts: int = 0        # times the work completed before enough kills and started again from nothing
    checks: int = 0          # checks passed (one after every kill)
    seconds: float = 0.0
    delays: list = field(default_factory=list)


def kill_loop(command: str, argv: list[str], target: Path, checker: Checker, *, kills: int, window: float | tuple,
              mode: str = "fork", cwd: str | None = None, fresh=None, seed: int = 0, timeout: float = 900) -> Report:
    """SIGKILL ``genni ARGV`` ``kills`` times at uniform random moments in [0, window] (or [lo, hi]) s after launch,
    checking ``target`` after each kill; then run it to the end and check that the work is complete.

    fresh : callable that prepares the work from nothing (e.g. deletes the output); called at the start
    and whenever the work completed before enough kills had landed."""
    rng = np.random.default_rng(seed)
    rep = Report(command)
    cwd = cwd or os.getcwd()
    t0 = time.monotonic()
    if fresh:
        fresh()
    while rep.kills < kills:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{command}: only {rep.kills} kills in {timeout} s")
        before = checker.snapshot(target)
        lo, hi = window if isinstance(window, tuple) else (0.0, window)
        delay = float(rng.uniform(lo, hi))
        h = Launched(argv, mode, cwd)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and h.alive():
            time.sleep(0.005)
        landed = h.alive()
        h.kill()
        code = h.wait()
        if not landed and code != 0:
            raise AssertionError(f"{command}: genni {' '.join(argv)} exited {code} before its kill")
        if landed:
            rep.kills += 1
            rep.delays.append(delay)
        else:
            rep.finished_first += 1
        checker.check(target)
        after = checker.snapshot(target)
        lost = [k for k in before if k not in after]
        changed = [k for k in before if k in after and after[k] != before[k]]
        assert not lost, f"{command}: kill {rep.kills} lost {len(lost)} done items, e.g. {lost[:3]}"
        assert not changed, f"{command}: kill {rep.kills}: {len(changed)} done items were rewritten, e.g. {changed[:3]}"
        rep.checks += 1
        if checker.complete(target) and rep.kills < kills:
            rep.restarts += 1
            if fresh:
                fresh()
    before = checker.snapshot(target)
    code = run_to_end(argv, mode, cwd)
    assert code == 0, f"{command}: the final uninterrupted run exited {code}"
    checker.check(target)
    after = checker.snapshot(target)
    assert all(after.get(k) == v for k, v in before.items()), f"{command}: the final run rewrote done items"
    assert checker.complete(target), f"{command}: the final run did not complete the work"
    rep.seconds = time.monotonic() - t0
    return rep
