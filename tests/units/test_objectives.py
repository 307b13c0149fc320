"""Objectives along the class: oracles (full Hessian spectrum and trace, numpy shape metrics), gradients
against central differences, invariance under sampled exact symmetries, a closed form for the balanced
point, and one-line errors for bad input."""

import math

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jvp

from genni import objectives as ob
from genni.errors import ConfigError, GenniError
from genni.geometry import distance
from genni.geometry.metrics import DIFFERENTIABLE, torch_distance
from genni.models import MLP, ResMLP
from genni.seeds import element_generator

N_IN = 24
X = torch.as_tensor(np.random.default_rng(0).normal(size=(N_IN, 2)))
X_OTHER = torch.as_tensor(np.random.default_rng(1).normal(size=(40, 2)) * 2.0)


def _theta(model, seed=0, scale=2.0):
    return model.init_theta(1, element_generator(seed, 0)[0], scale)[0]


def _targets(model, seed=2):
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(N_IN, model.out_dim)))


def _labels(model, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 if model.out_dim == 1 else model.out_dim, N_IN)


def _exact_hessian(model, loss_kw, theta):
    loss = ob.training_loss(model, X, **loss_kw)
    return torch.autograd.functional.hessian(loss, theta).numpy()  # reverse over reverse: not the hvp's path


def _loss_kw(model, kind):
    return {"Y": _targets(model)} if kind == "mse" else {"labels": _labels(model)}


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


# --- curvature against the full Hessian -----------------------------------------------------------------

CASES = [(MLP((2, 5, 1), "tanh"), "mse"), (MLP((2, 5, 1), "tanh"), "labels"),
         (MLP((2, 6, 2), "relu"), "mse"), (MLP((2, 6, 2), "relu"), "labels"),
         (MLP((2, 4, 3, 1), "relu"), "labels")]


@pytest.mark.parametrize("model,kind", CASES, ids=lambda c: getattr(c, "describe", lambda: c)())
def test_lanczos_sharpness_is_the_largest_hessian_eigenvalue(model, kind):
    """Lanczos with full reorthogonalisation, run to its default 80 ≥ P steps, is exact to rounding:
    |λ_Lanczos − λ_max| ≤ 1e-9 · max|λ| (P = 21 … 32)."""
    theta = _theta(model)
    eig = np.linalg.eigvalsh(_exact_hessian(model, _loss_kw(model, kind), theta))
    s = ob.sharpness(model, X, **_loss_kw(model, kind))
    assert model.n_params <= 60
    assert abs(float(s(theta)) - eig[-1]) <= 1e-9 * np.abs(eig).max()


def test_lanczos_converges_in_fewer_steps_than_p_and_is_deterministic():
    model = MLP((2, 6, 2), "relu")
    theta = _theta(model)
    loss = ob.training_loss(model, X, Y=_targets(model))
    eig = np.linalg.eigvalsh(_exact_hessian(model, {"Y": _targets(model)}, theta))
    top = ob.lanczos_top(lambda v: ob.hvp(loss, theta, v), model.n_params, iterations=80, seed=5, tol=1e-12)
    assert top.iterations < model.n_params  # stopped on its residual
    assert abs(top.value - eig[-1]) <= 1e-9 * abs(eig).max()
    H = torch.as_tensor(_exact_hessian(model, {"Y": _targets(model)}, theta))
    assert float((H @ top.vector - top.value * top.vector).norm()) <= 1e-6 * abs(eig).max()
    a = ob.sharpness(model, X, Y=_targets(model), seed=3)(theta)
    b = ob.sharpness(model, X, Y=_targets(model), seed=3)(theta)
    assert float(a) == float(b)


def test_hutchinson_trace_within_its_standard_deviation_and_exact_with_basis_probes():
    """The estimate with m = 500 fixed Rademacher probes lies within 4 standard deviations of tr H, with
    Var = (2/m)(‖H‖_F² − Σ H_jj²) from the exact Hessian; with the P unit vectors it is tr H to 1e-10."""
    model = MLP((2, 5, 1), "tanh")
    theta = _theta(model)
    H = _exact_hessian(model, {"Y": _targets(model)}, theta)
    m = 500
    sd = math.sqrt(2.0 / m * ((H * H).sum() - (np.diag(H) ** 2).sum()))
    est = float(ob.hessian_trace(model, X, Y=_targets(model), probes=m, seed=0)(theta))
    assert 0 < sd < 0.5 * abs(np.trace(H))
    assert abs(est - np.trace(H)) <= 4 * sd
    exact = float(ob.hessian_trace(model, X, Y=_targets(model), probes="basis")(theta))
    assert abs(exact - np.trace(H)) <= 1e-10 * np.abs(H).sum()
    assert float(ob.hessian_trace(model, X, Y=_targets(model), probes=m, seed=0)(theta)) == est  # deterministic


# --- gradients against central differences -------------------------------------------------------------

def _objectives():
    tanh, relu = MLP((2, 5, 1), "tanh"), MLP((2, 4, 3, 1), "relu")
    ref_t, ref_r = _theta(tanh, seed=7), _theta(relu, seed=7)
    out = [
        ("sharpness_tanh_mse", tanh, ob.sharpness(tanh, X, Y=_targets(tanh))),
        ("sharpness_relu_bce", relu, ob.sharpness(relu, X, labels=_labels(relu))),
        ("trace_tanh", tanh, ob.hessian_trace(tanh, X, Y=_targets(tanh), probes=8)),
        ("trace_relu_exact", relu, ob.hessian_trace(relu, X, labels=_labels(relu), probes="basis")),
        ("parameter_norm", relu, ob.parameter_norm(relu)),
        ("path_norm_1", relu, ob.path_norm(relu, p=1)),
        ("path_norm_2", relu, ob.path_norm(relu, p=2)),
        ("relative_discrepancy", tanh, ob.relative_discrepancy(tanh, ref_t, X_OTHER)),
        ("user", tanh, ob.from_callable(lambda th: torch.sin(th).sum() * th[0], ref_t)),
    ]
    out += [(f"layer_distance_{m}", tanh, ob.layer_distance(tanh, ref_t, X, metric=m)) for m in DIFFERENTIABLE]
    out += [("layer_distance_relu_zscore", relu, ob.layer_distance(relu, ref_r, X, metric="zscore_procrustes"))]
    return out


OBJECTIVES = _objectives()


@pytest.mark.parametrize("label,model,objective", OBJECTIVES, ids=[o[0] for o in OBJECTIVES])
def test_gradient_matches_central_differences(label, model, objective):
    """∇J·u against (J(θ + hu) − J(θ − hu)) / 2h, h = 1e-5, for 3 random unit directions u (float64):
    |difference| ≤ 1e-6 · max(1, ‖∇J‖).  For sharpness this checks Hellmann–Feynman against λ_max
    recomputed by Lanczos at θ ± hu."""
    theta = _theta(model)
    value, g = objective.value_and_grad(theta)
    assert torch.isfinite(g).all() and float(g.norm()) > 0
    assert float(value) == pytest.approx(float(objective(theta)), rel=1e-12, abs=1e-14)
    rng = np.random.default_rng(11)
    h = 1e-5
    with torch.no_grad():
        for _ in range(3):
            u = torch.as_tensor(rng.normal(size=model.n_params))
            u = u / u.norm()
            fd = (float(objective(theta + h * u)) - float(objective(theta - h * u))) / (2 * h)
            assert abs(fd - float(g @ u)) <= 1e-6 * max(1.0, float(g.norm())), (label, fd, float(g @ u))


@pytest.mark.parametrize("label", ["trace_tanh", "parameter_norm", "path_norm_2", "relative_discrepancy",
                                   "layer_distance_angular_cka", "user"])
def test_hessian_vector_products_of_objectives_match_differences_of_gradients(label):
    """torch.func: jvp of grad (an hvp of J) against central differences of the reverse-mode gradient,
    for the objectives whose second derivatives are exact (h = 1e-5, tolerance 1e-5 · max(1, ‖Hu‖))."""
    _, model, objective = next(o for o in OBJECTIVES if o[0] == label)
    theta = _theta(model)
    u = torch.as_tensor(np.random.default_rng(4).normal(size=model.n_params))
    Hu = jvp(grad(objective), (theta,), (u,))[1]
    h = 1e-5
    fd = (objective.value_and_grad(theta + h * u)[1] - objective.value_and_grad(theta - h * u)[1]) / (2 * h)
    assert float((Hu - fd).abs().max()) <= 1e-5 * max(1.0, float(Hu.abs().max()))


def test_torch_func_transforms_run_on_sharpness():
    """grad equals value_and_grad's gradient; jvp gives ∇λ·u; hessian runs (it holds v fixed)."""
    model = MLP((2, 5, 1), "tanh")
    theta = _theta(model)
    s = ob.sharpness(model, X, Y=_targets(model))
    _, g = s.value_and_grad(theta)
    assert torch.allclose(grad(s)(theta), g, rtol=1e-10, atol=1e-12)
    u = torch.ones_like(theta)
    assert float(jvp(s, (theta,), (u,))[1]) == pytest.approx(float(g @ u), rel=1e-10)
    assert hessian(s)(theta).shape == (model.n_params, model.n_params)
    assert torch.allclose(hessian(ob.parameter_norm(model))(theta), 2 * torch.eye(model.n_params, dtype=torch.float64))


def test_a_generic_kind_through_torch_func():
    """A residual MLP (forward by functional_call of its module): the exact Hessian trace equals the
    reverse-over-reverse Hessian's, and Lanczos its largest eigenvalue (P = 75, 1e-9 relative)."""
    model = ResMLP(d_in=2, width=3, hidden=4, blocks=2, d_out=1, activation="tanh")
    theta = _theta(model)
    H = _exact_hessian(model, {"Y": _targets(model)}, theta)
    eig = np.linalg.eigvalsh(H)
    tr = float(ob.hessian_trace(model, X, Y=_targets(model), probes="basis")(theta))
    assert tr == pytest.approx(np.trace(H), rel=1e-10)
    assert float(ob.sharpness(model, X, Y=_targets(model))(theta)) == pytest.approx(eig[-1], rel=1e-9)


# --- invariance under the exact symmetries --------------------------------------------------------------

def _copies(model, theta, n=4, seed=0):
    return [torch.as_tensor(model.symmetry.act(theta.numpy(), g))
            for g in model.symmetry.sample(n, np.random.default_rng(seed))]


def test_parameter_norm_moves_under_rescaling_but_not_at_the_canonical_point():
    model = MLP((2, 6, 3, 1), "relu")
    theta = _theta(model)
    pn = ob.parameter_norm(model)
    assert not pn.invariant
    base, canon = float(pn(theta)), float(ob.at_canonical(pn, model, theta))
    assert canon < base  # the balanced point is the orbit's minimum-norm point
    for copy in _copies(model, theta):
        assert abs(float(pn(copy)) - base) > 1e-3 * base
        assert float(ob.at_canonical(pn, model, copy)) == pytest.approx(canon, rel=1e-10)
        change = ob.split_change(pn, model, theta, copy)
        assert abs(change.along_class) <= 1e-9 * base and change.gauge == pytest.approx(change.total, rel=1e-6)


def test_sharpness_at_the_canonical_point_is_invariant_under_rescaling_and_permutation():
    """Dinh et al. 2017: rescaling changes a relu network's sharpness; at the balanced point of the orbit
    it agrees for every sampled copy to 1e-8 (relative)."""
    model = MLP((2, 6, 2), "relu")
    theta = _theta(model)
    s = ob.sharpness(model, X, Y=_targets(model))
    assert not s.invariant
    base, canon = float(s(theta)), float(ob.at_canonical(s, model, theta))
    moved = 0
    for copy in _copies(model, theta):
        moved += abs(float(s(copy)) - base) > 1e-3 * base
        assert float(ob.at_canonical(s, model, copy)) == pytest.approx(canon, rel=1e-8)
    assert moved


def test_permutations_and_sign_flips_leave_tanh_curvature_and_norm_unchanged():
    model = MLP((2, 5, 3, 1), "tanh")
    theta = _theta(model)
    objs = [ob.sharpness(model, X, Y=_targets(model)), ob.parameter_norm(model),
            ob.hessian_trace(model, X, Y=_targets(model), probes="basis")]
    assert all(o.invariant for o in objs)
    for o in objs:
        base = float(o(theta))
        for copy in _copies(model, theta, n=3):
            assert float(o(copy)) == pytest.approx(base, rel=1e-9)
    assert not ob.hessian_trace(model, X, Y=_targets(model), probes=8).invariant


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "gelu", "sigmoid"])
def test_path_norm_and_relative_discrepancy_under_the_exact_symmetries(activation):
    model = MLP((2, 5, 4, 2), activation)
    theta, ref = _theta(model), _theta(model, seed=9)
    rd = ob.relative_discrepancy(model, ref, X_OTHER)
    objs = [rd, ob.path_norm(model, p=1), ob.path_norm(model, p=2)]
    assert rd.invariant
    assert all(o.invariant for o in objs) == (activation != "sigmoid")
    for o in objs:
        base = float(o(theta))
        same = [float(o(c)) == pytest.approx(base, rel=1e-9) for c in _copies(model, theta)]
        assert all(same) == o.invariant  # sigmoid's flip moves the next bias, so the path norm changes


@pytest.mark.parametrize("activation,metric", [("relu", "zscore_procrustes"), ("tanh", "angular_cka"),
                                               ("tanh", "angular_procrustes"), ("tanh", "procrustes")])
def test_layer_distance_under_a_symmetry_blind_metric_is_invariant(activation, metric):
    model = MLP((2, 6, 4, 1), activation)
    theta, ref = _theta(model), _theta(model, seed=9)
    ld = ob.layer_distance(model, ref, X, metric=metric)
    assert ld.invariant
    base = float(ld(theta))
    assert base > 0.05
    for copy in _copies(model, theta):
        assert float(ld(copy)) == pytest.approx(base, rel=1e-9)


def test_layer_distance_under_a_scale_sensitive_metric_sees_rescaling():
    model = MLP((2, 6, 4, 1), "relu")
    theta, ref = _theta(model), _theta(model, seed=9)
    ld = ob.layer_distance(model, ref, X, metric="angular_cka")
    assert not ld.invariant
    base = float(ld(theta))
    assert any(abs(float(ld(c)) - base) > 1e-4 for c in _copies(model, theta))


# --- a closed form --------------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b", [(0.5, 4.0), (-3.0, 0.25), (2.0, 2.0)])
def test_balanced_point_of_a_one_unit_network_minimises_the_parameter_norm(a, b):
    """f(x) = a·relu(b·x), θ = (b, a), b > 0: the class {ab = c, b > 0} is a hyperbola branch, a² + b² ≥
    2|c| with equality exactly at |a| = |b| = √|c|, which the balanced (canonical) point attains."""
    model = MLP((1, 1, 1), "relu", bias=False)
    theta = torch.tensor([b, a], dtype=torch.float64)
    c = a * b
    canon = ob.canonical_point(model, theta)
    assert canon == pytest.approx([math.sqrt(abs(c)), math.copysign(math.sqrt(abs(c)), c)], rel=1e-12)
    pn = ob.parameter_norm(model)
    assert float(ob.at_canonical(pn, model, theta)) == pytest.approx(2 * abs(c), rel=1e-12)
    along = [float(pn(torch.tensor([s, c / s]))) for s in np.geomspace(1e-2, 1e2, 201)]
    assert min(along) >= 2 * abs(c) * (1 - 1e-12)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    assert torch.allclose(model.forward(torch.as_tensor(canon), x), model.forward(theta, x), atol=1e-12)


def test_canonical_point_with_a_reference_undoes_permutations():
    """A user objective that reads unit 0 only is not permutation-invariant; aligned to a reference first,
    its value at the canonical point is the same for every copy."""
    model = MLP((2, 5, 1), "relu")
    theta = _theta(model)
    first_row = ob.from_callable(lambda th: th[:2].pow(2).sum(), theta, name="unit0")
    base = float(ob.at_canonical(first_row, model, theta, reference=theta))
    for copy in _copies(model, theta):
        assert float(ob.at_canonical(first_row, model, copy, reference=theta)) == pytest.approx(base, rel=1e-9)


# --- the differentiable metrics agree with genni.geometry.distance --------------------------------------

@pytest.mark.parametrize("metric", DIFFERENTIABLE)
def test_torch_distance_equals_the_numpy_metric(metric):
    rng = np.random.default_rng(5)
    A = rng.normal(size=(30, 4))
    B = np.concatenate([rng.normal(size=(30, 6)), np.zeros((30, 1))], axis=1)  # other width, a dead unit
    for x, y in [(A, B), (A, A @ np.diag([1, -2, 3, 0.5])), (A, np.zeros((30, 3))), (A, A)]:
        got = float(torch_distance(torch.as_tensor(x), torch.as_tensor(y), metric))
        assert got == pytest.approx(distance(x, y, metric), rel=1e-10, abs=1e-12)


def test_layer_distance_at_the_reference_is_zero_with_a_finite_gradient():
    model = MLP((2, 6, 1), "tanh")
    theta = _theta(model)
    for metric in DIFFERENTIABLE:
        value, g = ob.layer_distance(model, theta, X, metric=metric).value_and_grad(theta)
        assert abs(float(value)) < 1e-7 and torch.isfinite(g).all()


# --- bad input: one line ---------------------------------------------------------------------------------

def test_make_builds_by_name_and_refuses_unknown_names_and_bindings():
    model = MLP((2, 5, 1), "tanh")
    theta = _theta(model)
    assert set(ob.NAMES) == {"sharpness", "hessian_trace", "parameter_norm", "path_norm", "layer_distance",
                             "relative_discrepancy"}
    assert float(ob.make("path_norm", model, p=2)(theta)) == float(ob.path_norm(model, p=2)(theta))
    with pytest.raises(ConfigError) as e:
        ob.make("flatness", model)
    assert "choose from" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.make("sharpness", model, X=X, Y=_targets(model), temperature=2)
    assert "temperature" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.make("sharpness", model, X=X)
    assert "Y" in _one_line(e) and "labels" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.make("layer_distance", model, X=X)
    assert "theta_ref" in _one_line(e)


@pytest.mark.parametrize("fn,words", [
    (lambda th: th * 2, "scalar"),
    (lambda th: th.sum() * float("nan"), "not finite"),
    (lambda th: float(th.detach().sum()), "float"),
    (lambda th: torch.tensor(float(th.detach().sum())), "not differentiable"),
    (lambda th: th.numpy().sum(), "failed"),
    (lambda th: th[10 ** 6], "failed"),
])
def test_user_callables_are_checked_once(fn, words):
    model = MLP((2, 5, 1), "tanh")
    with pytest.raises(GenniError) as e:
        ob.from_callable(fn, _theta(model), name="mine")
    assert words in _one_line(e) and "mine" in str(e.value)


def test_bad_metrics_layers_labels_and_kinds_are_one_line_errors():
    model = MLP((2, 5, 1), "tanh")
    theta = _theta(model)
    with pytest.raises(ConfigError) as e:
        ob.layer_distance(model, theta, X, metric="zscore_permutation")
    assert "not differentiable" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.layer_distance(model, theta, X, metric="cosine")
    assert "unknown metric" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.layer_distance(model, theta, X, layers=["h7"])
    assert "h7" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.sharpness(model, X, labels=np.full(N_IN, 2))
    assert "0..1" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        ob.hessian_trace(model, X, Y=_targets(model), probes=0)
    assert "probes" in _one_line(e)
    with pytest.raises(GenniError) as e:
        ob.relative_discrepancy(model, torch.zeros(model.n_params, dtype=torch.float64), X)
    assert "output power" in _one_line(e)
    with pytest.raises(GenniError) as e:
        ob.parameter_norm(model)(torch.zeros(2, model.n_params))
    assert "shape [P]" in _one_line(e)


def test_evaluate_gives_each_rows_value_raw_and_at_the_canonical_point():
    """evaluate over rows = the objective row by row; at the canonical points rescaled copies of θ give one
    value while their raw sharpness spreads (Dinh et al. 2017)."""
    model = MLP((2, 6, 2), "relu")
    theta = _theta(model)
    rows = torch.stack([theta, *_copies(model, theta)])
    s = ob.sharpness(model, X, Y=_targets(model))
    raw = ob.evaluate(s, rows)
    assert raw.shape == (len(rows),) and raw.dtype == np.float64
    np.testing.assert_allclose(raw, [float(s(r)) for r in rows], rtol=1e-12)
    canon = ob.evaluate(s, rows.numpy(), model=model, canonical=True)
    np.testing.assert_allclose(canon, float(ob.at_canonical(s, model, theta)), rtol=1e-8)
    assert raw.max() / raw.min() > 1.01
    assert ob.evaluate(s, theta).shape == (1,)
    with pytest.raises(GenniError, match="needs the model"):
        ob.evaluate(s, rows, canonical=True)
