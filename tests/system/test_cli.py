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


def test_inspect_shows_far_discrepancy_quantiles_and_verdict_counts(tmp_path, capsys):
    from tests.conftest import TINY_CONFIG

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_CONFIG.replace("n = 6", 'n = 3\ninit = "perturb"\ninit_scale = 0.01'))
    out = tmp_path / "run.h5"
    assert main(["find", str(cfg), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert "far discrepancies and verdicts: not yet made" in capsys.readouterr().out
    assert main(["identify", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["equivalents"]
    with h5py.File(out, "r") as f:
        eq = f["equivalents"]
        names = list(eq.attrs["verdict_codes"])
        verdict = eq["verdict"][()]
        far = {k: eq[k][()] for k in ("discrepancy_far", "relative_discrepancy_far")}
    for key, values in far.items():  # the quantiles of the stored per-element field
        q = np.quantile(values, [0.0, 0.1, 0.5, 0.9, 1.0])
        np.testing.assert_allclose([e[key][k] for k in ("q00", "q10", "q50", "q90", "q100")], q, rtol=1e-12)
    assert e["verdicts"] == {n: int((verdict == i).sum()) for i, n in enumerate(names)}
    assert sum(e["verdicts"].values()) == 3
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^  relative_discrepancy_far +\S", text, re.M) and re.search(r"^  discrepancy_far +\S", text, re.M)
    assert "verdicts: " + ", ".join(f"{n} {c}" for n, c in e["verdicts"].items()) in text
    # far discrepancies without verdicts (identify's large-model mode stores only those): still shown
    with h5py.File(out, "r+") as f:
        del f["equivalents/verdict"]
    assert main(["inspect", str(out), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["equivalents"]
    assert "verdicts" not in e and e["relative_discrepancy_far"]["q100"] == pytest.approx(far["relative_discrepancy_far"].max())
    assert main(["inspect", str(out)]) == 0
    assert "verdicts: none (identify makes no per-element verdicts" in capsys.readouterr().out


def test_every_subcommand_help_ends_with_a_runnable_example(capsys):
    """The last lines of `genni COMMAND --help`: one example, a command line the parser accepts for that
    command, naming files that exist in the repository (configs, sweep files)."""
    import argparse
    import shlex
    from pathlib import Path

    from genni import sweep
    from genni.cli import _parser

    root = Path(__file__).resolve().parents[2]
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"run", "find", "identify", "project", "paths", "ricci", "plot", "inspect", "walk", "connect",
            "sweep"} <= set(commands)
    for name, sub in commands.items():
        lines = sub.format_help().rstrip().splitlines()
        assert lines[-2].startswith("example"), (name, lines[-3:])
        argv = shlex.split(lines[-1])
        assert argv[0] == "genni" and argv[1] == name, (name, lines[-1])
        args = parser.parse_args(argv[1:])
        assert args.command == name
        for given in (getattr(args, "config", None), getattr(args, "sweep", None)):
            if given:
                assert (root / given).is_file(), (name, given)
        if name == "sweep":
            assert sweep.load_sweep(root / args.sweep)["cells"]
