"""Walks along the class: geometry of a step, stored elements against an independent forward pass,
certificates recomputed densely, a class known in closed form, resuming, `genni walk` and `genni connect`."""

import numpy as np
import pytest
import torch

import genni
from genni import config, identifiability, stages, store
from genni import walk as W
from genni.cli import main
from genni.discrepancy import segment_max
from genni.errors import GenniError
from genni.models import MLP, GroupElement
from genni.seeds import element_generator

WALK_CONFIG = """
name = "walk_small"
seed = 0
[data]
dataset = "moons"
n_probe = 96
n_heldout = 96
n_train = 300
[model]
widths = [2, 5, 4, 1]
activation = "relu"
[reference]
source = "train"
epochs = 300
[search]
init = "walk"
n = 6
chains = 2
thin = 4
"""


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("walk")
    cfgp = d / "walk.toml"
    cfgp.write_text(WALK_CONFIG)
    path = d / "walk.h5"
    genni.find(config.load(cfgp), path)
    return cfgp, path


def _dense_max(spec, a, b, X, Y, power, points: int = 2001) -> float:
    """max over 2,001 equally spaced t of L(a + t(b − a)) / P*, evaluated directly (the oracle)."""
    t = torch.linspace(0, 1, points, dtype=torch.float64)[:, None]
    path = torch.as_tensor(a)[None] + t * torch.as_tensor(b - a)[None]
    with torch.no_grad():
        return float((((spec.forward(path, X) - Y) ** 2).sum(-1).mean(-1)).max()) / power


def test_horizontal_basis_is_vertical_and_orthogonal_to_the_orbits():
    spec = MLP((2, 5, 4, 1), "relu")
    theta = spec.init_theta(1, element_generator(0, 0)[0], 1.0)[0].numpy()
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(40, 2)))
    J = spec.jacobian(torch.as_tensor(theta)[None], X)[1][0].reshape(-1, spec.n_params).numpy()
    T = spec.symmetry.tangents(theta)
    assert T.shape == (spec.n_params, 9)
    np.testing.assert_allclose(J @ T, 0.0, atol=1e-12)  # rescalings do not change f: T is vertical
    H = W.class_tangents(J, T)
    np.testing.assert_allclose(H.T @ H, np.eye(H.shape[1]), atol=1e-12)
    assert np.abs(H.T @ T).max() < 1e-10  # horizontal: orthogonal to every orbit tangent
    assert np.linalg.norm(J @ H) <= 1e-6 * np.linalg.norm(J, 2) * np.sqrt(H.shape[1])
    null = W.class_tangents(J, T, horizontal=False)
    assert null.shape[1] == H.shape[1] + 9  # the orbit tangents are exactly what was removed


def test_walk_elements_against_an_independent_forward_pass(walk_run):
    _, path = walk_run
    run = store.load_run(path)
    spec = MLP.from_dict(run.architecture)
    eq = run.equivalents
    tol = run.equivalents_attrs["tol"]
    assert run.n_equivalents == 6 and set(eq["chain"]) == {0, 1}
    X = torch.as_tensor(run.X)
    with torch.no_grad():
        ref = spec.module(torch.as_tensor(run.theta_ref))(X)
        for k, theta in enumerate(eq["theta"]):
            out = spec.module(torch.as_tensor(theta))(X)  # plain torch.nn.Sequential
            L = float(((out - ref) ** 2).sum(-1).mean())
            assert L <= tol
            assert L == pytest.approx(eq["discrepancy"][k], rel=1e-6, abs=1e-18)
    # parents: −1 (θ*) for each chain's first row, else an earlier row of the same chain
    for k in range(run.n_equivalents):
        p = eq["parent"][k]
        assert p == -1 or (p < k and eq["chain"][p] == eq["chain"][k] and eq["step"][p] < eq["step"][k])
    # the walk moved: away from θ* by more than the search's perturbation would
    d = np.linalg.norm(eq["theta"] - run.theta_ref, axis=1) / np.linalg.norm(run.theta_ref)
    assert d.max() > 0.02


def test_segment_certificates_recomputed_densely(walk_run):
    _, path = walk_run
    run = store.load_run(path)
    spec = MLP.from_dict(run.architecture)
    eq = run.equivalents
    eps = run.equivalents_attrs["segment_epsilon"]
    X, Y = torch.as_tensor(run.X), torch.as_tensor(run.Y)
    power = float((run.Y ** 2).sum(-1).mean())
    for k in range(run.n_equivalents):
        a = run.theta_ref if eq["parent"][k] < 0 else eq["theta"][eq["parent"][k]]
        b = eq["theta"][k]
        dense = _dense_max(spec, a, b, X, Y, power)
        assert eq["segment_max"][k] <= eps
        assert dense <= eps
        # the 9-point Hermite certificate sees what 2,001 direct evaluations see
        assert dense <= eq["segment_max"][k] * 1.05 + 1e-14
        assert segment_max(spec, a, b, X, Y, power) == pytest.approx(eq["segment_max"][k], rel=1e-9)


def test_segment_max_finds_a_bump_between_samples():
    """A straight segment between two copies (a rescaling, exactly equivalent endpoints) bulges off the
    class in the middle; the certificate must see the bulge, not the endpoints' zeros."""
    spec = MLP((2, 3, 1), "tanh")
    theta = spec.init_theta(1, element_generator(1, 0)[0], 2.0)[0].numpy()
    g = GroupElement((np.array([1, 0, 2]),), (np.array([-1.0, 1.0, 1.0]),))
    other = spec.symmetry.act(theta, g)
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 2)))
    with torch.no_grad():
        Y = spec.forward(torch.as_tensor(theta), X)
    power = float((Y ** 2).sum(-1).mean())
    cert = segment_max(spec, theta, other, X, Y, power)
    dense = _dense_max(spec, theta, other, X, Y, power)
    assert dense > 1e-3
    assert cert == pytest.approx(dense, rel=0.02)


def test_walk_stays_on_a_class_known_in_closed_form():
    """GENNI's toy f(x) = a₁·relu(w₁x) + a₂·relu(w₂x), w₁, w₂ < 0, zero biases, on inputs on both sides of
    0: near θ* its class is {b₁ = b₂ = 0, c = 0, w₁, w₂ < 0, a₁|w₁| + a₂|w₂| = s}."""
    spec = MLP((1, 2, 1), "relu")
    theta = np.array([-1.0, -0.5, 0.0, 0.0, 0.8, 1.2, 0.0])  # W1 [2,1], b1 [2], W2 [1,2], b2 [1]
    s = 0.8 * 1.0 + 1.2 * 0.5
    X = np.linspace(-2, 2, 81)[:, None]
    settings = W.WalkSettings(chains=3, steps=24, thin=6, step_size=0.02, max_step=0.1)
    logs = []
    rows = list(W.walk(spec, theta, X, [W.Start(c, theta, steps=24) for c in range(3)], settings, tol=1e-20, seed=0,
                       first_row=0, logs=logs))
    thetas = np.concatenate([r.theta for r in rows])
    assert len(thetas) >= 9 and sum(g.accepted for g in logs) >= 60
    w, b, a, c = thetas[:, 0:2], thetas[:, 2:4], thetas[:, 4:6], thetas[:, 6]
    np.testing.assert_allclose(b, 0.0, atol=1e-9)
    np.testing.assert_allclose(c, 0.0, atol=1e-9)
    assert np.all(w < 0)
    np.testing.assert_allclose((a * np.abs(w)).sum(1), s, rtol=1e-9)
    # and it went somewhere along the class: the split of s between the two units changed
    assert np.ptp(a[:, 0] * np.abs(w[:, 0])) > 0.05


def test_walk_resumes_where_it_stopped(walk_run, tmp_path):
    cfgp, path = walk_run
    cfg = config.load(cfgp)
    partial = tmp_path / "partial.h5"

    class Stop(Exception):
        pass

    seen = []

    def interrupt(found):
        seen.append(len(found.index))
        if sum(seen) >= 2:
            raise Stop

    with pytest.raises(Stop):
        genni.find(cfg, partial, callback=interrupt)
    assert 2 <= store.load_run(partial).n_equivalents < 6
    genni.find(cfg, partial)
    a, b = store.load_run(partial).equivalents, store.load_run(path).equivalents
    assert len(a["index"]) == 6
    for c in (0, 1):
        ra, rb = np.flatnonzero(a["chain"] == c), np.flatnonzero(b["chain"] == c)
        np.testing.assert_array_equal(a["step"][ra], b["step"][rb])
        np.testing.assert_allclose(a["theta"][ra], b["theta"][rb], rtol=0, atol=1e-12)


def test_walk_and_connect_commands(walk_run, tmp_path, capsys):
    _, path = walk_run
    p = tmp_path / "w.h5"
    p.write_bytes(path.read_bytes())
    assert main(["walk", str(p), "--from", "2", "--chains", "1", "--steps", "6", "--thin", "3", "--quiet"]) == 0
    run = store.load_run(p)
    new = np.flatnonzero(run.equivalents["chain"] == 2)
    assert len(new) >= 2 and run.equivalents["parent"][new[0]] == 1  # starts at element 2 = row 1
    assert main(["connect", str(p), "0", str(new[-1] + 1), "--quiet"]) == 0
    assert "connected 0 →" in capsys.readouterr().out
    g = store.read_group(p, f"paths_between/0_{new[-1] + 1}")
    assert bool(g[1]["certified"]) and np.all(g[0]["segment_max"] <= g[1]["epsilon"])
    np.testing.assert_array_equal(g[0]["theta"][0], run.theta_ref)
    np.testing.assert_array_equal(g[0]["theta"][-1], run.equivalents["theta"][new[-1]])
    assert main(["walk", str(p), "--from", "99", "--quiet"]) == 2
    assert main(["connect", str(p), "0", "0", "--quiet"]) == 2


def test_connect_reports_an_unreachable_target_without_raising(tmp_path):
    """Two isolated points of a class: a tanh teacher and its sign-flipped copy, aligned back, are the same
    point; a non-equivalent target is unreachable and the answer says so."""
    spec = MLP((2, 3, 1), "tanh")
    theta = spec.init_theta(1, element_generator(3, 0)[0], 2.0)[0].numpy()
    X = np.random.default_rng(0).normal(size=(64, 2))
    far = theta + 0.5
    conn = W.connect(spec, theta, X, theta, far, W.WalkSettings(), tol=1e-12, max_steps=5)
    assert not conn.certified and conn.reason
    np.testing.assert_array_equal(conn.vertices[0], theta)


def test_walk_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="thin"):
        W.WalkSettings(thin=0)
    with pytest.raises(ValueError, match="segment_epsilon"):
        W.WalkSettings(segment_epsilon=float("nan"))
    with pytest.raises(GenniError):
        stages.walk.walk_settings({"chains": 0})


def test_identify_distance_of_walk_elements(walk_run, tmp_path):
    """identify reports walk elements' distance to θ* modulo the exact symmetries and their far discrepancy."""
    _, path = walk_run
    p = tmp_path / "w.h5"
    p.write_bytes(path.read_bytes())
    genni.identify(p)
    eq = store.load_run(p).equivalents
    assert np.all(np.isfinite(eq["distance_to_reference"])) and np.all(eq["relative_discrepancy_far"] >= 0)
    assert set(eq["verdict"]) <= set(range(len(identifiability.VERDICTS)))


def test_connect_command_reports_failure_with_exit_0(tmp_path, capsys):
    """Two searched (not walked) relu elements, a budget of one step: no certified path, said plainly, exit 0."""
    cfgp = tmp_path / "c.toml"
    cfgp.write_text(WALK_CONFIG.replace('init = "walk"', 'init = "perturb"\ninit_scale = 0.05').replace("n = 6", "n = 2"))
    out = tmp_path / "c.h5"
    assert main(["find", str(cfgp), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["connect", str(out), "1", "2", "--max-steps", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    g = store.read_group(out, "paths_between/1_2")
    if not bool(g[1]["certified"]):
        assert text.startswith("no certified path 1 → 2:") and g[1]["reason"]
    else:  # the straight segment itself was already inside the class
        assert np.all(g[0]["segment_max"] <= g[1]["epsilon"])


# --- the step against the dense reference step (benchmarks/reference_walk.py: full SVDs, the dense
# pre-activation Jacobian, numpy's lstsq) where their definitions agree: a spectrum with a clear gap


def test_frame_spans_the_class_tangents_of_the_svd():
    spec = MLP((2, 5, 4, 1), "relu")
    theta = spec.init_theta(1, element_generator(0, 0)[0], 1.0)[0].numpy()
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(20, 2)))  # rank 20 < P − 9: a large null space
    J = spec.jacobian(torch.as_tensor(theta)[None], X)[1][0]
    frame = W.normal_frame(spec, theta, J, W.WalkSettings())
    H = W.class_tangents(J.reshape(-1, spec.n_params).numpy(), spec.symmetry.tangents(theta))
    assert frame.tangent_dim == H.shape[1] == spec.n_params - 20 - 9
    V = torch.randn(spec.n_params, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(frame.tangent(V).numpy(), H @ (H.T @ V.numpy()), atol=1e-8)
    np.testing.assert_allclose((frame.R.T @ frame.Q).numpy(), 0.0, atol=1e-12)


@pytest.mark.parametrize("length", [0.5, 1.0])
def test_face_direction_from_products_equals_the_dense_one(length):
    """Forward-mode G·u and the active rows only give the direction the dense pre-activation Jacobian and SVDs
    give, and it carries no probe point across a kink to first order (a random null direction does)."""
    from benchmarks import reference_walk as RW

    spec = MLP((2, 8, 8, 1), "relu")
    theta = spec.init_theta(1, element_generator(1, 0)[0], 1.0)[0].numpy()
    X = torch.as_tensor(np.random.default_rng(1).normal(size=(60, 2)))
    J = spec.jacobian(torch.as_tensor(theta)[None], X)[1][0]
    settings = W.WalkSettings()
    frame = W.normal_frame(spec, theta, J, settings)
    H = RW.class_basis(spec, theta, J, settings)
    z, G = spec.preactivation_jacobian(theta, X)
    v = np.random.default_rng(5).standard_normal(spec.n_params)
    u, active = W.face_direction(frame, torch.as_tensor(v), spec.kinks(torch.as_tensor(theta), X), length)
    u_ref, active_ref = RW.face_direction(H, v, z, G, length)
    free = H @ (H.T @ v)
    free /= np.linalg.norm(free)
    assert active == active_ref > 0
    assert float(u.numpy() @ u_ref) > 1 - 1e-9
    assert ((z * (z + length * G @ free)) < 0).sum() > 0
    assert ((z * (z + length * G @ u.numpy())) < 0).sum() == 0
    np.testing.assert_allclose(np.linalg.norm(H.T @ u.numpy()), 1.0, atol=1e-9)  # u lies in H


def test_retraction_lands_where_the_reference_lstsq_lands():
    """The Gauss–Newton corrections on J's row space are numpy's truncated lstsq on the full J."""
    from benchmarks import reference_walk as RW

    spec = MLP((2, 8, 1), "tanh")
    theta = spec.init_theta(1, element_generator(2, 0)[0], 2.0)[0].numpy()
    X = torch.as_tensor(np.random.default_rng(2).normal(size=(12, 2)))
    Y = spec.forward(torch.as_tensor(theta), X)
    J = spec.jacobian(torch.as_tensor(theta)[None], X)[1][0]
    frame = W.normal_frame(spec, theta, J, W.WalkSettings())
    u = frame.tangent(torch.randn(spec.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    step = theta + 0.05 * np.linalg.norm(theta) * (u / u.norm()).numpy()
    ours, L, ok = W.retract(spec, step, X, Y, 1e-20)
    ref, L_ref, ok_ref = RW.retract(spec, step, X, Y, 1e-20)
    assert ok and ok_ref and L <= 1e-20
    assert np.linalg.norm(ours - ref) < 1e-10 * np.linalg.norm(ours - step)


def test_a_chain_does_not_depend_on_its_batch_mates_or_the_callers_threads():
    spec = MLP((2, 5, 4, 1), "relu")
    theta = spec.init_theta(1, element_generator(0, 0)[0], 1.0)[0].numpy()
    X = np.random.default_rng(0).normal(size=(60, 2))
    settings = W.WalkSettings(chains=3, steps=8, thin=4)

    def chain1(chains, threads):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            rows = list(W.walk(spec, theta, X, [W.Start(c, theta, steps=8) for c in chains], settings, tol=1e-10,
                               seed=0, first_row=0))
        finally:
            torch.set_num_threads(before)
        th = np.concatenate([r.theta for r in rows])
        return th[np.concatenate([r.chain for r in rows]) == 1]

    alone = chain1([1], 1)
    assert len(alone) == 2
    np.testing.assert_array_equal(chain1([0, 1, 2], 2), alone)
