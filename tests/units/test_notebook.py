"""The notebook API: ``genni.explore`` (a torch module and its inputs from memory), the ``Run`` handle and
``genni.load_run``.

Oracles: the module itself (the converted MLP computes what the Sequential computes, in float64; the stored
θ* and outputs are the module's), the run file (a reloaded run holds the same elements, verdicts and figure
data), a fresh interpreter (a module held in memory cannot be rebuilt from the file; passed again, it can).
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.datasets import make_moons

import genni
from genni import identifiability, models, store
from genni.cli import main
from genni.errors import ConfigError, GenniError
from genni.models.convert import AGREEMENT, from_module, mlp_of
from genni.models.examples import TinyConvNet

ROOT = Path(__file__).resolve().parents[2]


class SkipNet(torch.nn.Module):
    """No Sequential: a tanh hidden layer plus a linear skip from the input to the output."""

    def __init__(self, d_in: int = 2, hidden: int = 4):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, hidden)
        self.fc2 = torch.nn.Linear(hidden, 1)
        self.skip = torch.nn.Linear(d_in, 1, bias=False)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))) + self.skip(x)


class SkipNetRelu(SkipNet):
    """SkipNet's parameters (names and shapes) with another function: relu instead of tanh."""

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) + self.skip(x)


def _moons_net(seed: int = 0):
    """A 2-8-8-1 relu Sequential trained by Adam on make_moons (float32, as a notebook would), and its data."""
    X, y = make_moons(160, noise=0.1, random_state=seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(Xt)[:, 0], yt).backward()
        opt.step()
    return net, X, y


def _figure_arrays(fig: Figure) -> list[np.ndarray]:
    """What a figure plots: every line's data, every collection's offsets, every image's array."""
    out = []
    for ax in fig.axes:
        out += [np.asarray(line.get_xydata()) for line in ax.get_lines()]
        out += [np.asarray(c.get_offsets()) for c in ax.collections]
        out += [np.asarray(im.get_array()) for im in ax.get_images()]
    return out


# --- a Sequential of Linear layers is the MLP kind --------------------------------------------------------

@pytest.mark.parametrize("act,bias", [(torch.nn.ReLU(), True), (torch.nn.LeakyReLU(0.2), True), (torch.nn.Tanh(), False),
                                      (torch.nn.Sigmoid(), True), (torch.nn.GELU(), True)])
def test_sequential_is_the_mlp_with_the_same_outputs_and_parameters(act, bias):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5, bias=bias), act, torch.nn.Linear(5, 4, bias=bias), act,
                              torch.nn.Linear(4, 2, bias=bias))
    X = np.random.default_rng(0).normal(size=(40, 3)) * 2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model, theta = from_module(net, X)
    assert isinstance(model, models.MLP)
    assert model.widths == (3, 5, 4, 2) and model.bias is bias
    assert model.activation == {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Tanh": "tanh", "Sigmoid": "sigmoid",
                                "GELU": "gelu"}[type(act).__name__]
    if isinstance(act, torch.nn.LeakyReLU):
        assert model.negative_slope == 0.2
    ref = copy.deepcopy(net).double()
    with torch.no_grad():
        want = ref(torch.as_tensor(X)).numpy()
        got = model.forward(torch.as_tensor(theta), torch.as_tensor(X)).numpy()
    assert np.max(np.abs(got - want)) <= 1e-12 * max(1.0, np.abs(want).max())
    # θ is parameters_to_vector of the module, and the MLP's own module holds exactly the module's tensors
    rebuilt = model.module(torch.as_tensor(theta)).state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(rebuilt[k], v)
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in net.state_dict().items())  # untouched


@pytest.mark.parametrize("layers", [
    lambda: [torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1), torch.nn.Sigmoid()],  # activated output
    lambda: [torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)],
    lambda: [torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1, bias=False)],  # mixed bias
    lambda: [torch.nn.Linear(2, 3), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(3, 1)],
    lambda: [torch.nn.Linear(2, 3), torch.nn.Dropout(0.1), torch.nn.Linear(3, 1)],
])
def test_other_sequentials_are_modules_held_in_memory(layers):
    torch.manual_seed(0)
    net = torch.nn.Sequential(*layers())
    X = np.random.default_rng(1).normal(size=(16, 2))
    assert mlp_of(net) is None
    model, theta = from_module(net, X)
    assert model.kind == "module" and model.memory is not None
    with torch.no_grad():
        want = copy.deepcopy(net).double().eval()(torch.as_tensor(X)).numpy()
        got = model.forward(torch.as_tensor(theta), torch.as_tensor(X)).numpy()
    assert np.max(np.abs(got - want)) <= AGREEMENT * max(1.0, np.abs(want).max())


# --- explore, the Run, reload ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    """A trained moons network explored (4 elements), identified, walked, projected and plotted."""
    net, X, _ = _moons_net()
    path = tmp_path_factory.mktemp("nb") / "mine.h5"
    run = genni.explore(net, X[:120], n=4, path=path, heldout=torch.tensor(X[120:]), seed=3, n_far=256)
    walked = run.walk(chains=2, steps=2)
    ident = run.identify()
    proj = run.project(resolution=9, paths=1)
    figs = run.plot()
    return {"net": net, "X": X, "path": path, "run": run, "walked": walked, "ident": ident, "proj": proj, "figs": figs}


def test_explore_stores_the_module_as_the_native_mlp(moons):
    run, net, X = moons["run"], moons["net"], moons["X"]
    data = run.data
    assert data.architecture["kind"] == "mlp" and data.architecture["widths"] == [2, 8, 8, 1]
    assert data.architecture.get("memory") is None and not run.in_memory
    assert data.config["data"]["dataset"] == "given" and data.config["reference"]["source"] == "given"
    ref = copy.deepcopy(net).double()
    assert np.array_equal(data.theta_ref, torch.nn.utils.parameters_to_vector(ref.parameters()).detach().numpy())
    assert np.array_equal(data.X, X[:120]) and np.array_equal(data.X_heldout, X[120:])
    with torch.no_grad():
        Y = ref(torch.as_tensor(X[:120])).numpy()
    assert np.max(np.abs(data.Y - Y)) <= 1e-12 * max(1.0, np.abs(Y).max())
    assert data.labels is None and data.reference.get("accuracy") is None


def test_stages_return_their_results_and_read_well(moons):
    run, walked, ident, proj = moons["run"], moons["walked"], moons["ident"], moons["proj"]
    data = run.data
    assert walked.rows_added >= 2 and len(walked.chains) == 2
    assert ident.n_elements == data.n_equivalents == 4 + walked.rows_added
    tol = data.equivalents_attrs["tol"]
    conv = data.equivalents["converged"]
    assert conv.all() and (data.equivalents["discrepancy"] <= tol).all()
    assert proj.dims == 2 and proj.resolution == 9
    for result in (walked, ident, proj):
        text = repr(result)
        assert text.splitlines()[0] == type(result).__name__ and "array(" not in text and len(text) < 5000
        assert result._repr_html_().startswith(f"<b>{type(result).__name__}</b>")
    assert "verdicts" in repr(ident) and "rank(J)" in repr(ident)


def test_elements_table_one_row_per_element_with_verdict_names(moons):
    run = moons["run"]
    data = run.data
    df = run.elements
    n = data.n_equivalents
    assert len(df) == n and list(df.index) == list(range(1, n + 1)) and df.index.name == "element"
    assert "theta" not in df and "aligned_theta" not in df and "certified_witness" not in df
    names = [identifiability.VERDICTS[c] for c in data.equivalents["verdict"]]
    assert list(df["verdict"].astype(str)) == names
    assert set(df["status"].astype(str)) <= set(data.equivalents_attrs["status_codes"])
    np.testing.assert_array_equal(df["discrepancy"].to_numpy(), data.equivalents["discrepancy"])
    np.testing.assert_array_equal(df["chain"].to_numpy(), data.equivalents["chain"])
    assert (df["chain"] >= 0).sum() == moons["walked"].rows_added
    assert all(np.ndim(df[c].iloc[0]) == 0 for c in df.columns)


def test_run_repr_says_what_is_stored(moons):
    text = repr(moons["run"])
    n = moons["run"].data.n_equivalents
    assert "relu MLP [2, 8, 8, 1]" in text and f"elements: {n} ({n} converged" in text
    assert "verdicts:" in text and "walks: 2 chains" in text and "projection pca" in text
    assert "<pre" in moons["run"]._repr_html_()


def test_plot_returns_figures_and_saves_only_when_asked(moons, tmp_path):
    run, figs = moons["run"], moons["figs"]
    assert {"discrepancy", "probe", "identifiability", "projections", "walk"} <= set(figs)
    assert all(isinstance(f, Figure) for f in figs.values())
    assert not list(moons["path"].parent.glob("*.png"))
    one = run.plot("identifiability", save=tmp_path / "figs", formats=("png", "svg"))
    assert isinstance(one, Figure)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["identifiability.png", "identifiability.svg"]
    with pytest.raises(ConfigError, match="unknown figure 'pie'"):
        run.plot("pie")
    with pytest.raises(GenniError, match=r"run\.ricci\(\)"):
        run.plot("ricci")


def test_load_run_gives_the_same_elements_verdicts_and_figures(moons):
    run = moons["run"]
    again = genni.load_run(moons["path"])
    assert isinstance(again, genni.Run) and again.path == run.path
    a, b = run.data, again.data
    assert np.array_equal(a.equivalents["theta"], b.equivalents["theta"])
    assert np.array_equal(a.equivalents["verdict"], b.equivalents["verdict"])
    assert again.elements.equals(run.elements)
    figs = again.plot()
    assert list(figs) == list(moons["figs"])
    for name, fig in figs.items():
        old, new = _figure_arrays(moons["figs"][name]), _figure_arrays(fig)
        assert len(old) == len(new) and len(new) > 0, name
        for x, y in zip(old, new):
            np.testing.assert_array_equal(x, y)
    assert isinstance(store.load_run(moons["path"]), store.RunData)  # the file's contents, as before


def test_explore_resumes_its_own_run_and_refuses_another(moons, tmp_path):
    net, X = moons["net"], moons["X"]
    path = tmp_path / "r.h5"
    genni.explore(net, X[:64], n=2, path=path, heldout=X[64:96])
    run = genni.explore(net, X[:64], n=3, path=path, heldout=X[64:96])
    assert run.data.n_equivalents == 3
    before = path.read_bytes()
    with pytest.raises(GenniError, match="probe inputs") as err:
        genni.explore(net, X[1:65], n=3, path=path, heldout=X[64:96])
    assert "\n" not in str(err.value) and path.read_bytes() == before


def test_heldout_defaults_to_a_seeded_quarter_of_x(moons, tmp_path):
    net, X = moons["net"], moons["X"][:40]
    run = genni.explore(net, X, n=1, path=tmp_path / "split.h5", max_steps=5)
    data = run.data
    assert (len(data.X), len(data.X_heldout)) == (30, 10)
    rows = {tuple(r) for r in X}
    assert {tuple(r) for r in data.X} | {tuple(r) for r in data.X_heldout} == rows
    assert not {tuple(r) for r in data.X} & {tuple(r) for r in data.X_heldout}


# --- a module held in memory ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def skip(tmp_path_factory):
    torch.manual_seed(4)
    net = SkipNet()
    X = np.random.default_rng(5).normal(size=(48, 2))
    path = tmp_path_factory.mktemp("skip") / "skip.h5"
    run = genni.explore(net, X, n=3, path=path, heldout=X[:16] + 0.1, tol=1e-12)
    return {"net": net, "X": X, "path": path, "run": run}


def test_custom_module_runs_in_memory_and_the_file_says_so(skip, capsys):
    run = skip["run"]
    arch = run.data.architecture
    assert arch["kind"] == "module" and run.in_memory
    assert arch["module"].endswith(":SkipNet") and arch["about"]["class"] == arch["module"]
    assert arch["about"]["parameters"] == [[k, list(p.shape)] for k, p in skip["net"].named_parameters()]
    assert "SkipNet" in arch["about"]["repr"]
    with h5py.File(skip["path"], "r") as f:
        assert "load_run(path, model=net)" in f["reference"].attrs["in_memory"]
    ident = run.identify()
    assert ident.n_elements == 3 and ident.rank <= run.data.theta_ref.size
    assert main(["inspect", str(skip["path"])]) == 0
    assert "held in memory only" in capsys.readouterr().out


def test_a_module_held_in_memory_is_refused_or_adopted_in_a_fresh_interpreter(skip, moons):
    script = textwrap.dedent(f"""
        import torch, genni
        from genni.errors import ConfigError, GenniError
        from tests.units.test_notebook import SkipNet, SkipNetRelu
        path = {str(skip["path"])!r}
        run = genni.load_run(path)
        print("READ", run.data.n_equivalents, len(run.elements))
        try:
            run.identify()
            print("NO ERROR")
        except GenniError as exc:
            print("REFUSED", exc)
        for other in (torch.nn.Linear(2, 1), SkipNetRelu()):
            try:
                genni.load_run(path, model=other)
                print("NO ERROR")
            except ConfigError as exc:
                print("MISFIT", exc)
        run = genni.load_run(path, model=SkipNet())
        print("ADOPTED", run.identify().n_elements)
        print("MLP", genni.load_run({str(moons["path"])!r}).identify().n_elements)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "READ 3 3"
    assert lines[1].startswith("REFUSED ") and "genni.load_run(" in lines[1] and "model=net" in lines[1]
    assert lines[2].startswith("MISFIT ") and "does not fit" in lines[2]
    assert lines[3].startswith("MISFIT ") and "other outputs" in lines[3]
    assert lines[4] == "ADOPTED 3"
    assert lines[5] == f"MLP {moons['run'].data.n_equivalents}"


def test_load_run_refuses_a_model_for_a_rebuildable_run(moons):
    with pytest.raises(ConfigError, match="rebuilds its model"):
        genni.load_run(moons["path"], model=moons["net"])


def test_image_shaped_inputs_reach_a_module_as_images(tmp_path):
    torch.manual_seed(0)
    net = TinyConvNet(in_channels=1, side=4, channels=2, hidden=3, out=2)
    X = np.random.default_rng(0).normal(size=(24, 1, 4, 4))
    run = genni.explore(net, X, n=1, path=tmp_path / "img.h5", max_steps=5)
    data = run.data
    assert data.X.shape == (18, 16) and data.architecture["input_shape"] == [1, 4, 4]
    assert data.config["data"]["shape"] == [1, 4, 4]
    with torch.no_grad():
        Y = copy.deepcopy(net).double()(torch.as_tensor(data.X.reshape(-1, 1, 4, 4))).numpy()
    assert np.max(np.abs(data.Y - Y)) <= 1e-12 * max(1.0, np.abs(Y).max())


# --- bad input: one line, naming the problem ------------------------------------------------------------

def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_inputs_are_one_line_config_errors(moons, tmp_path):
    net, X = moons["net"], moons["X"][:40]
    nan = X.copy()
    nan[7, 1] = np.nan
    cases = [
        (dict(X=nan), "X holds NaN or infinite values (1 row(s), the first row 7)"),
        (dict(X=np.ones((40, 3))), "X has 3 features per row but the model's first Linear takes 2"),
        (dict(X=X, heldout=np.ones((5, 3))), "heldout rows have shape [3]"),
        (dict(X=X[:, 0]), "shape [n, d_in]"),
        (dict(X=X, tolerance=1e-3), "unknown keyword 'tolerance' (did you mean 'tol'?"),
        (dict(X=X, epochs=3), "epochs is a [reference] key"),
        (dict(X=X, widths=[2, 3, 1]), "widths is a [model] key"),
        (dict(X=X, n_probe=10), "n_probe is a [data] key that the inputs decide"),
        (dict(X=X, tol=1e-9, search={"tol": 1e-8}), "[search] tol is given twice"),
        (dict(X=X, search={"speed": 3}), "unknown key 'speed' in search="),
        (dict(X=X, tol=-1.0), "[search] tol must be positive"),
        (dict(X=X, rank_growth_max=64, rank_inputs="data"), "rank_growth_max"),
        (dict(X=X, heldout=1.5), "strictly between 0 and 1"),
    ]
    for kw, needle in cases:
        with pytest.raises(ConfigError) as err:
            genni.explore(net, n=1, path=tmp_path / "never.h5", **kw)
        assert needle in _one_line(err), (kw.keys(), str(err.value))
    with pytest.raises(ConfigError) as err:
        genni.explore(SkipNet(d_in=2), np.ones((8, 5)), n=1, path=tmp_path / "never.h5")
    assert "the model fails on rows of X (a batch of shape [2, 5])" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        genni.explore(models.MLP((2, 3, 1)), X, n=1, path=tmp_path / "never.h5")
    assert "theta=" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        genni.explore("a model", X, n=1, path=tmp_path / "never.h5")
    assert "torch.nn.Module" in _one_line(err)
    assert not (tmp_path / "never.h5").exists()


def test_a_genni_model_with_theta_is_explored(tmp_path):
    model = models.MLP((2, 4, 1), activation="tanh")
    theta = model.init_theta(1, torch.Generator().manual_seed(0))[0]
    X = np.random.default_rng(2).normal(size=(32, 2))
    run = genni.explore(model, X, n=2, path=tmp_path / "m.h5", theta=theta, seed=1, n_far=64)
    data = run.data
    assert np.array_equal(data.theta_ref, theta.numpy()) and len(data.X_far) == 64
    assert data.config["model"] == {"kind": "mlp", "widths": [2, 4, 1], "activation": "tanh",
                                    "negative_slope": 0.01, "bias": True}
    assert data.config["seed"] == 1 and data.equivalents["converged"].all()
