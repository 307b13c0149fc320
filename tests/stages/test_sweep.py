"""`genni sweep`: cells on Dask, the table against the cell files, failures, resuming after kill -9,
an existing scheduler, bad sweep files."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genni import store, sweep
from genni.cli import main

BASE = """
name = "tiny"
seed = 0
[data]
dataset = "moons"
n_probe = 48
n_heldout = 48
n_train = 100
n_far = 128
[model]
widths = [2, 3, 1]
activation = "tanh"
[reference]
source = "random"
init_scale = 2.0
path = "missing.pt"
[search]
n = 2
batch_size = 2
max_steps = 60
restarts = 0
"""


def _sweep(tmp_path, grid: str, seeds: int = 1, stages: str = '["find", "identify"]') -> Path:
    (tmp_path / "base.toml").write_text(BASE)
    p = tmp_path / "sweep.toml"
    p.write_text(f'base = "base.toml"\nstages = {stages}\nseeds = {seeds}\n[grid]\n{grid}\n')
    return p


def test_table_agrees_with_the_cell_files_and_a_failing_cell_does_not_stop_the_others(tmp_path, capsys):
    sw = _sweep(tmp_path, '"model.widths" = [[2, 3, 1], [2, 2, 2, 1]]\n"reference.source" = ["random", "file"]')
    out = tmp_path / "out"
    assert main(["sweep", str(sw), "-o", str(out), "--workers", "2", "--quiet"]) == 1  # the "file" cells fail
    assert "2 of 4 cells failed" in capsys.readouterr().err
    cols, attrs = store.read_table(out / "sweep.h5")
    assert json.loads(attrs["keys"]) == ["model.widths", "reference.source"]
    assert cols["reference.source"] == ["random", "file", "random", "file"]
    assert cols["model.widths"] == ["[2, 3, 1]", "[2, 3, 1]", "[2, 2, 2, 1]", "[2, 2, 2, 1]"]
    for i, status in enumerate(cols["status"]):
        if cols["reference.source"][i] == "file":
            assert status.startswith("failed: ") and "missing.pt" in status
            continue
        assert status == "done"
        run = store.load_run(out / cols["file"][i])
        assert run.config["model"]["widths"] == json.loads(cols["model.widths"][i])
        assert cols["n_params"][i] == run.theta_ref.shape[0]
        assert cols["functional_dimension"][i] == int(run.identifiability["rank"])
        assert cols["bound"][i] == int(run.identifiability["expected_rank"])
        assert cols["n_converged"][i] == int(run.equivalents["converged"].sum())
        assert cols["output_power"][i] == pytest.approx(run.reference["output_power"])
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"][:6] for r in rows] == [s[:6] for s in cols["status"]]
    np.testing.assert_array_equal([float(r["n_params"] or "nan") for r in rows], cols["n_params"])  # NaN: failed


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    """kill -9 of the sweep command (and its local workers) part-way; the re-run computes only what is
    missing: cells finished before the kill keep their files untouched."""
    sw = _sweep(tmp_path, '"model.widths" = [[2, 3, 1], [2, 4, 1], [2, 5, 1]]', seeds=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "genni", "sweep", str(sw), "-o", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done_before: dict[str, float] = {}
    while time.monotonic() < deadline:
        if (out / "sweep.csv").exists():
            with open(out / "sweep.csv") as fh:
                done = [r["file"] for r in csv.DictReader(fh) if r["status"] == "done"]
            if len(done) >= 2:
                done_before = {f: (out / f).stat().st_mtime_ns for f in done}
                break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done_before, "the sweep finished no cell in time"
    time.sleep(0.5)
    info = sweep.run_sweep(sw, out, workers=1)
    assert info["failed"] == 0 and info["cells"] == 6
    assert info["skipped"] >= len(done_before) and info["ran"] == 6 - info["skipped"]
    for f, mtime in done_before.items():
        assert (out / f).stat().st_mtime_ns == mtime  # not computed again
    cols, _ = store.read_table(out / "sweep.h5")
    assert cols["status"] == ["done"] * 6
    for f in cols["file"]:
        run = store.load_run(out / f)  # every file opens and holds every stage
        assert run.n_equivalents == 2 and "verdict" in run.equivalents


def test_existing_scheduler(tmp_path):
    from distributed import LocalCluster

    sw = _sweep(tmp_path, '"model.widths" = [[2, 3, 1]]', stages='["train"]', seeds=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        info = sweep.run_sweep(sw, tmp_path / "out", scheduler=cluster.scheduler_address)
    assert info["failed"] == 0 and info["ran"] == 2
    cols, _ = store.read_table(tmp_path / "out" / "sweep.h5")
    assert list(cols["seed"]) == [0, 1]
    for f in cols["file"]:
        assert store.load_run(tmp_path / "out" / f).n_equivalents == 0  # train: the reference alone


@pytest.mark.parametrize("text,match", [
    ('stages = ["find"]\n', "needs base"),
    ('base = "base.toml"\nstages = ["fly"]\n', "stages must be"),
    ('base = "base.toml"\nstages = ["train", "find"]\n', "does not combine with find"),
    ('base = "base.toml"\nseeds = 0\n', "seeds must be"),
    ('base = "base.toml"\n[grid]\n"model.depth" = [1]\n', "unknown grid key 'model.depth'"),
    ('base = "base.toml"\n[grid]\n"model.widths" = []\n', "non-empty list"),
    ('base = "base.toml"\n[grid]\n"model.widths" = [[3, 4, 1]]\n', "cell_0000"),
    ('base = "base.toml"\ncolour = 1\n', "unknown key 'colour'"),
    ('base = "base.toml"\n[grid\n', "not valid TOML"),
])
def test_bad_sweep_files(tmp_path, capsys, text, match):
    (tmp_path / "base.toml").write_text(BASE)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cells_enumerate_grid_then_seeds(tmp_path):
    sw = sweep.load_sweep(_sweep(tmp_path, '"model.widths" = [[2, 3, 1], [2, 4, 1]]\n"data.dataset" = ["moons", "xor"]',
                                 seeds=2))
    cells = sw["cells"]
    assert len(cells) == 8
    assert [c[2]["data.dataset"] for c in cells[:4]] == ["moons", "moons", "xor", "xor"]
    assert [c[1]["seed"] for c in cells[:4]] == [0, 1, 0, 1]
    assert np.all([c[1]["model"]["widths"] == [2, 3, 1] for c in cells[:4]])


def test_keys_that_vary_together(tmp_path):
    p = _sweep(tmp_path, '"model.widths, data.n_probe" = [[[2, 3, 1], 40], [[2, 4, 1], 50]]\n'
                         '"model.activation" = ["tanh", "relu"]')
    cells = sweep.load_sweep(p)["cells"]
    assert [(c[1]["model"]["widths"], c[1]["data"]["n_probe"], c[1]["model"]["activation"]) for c in cells] == [
        ([2, 3, 1], 40, "tanh"), ([2, 3, 1], 40, "relu"), ([2, 4, 1], 50, "tanh"), ([2, 4, 1], 50, "relu")]
    bad = _sweep(tmp_path, '"model.widths, data.n_probe" = [[[2, 3, 1]]]')
    with pytest.raises(Exception, match="vary together"):
        sweep.load_sweep(bad)


def test_a_folder_whose_cells_hold_another_config_is_refused_untouched(tmp_path, capsys, monkeypatch):
    """Cells are found by name (cell_0000.h5, ...): a finished cell of another grid must not pass for this one."""
    import genni

    monkeypatch.chdir(tmp_path)  # the sweep reads relative state_dict paths from here
    old = sweep.load_sweep(_sweep(tmp_path, '"model.widths" = [[2, 4, 1]]', stages='["find"]'))
    out = tmp_path / "out"
    out.mkdir()
    cfg = old["cells"][0][1]
    genni.find({**cfg, "reference": {**cfg["reference"], "path": str(tmp_path / "missing.pt")}}, out / "cell_0000.h5")
    before = (out / "cell_0000.h5").stat().st_mtime_ns
    sw = _sweep(tmp_path, '"model.widths" = [[2, 3, 1]]', stages='["find"]')
    assert main(["sweep", str(sw), "-o", str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cell_0000.h5 holds a run of another config (model.widths differ)" in err
    assert (out / "cell_0000.h5").stat().st_mtime_ns == before and not (out / "sweep.h5").exists()
