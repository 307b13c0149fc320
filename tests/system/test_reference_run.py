"""The default experiment's stages against a stored reference run (``tests/data/reference_default.h5``,
made by ``python -m tools.reference_run``): the code's structure may change, its results may not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import bitwise_same, run_contents

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "reference_default.h5"


def _layout(c: dict) -> dict:
    return {k: (np.asarray(v).shape, np.asarray(v).dtype.kind) for k, v in c.items()}


@pytest.fixture(scope="module")
def rerun(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("reference") / "run.h5"
    r = subprocess.run([sys.executable, "-m", "tools.reference_run", str(out)], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    return run_contents(out), json.loads(out.with_suffix(".json").read_text())


def test_every_stage_writes_the_reference_layout(rerun):
    """The same datasets and attributes with the same shapes and kinds of value, on any machine."""
    got, _ = rerun
    ref = run_contents(REFERENCE)
    assert sorted(set(ref) - set(got)) == [] and sorted(set(got) - set(ref)) == []
    assert {k: v for k, v in _layout(got).items() if v != _layout(ref)[k]} == {}


def test_every_stage_gives_the_reference_bitwise(rerun):
    """Every dataset and attribute bitwise equal to the reference run's, where the reference was made on
    the same CPU model with the same libraries and one thread (float kernels differ between CPUs)."""
    got, machine = rerun
    made_on = json.loads(REFERENCE.with_suffix(".json").read_text())
    if machine != made_on:
        pytest.skip(f"reference made on {made_on}, this is {machine}: bitwise equality is only promised there")
    ref = run_contents(REFERENCE)
    differ = sorted(k for k in ref if k in got and not bitwise_same(ref[k], got[k]))
    assert differ == []


def test_the_stored_run_file_opens_and_draws(tmp_path, capsys):
    """The reference run file, written by an earlier build, reads back through genni: inspect, the
    element table, and every figure it supports."""
    from genni import store
    from genni.cli import main

    run = store.load_run(REFERENCE)
    assert run.n_equivalents == 4 and run.theta_ref.shape == (337,)
    assert main(["inspect", str(REFERENCE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["plot", str(REFERENCE), "-o", str(tmp_path), "--format", "png"]) == 0
    drawn = {p.stem for p in tmp_path.glob("*.png")}
    assert {"discrepancy", "identifiability", "walk", "layer_paths", "ricci", "projections"} <= drawn, drawn
