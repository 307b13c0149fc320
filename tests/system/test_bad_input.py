"""The bad-input corpus: every case exits 2 with exactly one line on stderr naming the problem, no
traceback, and leaves every file that existed before byte-identical."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import genni
from genni.cli import main
from genni.models import module as _module
from tests.conftest import TINY_CONFIG


def _tiny() -> str:  # 3 elements from θ* + 1 % noise: they converge at once (no stall warning)
    return TINY_CONFIG.replace("n = 6", 'n = 3\ninit = "perturb"\ninit_scale = 0.01')


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished tiny run (3 elements, identified) and the files the cases need."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "tiny.toml").write_text(_tiny())
    assert main(["find", str(d / "tiny.toml"), "-o", str(d / "run.h5"), "--quiet"]) == 0
    assert main(["identify", str(d / "run.h5"), "--quiet"]) == 0
    return d


def _edit(src: Path, dst: Path, fn) -> None:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)


def _replace(f, name, data):
    attrs = dict(f[name].attrs)
    del f[name]
    f[name] = data
    f[name].attrs.update(attrs)


def _state_dict(path: Path, tweak: str) -> None:
    seq = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    sd = dict(seq.state_dict())
    if tweak == "missing":
        del sd["2.bias"]
    elif tweak == "extra":
        sd["3.weight"] = torch.zeros(1, 1)
    elif tweak == "shape":
        sd["0.weight"] = torch.zeros(5, 2)
    elif tweak == "nan":
        sd["0.weight"][0, 0] = float("nan")
    torch.save(sd, path)


class _Refused:  # a pickle with a class in it: torch.load(weights_only=True) refuses it
    pass


class _InMemory(torch.nn.Module):  # no Sequential: genni.explore holds it in memory
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))) + x[:, :1]


def _config(d: Path, text: str, name: str = "c.toml") -> str:
    (d / name).write_text(_tiny() + text)
    return str(d / name)


def _raw(d: Path, text: str) -> str:
    (d / "raw.toml").write_text(text)
    return str(d / "raw.toml")


def _case_files(d: Path, case: str) -> list[str]:
    """Set up what ``case`` needs in ``d`` (a copy of the base folder) and return its argv."""
    run = str(d / "run.h5")
    new = str(d / "new.h5")
    sec = {"data": "[data]", "model": "[model]", "search": "[search]", "reference": "[reference]"}

    def cfg_with(section: str, line: str) -> str:  # TINY_CONFIG with one line added to a section
        text = _tiny().replace(sec[section], f"{sec[section]}\n{line}", 1)
        (d / "c.toml").write_text(text)
        return str(d / "c.toml")

    def cfg_replace(old: str, new_text: str) -> str:
        (d / "c.toml").write_text(_tiny().replace(old, new_text, 1))
        return str(d / "c.toml")

    if case == "malformed toml":
        return ["find", _raw(d, "name = \"x\"\n[data\n"), "-o", new]
    if case == "binary config":
        (d / "bin.toml").write_bytes(b"\xff\xfe\x00garbage\x81")
        return ["find", str(d / "bin.toml"), "-o", new]
    if case == "unknown key":
        return ["find", cfg_with("search", "speed = 3"), "-o", new]
    if case == "unknown section":
        return ["find", _config(d, "[colour]\nred = 1\n"), "-o", new]
    if case == "wrong type":
        return ["find", cfg_replace("n_probe = 64", 'n_probe = "many"'), "-o", new]
    if case == "negative size":
        return ["find", cfg_replace("n_heldout = 64", "n_heldout = -5"), "-o", new]
    if case == "zero size":
        return ["find", cfg_replace("n = 3", "n = 0"), "-o", new]
    if case == "nan in config":
        return ["find", cfg_replace("tol = 1e-10", "tol = nan"), "-o", new]
    if case == "inf in config":
        return ["find", cfg_with("reference", "lr = inf"), "-o", new]
    if case == "widths do not fit the data":
        return ["find", cfg_replace("widths = [2, 6, 1]", "widths = [3, 6, 1]"), "-o", new]
    if case == "widths too short":
        return ["find", cfg_replace("widths = [2, 6, 1]", "widths = [2]"), "-o", new]
    if case == "unknown data set":
        return ["find", cfg_replace('dataset = "moons"', 'dataset = "mnist"'), "-o", new]
    if case == "unknown activation":
        return ["find", cfg_replace('activation = "tanh"', 'activation = "swish"'), "-o", new]
    if case == "unknown metric":
        return ["paths", run, "--metric", "cosine_dream"]
    if case == "unknown subspace":
        return ["project", run, "--subspace", "umap"]
    if case == "unknown curvature":
        return ["ricci", run, "--curvature", "gaussian"]
    if case == "elements out of range":
        return ["project", run, "--subspace", "plane", "--elements", "0", "99"]
    if case == "elements with the pca subspace":
        return ["project", run, "--elements", "0", "999"]
    if case == "negative element":
        return ["project", run, "--subspace", "plane", "--elements", "0", "-1"]
    if case == "repeated elements":
        return ["project", run, "--subspace", "plane", "--elements", "1", "1"]
    if case == "too many elements":
        return ["project", run, "--subspace", "plane", "--elements", "0", "1", "2"]
    if case == "alpha without ollivier":
        return ["ricci", run, "--alpha", "0.5"]
    if case == "floor with a metric that has none":
        return ["paths", run, "--metric", "angular_cka", "--floor", "0.01"]
    if case == "exact options without exact":
        return ["identify", run, "--sup-seconds", "5"]
    if case == "workers with a scheduler":
        (d / "sw.toml").write_text(f'base = "{d / "tiny.toml"}"\nstages = ["train"]\n')
        return ["sweep", str(d / "sw.toml"), "-o", str(d / "sw"), "--workers", "3", "--scheduler", "tcp://127.0.0.1:9"]
    if case in ("module file missing", "module factory missing", "module factory not callable"):
        (d / "nets").mkdir()
        (d / "nets" / "mine.py").write_text("import torch\nWIDTH = 3\n")
        module = {"module file missing": "nets/absent.py:make", "module factory missing": "nets/mine.py:make",
                  "module factory not callable": "nets/mine.py:WIDTH"}[case]
        return ["find", cfg_replace('widths = [2, 6, 1]\nactivation = "tanh"', f'kind = "module"\nmodule = "{module}"'),
                "-o", new]
    if case == "resolution below 2":
        return ["project", run, "--resolution", "1"]
    if case == "negative --n":
        return ["find", str(d / "tiny.toml"), "-o", new, "--n", "-3"]
    if case == "walk --from out of range":
        return ["walk", run, "--from", "50"]
    if case == "teleport unknown objective":
        return ["teleport", run, "--objective", "beauty"]
    if case == "teleport --from out of range":
        return ["teleport", run, "--objective", "parameter_norm", "--from", "50"]
    if case == "teleport unknown goal":
        return ["teleport", run, "--objective", "sharpness", "--goal", "flat"]
    if case == "teleport metric without layer_distance":
        return ["teleport", run, "--objective", "parameter_norm", "--metric", "procrustes"]
    if case == "teleport unknown inputs":
        return ["teleport", run, "--objective", "relative_discrepancy", "--inputs", "nowhere"]
    if case == "teleport loss without a curvature objective":
        return ["teleport", run, "--objective", "parameter_norm", "--loss", "labels"]
    if case == "teleport zero steps":
        return ["teleport", run, "--objective", "parameter_norm", "--steps", "0"]
    if case == "connect out of range":
        return ["connect", run, "0", "17"]
    if case == "ricci k zero":
        return ["ricci", run, "--k", "0"]
    if case == "negative rtol":
        return ["identify", run, "--rtol", "-1"]
    if case == "exact answers for tanh":
        return ["identify", run, "--exact"]
    if case == "negative domain scale":
        return ["identify", run, "--exact", "--domain-scale", "-1"]
    if case == "zero region budget":
        return ["identify", run, "--exact", "--max-regions", "0"]
    if case == "unknown figure format":
        return ["plot", run, "-o", str(d / "figs"), "--format", "gif"]
    if case == "unknown option":
        return ["find", str(d / "tiny.toml"), "-o", new, "--colour", "red"]
    if case == "missing config file":
        return ["find", str(d / "nope.toml"), "-o", new]
    if case == "directory as run file":
        (d / "adir").mkdir()
        return ["inspect", str(d / "adir")]
    if case == "empty file":
        (d / "empty.h5").write_bytes(b"")
        return ["inspect", str(d / "empty.h5")]
    if case == "truncated hdf5":
        data = (d / "run.h5").read_bytes()
        (d / "trunc.h5").write_bytes(data[: len(data) // 2])
        return ["identify", str(d / "trunc.h5")]
    if case == "foreign hdf5":
        with h5py.File(d / "foreign.h5", "w") as f:
            f["images"] = np.zeros((3, 4))
        return ["project", str(d / "foreign.h5")]
    if case == "future schema":
        _edit(d / "run.h5", d / "future.h5", lambda f: f.attrs.__setitem__("schema_version", 99))
        return ["inspect", str(d / "future.h5")]
    if case == "incomplete run file":
        _edit(d / "run.h5", d / "incomplete.h5", lambda f: f.__delitem__("probe/X"))
        return ["identify", str(d / "incomplete.h5")]
    if case == "theta of wrong shape":
        _edit(d / "run.h5", d / "shape.h5", lambda f: _replace(f, "reference/theta", np.zeros(7)))
        return ["identify", str(d / "shape.h5")]
    if case == "elements of wrong shape":
        _edit(d / "run.h5", d / "eqshape.h5", lambda f: _replace(f, "equivalents/theta", np.zeros((3, 5))))
        return ["paths", str(d / "eqshape.h5")]
    if case == "probe of wrong shape":
        _edit(d / "run.h5", d / "probeshape.h5", lambda f: _replace(f, "probe/X", np.zeros((64, 3))))
        return ["ricci", str(d / "probeshape.h5")]
    if case == "nan in the reference":
        _edit(d / "run.h5", d / "nan.h5", lambda f: f["reference/theta"].__setitem__(0, np.nan))
        return ["identify", str(d / "nan.h5")]
    if case == "nan in the probe":
        _edit(d / "run.h5", d / "nanx.h5", lambda f: f["probe/X"].__setitem__((0, 0), np.nan))
        return ["project", str(d / "nanx.h5")]
    if case == "config attribute not json":
        _edit(d / "run.h5", d / "badcfg.h5", lambda f: f.attrs.__setitem__("config", "{not json"))
        return ["find", str(d / "tiny.toml"), "-o", str(d / "badcfg.h5")]
    if case in ("state_dict missing keys", "state_dict extra keys", "state_dict wrong shape", "state_dict nan"):
        _state_dict(d / "ref.pt", case.split()[-2] if case.endswith("keys") else case.split()[-1])
        return ["find", cfg_replace('source = "random"', f'source = "file"\npath = "{d / "ref.pt"}"'), "-o", new]
    if case == "pickle weights_only refuses":
        torch.save({"0.weight": _Refused()}, d / "ref.pt")
        return ["find", cfg_replace('source = "random"', f'source = "file"\npath = "{d / "ref.pt"}"'), "-o", new]
    if case == "unwritable output directory":
        (d / "plainfile").write_text("a file, not a folder")
        return ["find", str(d / "tiny.toml"), "-o", str(d / "plainfile" / "run.h5")]
    if case == "unwritable figure directory":
        (d / "plainfile").write_text("a file, not a folder")
        return ["plot", run, "-o", str(d / "plainfile" / "figs")]
    if case == "another config resumed":
        return ["find", cfg_replace("seed = 1", "seed = 2"), "-o", run]
    if case == "sweep unknown grid key":
        (d / "sw.toml").write_text(f'base = "{d / "tiny.toml"}"\n[grid]\n"model.width" = [1]\n')
        return ["sweep", str(d / "sw.toml"), "-o", str(d / "sw")]
    if case == "sweep workers zero":
        (d / "sw.toml").write_text(f'base = "{d / "tiny.toml"}"\nstages = ["train"]\n')
        return ["sweep", str(d / "sw.toml"), "-o", str(d / "sw"), "--workers", "0"]
    if case == "module held only in memory":  # the run file of another process's module held in memory
        torch.manual_seed(0)
        run = genni.explore(_InMemory(), np.random.default_rng(0).normal(size=(16, 2)), n=1, path=d / "mem.h5",
                            max_steps=3)
        _module.forget(run.data.architecture["memory"])
        return ["identify", str(d / "mem.h5")]
    raise KeyError(case)


CASES = [
    ("malformed toml", "not valid TOML"), ("binary config", "bin.toml"), ("unknown key", "unknown key 'speed'"),
    ("unknown section", "colour"), ("wrong type", "n_probe must be an integer"), ("negative size", "n_heldout"),
    ("zero size", "n must be positive"), ("nan in config", "tol"), ("inf in config", "lr"),
    ("widths do not fit the data", "widths[0] = 3"), ("widths too short", "widths"),
    ("unknown data set", "mnist"), ("unknown activation", "swish"), ("unknown metric", "cosine_dream"),
    ("unknown subspace", "umap"), ("unknown curvature", "gaussian"), ("elements out of range", "99"),
    ("elements with the pca subspace", "--subspace pca does not use them"), ("negative element", "--elements"),
    ("repeated elements", "distinct"), ("too many elements", "needs 2 element rows"),
    ("alpha without ollivier", "ollivier"), ("floor with a metric that has none", "--metric angular_cka"),
    ("exact options without exact", "--sup-seconds applies to the exact answers"),
    ("workers with a scheduler", "--scheduler"), ("module file missing", "looked for"),
    ("module factory missing", "has no attribute 'make'"), ("module factory not callable", "not callable"),
    ("resolution below 2", "resolution"), ("negative --n", "n"), ("walk --from out of range", "--from 50"),
    ("teleport unknown objective", "beauty"), ("teleport --from out of range", "--from 50"),
    ("teleport unknown goal", "flat"), ("teleport metric without layer_distance", "--metric procrustes"),
    ("teleport unknown inputs", "nowhere"), ("teleport loss without a curvature objective", "--loss labels"),
    ("teleport zero steps", "steps"),
    ("connect out of range", "17"), ("ricci k zero", "k"), ("negative rtol", "rtol"),
    ("exact answers for tanh", "relu or leaky_relu"), ("negative domain scale", "domain-scale"),
    ("zero region budget", "max-regions"),
    ("unknown figure format", "gif"), ("unknown option", "--colour"), ("missing config file", "nope.toml"),
    ("directory as run file", "directory"), ("empty file", "empty.h5"), ("truncated hdf5", "trunc.h5"),
    ("foreign hdf5", "not a genni run"), ("future schema", "schema_version 99"),
    ("incomplete run file", "probe/X"), ("theta of wrong shape", "reference/theta"),
    ("elements of wrong shape", "equivalents/theta"), ("probe of wrong shape", "probe/X"),
    ("nan in the reference", "reference/theta"), ("nan in the probe", "probe/X"),
    ("config attribute not json", "config"), ("state_dict missing keys", "2.bias"),
    ("state_dict extra keys", "3.weight"), ("state_dict wrong shape", "0.weight"), ("state_dict nan", "NaN"),
    ("pickle weights_only refuses", "ref.pt"), ("unwritable output directory", "plainfile"),
    ("unwritable figure directory", "plainfile"), ("another config resumed", "seed"),
    ("sweep unknown grid key", "model.width"), ("sweep workers zero", "workers"),
    ("module held only in memory", "genni.load_run(path, model=net)"),
]


def _snapshot(d: Path) -> dict:
    return {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case,needle", CASES, ids=[c for c, _ in CASES])
def test_bad_input_exit_2_one_line_files_untouched(base, tmp_path, capsys, case, needle):
    d = tmp_path / "d"
    shutil.copytree(base, d)
    argv = _case_files(d, case)
    before = _snapshot(d)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (case, code, err[-2000:])
    assert len(lines) == 1, (case, lines)
    assert lines[0].startswith("genni: error:") and needle.lower() in lines[0].lower(), (case, lines[0])
    assert "Traceback" not in err
    after = {p: p.read_bytes() for p in before if p.exists()}
    assert after == before, f"{case}: a file that existed before was changed or removed"


@pytest.mark.parametrize("room", ["none", "some"])
def test_full_disk_leaves_the_run_file_whole_and_resumable(base, tmp_path, room):
    """`ulimit -f` (a file-size limit: writes past it fail with EFBIG, as on a full disk) while resuming a
    run to more elements: exit 2, one line, no traceback, no crash.  With no room for even one write the
    run file stays byte-identical; with room for a few appends, those are kept and the write that did
    not fit is not.  Afterwards the file opens and resumes."""
    d = tmp_path / "d"
    shutil.copytree(base, d)
    run = d / "run.h5"
    before = run.read_bytes()
    kib = len(before) // 2048 if room == "none" else len(before) // 1024 + 4
    n = 6 if room == "none" else 400
    cmd = (f"ulimit -f {kib}; exec {sys.executable} -m genni find {d / 'tiny.toml'} -o {run} --n {n} --quiet")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=d,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in r.stderr, lines
    if room == "none":
        assert run.read_bytes() == before
    assert not list(d.glob(".run.h5.*.tmp"))  # the partial copy is gone
    with h5py.File(run, "r") as f:
        kept = f["equivalents/theta"].shape[0]
    assert kept >= 3 and (room == "none" or kept > 3)
    assert main(["find", str(d / "tiny.toml"), "-o", str(run), "--n", str(kept + 2), "--quiet"]) == 0
    with h5py.File(run, "r") as f:
        assert f["equivalents/theta"].shape[0] == kept + 2
        assert json.loads(f.attrs["config"])["name"] == "tiny"
