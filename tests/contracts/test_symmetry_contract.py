"""The symmetry group's contract (genni.models.symmetry.Symmetry, ``model.symmetry``), inherited by every
kind through :class:`tests.contracts.test_model_contract.ModelContract`.

A subclass provides the ``case`` fixture: (model, X [n, ...], theta [N, P], torch generator).  The
contract checks the group action against the function (sampled elements leave the outputs unchanged),
the vertical space against the Jacobian (J annihilates every tangent), the horizontal projection
(an orthogonal projector onto the tangents' complement), alignment (planted copies align back) and the
canonical section (balancing is idempotent and keeps the function).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genni.geometry.metrics.registry import TRANSFORMS
from genni.models import GroupElement, Symmetry


class SymmetryContract:
    """Mixin: every test here runs for every kind's contract subclass."""

    def test_the_symmetry_is_one_object_with_one_element_type(self, case):
        model, *_ = case
        sym = model.symmetry
        assert isinstance(sym, Symmetry) and sym.model is model
        assert all(isinstance(k, str) and isinstance(v, bool) for k, v in sym.kinds.items())
        assert all(isinstance(g, GroupElement) for g in sym.sample(2, np.random.default_rng(0)))
        assert isinstance(sym.identity(), GroupElement)

    def test_the_identity_acts_as_the_identity(self, case):
        model, _, theta, _ = case
        th = theta[0].numpy()
        np.testing.assert_array_equal(model.symmetry.act(th, model.symmetry.identity()), th)

    def test_symmetries_leave_the_function_unchanged(self, case):
        model, X, theta, _ = case
        rng = np.random.default_rng(1)
        th = theta[0].numpy()
        ref = model.forward(theta[0], X)
        for gr in model.symmetry.sample(4, rng):
            moved = torch.as_tensor(model.symmetry.act(th, gr))
            torch.testing.assert_close(model.forward(moved, X), ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))

    def test_continuous_symmetry_tangents_are_vertical(self, case):
        """J annihilates every tangent: moving along an orbit does not change f to first order."""
        model, X, theta, _ = case
        T = model.symmetry.tangents(theta[0].numpy())
        assert T.shape[0] == model.n_params
        if T.shape[1] == 0:
            return
        _, J = model.jacobian(theta[:1], X)
        J = J[0].reshape(-1, model.n_params).numpy()
        assert np.linalg.norm(J @ T) <= 1e-10 * np.linalg.norm(J) * np.linalg.norm(T)

    def test_the_horizontal_projection_removes_exactly_the_vertical_part(self, case):
        """H(δ) ⟂ every tangent, H(H(δ)) = H(δ), H(tangent) = 0, δ − H(δ) lies in the tangents' span."""
        model, _, theta, _ = case
        sym, th = model.symmetry, theta[0].numpy()
        T = sym.tangents(th)
        delta = np.random.default_rng(3).normal(size=(3, model.n_params))
        h = sym.horizontal(th, delta)
        scale = np.abs(delta).max()
        np.testing.assert_allclose(sym.horizontal(th, h), h, rtol=0, atol=1e-10 * scale)
        if T.shape[1] == 0:
            np.testing.assert_array_equal(h, delta)
            return
        np.testing.assert_allclose(h @ T, 0.0, atol=1e-9 * scale * np.abs(T).max())
        np.testing.assert_allclose(sym.horizontal(th, T.T), 0.0, atol=1e-9 * np.abs(T).max())
        coef, *_ = np.linalg.lstsq(T, (delta - h).T, rcond=None)
        np.testing.assert_allclose(T @ coef, (delta - h).T, rtol=0, atol=1e-9 * scale)

    def test_planted_copies_align_back(self, case):
        """align(g·θ, θ) recovers θ (up to the continuous symmetries balance removes) for kinds that align."""
        model, X, theta, _ = case
        if not model.symmetry.aligns:
            pytest.skip(f"{model.kind}: no alignment declared (align is the identity)")
        th = theta[0].numpy()
        for gr in model.symmetry.sample(3, np.random.default_rng(4)):
            aligned, _ = model.symmetry.align(model.symmetry.act(th, gr), th)
            want = model.symmetry.balance(th)
            np.testing.assert_allclose(model.symmetry.balance(aligned), want, rtol=0, atol=1e-9 * np.abs(want).max())

    def test_the_canonical_section_is_idempotent_and_keeps_the_function(self, case):
        model, X, theta, _ = case
        sym, th = model.symmetry, theta[0].numpy()
        b = sym.balance(th)
        np.testing.assert_allclose(sym.balance(b), b, rtol=0, atol=1e-10 * np.abs(b).max())
        ref = model.forward(theta[0], X)
        torch.testing.assert_close(model.forward(torch.as_tensor(b), X), ref, rtol=1e-12,
                                   atol=1e-12 * float(ref.abs().max()))

    def test_invariances_are_names_the_metrics_know(self, case):
        model, *_ = case
        assert set(model.symmetry.invariances) <= set(TRANSFORMS)
