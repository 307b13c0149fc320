"""The `genni` command: exit codes, one-line errors, and the default experiment end to end."""

import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from genni.cli import main


def _err_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_find_inspect_plot(tmp_path, tiny_config, capsys):
    out = tmp_path / "run.h5"
    assert main(["find", str(tiny_config), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["equivalents"]["n_found"] == 6
    assert info["equivalents"]["n_converged"] == sum(info["equivalents"]["status"].get(k, 0) for k in ["converged"])
    assert set(info["equivalents"]["discrepancy"]) == {"q00", "q10", "q50", "q90", "q100"}
    assert any(e["path"] == "/equivalents/theta" and e["shape"] == [6, 25] for e in info["tree"])
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "converged" in text and "/equivalents" not in text and re.search(r"theta +\(6, 25\)  float64", text)
    figs = tmp_path / "figs"
    assert main(["plot", str(out), "-o", str(figs), "--format", "png"]) == 0
    assert (figs / "discrepancy.png").stat().st_size > 10_000
    assert (figs / "probe.png").exists()


def _bad_config(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text, needle", [
    ("[search]\nspeed = 3\n", "unknown key 'speed'"),
    ("[search]\nn = 'x'\n", "n must be an integer"),
    ("[data]\ndataset = 'mnist'\n", "dataset = 'mnist'"),
    ("[model]\nactivation = 'swish'\n", "activation = 'swish'"),
    ("[model]\nwidths = [5, 3, 1]\n", "widths[0] = 5"),
    ("name = [\n", "not valid TOML"),
])
def test_bad_config_exit_2_one_line(tmp_path, capsys, text, needle):
    out = tmp_path / "run.h5"
    assert main(["find", _bad_config(tmp_path, text), "-o", str(out)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("genni: error:")
    assert not out.exists()


def test_bad_files_exit_2_and_untouched(tmp_path, tiny_config, capsys):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(4)
    before = foreign.read_bytes()
    text = tmp_path / "notes.txt"
    text.write_text("not hdf5")
    cases = [
        ["inspect", str(tmp_path / "missing.h5")],
        ["inspect", str(text)],
        ["inspect", str(foreign)],
        ["plot", str(foreign), "-o", str(tmp_path / "f")],
        ["find", str(tiny_config), "-o", str(foreign)],
        ["find", str(tmp_path / "missing.toml"), "-o", str(tmp_path / "r.h5")],
        ["identify", str(foreign)],
        ["find", str(tiny_config)],  # -o missing
        ["frobnicate"],
        ["find", str(tiny_config), "-o", str(tmp_path / "c.h5"), "--device", "cuda:7"],
        ["find", str(tiny_config), "-o", str(tmp_path / "c.h5"), "--device", "quantum"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        lines = _err_lines(capsys)
        assert len(lines) == 1, (argv, lines)
    assert foreign.read_bytes() == before
    assert text.read_text() == "not hdf5"


def test_python_m_genni_exit_code_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "genni", "inspect", str(tmp_path / "none.h5")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "run file not found" in r.stderr


def test_default_experiment_end_to_end_tiny(tmp_path, monkeypatch, capsys):
    """`genni run` with no config: the built-in default, with only 2 elements."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--n", "2", "--quiet"]) == 0
    run = tmp_path / "runs" / "moons_relu.h5"
    assert run.exists()
    with h5py.File(run, "r") as f:
        assert f["equivalents/theta"].shape[0] == 2
        assert f["reference/accuracy"][()] > 0.9
    assert (tmp_path / "runs" / "moons_relu_figures" / "discrepancy.png").exists()


def test_progress_bars_stay_quiet_in_logs(capsys):
    """Off a terminal (pytest captures stderr) a bar refreshes at most every 30 s; --quiet disables it."""
    from genni.progress import bar

    b = bar(range(1000), progress=True, desc="x")
    for _ in b:
        pass
    assert b.mininterval == 30.0
    lines = [s for s in capsys.readouterr().err.replace("\r", "\n").splitlines() if s.strip()]
    assert len(lines) <= 3  # start, (maybe one refresh), end
    assert bar(range(3), progress=False).disable


def test_public_api_is_complete():
    """Every name in genni.__all__ exists, and the stages are reachable from the package."""
    import genni

    missing = [n for n in genni.__all__ if not hasattr(genni, n)]
    assert not missing
    for stage in ("find", "identify", "project", "layer_paths", "ricci"):
        assert callable(getattr(genni, stage))
