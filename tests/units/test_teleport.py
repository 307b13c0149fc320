"""Teleports: minima known in closed form (a linear network's nuclear norm, a relu network's balanced
rescaling), a monotone objective along certified stored states, honest reasons when nothing moves,
bitwise determinism, the stage's rows as ordinary elements, and `genni teleport` on the command line."""

import json

import numpy as np
import pytest
import torch

import genni
from genni import objectives, store
from genni import teleport as T
from genni.cli import main
from genni.errors import ConfigError
from genni.models import MLP
from genni.models.convert import from_module
from genni.stages import calls

TOL = 1e-20  # the library tests' class tolerance: the retraction lands on the class to rounding


def _linear(d=4, h=3, k=3, seed=0, stretch=3.0):
    """A bias-free two-layer linear network x ↦ BAx (the ``module`` kind), unbalanced (A stretched), and probe
    inputs spanning R^d.  returns (net, model, θ*, X, M = BA)"""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, h, bias=False), torch.nn.Linear(h, k, bias=False)).double()
    with torch.no_grad():
        net[0].weight.mul_(stretch)
    X = np.random.default_rng(seed).normal(size=(16, d))
    model, theta = from_module(net, X)
    A, B = theta[: h * d].reshape(h, d), theta[h * d:].reshape(k, h)
    return net, model, theta, X, B @ A


def _relu_toy(d=3, h=4, seed=1):
    """f(x) = Σ_i a_i relu(b_i·x), bias-free, its units rescaled unevenly; generic probe inputs (the class is the
    rescaling orbit).  returns (model, θ*, X, Σ 2|a_i|‖b_i‖)"""
    model = MLP((d, h, 1), "relu", bias=False)
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=model.n_params)
    theta[: h * d] *= np.repeat(rng.uniform(0.3, 3.0, h), d)
    b, a = theta[: h * d].reshape(h, d), theta[h * d:]
    return model, theta, rng.normal(size=(64, d)), float((2 * np.abs(a) * np.linalg.norm(b, axis=1)).sum())


def test_linear_network_reaches_twice_the_nuclear_norm():
    """min ‖A‖² + ‖B‖² over {BA = M} is 2·Σσ_i(M) (AM–GM on the balanced factorisation A = Σ^½Vᵀ, B = UΣ^½)."""
    _, model, theta, X, M = _linear()
    target = 2 * np.linalg.svd(M, compute_uv=False).sum()
    out = T.teleport(model, theta, X, theta, objectives.make("parameter_norm", model), "min",
                     T.TeleportSettings(steps=300, thin=50), tol=TOL)
    assert out.values[0] > 1.5 * target  # far from the minimum at the start
    assert abs(out.values[-1] - target) <= 1e-6 * target, (out.values[-1], target, out.reason)
    for th in out.stored.theta:  # every stored state computes the same linear map
        A, B = th[:12].reshape(3, 4), th[12:].reshape(3, 3)
        assert np.abs(B @ A - M).max() <= 1e-8 * np.abs(M).max()


def test_relu_rescaling_reaches_the_balanced_norm_with_vertical_directions():
    model, theta, X, target = _relu_toy()
    out = T.teleport(model, theta, X, theta, objectives.make("parameter_norm", model), "min",
                     T.TeleportSettings(steps=300, thin=50, horizontal=False), tol=TOL)
    assert out.values[0] > 1.5 * target
    assert abs(out.values[-1] - target) <= 1e-6 * target, (out.values[-1], target, out.reason)


def test_nothing_to_move_along_is_a_reason():
    model, theta, X, _ = _relu_toy()
    J = objectives.make("parameter_norm", model)
    out = T.teleport(model, theta, X, theta, J, "min", T.TeleportSettings(steps=5), tol=TOL)
    assert out.stopped == "no tangent directions" and out.accepted == 0 and len(out.stored.theta) == 0
    assert "no horizontal tangent directions" in out.reason and "--vertical" in out.reason
    balanced = model.symmetry.balance(theta)  # already at the minimum of the norm over the orbit
    out = T.teleport(model, theta, X, balanced, J, "min", T.TeleportSettings(steps=5, horizontal=False), tol=TOL)
    assert out.stopped == "stationary" and out.accepted == 0, out.reason
    assert out.reason.startswith("stationary along the class") and out.gradient_ratio <= 1e-6


def test_the_same_inputs_give_bitwise_the_same_trajectory():
    model, theta, X, _ = _relu_toy()
    J = objectives.make("parameter_norm", model)
    settings = T.TeleportSettings(steps=15, thin=4, horizontal=False)
    a, b = (T.teleport(model, theta, X, theta, J, "min", settings, tol=TOL) for _ in range(2))
    torch.set_num_threads(2)
    try:
        c = T.teleport(model, theta, X, theta, J, "min", settings, tol=TOL)
    finally:
        torch.set_num_threads(1)
    for other in (b, c):
        assert a.stored.theta.tobytes() == other.stored.theta.tobytes()
        assert a.values.tobytes() == other.values.tobytes() and a.trace_value.tobytes() == other.trace_value.tobytes()
    assert list(a.stored.parent) == [-1, *range(len(a.stored.parent) - 1)]


def test_settings_refuse_nonsense():
    for bad in ({"steps": 0}, {"thin": 0}, {"step_size": -1.0}, {"improve_rtol": float("nan")}, {"lanczos": -1}):
        with pytest.raises(ValueError):
            T.TeleportSettings(**bad)


# --- the stage ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    """A run of the relu toy (an nn.Sequential: genni's own bias-free MLP, rebuilt from the file)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[0].weight.mul_(torch.tensor([[3.0], [0.4], [1.0], [2.0]]))
    X = np.random.default_rng(0).normal(size=(80, 3))
    path = tmp_path_factory.mktemp("teleport") / "relu.h5"
    genni.explore(net, X, n=1, path=path)
    return path


def test_stored_rows_are_on_the_class_certified_and_monotone(relu_run, tmp_path):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    r = calls.teleport(path, objective="parameter_norm", steps=40, thin=3, horizontal=False)
    run = store.load_run(path)
    model = genni.models.from_dict(run.architecture)
    eq, tol = run.equivalents, run.equivalents_attrs["tol"]
    rows = np.array(r["rows"]) - 1
    assert len(rows) >= 3 and r["accepted"] >= 3 and r["reason"]
    X, Y = torch.as_tensor(run.X), torch.as_tensor(run.Y)
    power = float((Y ** 2).sum(-1).mean())
    J = objectives.make("parameter_norm", model)
    thetas = np.concatenate([run.theta_ref[None], eq["theta"][rows]])
    values = np.array([float(J(th)) for th in thetas])
    assert np.allclose(values, r["values"], rtol=1e-12, atol=0)
    assert np.all(np.diff(values) < -1e-9 * np.abs(values[:-1]))  # strictly lower, beyond the stated tolerance
    t = torch.linspace(0, 1, 401, dtype=torch.float64)[:, None]
    for k, row in enumerate(rows):
        with torch.no_grad():
            L = float(((model.forward(torch.as_tensor(eq["theta"][row]), X) - Y) ** 2).sum(-1).mean())
            a, b = thetas[k], thetas[k + 1]  # the segment parent → row, densely
            seg = (((model.forward(torch.as_tensor(a)[None] + t * torch.as_tensor(b - a)[None], X) - Y) ** 2)
                   .sum(-1).mean(-1)).max() / power
        assert L <= tol and eq["converged"][row]
        assert eq["parent"][row] == (-1 if k == 0 else rows[k - 1]) and eq["chain"][row] == eq["chain"][rows[0]]
        assert eq["segment_max"][row] <= r["segment_epsilon"] and float(seg) <= r["segment_epsilon"] * (1 + 1e-6)
    g = run.teleports["teleport_000"]
    assert g["attrs"]["objective"] == "parameter_norm" and g["attrs"]["goal"] == "min" and not g["attrs"]["horizontal"]
    assert list(g["rows"]) == list(rows) and np.array_equal(g["values"], r["values"])
    assert len(g["canonical_values"]) == len(rows) + 1 and g["attrs"]["epsilon"] == r["segment_epsilon"]
    # modulo the rescalings nothing changed: the canonical (balanced) point stays put, up to the drift the class's
    # thickness allows (L ≤ tol = 1e-10 leaves θ room of order √tol off the orbit)
    assert np.ptp(g["canonical_values"]) <= 1e-4 * g["canonical_values"][0]
    assert np.ptp(g["canonical_values"]) <= 1e-2 * (r["values"][0] - r["values"][-1])
    assert r["best_value"] == r["values"][-1] and r["start_value"] == r["values"][0]


def test_stage_rows_are_ordinary_elements_and_runs_are_deterministic(relu_run, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for p in (a, b):
        p.write_bytes(relu_run.read_bytes())
        r = calls.teleport(p, objective="parameter_norm", steps=6, thin=2, horizontal=False)
    ea, eb = store.load_run(a).equivalents, store.load_run(b).equivalents
    assert ea["theta"].tobytes() == eb["theta"].tobytes()
    res = genni.identify(a)  # identify classifies them with every other element
    assert res["n_elements"] == len(ea["theta"])
    run = store.load_run(a)
    assert run.n_equivalents == 1 + len(r["rows"]) and (run.equivalents["verdict"] >= 0).all()
    assert "teleports" in genni.load_run(a).summary()
    assert genni.load_run(a).plot("teleport") is not None


def test_a_user_objective_and_the_notebook_call(relu_run, tmp_path):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    theta = store.load_run(path).theta_ref
    J = objectives.from_callable(lambda th: (th[:12] ** 2).sum(), theta, name="first_layer", formula="‖W₁‖²")
    r = genni.load_run(path).teleport(J, "max", steps=3, horizontal=False)
    assert r["objective"] == "first_layer" and r["formula"] == "‖W₁‖²" and r["accepted"] == 3
    assert r["values"][-1] > r["values"][0]
    assert "teleport teleport_000: max first_layer" in repr(r)
    g = store.load_run(path).teleports["teleport_000"]["attrs"]
    assert g["objective"] == "first_layer" and g["formula"] == "‖W₁‖²"


def test_no_tangent_directions_exits_0_with_the_reason(relu_run, tmp_path, capsys):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    capsys.readouterr()
    assert main(["teleport", str(path), "--objective", "parameter_norm", "--steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no horizontal tangent directions" in out
    assert store.load_run(path).n_equivalents == 1


def test_cli_round_trip(relu_run, tmp_path, capsys):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    capsys.readouterr()
    assert main(["teleport", str(path), "--objective", "path_norm", "--goal", "max", "--vertical", "--steps", "2",
                 "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["objective"] == "path_norm" and info["goal"] == "max" and not info["horizontal"]
    assert len(info["values"]) == len(info["rows"]) + 1
    assert main(["inspect", str(path), "--quiet"]) == 0
    assert "teleport teleport_000: max path_norm" in capsys.readouterr().out


def test_path_norm_of_a_module_is_refused(tmp_path):
    net, _, _, X, _ = _linear()
    path = tmp_path / "lin.h5"
    genni.explore(net, X, n=1, path=path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="path norm is defined for MLPs"):
        calls.teleport(path, objective="path_norm")
    assert path.read_bytes() == before


def test_from_theta_star_the_heldout_discrepancy_rises_by_a_second_order_step():
    """max D_heldout from θ*: g = 0 exactly there (θ* minimises D), so the first step follows the top
    eigenvector of the projected Hessian; few probe points leave the class room to change the function off them."""
    model = MLP((2, 6, 1), "tanh")
    rng = np.random.default_rng(3)
    theta = rng.normal(size=model.n_params)
    X, X_held = rng.normal(size=(6, 2)), rng.normal(size=(64, 2))
    D = objectives.make("relative_discrepancy", model, theta_ref=theta, X=X_held)
    assert float(torch.linalg.vector_norm(D.value_and_grad(theta)[1])) == 0.0
    out = T.teleport(model, theta, X, theta, D, "max", T.TeleportSettings(steps=4, improve_atol=1e-8), tol=TOL)
    assert out.escapes >= 1 and out.accepted == 4, out.reason
    assert out.values[0] == 0.0 and out.values[-1] > 1e-6 and np.all(np.diff(out.trace_value) > 1e-8)


def test_ctrl_c_keeps_the_stored_rows_and_records_them(relu_run, tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    real, calls_made = T.retract, []

    def interrupting(*args, **kwargs):  # Ctrl-C during the fifth step attempt
        calls_made.append(1)
        if len(calls_made) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "retract", interrupting)
    assert main(["teleport", str(path), "--objective", "parameter_norm", "--vertical", "--steps", "20", "--quiet"]) == 130
    run = store.load_run(path)
    g = run.teleports["teleport_000"]
    assert g["attrs"]["stopped"] == "interrupted" and "interrupted" in g["attrs"]["reason"]
    assert list(g["rows"]) == list(range(1, run.n_equivalents)) and len(g["values"]) == len(g["rows"]) + 1
    assert len(g["rows"]) >= 1 and (run.equivalents["chain"][1:] >= 0).all()


def test_what_the_objectives_are_evaluated_on(relu_run, tmp_path):
    path = tmp_path / "r.h5"
    path.write_bytes(relu_run.read_bytes())
    r = calls.teleport(path, objective="sharpness", steps=2, horizontal=False)  # explore's run has no labels
    assert "mean squared error to the reference's outputs" in r["evaluated_on"] and r["accepted"] == 2
    assert r["values"][-1] < r["values"][0]
    with pytest.raises(genni.GenniError, match="no probe labels"):
        calls.teleport(path, objective="hessian_trace", loss="labels")
    r = calls.teleport(path, objective="layer_distance", goal="max", metric="procrustes", steps=1, horizontal=False)
    assert "procrustes" in r["formula"] and r["evaluated_on"] == "probe inputs"
    r = calls.teleport(path, objective="relative_discrepancy", inputs="far", goal="max", steps=1)
    assert r["evaluated_on"] == "far inputs" and r["accepted"] == 0 and r["stopped"] == "no tangent directions"
    assert len(store.load_run(path).teleports) == 3
