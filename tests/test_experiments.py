"""Experiment scripts smoke-run at a tiny size: they finish, write their figure and results.md."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,args,figure,phrase", [
    ("hidden_symmetries", ["--workers", "1"], "functional_dimension.png", "published reading"),
    ("genni_toy", [], "walk.png", "against the class in closed form"),
])
def test_experiment_script_runs_tiny(tmp_path, name, args, figure, phrase):
    _load(name).main(["--tiny", *args, "--root", str(tmp_path)])
    figs = tmp_path / "figures" / name
    assert (figs / figure).exists()
    text = (figs / "results.md").read_text()
    assert phrase in text
    assert (tmp_path / "runs" / name).is_dir()


def test_genni_toy_elements_lie_on_the_closed_form_class(tmp_path):
    module = _load("genni_toy")
    module.main(["--tiny", "--root", str(tmp_path)])
    from genni import store

    run = store.load_run(tmp_path / "runs" / "genni_toy" / "genni_toy.h5")
    s_neg, s_pos = module.closed_form(run.equivalents["theta"])
    s = module.closed_form(run.theta_ref[None])[0][0]
    assert abs(s - (-0.2652 * 0.0838 + 0.1627 * 0.0343)) < 1e-12
    assert run.n_equivalents >= 8
    assert abs(s_neg - s).max() <= 1e-9 * abs(s) and abs(s_pos).max() <= 1e-9 * abs(s)
