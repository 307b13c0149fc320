"""`genni paths`: layer paths stored under /paths/<metric>; exact relu copies coincide under quotient metrics."""

import numpy as np
import pytest

from genni import config, nets, pipeline, store, symmetries
from genni.cli import main
from genni.errors import GenniError
from tests.test_identify import _append_copies


def test_layer_paths_store_and_quotient_invariance(tmp_path):
    cfg = config.resolve({
        "name": "lp", "seed": 0, "data": {"dataset": "moons", "n_probe": 64, "n_heldout": 64, "n_train": 200},
        "model": {"widths": [2, 6, 5, 1], "activation": "relu"},
        "reference": {"source": "train", "epochs": 300},
        "search": {"n": 1, "init": "perturb", "init_scale": 0.01},
    })
    path = tmp_path / "lp.h5"
    pipeline.find(cfg, path)
    before = _append_copies(path, 3)  # exact rescaled + permuted copies of θ*, marked converged, rows before..
    quotient = pipeline.layer_paths(path, metric="zscore_procrustes")
    standard = pipeline.layer_paths(path, metric="angular_cka")
    run = store.load_run(path)
    q, s = run.layer_paths["zscore_procrustes"], run.layer_paths["angular_cka"]
    M, L = quotient["n_networks"], quotient["n_layers"]
    assert L == 4 and q["distances"].shape == (M * L, M * L) and q["embedding"].shape == (M * L, 2)
    assert q["steps"].shape == (M, L - 1) and q["angles"].shape == (M, L - 2) and q["straightness"].shape == (M,)
    assert np.all(q["straightness"] <= 1 + 1e-12)
    np.testing.assert_allclose(q["length"], q["steps"].sum(1))
    copies = [m for m, r in enumerate([-1, *q["elements"]]) if r >= before]  # networks that are the copies
    assert len(copies) == 3
    for m in copies:
        for l in range(L):
            assert q["distances"][l, m * L + l] < 1e-7  # same point as the reference, layer by layer
    # negative control: a standard metric moves some hidden layer of a rescaled copy
    assert max(s["distances"][l, m * L + l] for m in copies for l in (1, 2)) > 1e-3
    assert standard["warning"] and not quotient["warning"]


def test_paths_cli_and_figure(tmp_path, tiny_config, capsys):
    path = tmp_path / "run.h5"
    assert main(["find", str(tiny_config), "-o", str(path), "--quiet"]) == 0
    assert main(["paths", str(path), "--quiet"]) == 0
    assert main(["paths", str(path), "--metric", "zscore_permutation", "--quiet"]) == 0
    assert "layer paths under" in capsys.readouterr().out
    assert main(["paths", str(path), "--metric", "nope"]) == 2
    assert main(["plot", str(path), "-o", str(tmp_path / "f"), "--format", "png"]) == 0
    assert (tmp_path / "f" / "layer_paths.png").stat().st_size > 10_000
    with pytest.raises(GenniError):
        pipeline.layer_paths(path, max_networks=0)
    _ = (nets, symmetries)
