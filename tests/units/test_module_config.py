"""The `[model]` forms of kind = "module" and what the config infers from a model: a factory given as
`file.py:factory` or `package.module:Factory`, looked up from the config file's folder (`module_dir`);
outputs read from the module (or, for cnn, from a reference state_dict); a flat input's image shape read
from a first Conv2d."""

from __future__ import annotations

import sys
import uuid

import pytest
import torch

from genni import config, models
from genni.errors import ConfigError
from genni.models.cnn import CNN

FACTORY = """import torch

def make(d_in=3, width=5, out=2):
    return torch.nn.Sequential(torch.nn.Linear(d_in, width), torch.nn.Tanh(), torch.nn.Linear(width, out))

NOT_CALLABLE = 3
"""


def _normal(model: dict, dim: int = 3) -> str:
    """A config's TOML text: N(0, I_dim) inputs, a random teacher, the given [model] table."""
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in model.items())
    return (f'[data]\ndataset = "normal"\ndim = {dim}\nn_probe = 16\nn_heldout = 16\n[model]\n{lines}\n'
            '[reference]\nsource = "random"\n')


@pytest.fixture
def folder(tmp_path):
    """A config folder holding a factory file (unique per test: its import name derives from its path)."""
    d = tmp_path / "configs"
    d.mkdir()
    (d / "mynet.py").write_text(FACTORY)
    return d


def test_a_file_factory_is_found_from_the_config_folder_not_the_current_directory(folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (folder / "c.toml").write_text(_normal({"kind": "module", "module": "mynet.py:make"}))
    cfg = config.load(folder / "c.toml")
    assert cfg["model"]["module_dir"] == str(folder)
    assert cfg["model"]["outputs"] == 2  # the module's own width, not the data set's default 1
    model = config.model_of(cfg)
    arch = model.to_dict()
    assert arch["module_file"] == str(folder / "mynet.py")
    rebuilt = models.from_dict(arch)  # what later stages do, from the stored architecture
    theta = rebuilt.init_theta(1, torch.Generator().manual_seed(0))[0]
    x = torch.randn(4, 3, dtype=torch.float64)
    assert rebuilt.forward(theta, x).shape == (4, 2)
    assert rebuilt.n_params == 3 * 5 + 5 + 5 * 2 + 2


def test_an_absolute_file_path_and_a_relative_module_dir(folder, tmp_path):
    cfg = config.resolve({"data": {"dataset": "normal", "dim": 3}, "reference": {"source": "random"},
                          "model": {"kind": "module", "module": f"{folder / 'mynet.py'}:make"}}, root=tmp_path)
    assert config.model_of(cfg).out_dim == 2
    cfg = config.resolve({"data": {"dataset": "normal", "dim": 3}, "reference": {"source": "random"},
                          "model": {"kind": "module", "module": "mynet.py:make", "module_dir": "configs"}},
                         root=tmp_path)
    assert cfg["model"]["module_dir"] == str(folder)


def test_a_package_in_the_config_folder_is_found_without_pythonpath(tmp_path, monkeypatch):
    pkg = f"researchnets_{uuid.uuid4().hex[:8]}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "small.py").write_text(FACTORY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        cfg = config.resolve({"data": {"dataset": "normal", "dim": 3}, "reference": {"source": "random"},
                              "model": {"kind": "module", "module": f"{pkg}.small:make", "kwargs": {"out": 3}}},
                             root=tmp_path)
        assert cfg["model"]["outputs"] == 3 and cfg["model"]["module_dir"] == str(tmp_path)
        # another folder holding a package of the same name, in the same process: refused, not mixed up
        other = tmp_path / "other"
        (other / pkg).mkdir(parents=True)
        (other / pkg / "__init__.py").write_text("")
        with pytest.raises(ConfigError, match=f"{pkg} is already imported from .*not from {other}"):
            config.resolve({"data": {"dataset": "normal", "dim": 3}, "reference": {"source": "random"},
                            "model": {"kind": "module", "module": f"{pkg}.small:make"}}, root=other)
    finally:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("module, needle", [
    ("missing.py:make", "file missing.py not found (looked for {folder}/missing.py)"),
    ("mynet.py:absent", "{folder}/mynet.py has no attribute 'absent'"),
    ("mynet.py:NOT_CALLABLE", "NOT_CALLABLE in {folder}/mynet.py is not callable (int)"),
    ("nosuchpackage_xyz.nets:make", "cannot import nosuchpackage_xyz.nets (ModuleNotFoundError: No module named "
                                    "'nosuchpackage_xyz'; looked in the Python path and {folder})"),
    ("genni.models.examples:Absent", "genni.models.examples has no attribute 'Absent' (imported from "),
    ("nets/mynet:make", "a file path must name a .py file"),
])
def test_a_factory_that_cannot_be_found_is_one_line_naming_the_path_and_where(folder, module, needle):
    (folder / "c.toml").write_text(_normal({"kind": "module", "module": module}))
    with pytest.raises(ConfigError) as e:
        config.load(folder / "c.toml")
    msg = str(e.value)
    assert "\n" not in msg and f"module = {module!r}" in msg
    assert needle.format(folder=folder) in msg


def test_module_dir_that_is_not_a_folder(folder):
    (folder / "c.toml").write_text(_normal({"kind": "module", "module": "mynet.py:make", "module_dir": "nope"}))
    with pytest.raises(ConfigError, match=r"module_dir = 'nope' is not a folder \(looked for .*configs/nope\)"):
        config.load(folder / "c.toml")


def test_module_dir_is_not_a_key_of_other_kinds():
    with pytest.raises(ConfigError, match="module_dir is not a key of kind = 'mlp'"):
        config.resolve({"model": {"module_dir": "."}})


def test_a_run_resumes_from_a_copy_of_its_config_in_another_folder(folder, tmp_path):
    """module_dir says where to look, not what the run means: it may differ on resume."""
    (folder / "c.toml").write_text(_normal({"kind": "module", "module": "mynet.py:make"}))
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "mynet.py").write_text(FACTORY)
    (copy / "c.toml").write_text((folder / "c.toml").read_text())
    a, b = config.load(folder / "c.toml"), config.load(copy / "c.toml")
    assert a["model"]["module_dir"] != b["model"]["module_dir"]
    assert config.differences(a, b) == []


# --- outputs and input shapes the model says ---------------------------------------------------------------------
def test_given_outputs_win_and_must_agree_with_the_module(folder):
    (folder / "c.toml").write_text(_normal({"kind": "module", "module": "mynet.py:make", "outputs": 3}))
    with pytest.raises(ConfigError, match=r"outputs of shape \[2, 2\], but the model needs shape \[2, 3\]"):
        config.load(folder / "c.toml")


def test_inferred_outputs_still_have_to_fit_the_labels_when_training(folder):
    (folder / "c.toml").write_text(
        '[data]\ndataset = "iris"\nn_probe = 40\nn_heldout = 40\n[model]\nkind = "module"\n'
        'module = "mynet.py:make"\nkwargs = { d_in = 4, out = 5 }\n')
    with pytest.raises(ConfigError, match="the model has 5 outputs but dataset iris has 3 classes"):
        config.load(folder / "c.toml")


def test_flat_rows_get_the_image_shape_of_a_first_conv_layer():
    kw = {"in_channels": 2, "side": 4, "channels": 3, "hidden": 5, "out": 4}
    cfg = config.resolve({"data": {"dataset": "normal", "dim": 2 * 4 * 4}, "reference": {"source": "random"},
                          "model": {"kind": "module", "module": "genni.models.examples:TinyConvNet", "kwargs": kw}})
    assert cfg["model"]["input_shape"] == [2, 4, 4] and cfg["model"]["outputs"] == 4
    model = config.model_of(cfg)
    theta = model.init_theta(1, torch.Generator().manual_seed(1))[0]
    x = torch.randn(3, 32, dtype=torch.float64)
    net = model.module(theta)
    assert torch.equal(model.forward(theta, x), net(x.reshape(3, 2, 4, 4)))  # the reshape is the image's


def test_flat_rows_no_first_conv_layer_tells_is_one_line_asking_for_input_shape():
    kw = {"in_channels": 3, "side": 4, "channels": 2, "hidden": 5, "out": 1}
    with pytest.raises(ConfigError, match=r"fails on a \[2, 50\] batch: .*set \[model\] input_shape") as e:
        config.resolve({"data": {"dataset": "normal", "dim": 50}, "reference": {"source": "random"},  # 50 ≠ 3·s²
                        "model": {"kind": "module", "module": "genni.models.examples:TinyConvNet", "kwargs": kw}})
    assert "\n" not in str(e.value)


def test_cnn_outputs_come_from_a_reference_state_dict_else_the_data_set(tmp_path):
    teacher = CNN(input_shape=(1, 4, 4), channels=(2,), kernel_size=3, padding=1, d_out=3)
    torch.save(teacher.module(teacher.init_theta(1, torch.Generator().manual_seed(0))[0]).state_dict(),
               tmp_path / "ref.pt")
    base = {"data": {"dataset": "normal", "shape": [1, 4, 4]},
            "model": {"kind": "cnn", "channels": [2], "kernel_size": 3, "padding": 1}}
    from_file = config.resolve({**base, "reference": {"source": "file", "path": str(tmp_path / "ref.pt")}})
    assert from_file["model"]["outputs"] == 3 and config.model_of(from_file).n_params == teacher.n_params
    assert config.resolve({**base, "reference": {"source": "random"}})["model"]["outputs"] == 1
    given = config.resolve({**base, "model": {**base["model"], "outputs": 2},
                            "reference": {"source": "file", "path": str(tmp_path / "ref.pt")}})
    assert given["model"]["outputs"] == 2  # given outputs win (find then names the misshapen keys)
