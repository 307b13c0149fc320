"""`genni` end to end on the kinds beyond the MLP: resmlp, cnn and a researcher's torch module.

For each kind, a tiny config runs every stage (find, identify, project, layer paths, Ricci, figures)
through the model interface alone; then exact symmetry copies of θ* (the kind's own group: residual
stream maps and translations, channel permutations and rescalings, a module's declared symmetries)
are appended as elements, and they must compute the same function to 1e-12 (relative, on every probe,
held-out and far input) and be classified as symmetry copies by `identify`.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import genni
from genni import config, models, plots, stages, store
from genni.errors import ConfigError
from tests.conftest import append_symmetry_copies

_COMMON = {
    "seed": 0,
    "reference": {"source": "random", "init_scale": 2.0},
    "search": {"n": 3, "batch_size": 3, "init": "perturb", "init_scale": 0.01, "tol": 1e-12},
}

CASES = {
    "resmlp": {"data": {"dataset": "moons", "n_probe": 48, "n_heldout": 48, "n_train": 10},
               "model": {"kind": "resmlp", "width": 3, "hidden": 4, "blocks": 2, "activation": "tanh"}},
    "cnn": {"data": {"dataset": "normal", "shape": [1, 6, 6], "n_probe": 48, "n_heldout": 48},
            "model": {"kind": "cnn", "channels": [3], "kernel_size": 3, "pool": "max", "dense": [4],
                      "activation": "relu"}},
    "module": {"data": {"dataset": "moons", "n_probe": 48, "n_heldout": 48, "n_train": 10},
               "model": {"kind": "module", "module": "genni.models.examples:ScaledMLP",
                         "kwargs": {"d_in": 2, "hidden": 5, "out": 1}}},
}


def _config(kind: str) -> dict:
    raw = {"name": f"tiny_{kind}", **_COMMON, **CASES[kind]}
    return config.resolve(raw)


@pytest.fixture(scope="module", params=sorted(CASES))
def done_run(request, tmp_path_factory):
    """A tiny run of each kind through every stage, with 3 planted copies appended before identify."""
    kind = request.param
    path = tmp_path_factory.mktemp(kind) / "run.h5"
    cfg = _config(kind)
    found = genni.find(cfg, path)
    before = append_symmetry_copies(path, 3)
    ident = genni.identify(path)
    proj = genni.project(path, subspace="pca", dims=2, resolution=9, paths=1)
    paths = genni.layer_paths(path, metric="angular_procrustes", max_networks=4, max_inputs=32)
    ricci = genni.ricci(path, k=5, max_networks=4, max_inputs=32, n_boot=20)
    figs = plots.plot_run(store.load_run(path), path.parent / "figures", ("png",))
    return types.SimpleNamespace(kind=kind, path=path, cfg=cfg, found=found, before=before, ident=ident,
                                 proj=proj, paths=paths, ricci=ricci, figs=figs)


def test_every_stage_ran_and_drew(done_run):
    run = store.load_run(done_run.path)
    model = models.from_dict(run.architecture)
    assert model.kind == done_run.kind
    assert run.architecture["description"] == model.describe()
    assert run.architecture["n_params"] == model.n_params == run.theta_ref.shape[0]
    assert done_run.found["n_total"] == 3
    assert np.all(run.equivalents["converged"][:3])
    assert done_run.ident["rank"] <= model.expected_rank()
    assert len(done_run.paths["layers"]) == len(model.layer_names())
    names = {p.stem for p in done_run.figs}
    assert {"discrepancy", "identifiability", "projections", "layer_paths", "ricci"} <= names


def test_planted_symmetry_copies_compute_the_same_function(done_run):
    run = store.load_run(done_run.path)
    model = models.from_dict(run.architecture)
    copies = torch.as_tensor(run.equivalents["theta"][done_run.before:])
    for X in (run.X, run.X_heldout, run.X_far):
        x = torch.as_tensor(X)
        ref = model.forward(torch.as_tensor(run.theta_ref), x)
        out = model.forward(copies, x)
        scale = float(ref.abs().max())
        assert float((out - ref).abs().max()) <= 1e-12 * scale
        assert not np.allclose(run.equivalents["theta"][done_run.before:], run.theta_ref)  # really moved


def test_planted_symmetry_copies_are_classified_as_symmetry_copies(done_run):
    run = store.load_run(done_run.path)
    v = run.equivalents["verdict"][done_run.before:]
    assert list(v) == [0, 0, 0], f"verdicts {list(v)} (0 = symmetry_copy)"
    assert np.all(run.equivalents["distance_to_reference"][done_run.before:] < 1e-9)


def test_identify_above_the_svd_limit_takes_the_matrix_free_rank(tmp_path, monkeypatch):
    """Above IDENTIFY_SVD_MAX_P, identify stores rank J from J·v products only (no SVD, no verdicts),
    equal to the SVD rank at the same point (oracle: numpy's SVD of the full J)."""
    from genni import identifiability

    path = tmp_path / "run.h5"
    cfg = config.resolve({"name": "wide", **_COMMON,  # input and output layers as wide as the stream: a clear gap
                          "data": {"dataset": "normal", "dim": 4, "n_probe": 200, "n_heldout": 16},
                          "model": {"kind": "resmlp", "width": 3, "hidden": 5, "blocks": 2, "activation": "tanh",
                                    "outputs": 3}})
    genni.find(cfg, path, reference_only=True)
    append_symmetry_copies(path, 2)
    theta_off = store.load_run(path).theta_ref * 1.01  # not equivalent: differs on the far inputs
    monkeypatch.setattr(stages.identify, "IDENTIFY_SVD_MAX_P", 10)
    info = genni.identify(path)
    run = store.load_run(path)
    model = models.from_dict(run.architecture)
    J = identifiability.output_jacobian(model, model.symmetry.balance(run.theta_ref), run.X)
    assert info["method"] == "randomized" and info["verdicts"] == {}
    assert int(run.identifiability["rank"]) == info["rank"] == identifiability.spectrum(J).rank
    assert info["rank"] == model.n_params - 9 - 3 * 3  # P − w² − (B + 1)·w: the stream symmetries
    assert "singular_values" not in run.identifiability
    # the far inputs still check every element: exact copies agree there to rounding
    far = run.equivalents["relative_discrepancy_far"]
    assert far.shape == (2,) and far.max() <= 1e-24
    off = identifiability.far_discrepancies(model, theta_off[None], run.X_far, run.Y_far)["relative_discrepancy_far"]
    assert off[0] > 1e-6
    assert 0 < float(run.identifiability_attrs["rank_error_bound"]) < 1e-6 * float(run.identifiability_attrs["sigma_max"])
    # what makes or refines verdicts is refused there, not silently dropped
    for kwargs, flag in (({"copy_factor": 2.0}, "--copy-factor"), ({"agree_tol": 1e-6}, "--agree-tol"),
                         ({"rank_growth_max": 400}, "--rank-growth")):
        with pytest.raises(ConfigError, match=f"{flag}: above P = 10 parameters .* makes no verdicts"):
            genni.identify(path, **kwargs)


def test_pre_activations_are_refused_where_a_kind_has_none(done_run):
    """Only an MLP's layers have pre-activations apart from its representations; elsewhere the option would
    change nothing, so it is refused."""
    with pytest.raises(ConfigError, match="--pre-activations: .* has no pre-activations"):
        genni.layer_paths(done_run.path, preactivations=True, max_networks=2, max_inputs=16)


def test_a_run_of_another_kind_resumes(done_run):
    """The same config resumes the run file (a non-MLP kind's [model] has none of the MLP's keys)."""
    info = genni.find(done_run.cfg, done_run.path)
    assert not info["created"] and info["n_new"] == 0
