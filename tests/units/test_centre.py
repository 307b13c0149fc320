"""[reference] centre: a random teacher whose hidden units are all alive (pre-activation median 0).

Oracles independent of the generic hook in Model.centre_biases: the MLP's closed-form pre-activations
(genni.models.mlp.closed_form.forward) and the CNN's activation pattern (its conv and dense signs, computed by hand from
the stages).  Medians are exact order statistics, so after centring the median unit sits at 0 up to
rounding of one affine map (tolerance 1e-12 relative to the largest pre-activation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genni
from genni import config, models, store, train
from genni.data import load_dataset
from genni.errors import ConfigError


def _x(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_mlp_hidden_preactivations_have_median_zero_and_no_unit_is_dead():
    spec = models.from_dict({"kind": "mlp", "widths": [3, 12, 9, 2], "activation": "relu"})
    # a teacher with large negative biases: most units dead before centring
    theta = spec.init_theta(1, torch.Generator().manual_seed(2))[0].numpy()
    for _, _, bs in spec.filter_groups()[:-1]:
        theta[bs] -= 3.0
    X = _x(201, 3)
    assert sum(spec.dead_units(theta, X)) > 0
    c = spec.centre_biases(theta, X)
    _, reps = spec.layers(torch.as_tensor(c), torch.as_tensor(X), preactivations=True)
    names = spec.layer_names(True)
    zs = [r.numpy() for n, r in zip(names, reps) if n.startswith("z")]
    assert len(zs) == 2
    for z in zs:
        assert np.abs(np.median(z, axis=0)).max() <= 1e-12 * np.abs(z).max()
        above = (z > 0).sum(axis=0)  # 201 inputs: 100 above the median one, which sits at 0 ± rounding
        assert np.all((above >= 100) & (above <= 101))
    assert sum(spec.dead_units(c, X)) == 0


def test_cnn_every_channel_and_unit_is_active_on_half_of_its_positions():
    spec = models.from_dict({"kind": "cnn", "input_shape": [1, 8, 8], "channels": [3, 4], "kernel_size": 3, "padding": 1,
                             "pool": "max", "pool_size": 2, "dense": [6], "d_out": 2, "activation": "relu"})
    theta = spec.init_theta(1, torch.Generator().manual_seed(3))[0].numpy()
    X = _x(41, 64, seed=1)
    c = spec.centre_biases(theta, X)
    net = spec.module(torch.as_tensor(c))
    with torch.no_grad():
        h = net.image(torch.as_tensor(X))
        shares = []
        for st in net.stages:
            z = st.conv(h)
            shares.append(((z > 0).double().transpose(0, 1).reshape(z.shape[1], -1).mean(1), z[0, 0].numel() * 41))
            h = st.pool(st.act(z))
        h = h.flatten(1)
        for d in net.dense:
            z = d.fc(h)
            shares.append(((z > 0).double().mean(0), 41))
            h = d.act(z)
    for share, m in shares:  # m values with their median at 0 ± rounding: ⌊m/2⌋ ± 1 of them above 0
        above = torch.round(share * m)
        assert torch.all((above >= m // 2 - 1) & (above <= m // 2 + 1)), (share, m)
    assert sum(spec.dead_units(c, X)) == 0


def test_centre_only_for_random_teachers_and_it_reaches_the_run_file(tmp_path):
    with pytest.raises(ConfigError, match="centre = true applies to random teachers"):
        config.resolve({"reference": {"source": "train", "centre": True}})
    with pytest.raises(ConfigError, match="centre"):
        config.resolve({"reference": {"source": "random", "centre": 1}})
    raw = {"name": "centred", "seed": 0, "data": {"dataset": "normal", "dim": 3, "n_probe": 64, "n_heldout": 16},
           "model": {"widths": [3, 8, 1], "activation": "relu"},
           "reference": {"source": "random", "init": "he", "bias_std": 2.0, "centre": True},
           "search": {"n": 2, "batch_size": 2, "init": "perturb", "init_scale": 0.01}}
    cfg = config.resolve(raw)
    d = cfg["data"]
    ds = load_dataset("normal", n_probe=d["n_probe"], n_heldout=d["n_heldout"], n_train=d["n_train"], seed=0, dim=3)
    spec = config.model_of(cfg)
    plain = train.random_reference(spec, seed=0, init="he", bias_std=2.0)
    ref = train.make_reference(cfg, spec, ds)
    np.testing.assert_array_equal(ref.theta, spec.centre_biases(plain, ds.X_probe))
    genni.find(cfg, tmp_path / "c.h5")
    run = store.load_run(tmp_path / "c.h5")
    np.testing.assert_array_equal(run.theta_ref, ref.theta)
    assert run.config["reference"]["centre"] is True
