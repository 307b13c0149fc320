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


@pytest.mark.parametrize("name,figure", [("hidden_symmetries", "functional_dimension.png")])
def test_experiment_script_runs_tiny(tmp_path, name, figure):
    _load(name).main(["--tiny", "--workers", "1", "--root", str(tmp_path)])
    figs = tmp_path / "figures" / name
    assert (figs / figure).exists()
    text = (figs / "results.md").read_text()
    assert "| init | n | depth |" in text and "published reading" in text
    assert (tmp_path / "runs" / name).is_dir()
