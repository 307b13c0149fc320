"""Bias-free layers ([model] bias = false): layout, forward, Jacobian, symmetries, config, end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch

import genni
from genni import config, identifiability, store
from genni.errors import GenniError
from genni.models import MLP
from genni.models.base import module_to_theta
from genni.models.mlp import layout
from genni.seeds import element_generator


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_layout_forward_and_jacobian_match_torch(act):
    spec = MLP((3, 4, 2, 1), act, bias=False)
    assert spec.n_params == 3 * 4 + 4 * 2 + 2 * 1
    module = spec.module()
    assert all(m.bias is None for m in module if isinstance(m, torch.nn.Linear))
    theta = spec.init_theta(3, element_generator(0, 0)[0], 1.5)
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(7, 3)))
    out = spec.forward(theta, X)
    for t, o in zip(theta, out):
        m = spec.module(t)
        assert torch.equal(module_to_theta(m), t)  # parameters_to_vector of Linear(bias=False)
        torch.testing.assert_close(o, m(X), atol=1e-12, rtol=0)
    _, J = spec.jacobian(theta[0], X)
    Jref = torch.func.jacrev(lambda t: spec.forward(t, X))(theta[0])
    torch.testing.assert_close(J, Jref, atol=1e-12, rtol=0)
    W, b = layout.unflatten(theta[0], spec.widths, bias=False)[0]
    assert torch.equal(b, torch.zeros(4, dtype=torch.float64))
    assert torch.equal(layout.flatten(layout.unflatten(theta, spec.widths, False), False), theta)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_group_actions_keep_the_function_without_biases(act):
    spec = MLP((2, 4, 3, 1), act, bias=False)
    theta = spec.init_theta(1, element_generator(1, 0)[0], 1.0)[0].numpy()
    X = torch.as_tensor(np.random.default_rng(1).normal(size=(50, 2)))
    for g in spec.symmetry.sample(3, np.random.default_rng(2)):
        copy = spec.symmetry.act(theta, g)
        torch.testing.assert_close(spec.forward(torch.as_tensor(copy), X), spec.forward(torch.as_tensor(theta), X),
                                   atol=1e-12, rtol=1e-12)
        aligned, _ = spec.symmetry.align(copy, theta)
        np.testing.assert_allclose(aligned, theta, atol=1e-12)
    if act == "relu":
        T = spec.symmetry.tangents(theta)
        J = identifiability.output_jacobian(spec, theta, X.numpy())
        np.testing.assert_allclose(J @ T, 0.0, atol=1e-12)


def test_sigmoid_without_bias_has_no_sign_flips():
    assert not MLP((2, 3, 1), "sigmoid", bias=False).symmetry.kinds["sign_flip"]
    assert MLP((2, 3, 1), "sigmoid").symmetry.kinds["sign_flip"]


def test_state_dict_of_a_bias_free_module_loads(tmp_path):
    spec = MLP((2, 5, 1), "relu", bias=False)
    m = spec.module()
    torch.save(m.state_dict(), tmp_path / "m.pt")
    np.testing.assert_array_equal(spec.load_state_dict(tmp_path / "m.pt"), module_to_theta(m).numpy())
    torch.save(MLP((2, 5, 1), "relu").module().state_dict(), tmp_path / "biased.pt")
    with pytest.raises(GenniError, match=r"unexpected key\(s\) 0\.bias, 2\.bias"):
        spec.load_state_dict(tmp_path / "biased.pt")


def test_bias_free_run_end_to_end(tmp_path):
    cfg = config.resolve({"name": "nobias", "seed": 0,
                          "data": {"dataset": "moons", "n_probe": 64, "n_heldout": 64, "n_train": 200},
                          "model": {"widths": [2, 5, 1], "activation": "tanh", "bias": False},
                          "reference": {"source": "random", "init_scale": 2.0}, "search": {"n": 3, "batch_size": 3}})
    path = tmp_path / "nobias.h5"
    genni.find(cfg, path)
    run = store.load_run(path)
    assert run.architecture["bias"] is False and run.theta_ref.shape == (15,)
    info = genni.identify(path)
    assert info["n_params"] == 15 and info["expected_rank"] == 15
    assert np.all(run.equivalents["converged"] <= 1)


def test_genni_run_on_normal_inputs_without_biases(tmp_path):
    """GENNI's setting end to end: N(0, I) inputs, bias-free toy teacher (experiments/genni_toy.toml, smaller),
    walks; every stage and figure; the walks find hidden equivalents, verified on far inputs."""
    from genni.cli import main

    cfgp = tmp_path / "toy.toml"
    text = (Path(__file__).resolve().parents[2] / "experiments" / "genni_toy.toml").read_text()
    cfgp.write_text(text.replace("n = 16", "n = 4").replace("chains = 4", "chains = 2").replace("n_probe = 256", "n_probe = 64")
                    .replace("n_heldout = 256", "n_heldout = 64"))
    out, figs = tmp_path / "toy.h5", tmp_path / "figs"
    assert main(["run", str(cfgp), "-o", str(out), "--figures", str(figs), "--quiet"]) == 0
    run = store.load_run(out)
    assert run.architecture["bias"] is False and run.labels is None and run.X.shape == (64, 1)
    eq = run.equivalents
    assert len(eq["index"]) == 4 and np.all(eq["chain"] >= 0)
    hidden = identifiability.VERDICTS.index("hidden_equivalent")
    assert np.all(eq["verdict"] == hidden) and np.all(eq["relative_discrepancy_far"] < 1e-20)
    for name in ("walk", "identifiability", "projections", "layer_paths", "ricci"):
        assert (figs / f"{name}.png").exists(), name
