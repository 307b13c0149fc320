"""The LM step's pieces against oracles, and how the search visits its rows: the lower triangle of JᵀJ
against the full product, one step against the textbook dense step with torch.func's Jacobian, a row
stepped alone against the same row stepped in a batch (bitwise), the search across thread counts
(bitwise), and the batched code path that runs off the CPU (on CUDA), forced on the CPU."""

import threading

import numpy as np
import pytest
import torch

import genni.search as S
from genni.models import MLP
from genni.search import batching, driver, steps
from genni.seeds import element_generator


@pytest.fixture(scope="module")
def problem():
    spec = MLP((2, 5, 3, 1), "tanh")
    rng = np.random.default_rng(0)
    X, Xh = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    theta = spec.init_theta(1, element_generator(2, 0)[0], 3.0)[0].numpy()
    return S.Problem.from_arrays(spec, theta, X, Xh)


def _batch(problem, k, workers=1, **kw):
    settings = S.SearchSettings(n=k, batch_size=k, **kw)
    runner = batching.RowRunner("cpu", workers=workers)
    b = driver._Batch(problem, settings, 0, None, runner)
    b.add(list(range(k)))
    return b, runner


def test_gram_lower_is_the_lower_triangle_of_jtj():
    J = torch.randn(3, 50, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    At = steps.gram_lower(J, panel=7)
    full = J.mT @ J
    lower = torch.tril(torch.ones(23, 23, dtype=torch.bool))
    A = At.mT
    torch.testing.assert_close(A[:, lower], full[:, lower], rtol=1e-13, atol=1e-12)
    beyond = torch.ones(23, 23, dtype=torch.bool).triu(7)  # outside the 7-column diagonal blocks
    assert bool((A[:, beyond] == 0).all())


def test_gram_lower_of_one_element_is_the_symmetric_jtj():
    """One element on the CPU takes BLAS syrk: the whole symmetric JᵀJ, to rounding (1e-13 relative)."""
    J = torch.randn(1, 50, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = steps.gram_lower(J)
    full = (J.mT @ J)
    torch.testing.assert_close(A, full, rtol=1e-13, atol=1e-12)
    assert torch.equal(A, A.mT)


def _oracle_step(problem, theta, mu, geodesic):
    """The textbook LM step at θ [P]: J from torch.func.jacrev of the torch module, a dense solve."""
    from torch.func import functional_call, jacrev

    net = problem.model.module()
    named = [(k, p.shape) for k, p in net.named_parameters()]

    def r(th):
        parts, o = {}, 0
        for name, sh in named:
            c = int(np.prod(sh))
            parts[name] = th[o:o + c].reshape(sh)
            o += c
        return (functional_call(net, parts, (problem.X,)) - problem.Y).reshape(-1)

    J = jacrev(r)(theta)
    A = J.T @ J
    M = A + mu * torch.diagonal(A).mean() * torch.eye(len(theta), dtype=torch.float64)
    delta = -torch.linalg.solve(M, J.T @ r(theta))
    if not geodesic:
        return delta, True
    h = 0.1
    r_vv = (2 / h) * ((r(theta + h * delta) - r(theta)) / h - J @ delta)
    acc = -torch.linalg.solve(M, J.T @ r_vv)
    return delta + acc / 2, bool(2 * acc.norm() / delta.norm() <= geodesic)


@pytest.mark.parametrize("mu0", [1e-4, 1.0])
@pytest.mark.parametrize("geodesic", [0.0, 0.75, 1.5])
def test_step_is_the_textbook_dense_step(problem, geodesic, mu0):
    """μ = 10⁻⁴ is below :func:`steps.single_precision`'s bound at P = 37 (float64: the step to 10⁻⁹
    relative), μ = 1 above it (float32 JᵀJ and factor: the step within the bound on κ·ε₃₂); starts θ* + 5 %
    noise, where steps at either μ are taken."""
    b, runner = _batch(problem, 4, mu0=mu0, init="perturb", init_scale=0.05)
    P = problem.model.n_params
    assert bool(steps.single_precision(b.st["mu"], P).all()) == (mu0 == 1.0)
    rtol = steps.SINGLE_STEP_ERROR if mu0 == 1.0 else 1e-9
    theta0, mu_0, loss0 = b.st["theta"].clone(), b.st["mu"].clone(), b.st["loss"].clone()
    accepted = steps.lm_step(problem, b.st, "identity", geodesic, runner)
    n = problem.X.shape[0]
    for i in range(4):
        step, allowed = _oracle_step(problem, theta0[i], float(mu_0[i]), geodesic)
        trial = theta0[i] + step
        falls = bool((problem.model.forward(trial, problem.X) - problem.Y).pow(2).sum() / n < loss0[i])
        assert bool(accepted[i]) == (allowed and falls)
        if accepted[i]:
            taken = b.st["theta"][i] - theta0[i]
            assert float((taken - step).norm() / step.norm()) <= rtol
            assert float(b.st["mu"][i]) < float(mu_0[i]) * 1.0000001
        else:
            assert torch.equal(b.st["theta"][i], theta0[i]) and float(b.st["mu"][i]) == 2 * float(mu_0[i])
    assert bool(accepted.any())


def test_a_row_steps_alone_as_in_its_batch(problem):
    """Bitwise: a row's prepare and steps give the same bits in a batch of 5 on two worker threads as
    alone on one thread."""
    start = {k: v.clone() for k, v in _batch(problem, 5)[0].st.items()}

    def advance(st, runner):
        try:
            for _ in range(3):
                acc = steps.lm_step(problem, st, "identity", 0.75, runner)
                steps.lm_prepare(problem, st, acc.nonzero().squeeze(1), "identity", runner)
        finally:
            runner.close()
        return st

    together = advance({k: v.clone() for k, v in start.items()}, batching.RowRunner("cpu", workers=2))
    for i in (0, 3):
        alone = advance({k: v[i:i + 1].clone() for k, v in start.items()}, batching.RowRunner("cpu", workers=1))
        for k in ("theta", "loss", "mu", "nu", "g", "A"):
            assert torch.equal(alone[k][0], together[k][i]), k


@pytest.mark.parametrize("mu0", [1e-4, 1.0])
def test_one_row_step_agrees_with_the_batch_step(problem, mu0):
    """lm_trial_one (the CPU's row-by-row step) and lm_trial on the same rows: the same decision, and the
    same step, loss and predicted reduction to the solve's rounding, 10·κ·ε with κ ≤ 1 + P/μ the bound on
    cond(JᵀJ + μD) and ε the factorisation's precision (float64 at μ = 10⁻⁴, float32 at μ = 1)."""
    b, runner = _batch(problem, 4, mu0=mu0, init="perturb", init_scale=0.05)
    runner.close()
    trial, new_loss, predicted, ok = steps.lm_trial(problem, b.st, torch.arange(4), "identity", 0.75)
    eps = torch.finfo(torch.float32 if mu0 == 1.0 else torch.float64).eps
    tol = 10 * (1 + problem.model.n_params / mu0) * eps
    for i in range(4):
        t1, l1, p1, ok1 = steps.lm_trial_one(problem, b.st, i, 0.75)
        assert ok1 == bool(ok[i])
        assert float((t1 - trial[i]).norm() / (trial[i] - b.st["theta"][i]).norm()) <= tol
        assert l1 == pytest.approx(float(new_loss[i]), rel=tol) and p1 == pytest.approx(float(predicted[i]), rel=tol)


def test_lm_accept_one_is_lm_accept_bitwise(problem):
    """The scalar acceptance rule (Python floats) against the tensor rule, on accepted, rejected, refused and
    non-finite trials."""
    b, runner = _batch(problem, 4, mu0=1e-2, init="perturb", init_scale=0.05)
    runner.close()
    st = b.st
    g = torch.Generator().manual_seed(5)
    trial = st["theta"] + 1e-3 * torch.randn(st["theta"].shape, generator=g, dtype=torch.float64)
    new_loss = st["loss"] * torch.tensor([0.5, 2.0, 0.25, float("nan")], dtype=torch.float64)
    predicted = st["loss"] * torch.tensor([0.7, 0.1, 0.3, 0.2], dtype=torch.float64)
    ok = torch.tensor([True, True, False, True])
    batch = {k: v.clone() for k, v in st.items()}
    acc = steps.lm_accept(batch, torch.arange(4), trial, new_loss, predicted, ok)
    for i in range(4):
        one = {k: v.clone() for k, v in st.items()}
        a = steps.lm_accept_one(one, i, trial[i], float(new_loss[i]), float(predicted[i]), bool(ok[i]))
        assert a == bool(acc[i])
        for k in ("theta", "loss", "mu", "nu"):
            assert torch.equal(one[k][i], batch[k][i]), k
    assert acc.tolist() == [True, False, False, False]


def test_search_bits_do_not_depend_on_how_a_rows_steps_are_grouped(problem, monkeypatch):
    settings = S.SearchSettings(n=4, batch_size=4, max_steps=60, restarts=1)
    runs = []
    for k in (1, 3, 8):
        monkeypatch.setattr(driver, "ROUND_STEPS", k)
        runs.append(S.run_search(problem, settings, seed=0))
    for other in runs[1:]:
        assert np.array_equal(runs[0].theta, other.theta) and np.array_equal(runs[0].steps, other.steps)


def test_relu_revival_after_preparing_equals_revival_before(monkeypatch):
    """Row by row, a row's dead units are looked for after J is built (J's zero bias columns rule them out
    cheaply) and a revived row is prepared again; the batch path revives first, then prepares: the same
    elements, bitwise, on a relu net whose random starts lose units (revivals happen)."""
    spec = MLP((2, 6, 6, 1), "relu")
    X, Xh = np.random.default_rng(0).normal(size=(48, 2)), np.random.default_rng(1).normal(size=(48, 2))
    prob = S.Problem.from_arrays(spec, spec.init_theta(1, element_generator(3, 0)[0], 2.0)[0].numpy(), X, Xh)
    settings = S.SearchSettings(n=6, batch_size=6, max_steps=60, restarts=1)
    revived = []
    revive = driver._Batch._revive
    monkeypatch.setattr(driver._Batch, "_revive", lambda self, rows: revived.append(revive(self, rows)) or revived[-1])
    rowwise = S.run_search(prob, settings, seed=0)
    assert sum(revived) > 0
    monkeypatch.setattr(driver._Batch, "rowwise_lm", property(lambda self: False))
    batch = S.run_search(prob, settings, seed=0)
    assert np.array_equal(rowwise.theta, batch.theta) and np.array_equal(rowwise.steps, batch.steps)


def test_may_have_dead_units_is_false_only_without_dead_units():
    spec = MLP((2, 3, 1), "relu")
    X = torch.tensor(np.random.default_rng(0).normal(size=(20, 2)))
    theta = spec.init_theta(1, element_generator(0, 0)[0])[0]
    theta[spec.n_params - 4:spec.n_params - 1] = 1.0  # outgoing weights nonzero
    theta[:6], theta[6:9] = torch.tensor([1.0, 0.0, 0.0, 1.0, -1.0, 0.5], dtype=torch.float64), 0.1
    J = spec.jacobian(theta[None], X)[1][0].reshape(-1, spec.n_params)
    assert not bool(spec.dead_mask(theta[None], X).any()) and not spec.may_have_dead_units(J)
    theta[8] = -1e3  # unit 3 below its kink on every input: dead
    J = spec.jacobian(theta[None], X)[1][0].reshape(-1, spec.n_params)
    assert bool(spec.dead_mask(theta[None], X)[0, 2]) and spec.may_have_dead_units(J)


def test_search_is_bitwise_the_same_on_one_or_two_threads(problem):
    settings = S.SearchSettings(n=4, batch_size=4, max_steps=40, restarts=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = S.run_search(problem, settings, seed=0)
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [2]  # the worker threads' setting does not leak into threads started afterwards
        torch.set_num_threads(1)
        one = S.run_search(problem, settings, seed=0)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one.theta, two.theta) and np.array_equal(one.steps, two.steps)


def test_rows_of_a_model_that_is_not_thread_safe_run_in_the_calling_thread():
    seen = []
    runner = batching.RowRunner("cpu", workers=2, thread_safe=False)
    runner(lambda idx: seen.append((idx, threading.get_ident())), torch.arange(3))
    runner.close()
    assert seen == [(slice(i, i + 1), threading.get_ident()) for i in range(3)]
    threads = set()
    runner = batching.RowRunner("cpu", workers=2)
    runner(lambda idx: threads.add(threading.get_ident()), torch.arange(6))
    runner.close()
    assert threading.get_ident() not in threads


def test_batched_path_matches_rowwise(monkeypatch):
    spec = MLP((2, 4, 1), "tanh")
    rng = np.random.default_rng(0)
    X, Xh = rng.normal(size=(64, 2)), rng.normal(size=(64, 2))
    theta = spec.init_theta(1, element_generator(2, 0)[0], 3.0)[0].numpy()
    prob = S.Problem.from_arrays(spec, theta, X, Xh)
    settings = S.SearchSettings(n=6, batch_size=6)
    rowwise = S.run_search(prob, settings, seed=0)
    monkeypatch.setattr(batching, "batched", lambda t: True)
    batched = S.run_search(prob, settings, seed=0)
    assert rowwise.converged.sum() >= 3
    np.testing.assert_array_equal(batched.converged, rowwise.converged)
    assert np.all(batched.discrepancy[batched.converged] <= settings.tol)
    # same basins: converged elements land on the same points up to the tolerance's scale
    np.testing.assert_allclose(batched.theta[rowwise.converged], rowwise.theta[rowwise.converged], atol=1e-3)
