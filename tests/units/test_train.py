"""Reference networks: trained, random teacher, and loaded from a state_dict file."""

import numpy as np
import pytest
import torch

from genni import config, data, train
from genni.errors import GenniError
from genni.models import MLP


def test_trained_reference_fits_moons():
    ds = data.load_dataset("moons", n_probe=64, n_heldout=256, n_train=300, seed=0)
    spec = MLP((2, 16, 1), "tanh")
    theta = train.train_reference(spec, ds.X_train, ds.y_train, epochs=400, lr=2e-2, seed=0)
    assert train.accuracy(spec, theta, ds.X_heldout, ds.y_heldout) > 0.95


def test_multiclass_reference():
    ds = data.load_dataset("iris", n_probe=30, n_heldout=30, seed=0)
    spec = MLP((4, 8, 3), "relu")
    theta = train.train_reference(spec, ds.X_train, ds.y_train, epochs=300, lr=2e-2, seed=0)
    assert train.accuracy(spec, theta, ds.X_heldout, ds.y_heldout) > 0.85


def test_random_teacher_is_seeded():
    spec = MLP((2, 8, 1), "relu")
    a = train.random_reference(spec, seed=3)
    assert np.array_equal(a, train.random_reference(spec, seed=3))
    assert not np.array_equal(a, train.random_reference(spec, seed=4))


def test_reference_from_file(tmp_path):
    spec = MLP((2, 5, 1), "sigmoid")
    module = spec.module()
    path = tmp_path / "ref.pt"
    torch.save(module.state_dict(), path)
    theta = train.load_reference(spec, path)
    np.testing.assert_array_equal(theta, torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy())
    cfg = config.resolve({"model": {"widths": [2, 5, 1], "activation": "sigmoid"},
                          "reference": {"source": "file", "path": str(path)},
                          "data": {"n_probe": 16, "n_heldout": 16, "n_train": 16}})
    ds = data.load_dataset("moons", n_probe=16, n_heldout=16, n_train=16)
    ref = train.make_reference(cfg, spec, ds)
    assert ref.source == "file" and ref.accuracy is not None


def test_reference_file_errors(tmp_path):
    spec = MLP((2, 5, 1), "relu")
    with pytest.raises(GenniError, match="not found"):
        train.load_reference(spec, tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(GenniError, match="cannot load"):
        train.load_reference(spec, junk)
    wrong = tmp_path / "wrong.pt"
    torch.save(MLP((2, 4, 1)).module().state_dict(), wrong)
    with pytest.raises(GenniError, match=r"wrong shape\(s\) 0\.weight \[4, 2\] where the module has \[5, 2\]"):
        train.load_reference(spec, wrong)
    nan = tmp_path / "nan.pt"
    sd = spec.module().state_dict()
    sd["0.weight"][0, 0] = float("nan")
    torch.save(sd, nan)
    with pytest.raises(GenniError, match="NaN"):
        train.load_reference(spec, nan)


def test_reference_seed_changes_the_network_not_the_data():
    """[reference] seed: independently initialised references on the same inputs."""
    from genni import config, data, train

    raw = {"data": {"dataset": "moons", "n_probe": 16, "n_heldout": 16, "n_train": 50},
           "model": {"widths": [2, 3, 1]}, "reference": {"source": "random"}}
    a = config.resolve(raw)
    b = config.resolve({**raw, "reference": {"source": "random", "seed": 7}})
    ds = data.load_dataset("moons", n_probe=16, n_heldout=16, n_train=50, seed=a["seed"])
    spec = MLP((2, 3, 1))
    ta, tb = train.make_reference(a, spec, ds).theta, train.make_reference(b, spec, ds).theta
    assert not np.allclose(ta, tb)
    assert np.array_equal(tb, train.random_reference(spec, seed=7))
    assert a["seed"] == b["seed"]
