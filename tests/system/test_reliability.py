"""Interrupts, one writer at a time, the command line's rough edges, and determinism under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from genni import store
from genni.cli import _parser, main
from tests.conftest import TINY_CONFIG, bitwise_same, run_contents
from tools.under_load import BURN

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
LONG = TINY_CONFIG.replace("n = 6", 'n = 20000\ninit = "perturb"\ninit_scale = 0.01')  # stopped long before it ends


def _sigint_default() -> None:
    # a suite started in the background (nohup, `cmd &` in a script) inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child the default a terminal session has
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genni", *argv], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)


def _wait_for_elements(path: Path, k: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            with h5py.File(path, "r") as f:  # safe while the writer runs: it only ever renames a finished copy
                if f["equivalents/theta"].shape[0] >= k:
                    return
        time.sleep(0.1)
    raise AssertionError(f"no {k} elements in {path} after {timeout} s")


def test_ctrl_c_stops_cleanly_with_status_130_and_the_run_resumes(tmp_path):
    (tmp_path / "long.toml").write_text(LONG)
    run = tmp_path / "r.h5"
    proc = _start(tmp_path, "find", "long.toml", "-o", "r.h5", "--quiet")
    _wait_for_elements(run, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # one LM step and one write; generous for a machine under load
    assert proc.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "re-run" in lines[0], lines
    assert "Traceback" not in err
    n = store.load_run(run).n_equivalents
    assert n >= 2
    assert not list(tmp_path.glob(".r.h5.*.tmp"))
    (tmp_path / "long.toml").write_text(LONG.replace("n = 20000", f"n = {n + 2}"))
    assert main(["find", str(tmp_path / "long.toml"), "-o", str(run), "--quiet"]) == 0
    assert store.load_run(run).n_equivalents == n + 2


def test_a_second_writer_is_refused_and_readers_keep_working(tmp_path, capsys):
    (tmp_path / "long.toml").write_text(LONG)
    run = tmp_path / "r.h5"
    proc = _start(tmp_path, "find", "long.toml", "-o", "r.h5", "--quiet")
    try:
        _wait_for_elements(run, 1, proc)
        capsys.readouterr()
        t0 = time.monotonic()
        for argv in (["find", str(tmp_path / "long.toml"), "-o", str(run), "--quiet"], ["identify", str(run), "--quiet"],
                     ["project", str(run), "--quiet"]):
            assert main(argv) == 2, argv
            err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
            assert len(err) == 1 and f"pid {proc.pid}" in err[0] and "genni find" in err[0], err
        assert time.monotonic() - t0 < 10  # refused at once, not after waiting
        assert main(["inspect", str(run)]) == 0  # readers work meanwhile
        assert "converged" in capsys.readouterr().out
        assert main(["plot", str(run), "-o", str(tmp_path / "figs"), "--format", "png", "--quiet"]) == 0
    finally:
        proc.kill()
        proc.wait()
    assert main(["identify", str(run), "--quiet"]) == 0  # the lock died with its holder


def test_every_subcommand_takes_quiet_and_lists_defaults_in_help(capsys):
    parser = _parser()
    subs = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse offers no public listing
    assert set(subs) >= {"run", "find", "inspect", "identify", "project", "paths", "ricci", "walk", "connect",
                         "sweep", "plot"}
    for name, sub in subs.items():
        opts = {o for a in sub._actions for o in a.option_strings}  # noqa: SLF001
        assert "--quiet" in opts, name
        for a in sub._actions:  # noqa: SLF001
            if a.option_strings and a.default not in (None, False, "==SUPPRESS==") and a.dest != "help":
                text = sub.formatter_class("x")._get_help_string(a)  # noqa: SLF001
                assert "default" in text, (name, a.dest)
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "options:" in capsys.readouterr().out


def test_no_arguments_prints_usage_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: genni") and "find" in out and "sweep" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("genni ")


def test_a_closed_pipe_ends_quietly(tmp_path, tiny_config):
    run = tmp_path / "r.h5"
    assert main(["find", str(tiny_config), "-o", str(run), "--quiet", "--n", "2"]) == 0
    r = subprocess.run(f"{sys.executable} -m genni inspect {run} | head -n 1", shell=True, capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0 and r.stdout.strip() and r.stderr == ""


STAGES = ("[['find', CFG, '-o', OUT, '--n', '3', '--quiet'], ['identify', OUT, '--quiet'], "
          "['paths', OUT, '--quiet'], ['paths', OUT, '--metric', 'zscore_procrustes', '--quiet'], "
          "['ricci', OUT, '--quiet'], ['project', OUT, '--resolution', '31', '--paths', '2', '--quiet'], "
          "['project', OUT, '--dims', '3', '--resolution', '9', '--paths', '0', '--quiet']]")


def test_two_runs_are_bit_identical_also_under_load(tmp_path):
    """Every stage of `genni run` (find, identify, paths under both metrics, ricci, 2-D and 3-D projections;
    smaller grids than run's defaults) twice with the same config and seed, the second while another
    process keeps both cores busy: every dataset and attribute is bitwise the same (creation time and
    wall-clock seconds aside).  Holds because the thread count is the same (a parallel reduction splits its
    work by thread count, not by load); across machines BLAS kernels may differ (docs/robustness.md, Determinism)."""
    burn = BURN.format(n=2)
    tiny_config = tmp_path / "c.toml"
    tiny_config.write_text(TINY_CONFIG.replace("n = 6", 'n = 3\ninit = "perturb"\ninit_scale = 0.01'))
    files = []
    for k in range(2):
        busy = subprocess.Popen([sys.executable, "-c", burn], env={**os.environ, "OMP_NUM_THREADS": "1"}) if k else None
        try:
            out = tmp_path / f"run{k}.h5"
            code = (f"import sys; from genni.cli import main; CFG, OUT = {str(tiny_config)!r}, {str(out)!r}; "
                    f"sys.exit(max(main(a) or 0 for a in {STAGES}))")
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                               env={k_: v for k_, v in os.environ.items() if k_ != "OMP_NUM_THREADS"})
            assert r.returncode == 0, r.stderr[-2000:]
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        files.append(run_contents(out))
    a, b = files
    assert set(a) == set(b) and any(k.startswith("projections/pca_3d") for k in a)
    differ = [k for k in a if not bitwise_same(a[k], b[k])]
    assert not differ, differ[:10]


def test_find_warns_when_the_whole_first_batch_stalls(tmp_path, capsys):
    """relu from random starts, a tolerance float64 cannot reach in 15 steps: the warning comes once,
    names the keys that help and what to expect for relu."""
    cfg = TINY_CONFIG.replace('activation = "tanh"', 'activation = "relu"').replace("restarts = 1\n", "").replace(
        "tol = 1e-10", "tol = 1e-30\nmax_steps = 15\nrestarts = 0\nhops = 0\npatience = 5")
    (tmp_path / "c.toml").write_text(cfg)
    assert main(["find", str(tmp_path / "c.toml"), "-o", str(tmp_path / "r.h5"), "--quiet"]) == 0
    warns = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("genni: warning")]
    assert len(warns) == 1, warns
    w = warns[0]
    assert "first batch have stalled" in w and "expected for relu" in w
    assert all(k in w for k in ('init = "perturb"', "restarts", "max_steps", "tol"))


def test_a_ctrl_c_during_a_write_waits_for_the_write():
    """SIGINT arriving inside a run-file write is held back and raised right after it (never inside
    h5py's file-driver callbacks)."""
    reached = []
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # also when the suite runs with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            with store.atomic._interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached.append("end of the write")
    finally:
        signal.signal(signal.SIGINT, old)
    assert reached == ["end of the write"]
