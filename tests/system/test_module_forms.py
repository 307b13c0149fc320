"""A researcher's own module, as a file or a package next to the config, from the command line: `genni find`
run from another directory without PYTHONPATH, later stages on the run file from a third, and a sweep
whose cells run on Dask worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genni import store, sweep

FACTORY = """import torch
from layers import WIDTH  # a sibling file: the factory's folder is importable, as for a script

def make(out=2):
    return torch.nn.Sequential(torch.nn.Linear(3, WIDTH), torch.nn.Tanh(), torch.nn.Linear(WIDTH, out))
"""

CONFIG = """name = "own_module"
seed = 0
[data]
dataset = "normal"
dim = 3
n_probe = 32
n_heldout = 32
n_far = 64
[model]
kind = "module"
module = "{module}"
[reference]
source = "random"
[search]
n = 2
init = "perturb"
init_scale = 0.01
"""


def _folder(root: Path, form: str) -> Path:
    """A config folder with the factory as ``mynet.py`` and as the package ``ownnets`` (``ownnets/small.py``)."""
    d = root / "configs"
    (d / "ownnets").mkdir(parents=True)
    (d / "layers.py").write_text("WIDTH = 4\n")
    (d / "mynet.py").write_text(FACTORY)
    (d / "ownnets" / "__init__.py").write_text("")
    (d / "ownnets" / "small.py").write_text(FACTORY.replace("from layers", "from ownnets.layers"))
    (d / "ownnets" / "layers.py").write_text("WIDTH = 4\n")
    (d / "c.toml").write_text(CONFIG.format(module=form))
    return d


def _genni(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exe = Path(sys.executable).with_name("genni")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "genni"]
    return subprocess.run(cmd + args + ["--quiet"], cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("form", ["mynet.py:make", "ownnets.small:make"])
def test_find_from_another_directory_then_identify_from_a_third(tmp_path, form):
    folder = _folder(tmp_path, form)
    second, third = tmp_path / "second", tmp_path / "third"
    second.mkdir()
    third.mkdir()
    run = tmp_path / "runs" / "own.h5"
    run.parent.mkdir()
    found = _genni(["find", str(folder / "c.toml"), "-o", str(run)], cwd=second)
    assert found.returncode == 0, found.stderr[-2000:]
    ident = _genni(["identify", str(run), "--json"], cwd=third)
    assert ident.returncode == 0, ident.stderr[-2000:]
    assert json.loads(ident.stdout)["n_elements"] == 2
    stored = store.load_run(run)
    assert stored.config["model"]["module_dir"] == str(folder)
    assert stored.architecture["module_dir"] == str(folder)
    assert stored.architecture["d_out"] == 2 == stored.config["model"]["outputs"]  # read from the module
    assert "verdict" in stored.equivalents


def test_a_sweep_over_a_file_module_runs_its_cells_on_worker_processes(tmp_path, monkeypatch):
    folder = _folder(tmp_path, "mynet.py:make")
    (folder / "sweep.toml").write_text('base = "c.toml"\nstages = ["find"]\n[grid]\n"model.kwargs" = [{out = 1}, '
                                       '{out = 3}]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    info = sweep.run_sweep(folder / "sweep.toml", tmp_path / "out", workers=1)
    assert info["failed"] == 0, store.read_table(tmp_path / "out" / "sweep.h5")[0]["status"]
    cols, _ = store.read_table(tmp_path / "out" / "sweep.h5")
    widths = [store.load_run(tmp_path / "out" / f).architecture["d_out"] for f in cols["file"]]
    assert widths == [1, 3]
