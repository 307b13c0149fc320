"""`genni identify`: verdicts on planted symmetry copies and on under-determined searches."""


import numpy as np
import pytest

import genni
from genni import config, identifiability, search, store
from genni.cli import main
from genni.errors import GenniError
from genni.models import MLP
from genni.seeds import element_generator
from tests.conftest import append_symmetry_copies


def test_symmetry_copies_are_classified_as_such(tmp_path, tiny_config):
    cfg = config.with_overrides(config.load(tiny_config), n=2)
    path = tmp_path / "run.h5"
    genni.find(cfg, path)
    before = append_symmetry_copies(path, 3)
    info = genni.identify(path)
    run = store.load_run(path)
    v = run.equivalents["verdict"]
    assert list(v[before:]) == [0, 0, 0]
    assert np.all(run.equivalents["distance_to_reference"][before:] < 1e-13)
    np.testing.assert_allclose(run.equivalents["aligned_theta"][before:], np.tile(run.theta_ref, (3, 1)), atol=1e-13)
    assert info["verdicts"]["symmetry_copy"] >= 3
    assert int(run.identifiability["rank"]) == info["rank"]
    assert run.identifiability["null_basis"].shape == (run.theta_ref.shape[0], run.theta_ref.shape[0] - info["rank"])
    # appending more elements makes the per-element verdicts stale: they are dropped
    append_symmetry_copies(path, 1)
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
    genni.find(cfg, path)
    info = genni.identify(path)
    run = store.load_run(path)
    conv = run.equivalents["converged"]
    assert conv.sum() >= 4
    assert np.all(run.equivalents["verdict"][conv] == identifiability.VERDICTS.index("probe_only"))
    assert info["rank"] == 4  # J has only 4 rows
    assert info["verdicts"]["probe_only"] == conv.sum()


def test_classify_rules():
    """Each verdict from the checks it rests on."""
    conv = [True, True, True, True, False]
    heldout_ok = [True, True, True, False, True]
    far_ok = [True, True, False, True, True]
    score = [0.5, 3.0, 0.5, 0.5, 0.5]
    v = identifiability.classify(conv, heldout_ok, far_ok, score)
    assert [identifiability.VERDICTS[i] for i in v] == [
        "symmetry_copy",      # agrees everywhere, displacement explained
        "hidden_equivalent",  # agrees everywhere, displacement not explained by the residual
        "data_equivalent",    # differs far: never a copy however close it lies
        "probe_only",
        "not_converged"]


def test_agreement_plain_or_explained():
    """Agreement: at or below the tolerance, or explained to first order (ρ ≤ 0.5); NaN never agrees."""
    ok = identifiability.agrees(np.array([1e-13, 1e-5, 1e-5, 1e-5, np.nan]), 1e-12,
                                np.array([np.nan, 0.1, 0.5, 0.9, 0.0]))
    assert ok.tolist() == [True, True, True, False, False]
    assert identifiability.agreement_tolerance(1e-10, 2.0) == pytest.approx(100 * 1e-10 / 2.0)
    assert identifiability.agreement_tolerance(1e-20, 2.0) == identifiability.DEFAULT_AGREE_TOL


def test_copy_threshold_formula():
    """τ = c·√(nL)/(σ_r‖θ*‖), floored at 1e-10; the score compares row and null parts separately."""
    tau = identifiability.copy_threshold(np.array([4e-6, 0.0]), n_probe=100, sigma_r=0.5, theta_norm=2.0, factor=10)
    np.testing.assert_allclose(tau, [10 * np.sqrt(100 * 4e-6) / (0.5 * 2.0), 1e-10])
    s = identifiability.copy_score(row=np.array([0.02, 0.02, 0.02]), null=np.array([0.0, 1e-4, 1e-3]),
                                   threshold=np.array([0.02, 0.02, 0.02]), theta_norm=2.0, factor=10)
    # d_R = 0.01 → row ratio 0.5; null allowance 10·0.01² = 1e-3 (relative): d_N = 0, 5e-5, 5e-4
    np.testing.assert_allclose(s, [0.5, 0.5, 0.5])
    s2 = identifiability.copy_score(row=np.array([0.02]), null=np.array([0.01]), threshold=np.array([0.02]),
                                    theta_norm=2.0, factor=10)
    np.testing.assert_allclose(s2, [0.005 / 1e-3])


def test_split_displacement_is_orthogonal():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    null = Q[:, 4:]
    delta = rng.normal(size=(3, 6))
    row, nul = identifiability.split_displacement(delta, null)
    np.testing.assert_allclose(row ** 2 + nul ** 2, (delta ** 2).sum(1))
    np.testing.assert_allclose(nul, np.linalg.norm(delta @ null, axis=1))
    np.testing.assert_allclose(identifiability.split_displacement(delta, null[:, :0])[1], 0.0)


def test_linearity_against_finite_differences():
    """J(θ* + δ/2)·δ by forward mode against central differences; the midpoint rule's accuracy."""
    spec = MLP((2, 4, 1), "tanh")
    theta = spec.init_theta(1, element_generator(0, 0)[0], 1.0)[0].numpy()
    X = np.random.default_rng(1).normal(size=(50, 2))
    delta = 1e-3 * np.random.default_rng(2).normal(size=(2, spec.n_params))
    import torch
    with torch.no_grad():
        f = lambda t: spec.forward(torch.as_tensor(t), torch.as_tensor(X)).numpy()  # noqa: E731
        lin = np.stack([(f(theta + 1e-4 * d) - f(theta - 1e-4 * d)) / 2e-4 for d in delta])
        actual = np.stack([f(theta + d) - f(theta) for d in delta])
    # J at the midpoint θ* + δ/2 applied to δ: the central difference of f over [θ*, θ* + δ] is exactly that
    # product up to O(‖δ‖³), so it reproduces the actual change f(θ* + δ) − f(θ*) to third order
    with torch.no_grad():
        mid = np.stack([(f(theta + d / 2 + 1e-4 * d) - f(theta + d / 2 - 1e-4 * d)) / 2e-4 for d in delta])
    rho = identifiability.linearity(spec, theta, delta, X, mid)
    assert np.all(rho < 1e-6)  # forward mode = central difference to O(h²)
    rho_actual = identifiability.linearity(spec, theta, delta, X, actual)
    assert np.all(rho_actual < 1e-5) and np.all(rho_actual > 0)  # third-order remainder of a small step
    rho_at_start = np.linalg.norm((lin - actual).reshape(2, -1), axis=1) / np.linalg.norm(actual.reshape(2, -1), axis=1)
    assert np.all(rho_actual < rho_at_start)  # the midpoint beats the Jacobian at θ*
    rho_wrong = identifiability.linearity(spec, theta, 100 * delta / 1e-3, X, actual)
    assert np.all(rho_wrong > 1)  # a displacement that does not produce this residual


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
    """Sanity of the whole chain on a tiny net: converged elements are equivalent on held-out inputs, and
    distinct points.  relu starts θ* + 30 % noise (random relu starts mostly stall at spurious minima on this
    net: the driver's docstring), tanh random starts."""
    spec = MLP((2, 4, 1), act)
    X = np.random.default_rng(0).normal(size=(64, 2))
    Xh = np.random.default_rng(1).normal(size=(64, 2))
    theta = spec.init_theta(1, element_generator(3, 0)[0], 3.0)[0].numpy()
    prob = search.Problem.from_arrays(spec, theta, X, Xh)
    starts = dict(init="perturb", init_scale=0.3) if act == "relu" else {}
    found = search.run_search(prob, search.SearchSettings(n=4, batch_size=4, **starts), seed=0)
    conv = found.converged
    assert conv.any()
    assert np.all(found.relative_discrepancy_heldout[conv] < 1e-6)
    pts = found.theta[conv]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(pts) for b in pts[i + 1:]]
    assert min(gaps, default=1.0) > 1e-6 * np.linalg.norm(theta)


def test_old_run_file_without_far_inputs(tmp_path, tiny_config):
    """A run file written before far inputs existed (no /probe/X_far, no data.n_far in its config) still
    resumes, and identify adds the same far inputs a new run would hold."""
    import json

    import h5py

    cfg = config.with_overrides(config.load(tiny_config), n=2)
    new, old = tmp_path / "new.h5", tmp_path / "old.h5"
    genni.find(cfg, new)
    genni.find(cfg, old)
    with h5py.File(old, "r+") as f:
        del f["probe/X_far"], f["probe/Y_far"]
        stored = json.loads(f.attrs["config"])
        del stored["data"]["n_far"], stored["data"]["far_scale"]
        f.attrs["config"] = json.dumps(stored, sort_keys=True)
    assert store.load_run(old).X_far is None
    genni.find(config.with_overrides(cfg, n=3), old)  # resumes: the missing keys hold their defaults
    info = genni.identify(old)
    a, b = store.load_run(old), store.load_run(new)
    np.testing.assert_array_equal(a.X_far, b.X_far)
    np.testing.assert_allclose(a.Y_far, b.Y_far, rtol=1e-13, atol=1e-13)
    assert a.X_far.shape == (config.load(tiny_config)["data"]["n_far"], 2)
    assert len(a.equivalents["relative_discrepancy_far"]) == 3 and info["n_far"] == len(a.X_far)
    with pytest.raises(GenniError, match="already holds far inputs"):
        store.write_far_inputs(old, a.X_far, a.Y_far, {}, {})  # never replaced under stored verdicts


def test_far_inputs_cover_beyond_the_data():
    """RMS distance from the data's mean is far_scale × the data's radius; most points lie outside it."""
    from genni import data

    X = np.random.default_rng(0).normal(size=(500, 2)) * [1.0, 0.3] + [2.0, -1.0]
    Xf, facts = data.far_inputs(X, 20000, scale=3.0, seed=1)
    r = np.sqrt(((X - X.mean(0)) ** 2).sum(1).max())
    assert facts["radius"] == pytest.approx(r)
    d = np.sqrt(((Xf - X.mean(0)) ** 2).sum(1))
    assert np.sqrt((d ** 2).mean()) == pytest.approx(3 * r, rel=0.02)
    assert (d > r).mean() == pytest.approx(1 - (1 - np.exp(-1 / 9)), abs=0.01)  # χ²₂: P(‖z‖² ≤ 2/9) = 1 − e^(−1/9)
    again, _ = data.far_inputs(X, 20000, scale=3.0, seed=1)
    assert np.array_equal(Xf, again)


def test_rank_growth_is_stored_and_reaches_the_bound(tmp_path, capsys):
    """`[identify] rank_growth_max`: rank over fresh N(0, I) inputs, from n_probe = 8 (too few rows for a
    P = 21 network) doubling until unchanged over 8× more inputs, at the generic bound P − #hidden."""
    cfg = config.resolve({
        "name": "grow", "seed": 0,
        "data": {"dataset": "normal", "dim": 3, "n_probe": 8, "n_heldout": 64, "n_far": 64},
        "model": {"widths": [3, 4, 1], "activation": "relu"},
        "reference": {"source": "random", "init": "he", "bias_std": 0.5},
        "search": {"n": 1}, "identify": {"rank_growth_max": 100_000, "rank_inputs": "data"},
    })
    path = tmp_path / "grow.h5"
    genni.find(cfg, path, reference_only=True)
    info = genni.identify(path)
    assert info["rank"] == 8  # the probe's 8 rows
    run = store.load_run(path)
    g, a = run.identifiability["rank_growth"], run.identifiability_attrs
    assert g[0, 0] == 8 and g[-1, 1] == info["rank_growth_rank"] == a["rank_growth_rank"] == 21 - 4
    assert a["rank_growth_saturated"] and g[-4, 1] == g[-1, 1]
    assert main(["identify", str(path), "--rank-growth", "0", "--quiet"]) == 0  # off: no table
    assert "rank_growth" not in store.load_run(path).identifiability
    assert "rank over fresh inputs" not in capsys.readouterr().out
