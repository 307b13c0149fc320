"""The architecture interface's contract (genni.models.base.Model), inherited by every kind.

Each registered kind gets a subclass of :class:`ModelContract` that says how to build a small instance;
the contract checks the closed forms (where a kind has them) against the torch module and torch.func,
the JSON round trip, and (through :class:`~tests.contracts.test_symmetry_contract.SymmetryContract`) the symmetry
group.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genni import models
from genni.models.base import Model
from tests.contracts.test_symmetry_contract import SymmetryContract


class ModelContract(SymmetryContract):
    """Subclasses set ``make()`` -> (model, X [n, ...]); the rest, the symmetry contract too, is inherited."""

    N = 3
    rtol = 1e-10

    def make(self):
        raise NotImplementedError

    @pytest.fixture
    def case(self):
        model, X = self.make()
        g = torch.Generator().manual_seed(0)
        theta = torch.randn(self.N, model.n_params, generator=g, dtype=torch.float64) * 0.7
        return model, torch.as_tensor(X, dtype=torch.float64), theta, g

    def test_json_round_trip_and_registry(self, case):
        model, *_ = case
        d = model.to_dict()
        assert d["kind"] in models.REGISTRY
        assert models.from_dict(d) == model

    def test_n_params_is_the_modules(self, case):
        model, *_ = case
        assert model.n_params == sum(p.numel() for p in model.module().parameters())

    def test_forward_matches_the_torch_module(self, case):
        model, X, theta, _ = case
        out = model.forward(theta, X)
        assert out.shape == (self.N, X.shape[0], model.out_dim)
        for i in range(self.N):
            with torch.no_grad():
                ref = model.module(theta[i])(X)
            torch.testing.assert_close(out[i], ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))

    def test_products_match_torch_func(self, case):
        model, X, theta, g = case
        v = torch.randn(theta.shape, generator=g, dtype=torch.float64)
        u = torch.randn(self.N, X.shape[0], model.out_dim, generator=g, dtype=torch.float64)
        for mine, ref in ((model.jvp(theta, X, v), Model.jvp(model, theta, X, v)),
                          (model.vjp(theta, X, u), Model.vjp(model, theta, X, u))):
            torch.testing.assert_close(mine, ref, rtol=self.rtol, atol=self.rtol * float(ref.abs().max()))

    def test_forward_jvp_is_the_forward_pass_and_the_product(self, case):
        model, X, theta, g = case
        v = torch.randn(theta.shape, generator=g, dtype=torch.float64)
        f, jv = model.forward_jvp(theta, X, v)
        ref = model.forward(theta, X)
        torch.testing.assert_close(f, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
        ref = model.jvp(theta, X, v)
        torch.testing.assert_close(jv, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))

    def test_reduced_jacobian_keeps_the_gram_matrix_and_the_normal_equations(self, case):
        """C, b with CᵀC = JᵀJ and Cᵀb = Jᵀr (J = U C, b = Uᵀr for orthonormal U): the default (C = J) or a kind's
        reduction (the relu MLP's linear regions)."""
        model, X, theta, g = case
        J = model.jacobian(theta[:1], X)[1][0].reshape(-1, model.n_params)
        r = torch.randn(X.shape[0], model.out_dim, generator=g, dtype=torch.float64)
        C, b = model.reduced_jacobian(theta[0], X, r)
        scale = float((J.T @ J).abs().max())
        torch.testing.assert_close(C.T @ C, J.T @ J, rtol=0, atol=1e-12 * scale)
        torch.testing.assert_close(C.T @ b, J.T @ r.reshape(-1), rtol=0, atol=1e-12 * (scale ** 0.5) * float(r.norm()))

    def test_products_at_one_point_match_the_batched_products(self, case):
        model, X, theta, g = case
        V = torch.randn(4, model.n_params, generator=g, dtype=torch.float64)
        U = torch.randn(4, X.shape[0], model.out_dim, generator=g, dtype=torch.float64)
        t = theta[0]
        for mine, ref in ((model.jvp_at(t, X, V), model.jvp(t.expand(4, -1), X, V)),
                          (model.vjp_at(t, X, U), model.vjp(t.expand(4, -1), X, U))):
            torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))

    def test_jacobian_and_its_diagonal_agree_with_the_products(self, case):
        model, X, theta, g = case
        f, J = model.jacobian(theta, X)
        v = torch.randn(theta.shape, generator=g, dtype=torch.float64)
        torch.testing.assert_close(torch.einsum("bnkp,bp->bnk", J, v), model.jvp(theta, X, v), rtol=self.rtol,
                                   atol=self.rtol * float(J.abs().max() * v.abs().sum()))
        d = model.jtj_diagonal(theta, X)
        torch.testing.assert_close(d, (J * J).sum((1, 2)), rtol=1e-12, atol=1e-12 * float(d.max()))

    def test_jacobian_written_into_a_buffer_is_the_jacobian(self, case):
        model, X, theta, _ = case
        f, J = model.jacobian(theta, X)
        buf = torch.full_like(J, float("nan"))
        f2, J2 = model.jacobian(theta, X, out=buf)
        assert J2.data_ptr() == buf.data_ptr()
        assert torch.equal(J2, J) and torch.equal(f2, f)

    @pytest.mark.parametrize("rows", [1, 7, 10**6])
    def test_jacobian_is_the_same_in_every_chunking(self, case, rows, monkeypatch):
        """rows = 1 and 7: reverse mode over chunks of one or a few inputs; 10**6: forward mode."""
        model, X, theta, g = case
        _, J = model.jacobian(theta, X)
        monkeypatch.setattr(type(model), "JACOBIAN_CHUNK_ROWS", rows)
        _, J2 = model.jacobian(theta, X)
        torch.testing.assert_close(J2, J, rtol=1e-12, atol=1e-12 * float(J.abs().max()))
        d = (J * J).sum((1, 2))
        torch.testing.assert_close(model.jtj_diagonal(theta, X), d, rtol=1e-12, atol=1e-12 * float(d.max()))

    def test_centred_biases_move_only_hidden_biases_and_are_a_fixed_point(self, case):
        """centre_biases changes hidden biases only (weights and the output bias stay), and centring
        again changes nothing: every hidden pre-activation already has median 0 on X."""
        model, X, theta, _ = case
        th = theta[0].numpy()
        c = model.centre_biases(th, X.numpy())
        groups = model.filter_groups()
        hidden = np.zeros(model.n_params, dtype=bool)
        for _, _, bs in groups[:-1]:
            if bs is not None:
                hidden[bs] = True
        assert np.array_equal(c[~hidden], th[~hidden])
        if hidden.any():
            assert not np.allclose(c[hidden], th[hidden])
        np.testing.assert_allclose(model.centre_biases(c, X.numpy()), c, rtol=0, atol=1e-12 * np.abs(c).max())

    def test_layers_end_with_the_output(self, case):
        model, X, theta, _ = case
        out, reps = model.layers(theta, X)
        assert len(reps) == len(model.layer_names())
        assert all(r.shape[:2] == (self.N, X.shape[0]) for r in reps)
        torch.testing.assert_close(reps[-1], model.forward(theta, X), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, reps[-1], rtol=0, atol=0)



def _x(n, d, seed=2):
    return np.random.default_rng(seed).normal(size=(n, d))


class TestMLPRelu(ModelContract):
    def make(self):
        return models.from_dict({"kind": "mlp", "widths": [3, 5, 4, 2], "activation": "relu"}), _x(11, 3)


class TestMLPTanhNoBias(ModelContract):
    def make(self):
        return models.from_dict({"kind": "mlp", "widths": [2, 4, 1], "activation": "tanh", "bias": False}), _x(9, 2)


class TestMLPSigmoid(ModelContract):
    def make(self):
        return models.from_dict({"kind": "mlp", "widths": [2, 3, 3, 2], "activation": "sigmoid"}), _x(7, 2)


class TestResMLPRelu(ModelContract):
    def make(self):
        return models.from_dict({"kind": "resmlp", "d_in": 3, "width": 4, "hidden": 5, "blocks": 2, "d_out": 2,
                                 "activation": "relu"}), _x(13, 3)


class TestResMLPTanh(ModelContract):
    def make(self):
        return models.from_dict({"kind": "resmlp", "d_in": 2, "width": 3, "hidden": 4, "blocks": 2, "d_out": 1,
                                 "activation": "tanh"}), _x(11, 2)


def test_resmlp_functional_dimension_meets_its_symmetry_bound():
    """The residual stream's affine symmetries are real and complete: with d_in ≥ w and d_out ≥ w, at a
    generic parameter the rank of J over many inputs is P − w² − (B + 1)·w − B·m for relu (P − w² −
    (B + 1)·w for tanh), and the declared tangents span exactly that null space."""
    for act in ("relu", "tanh"):
        model = models.from_dict({"kind": "resmlp", "d_in": 4, "width": 3, "hidden": 5, "blocks": 2, "d_out": 3,
                                  "activation": act})
        theta = 0.7 * torch.randn(1, model.n_params, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        X = torch.as_tensor(_x(1000, 4, seed=5))
        _, J = model.jacobian(theta, X)
        J = J[0].reshape(-1, model.n_params).numpy()
        s = np.linalg.svd(J, compute_uv=False)
        rank = int((s > 1e-9 * s[0]).sum())
        T = model.symmetry.tangents(theta[0].numpy())
        expected = 9 + 3 * 3 + (2 * 5 if act == "relu" else 0)
        assert np.linalg.matrix_rank(T) == T.shape[1] == expected
        assert rank == model.n_params - expected
        assert np.linalg.norm(J @ T) <= 1e-10 * np.linalg.norm(J) * np.linalg.norm(T)


def _all_contracts() -> list[type]:
    """Every ModelContract subclass in tests/test_model_*.py (each kind's file inherits the contract)."""
    import importlib
    from pathlib import Path

    for f in sorted(Path(__file__).parent.glob("test_model_*.py")):
        importlib.import_module(f"tests.contracts.{f.stem}")
    out, todo = [], list(ModelContract.__subclasses__())
    while todo:
        c = todo.pop()
        out.append(c)
        todo += c.__subclasses__()
    return out


def test_every_registered_kind_has_a_contract():
    covered = {c().make()[0].kind for c in _all_contracts() if c.__name__.startswith("Test")}
    assert set(models.REGISTRY) <= covered, f"kinds without a contract: {set(models.REGISTRY) - covered}"


def test_unknown_kind_is_a_config_error():
    from genni.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model kind 'transformer'"):
        models.from_dict({"kind": "transformer"})


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_the_search_finds_equivalents_of_a_non_mlp_kind(solver):
    """The search talks to the interface only: a tanh resmlp teacher's equivalents from θ* + 1 % noise
    converge (L ≤ 1e-10) with both LM solvers and agree on held-out inputs to 1e-6 relative."""
    from genni import data
    from genni import search as S
    ds = data.load_dataset("moons", n_probe=64, n_heldout=64, n_train=10, seed=0)
    m = models.from_dict({"kind": "resmlp", "d_in": 2, "width": 3, "hidden": 4, "blocks": 2, "d_out": 1,
                          "activation": "tanh"})
    theta = m.init_theta(1, torch.Generator().manual_seed(1), 2.0)[0].numpy()
    problem = S.Problem.from_arrays(m, theta, ds.X_probe, ds.X_heldout)
    f = S.run_search(problem, S.SearchSettings(n=2, batch_size=2, init="perturb", init_scale=0.01, solver=solver),
                     seed=0)
    assert f.converged.all() and np.all(f.discrepancy <= 1e-10)
    assert np.all(f.relative_discrepancy_heldout < 1e-6)
    assert np.all(np.linalg.norm(f.theta - theta, axis=1) > 0)
