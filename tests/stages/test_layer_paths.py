"""`genni paths`: layer paths stored under /paths/<metric>; exact relu copies coincide under quotient metrics."""

import json

import numpy as np
import pytest
import torch

import genni
from genni import config, store
from genni.cli import main
from genni.errors import GenniError
from genni.models import MLP
from tests.conftest import append_symmetry_copies


def relu_run(path, *, copies: int, n_probe: int, n_heldout: int, epochs: int) -> int:
    """A trained 2-6-5-1 relu run with one searched element, then ``copies`` exact rescaled +
    permuted copies of θ* appended as converged elements; returns the row of the first copy."""
    cfg = config.resolve({
        "name": path.stem, "seed": 0,
        "data": {"dataset": "moons", "n_probe": n_probe, "n_heldout": n_heldout, "n_train": 200},
        "model": {"widths": [2, 6, 5, 1], "activation": "relu"},
        "reference": {"source": "train", "epochs": epochs},
        "search": {"n": 1, "init": "perturb", "init_scale": 0.01},
    })
    genni.find(cfg, path)
    return append_symmetry_copies(path, copies)


def test_layer_paths_store_and_quotient_invariance(tmp_path):
    path = tmp_path / "lp.h5"
    before = relu_run(path, copies=3, n_probe=64, n_heldout=64, epochs=300)  # the copies are rows before..
    quotient = genni.layer_paths(path, metric="zscore_procrustes")
    standard = genni.layer_paths(path, metric="angular_cka")
    run = store.load_run(path)
    q, s = run.layer_paths["zscore_procrustes"], run.layer_paths["angular_cka"]
    M, L = quotient["n_networks"], quotient["n_layers"]
    assert L == 4 and q["distances"].shape == (M * L, M * L) and q["embedding"].shape == (M * L, 2)
    assert q["steps"].shape == (M, L - 1) and q["angles"].shape == (M, L - 2) and q["straightness"].shape == (M,)
    assert np.all(q["straightness"] <= 1 + 1e-12)
    # Kruskal's stress-1 of the stored map, recomputed from the embedding and the distances
    iu = np.triu_indices(M * L, 1)
    e = np.linalg.norm(q["embedding"][:, None] - q["embedding"][None], axis=-1)[iu]
    want = np.sqrt(((e - q["distances"][iu]) ** 2).sum() / (q["distances"][iu] ** 2).sum())
    assert q["attrs"]["stress_1"] == pytest.approx(want, rel=1e-6)
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
        genni.layer_paths(path, max_networks=0)


def _relu_run(tmp_path, copies=2):
    path = tmp_path / "lp.h5"
    relu_run(path, copies=copies, n_probe=48, n_heldout=48, epochs=200)
    return path


def test_preactivations_progress_and_geodesic_positions(tmp_path):
    from genni import geometry

    path = _relu_run(tmp_path)
    info = genni.layer_paths(path, metric="zscore_procrustes", preactivations=True)
    assert info["layers"] == ["input", "z1", "h1", "z2", "h2", "output"]
    p = store.load_run(path).layer_paths["zscore_procrustes"]
    M, L = info["n_networks"], 6
    assert p["distances"].shape == (M * L, M * L) and p["geodesic_t"].shape == (M, L)
    # pre-activations of exact relu copies are rescaled + permuted too: distance 0 at every point
    for m in range(1, M):
        if p["elements"][m - 1] >= 1:  # the planted copies (row 0 of /equivalents is the searched element)
            assert max(p["distances"][l, m * L + l] for l in range(L)) < 1e-7
    # the path's ends sit at t = 0 and t = 1 on the geodesic between them, on it
    np.testing.assert_allclose(p["geodesic_t"][:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(p["geodesic_t"][:, -1], 1, atol=1e-6)
    np.testing.assert_allclose(p["geodesic_off"][:, [0, -1]], 0, atol=1e-6)
    # the foot of the perpendicular is no farther than either end of the geodesic
    ends = np.minimum(p["distances"][np.arange(L), 0], p["to_output"][0])
    assert np.all(p["geodesic_off"][0] <= ends + 1e-9)
    # progress: distances to the output and to the labels, checked against genni.distance directly
    run = store.load_run(path)
    spec = MLP.from_dict(run.architecture)
    _, reps = spec.layers(torch.as_tensor(run.theta_ref), torch.as_tensor(run.X), preactivations=True)
    onehot = np.eye(2)[run.labels]
    for l in range(L):
        want = geometry.distance(reps[l].numpy(), onehot, "zscore_procrustes")
        assert p["to_labels"][0, l] == pytest.approx(want, abs=1e-9)
        assert p["to_output"][0, l] == pytest.approx(geometry.distance(reps[l].numpy(), reps[-1].numpy(),
                                                                       "zscore_procrustes"), abs=1e-7)
    assert p["to_output"][0, -1] < 1e-7
    none = genni.layer_paths(path, metric="zscore_permutation")
    assert np.all(np.isnan(store.load_run(path).layer_paths["zscore_permutation"]["geodesic_t"]))
    assert none["reference_geodesic_t"] and np.isnan(none["reference_geodesic_t"][0])


def test_cached_representations_are_stored_and_reused(tmp_path):
    path = _relu_run(tmp_path, copies=1)
    first = genni.layer_paths(path, metric="angular_cka", cache=True)
    arrays, attrs = store.read_group(path, "representations")
    assert json.loads(attrs["layers"]) == ["input", "h1", "h2", "output"]
    assert arrays["layer_01"].shape == (first["n_networks"], 48, 6)
    again = genni.layer_paths(path, metric="angular_cka")
    assert again["max_spread_per_layer"] == first["max_spread_per_layer"]
    # the cache is what is read: plant a different first hidden layer and the distances follow it
    planted = np.random.default_rng(0).normal(size=arrays["layer_01"].shape)
    store.write_group(path, "representations", {**arrays, "layer_01": planted}, attrs)
    moved = genni.layer_paths(path, metric="angular_cka")
    assert moved["max_spread_per_layer"][1] > first["max_spread_per_layer"][1] + 1e-3
    # asking for pre-activations does not match the cache: recomputed from the networks
    pre = genni.layer_paths(path, metric="angular_cka", preactivations=True)
    assert pre["n_layers"] == 6 and pre["max_spread_per_layer"][2] == pytest.approx(first["max_spread_per_layer"][1])


def test_layer_geometry_figure(tmp_path, tiny_config):
    path = tmp_path / "run.h5"
    assert main(["find", str(tiny_config), "-o", str(path), "--quiet"]) == 0
    assert main(["paths", str(path), "--quiet", "--pre-activations", "--cache"]) == 0
    assert main(["plot", str(path), "-o", str(tmp_path / "f"), "--format", "png"]) == 0
    assert (tmp_path / "f" / "layer_geometry.png").stat().st_size > 10_000


def test_zscore_floor_reaches_the_metric(tmp_path):
    """`floor` is the z-score metrics' variance floor: the stored distances equal geometry.pairwise
    with that floor on the cached representations, and a floor that drops units changes them."""
    from genni import geometry

    path = _relu_run(tmp_path, copies=1)
    genni.layer_paths(path, metric="zscore_procrustes", floor=0.3, cache=True)
    got = store.load_run(path).layer_paths["zscore_procrustes"]
    arrays, _ = store.read_group(path, "representations")
    L = 4
    points = [arrays[f"layer_{l:02d}"][m] for m in range(got["attrs"]["n_networks"]) for l in range(L)]
    np.testing.assert_allclose(got["distances"], geometry.pairwise(points, "zscore_procrustes", 0.3), atol=1e-13)
    assert got["attrs"]["floor"] == 0.3
    default = genni.layer_paths(path, metric="zscore_procrustes")
    assert store.load_run(path).layer_paths["zscore_procrustes"]["attrs"]["floor"] == geometry.DEFAULT_FLOOR
    assert not np.allclose(store.load_run(path).layer_paths["zscore_procrustes"]["distances"], got["distances"])
    assert default["n_layers"] == L
    with pytest.raises(GenniError, match="floor"):
        genni.layer_paths(path, metric="zscore_procrustes", floor=1.5)
