"""kill -9 at 12 random moments for each long-running command (small sizes; make stress runs larger ones).

After every kill: the file opens with plain h5py, every done element / grid cell / sweep cell is intact
(recomputed from what is stored and compared), nothing done before the launch was lost or rewritten;
the final uninterrupted run completes the work.  See tools/crash_harness.py.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import TINY_CONFIG
from tools import crash_harness as ch

KILLS = 12

FIND = TINY_CONFIG.replace("n = 6\n", "").replace("[2, 6, 1]", "[2, 8, 1]")  # n and init added per test


def _fresh(*paths):
    def go():
        for p in paths:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    return go


@pytest.mark.parametrize("kind", ["find", "walk"])
def test_find_and_walk_survive_kill_9(tmp_path, kind):
    extra = "n = 40\n" if kind == "find" else 'n = 60\ninit = "walk"\nchains = 2\nthin = 2\n'
    (tmp_path / "c.toml").write_text(FIND + extra)
    run = tmp_path / "r.h5"
    rep = ch.kill_loop(kind, ["find", "c.toml", "-o", "r.h5", "--quiet"], run, ch.ElementsChecker(40 if kind == "find" else 60),
                       kills=KILLS, window=0.6, cwd=str(tmp_path), fresh=_fresh(run), seed=1)
    assert rep.kills == KILLS and rep.checks >= KILLS


def test_project_grid_survives_kill_9(tmp_path):
    (tmp_path / "c.toml").write_text(FIND + "n = 6\n")
    assert ch.run_to_end(["find", "c.toml", "-o", "r.h5", "--quiet"], "fork", str(tmp_path)) == 0
    base = (tmp_path / "r.h5").read_bytes()
    run = tmp_path / "r.h5"

    def fresh():
        run.write_bytes(base)

    rep = ch.kill_loop("project", ["project", "r.h5", "--resolution", "301", "--paths", "0", "--quiet"], run,
                       ch.GridChecker("pca"), kills=KILLS, window=0.8, cwd=str(tmp_path), fresh=fresh, seed=2)
    assert rep.kills == KILLS


def test_sweep_of_24_cells_survives_kill_9_of_its_client(tmp_path):
    """The sweep command (the Dask client) killed 12 times; the cluster, started separately, runs on, so a
    cell in flight is finished by its orphaned task (the re-run waits for that cell's lock).  The table
    and the CSV agree with the cell files after every kill; the final run completes all 24 cells."""
    from distributed import LocalCluster

    (tmp_path / "base.toml").write_text(FIND + "n = 1\n")
    (tmp_path / "sw.toml").write_text('base = "base.toml"\nstages = ["train"]\nseeds = 6\n[grid]\n'
                                      '"model.widths" = [[2, 3, 1], [2, 4, 1], [2, 5, 1], [2, 6, 1]]\n')
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster:
        rep = ch.kill_loop("sweep", ["sweep", "sw.toml", "-o", "out", "--scheduler", cluster.scheduler_address,
                                     "--quiet"], out, ch.SweepChecker(24), kills=KILLS, window=1.0,
                           cwd=str(tmp_path), fresh=_fresh(out), seed=3)
    assert rep.kills == KILLS
