"""`genni identify`: verdicts on planted symmetry copies and on under-determined searches."""

import types

import numpy as np
import pytest

from genni import config, identifiability, nets, pipeline, search, store, symmetries
from genni.cli import main


def _append_copies(path, k):
    """Append k exact symmetry copies of the stored reference as elements."""
    run = store.load_run(path)
    spec = nets.MLPSpec.from_dict(run.architecture)
    gs = symmetries.sample(spec, k, np.random.default_rng(0))
    theta = np.stack([symmetries.act(spec, run.theta_ref, g) for g in gs])
    start = int(run.equivalents["index"].max()) + 1
    found = types.SimpleNamespace(
        index=np.arange(start, start + k), theta=theta, discrepancy=np.zeros(k), discrepancy_heldout=np.zeros(k),
        relative_discrepancy=np.zeros(k), relative_discrepancy_heldout=np.zeros(k), converged=np.ones(k, bool),
        steps=np.zeros(k), restarts=np.zeros(k), init_seed=np.zeros(k), status=np.zeros(k),
        dead_units=np.zeros(k), hops=np.zeros(k))
    store.append_equivalents(path, found)
    return run.n_equivalents


def test_symmetry_copies_are_classified_as_such(tmp_path, tiny_config):
    cfg = config.with_overrides(config.load(tiny_config), n=2)
    path = tmp_path / "run.h5"
    pipeline.find(cfg, path)
    before = _append_copies(path, 3)
    info = pipeline.identify(path)
    run = store.load_run(path)
    v = run.equivalents["verdict"]
    assert list(v[before:]) == [0, 0, 0]
    assert np.all(run.equivalents["distance_to_reference"][before:] < 1e-13)
    np.testing.assert_allclose(run.equivalents["aligned_theta"][before:], np.tile(run.theta_ref, (3, 1)), atol=1e-13)
    assert info["verdicts"]["symmetry_copy"] >= 3
    assert int(run.identifiability["rank"]) == info["rank"]
    assert run.identifiability["null_basis"].shape == (run.theta_ref.shape[0], run.theta_ref.shape[0] - info["rank"])
    # appending more elements makes the per-element verdicts stale: they are dropped
    _append_copies(path, 1)
    assert "verdict" not in store.load_run(path).equivalents


def test_too_few_probe_points_gives_probe_only(tmp_path):
    """4 probe points cannot pin down a 25-parameter network: elements match there only."""
    cfg = config.resolve({
        "name": "few", "seed": 0,
        "data": {"dataset": "moons", "n_probe": 4, "n_heldout": 256, "n_train": 200},
        "model": {"widths": [2, 6, 1], "activation": "tanh"},
        "reference": {"source": "random", "init_scale": 3.0},
        "search": {"n": 6, "batch_size": 6},
    })
    path = tmp_path / "few.h5"
    pipeline.find(cfg, path)
    info = pipeline.identify(path)
    run = store.load_run(path)
    conv = run.equivalents["converged"]
    assert conv.sum() >= 4
    assert np.all(run.equivalents["verdict"][conv] == identifiability.VERDICTS.index("probe_only"))
    assert info["rank"] == 4  # J has only 4 rows
    assert info["verdicts"]["probe_only"] == conv.sum()


def test_classify_rules():
    v = identifiability.classify(converged=[True, True, True, False], distance=[1e-9, 0.5, 0.5, 1e-9],
                                 relative_heldout=[1e-12, 1e-12, 1e-2, 1e-12])
    assert [identifiability.VERDICTS[i] for i in v] == ["symmetry_copy", "hidden_equivalent", "probe_only",
                                                         "not_converged"]


def test_identify_cli(tmp_path, tiny_config, capsys):
    out = tmp_path / "run.h5"
    assert main(["find", str(tiny_config), "-o", str(out), "--quiet", "--n", "2"]) == 0
    assert main(["identify", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "symmetry copies" in text and "rank(J)" in text
    assert main(["identify", str(out), "--rtol", "-1"]) == 2
    assert main(["plot", str(out), "-o", str(tmp_path / "f"), "--format", "png"]) == 0
    assert (tmp_path / "f" / "identifiability.png").exists()


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_search_elements_are_equivalent_not_copies_of_each_other(act):
    """Sanity of the whole chain on a tiny net: converged elements are equivalent on held-out inputs."""
    spec = nets.MLPSpec((2, 4, 1), act)
    X = np.random.default_rng(0).normal(size=(64, 2))
    Xh = np.random.default_rng(1).normal(size=(64, 2))
    theta = nets.init_theta(spec, 1, nets.element_generator(3, 0)[0], 3.0)[0].numpy()
    prob = search.Problem.from_arrays(spec, theta, X, Xh)
    found = search.run_search(prob, search.SearchSettings(n=4, batch_size=4), seed=0)
    conv = found.converged
    assert conv.any()
    assert np.all(found.relative_discrepancy_heldout[conv] < 1e-6)
