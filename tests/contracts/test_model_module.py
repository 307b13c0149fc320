"""kind = "module": a researcher's own torch.nn.Module (genni.models.module.TorchModule).

The interface contract for two example factories (a conv net on 1×6×6 images that declares nothing, an MLP
declaring its rescaling symmetry), state_dict loading, and one-line errors for every bad input.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from genni import models
from genni.errors import ConfigError, GenniError
from genni.models.module import TorchModule
from tests.contracts.test_model_contract import ModelContract

CONV = "genni.models.examples:TinyConvNet"
CONV_KW = {"in_channels": 1, "side": 6, "channels": 2, "hidden": 5, "out": 3}
MLP = "genni.models.examples:ScaledMLP"
MLP_KW = {"d_in": 2, "hidden": 4, "out": 2}


# --- factories for the tests below (imported by path, like a researcher's own) ------------------------------
def not_a_module():
    return {"weight": torch.zeros(2)}


def bn_net(width: int = 4):
    """Linear → BatchNorm1d → ReLU → Linear: buffers (running statistics) that θ does not hold."""
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 1))


class _HalfDeclared(torch.nn.Linear):
    def genni_act(self, theta, g):
        return theta


def half_declared():
    return _HalfDeclared(2, 1)


class _SharedAct(torch.nn.Module):
    """One Tanh module called twice: its hooked output is no single representation, so it is not one."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = torch.nn.Linear(2, 3), torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
        self.act = torch.nn.Tanh()

    def forward(self, x):
        return self.head(self.act(self.fc2(self.act(self.fc1(x)))))


def shared_act():
    return _SharedAct()


class _Opaque:
    """A custom class: torch.load(weights_only=True) refuses to unpickle it."""

    def __init__(self):
        self.x = 1


def _conv(**over):
    kw = {**CONV_KW, **over}
    return TorchModule.from_config({"module": CONV, "kwargs": kw, "input_shape": None}, 36, kw["out"], (1, 6, 6))


def _mlp():
    return TorchModule.from_config({"module": MLP, "kwargs": MLP_KW, "input_shape": None}, 2, 2)


def _x(n, d, seed=2):
    return np.random.default_rng(seed).normal(size=(n, d))


# --- the contract ---------------------------------------------------------------------------------------------
class TestModuleTinyConvNet(ModelContract):
    def make(self):
        return _conv(), _x(7, 36)


class TestModuleScaledMLP(ModelContract):
    def make(self):
        return _mlp(), _x(9, 2)


# --- description, construction ----------------------------------------------------------------------------------
def test_description_round_trips_and_is_hashable():
    m = _conv()
    d = m.to_dict()
    assert d == {"kind": "module", "module": CONV, "kwargs": CONV_KW, "input_shape": [1, 6, 6], "d_in": 36, "d_out": 3}
    assert models.from_dict(d) == m and hash(models.from_dict(d)) == hash(m)
    shuffled = dict(reversed(list(CONV_KW.items())))  # kwargs order does not matter
    assert TorchModule.from_dict({**d, "kwargs": shuffled}) == m
    assert m.in_dim == 36 and m.out_dim == 3 and m.kwargs == CONV_KW
    # input_shape in the [model] table wins over the data's; absent everywhere, rows go in flat
    m2 = TorchModule.from_config({"module": CONV, "kwargs": CONV_KW, "input_shape": [1, 6, 6]}, 36, 3, (36,))
    assert m2.input_shape == (1, 6, 6)
    assert _mlp().input_shape is None


def test_module_returns_a_fresh_copy_that_accepts_flat_rows():
    m = _conv()
    theta = m.init_theta(1, torch.Generator().manual_seed(3))[0]
    X = torch.as_tensor(_x(5, 36))
    before = torch.nn.utils.parameters_to_vector(m.module().parameters()).clone()
    net = m.module(theta)
    assert torch.equal(torch.nn.utils.parameters_to_vector(net.parameters()), theta)
    with torch.no_grad():
        torch.testing.assert_close(net(X), net(X.reshape(5, 1, 6, 6)), rtol=0, atol=0)
        for p in net.parameters():
            p.fill_(7.0)
    net.train()
    again = m.module()
    assert torch.equal(torch.nn.utils.parameters_to_vector(again.parameters()), before)
    assert not again.training and again is not net and again is not m.module()
    assert all(p.dtype == torch.float64 for p in again.parameters())
    torch.testing.assert_close(m.forward(theta, X), m.module(theta)(X).detach(), rtol=1e-12, atol=1e-12)


def test_representations_follow_the_sequential_without_reshapes():
    m = _conv()
    assert m.layer_names() == ["input", "0:Conv2d", "1:ReLU", "2:MaxPool2d", "4:Linear", "5:Tanh", "output"]
    theta = m.init_theta(2, torch.Generator().manual_seed(0))
    out, reps = m.layers(theta, torch.as_tensor(_x(5, 36)))
    assert [r.shape[-1] for r in reps] == [36, 72, 72, 18, 5, 5, 3]
    assert torch.equal(reps[-1], out) and out.shape == (2, 5, 3)
    assert _mlp().layer_names() == ["input", "fc1", "relu", "output"]
    s = TorchModule.from_config({"module": "tests.contracts.test_model_module:shared_act"}, 2, 1)
    assert s.layer_names() == ["input", "fc1", "fc2", "output"]
    out, reps = s.layers(s.init_theta(2, torch.Generator().manual_seed(0)), torch.as_tensor(_x(4, 2)))
    assert [r.shape for r in reps] == [(2, 4, 2), (2, 4, 3), (2, 4, 3), (2, 4, 1)]


# --- symmetries ---------------------------------------------------------------------------------------------------
def test_no_declaration_means_no_symmetries_assumed():
    m = _conv()
    theta = m.init_theta(1, torch.Generator().manual_seed(0))[0].numpy()
    assert m.symmetry.tangents(theta).shape == (m.n_params, 0)
    gs = m.symmetry.sample(3, np.random.default_rng(0))
    assert len(gs) == 3 and all(np.array_equal(m.symmetry.act(theta, g), theta) for g in gs)
    assert m.symmetry.kinds == {"declared": False}
    assert m.describe() == f"torch module {CONV} ({m.n_params:,} parameters; no symmetries assumed — none declared)"
    assert m.expected_rank() == m.n_params


def test_declared_rescaling_is_the_whole_null_space():
    """ScaledMLP's declared tangents are vertical, independent (one per hidden unit) and, at a generic θ
    over many inputs, span exactly the null space of J."""
    m = _mlp()
    assert m.symmetry.kinds == {"declared": True} and "declares" in m.describe()
    theta = m.init_theta(1, torch.Generator().manual_seed(4), 2.0)
    T = m.symmetry.tangents(theta[0].numpy())
    assert T.shape == (m.n_params, 4) and np.linalg.matrix_rank(T) == 4
    _, J = m.jacobian(theta, torch.as_tensor(_x(300, 2, seed=5)))
    J = J[0].reshape(-1, m.n_params).numpy()
    assert np.linalg.norm(J @ T) <= 1e-10 * np.linalg.norm(J) * np.linalg.norm(T)
    s = np.linalg.svd(J, compute_uv=False)
    assert int((s > 1e-9 * s[0]).sum()) == m.n_params - 4 == m.expected_rank()
    X = torch.as_tensor(_x(20, 2))
    ref = m.forward(theta[0], X)
    for g in m.symmetry.sample(3, np.random.default_rng(0)):
        moved = m.symmetry.act(theta[0].numpy(), g)
        assert not np.allclose(moved, theta[0].numpy())
        torch.testing.assert_close(m.forward(torch.as_tensor(moved), X), ref, rtol=1e-12, atol=1e-12)


# --- state_dicts ----------------------------------------------------------------------------------------------------
def test_state_dict_of_the_factorys_module_loads_back(tmp_path):
    from genni.models.examples import TinyConvNet

    torch.manual_seed(11)
    net = TinyConvNet(**CONV_KW)  # float32, as a researcher would train it
    m = _conv()
    X = torch.as_tensor(_x(6, 36))
    want = torch.nn.utils.parameters_to_vector(net.parameters()).detach().double().numpy()
    with torch.no_grad():
        ref = net.double()(X.reshape(6, 1, 6, 6))
    net.float()
    for i, obj in enumerate((net.state_dict(), {"state_dict": net.state_dict(), "epoch": 3})):
        path = tmp_path / f"ref{i}.pt"
        torch.save(obj, path)
        theta = m.load_state_dict(path)
        assert theta.dtype == np.float64 and np.array_equal(theta, want)
        torch.testing.assert_close(m.forward(torch.as_tensor(theta), X), ref, rtol=1e-12, atol=1e-12)


def test_state_dict_buffers_are_set(tmp_path):
    net = bn_net(width=5).double().eval()
    with torch.no_grad():
        net[1].running_mean.copy_(torch.linspace(-1, 1, 5))
        net[1].running_var.copy_(torch.linspace(0.5, 2, 5))
    torch.save(net.state_dict(), tmp_path / "bn.pt")
    m = TorchModule.from_config({"module": "tests.contracts.test_model_module:bn_net", "kwargs": {"width": 5}}, 3, 1)
    theta = m.load_state_dict(tmp_path / "bn.pt")
    assert theta.shape == (m.n_params,) == (3 * 5 + 5 + 5 + 5 + 5 + 1,)  # weight/bias of BN in θ, stats not
    X = torch.as_tensor(_x(8, 3))
    with torch.no_grad():
        ref = net(X)
    torch.testing.assert_close(m.forward(torch.as_tensor(theta), X), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.module(theta)(X).detach(), ref, rtol=1e-12, atol=1e-12)


def _bad_state_dicts():
    from genni.models.examples import TinyConvNet

    good = TinyConvNet(**CONV_KW).state_dict()
    missing = {k: v for k, v in good.items() if k != "4.bias"}
    extra = {**good, "7.weight": torch.zeros(3)}
    shaped = {**good, "6.weight": torch.zeros(4, 5)}
    return [(missing, r"missing key\(s\) 4\.bias"), (extra, r"unexpected key\(s\) 7\.weight"),
            (shaped, r"wrong shape\(s\) 6\.weight \[4, 5\] where the module has \[3, 5\]"),
            (_Opaque(), r"cannot load reference state_dict from .*Weights only load failed "
                        r"\(it pickles tests\.contracts\.test_model_module\._Opaque, which weights_only=True refuses\)"),
            ([torch.zeros(2)], "does not hold a state_dict")]


@pytest.mark.parametrize("case", range(5))
def test_bad_state_dicts_name_the_problem_in_one_line(tmp_path, case):
    obj, match = _bad_state_dicts()[case]
    path = tmp_path / "bad.pt"
    torch.save(obj, path)
    with pytest.raises(GenniError, match=match) as e:
        _conv().load_state_dict(path)
    assert "\n" not in str(e.value)


def test_missing_state_dict_file(tmp_path):
    with pytest.raises(GenniError, match="reference file not found"):
        _conv().load_state_dict(tmp_path / "nope.pt")


# --- bad configs -----------------------------------------------------------------------------------------------------
BAD = [
    ({"module": "nosuchpkg.mod:X"}, 2, 1, None, r"cannot import nosuchpkg\.mod .*No module named 'nosuchpkg'"),
    ({"module": "genni.models.examples:Nope"}, 2, 1, None, "genni.models.examples has no attribute 'Nope'"),
    ({"module": "no_colon"}, 2, 1, None, "must be 'package.module:Factory' or 'file.py:factory', got 'no_colon'"),
    ({"module": None}, 2, 1, None, "needs module ="),
    ({"module": "tests.contracts.test_model_module:not_a_module"}, 2, 1, None, "returned a dict, not a torch.nn.Module"),
    ({"module": MLP, "kwargs": {"bogus": 1}}, 2, 1, None, r"raised TypeError: .*bogus"),
    ({"module": MLP, "kwargs": {"out": 3}}, 2, 1, None,
     r"maps a \[2, 2\] batch to outputs of shape \[2, 3\], but the model needs shape \[2, 1\]"),
    ({"module": CONV, "kwargs": CONV_KW, "input_shape": [1, 5, 5]}, 36, 3, None,
     r"input_shape = \[1, 5, 5\] holds 25 features but the data have 36"),
    ({"module": CONV, "kwargs": {**CONV_KW, "in_channels": 3}}, 36, 3, (1, 6, 6),
     r"fails on a \[2, 1, 6, 6\] batch: RuntimeError"),
    ({"module": MLP, "kwargs": [1, 2]}, 2, 1, None, "kwargs must be a table"),
    ({"module": "tests.contracts.test_model_module:half_declared"}, 2, 1, None,
     "declares genni_act without genni_sample_symmetries"),
]


@pytest.mark.parametrize("m, d_in, d_out, shape, match", BAD, ids=[b[-1][:30] for b in BAD])
def test_bad_configs_are_one_line_config_errors(m, d_in, d_out, shape, match):
    with pytest.raises(ConfigError, match=match) as e:
        TorchModule.from_config({"kwargs": None, "input_shape": None, **m}, d_in, d_out, shape)
    assert "\n" not in str(e.value)


def test_a_factory_in_the_current_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "my_research_net.py").write_text(
        "import torch\n\ndef make(width=3):\n    return torch.nn.Sequential(torch.nn.Linear(2, width), "
        "torch.nn.Tanh(), torch.nn.Linear(width, 1))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_research_net", raising=False)
    try:
        m = TorchModule.from_config({"module": "my_research_net:make", "kwargs": {"width": 4}}, 2, 1)
        assert m.n_params == 2 * 4 + 4 + 4 + 1
    finally:
        sys.modules.pop("my_research_net", None)


MODULE_CONTRACTS = [TestModuleTinyConvNet, TestModuleScaledMLP]
