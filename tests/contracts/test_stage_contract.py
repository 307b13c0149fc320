"""The contract every registered stage keeps, through the command line: it writes only while holding the
run file's writer lock, bad input is a one-line error with exit status 2 that leaves the file as it was,
and running a finished stage again leaves the file's contents as they were (a stage that extends the run
on every call keeps everything stored before)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genni import stages, store
from genni.cli import main
from tests.conftest import TINY_CONFIG, append_symmetry_copies, bitwise_same, run_contents

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "find": lambda cfg, run: ["find", cfg, "-o", run],
    "walk": lambda cfg, run: ["walk", run, "--chains", "1", "--steps", "2"],
    "connect": lambda cfg, run: ["connect", run, "0", "4", "--max-steps", "5"],
    "teleport": lambda cfg, run: ["teleport", run, "--objective", "parameter_norm", "--steps", "2"],
    "identify": lambda cfg, run: ["identify", run],
    "project": lambda cfg, run: ["project", run, "--resolution", "5", "--paths", "1"],
    "paths": lambda cfg, run: ["paths", run, "--max-networks", "3", "--max-inputs", "16"],
    "ricci": lambda cfg, run: ["ricci", run, "--k", "4", "--max-networks", "3", "--max-inputs", "16",
                               "--bootstrap", "10"],
}
"""A quick, valid command line per stage (elements 4 and 5 are exact symmetry copies of θ*)."""

BAD_OPTION = {
    "find": ["--device", "abacus"],
    "walk": ["--chains", "0"],
    "connect": ["--max-steps", "0"],
    "teleport": ["--goal", "sideways"],
    "identify": ["--rtol", "-1"],
    "project": ["--subspace", "sideways"],
    "paths": ["--metric", "euclid"],
    "ricci": ["--k", "0"],
}
"""An option value each stage refuses."""

NAMES = list(stages.REGISTRY)


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main([*argv, "--quiet"])
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(config, run file) on which every registered stage has run once, in registry order."""
    folder = tmp_path_factory.mktemp("contract")
    cfg, run = folder / "tiny.toml", folder / "run.h5"
    cfg.write_text(TINY_CONFIG.replace("n = 6", "n = 3"))
    assert main(["find", str(cfg), "-o", str(run), "--quiet"]) == 0
    append_symmetry_copies(run, 2)
    for name in NAMES:
        assert main([*GOOD[name](str(cfg), str(run)), "--quiet"]) == 0, name
    return cfg, run


@pytest.fixture
def copy(finished, tmp_path) -> tuple[str, Path]:
    cfg, run = finished
    shutil.copy(run, tmp_path / "run.h5")
    return str(cfg), tmp_path / "run.h5"


def test_every_registered_stage_has_a_command_line_here():
    assert set(GOOD) == set(BAD_OPTION) == set(stages.REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_writes_only_under_the_writer_lock(name, copy, capsys, monkeypatch):
    cfg, run = copy
    unlocked = []
    real = store.atomic._write_bytes  # noqa: SLF001 - every write of a run file ends here

    def check(p, data):
        if str(p.with_name(f".{p.name}.lock").resolve()) not in store.atomic._HELD:  # noqa: SLF001
            unlocked.append(p)
        real(p, data)

    monkeypatch.setattr(store.atomic, "_write_bytes", check)
    before = run.read_bytes()
    code, err = _cli(GOOD[name](cfg, str(run)), capsys)
    assert code == 0, err
    assert unlocked == []
    if name != "find":  # a finished find has nothing to write
        assert run.read_bytes() != before


@pytest.fixture(scope="module")
def locked(finished, tmp_path_factory):
    """A copy of the finished run whose writer lock another process holds; yields (path, holder pid)."""
    path = tmp_path_factory.mktemp("locked") / "run.h5"
    shutil.copy(finished[1], path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from genni import store\n"
         f"with store.writer_lock({str(path)!r}, 'find'):\n    print('held', flush=True); time.sleep(600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield path, holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("name", NAMES)
def test_a_second_writer_is_refused_at_once(name, finished, locked, capsys):
    path, pid = locked
    before = path.read_bytes()
    t0 = time.monotonic()
    code, err = _cli(GOOD[name](str(finished[0]), str(path)), capsys)
    assert time.monotonic() - t0 < 20
    assert code == 2 and len(err) == 1 and f"pid {pid}" in err[0], err
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_option_is_one_line_and_exit_2(name, copy, capsys):
    cfg, run = copy
    before = run.read_bytes()
    code, err = _cli([*GOOD[name](cfg, str(run)), *BAD_OPTION[name]], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("genni: error:"), err
    assert BAD_OPTION[name][0].lstrip("-") in err[0] and BAD_OPTION[name][1] in err[0], err  # names the option
    assert run.read_bytes() == before


@pytest.mark.parametrize("damage", ["foreign", "truncated"])
@pytest.mark.parametrize("name", NAMES)
def test_a_foreign_or_truncated_file_is_one_line_and_exit_2(name, damage, copy, tmp_path, capsys):
    cfg, run = copy
    if damage == "foreign":
        run.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)  # an HDF5 signature, then noise
    else:
        run.write_bytes(run.read_bytes()[: run.stat().st_size // 2])
    before = run.read_bytes()
    code, err = _cli(GOOD[name](cfg, str(run)), capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("genni: error:"), err
    assert run.read_bytes() == before


@pytest.mark.parametrize("name", NAMES)
def test_running_a_finished_stage_again_keeps_the_file(name, copy, capsys):
    cfg, run = copy
    before = run_contents(run)
    code, err = _cli(GOOD[name](cfg, str(run)), capsys)
    assert code == 0, err
    after = run_contents(run)
    if stages.REGISTRY[name].extends:  # every call adds; what was stored stays (row-wise datasets may grow)
        assert set(before) < set(after)
        grown = [k for k in before if not bitwise_same(before[k], after[k])]
        assert all(k.startswith("equivalents/") and "@" not in k for k in grown), grown
        assert all(bitwise_same(before[k], np.asarray(after[k])[: len(before[k])]) for k in grown)
    else:
        assert sorted(set(after) ^ set(before)) == []
        assert sorted(k for k in before if not bitwise_same(before[k], after[k])) == []
