"""Exact group actions, canonical forms and alignment: invariance and brute-force oracles."""

import itertools

import numpy as np
import pytest
import torch

from genni.models import MLP, GroupElement
from genni.models.activations import ACTIVATIONS
from genni.models.symmetry import match_cost
from genni.seeds import element_generator


def _theta(spec, seed=0, scale=3.0):
    return spec.init_theta(1, element_generator(seed, 0)[0], scale)[0].numpy()


def _out(spec, theta, X):
    return spec.forward(torch.as_tensor(theta), torch.as_tensor(X)).numpy()


X = np.random.default_rng(0).normal(size=(300, 3))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_sampled_group_elements_leave_outputs_unchanged(act):
    spec = MLP((3, 6, 5, 2), act)
    theta = _theta(spec)
    Y = _out(spec, theta, X)
    for g in spec.symmetry.sample(5, np.random.default_rng(1)):
        copy = spec.symmetry.act(theta, g)
        assert np.linalg.norm(copy - theta) > 0.1
        assert np.abs(_out(spec, copy, X) - Y).max() < 1e-12


def test_admitted_symmetries():
    kinds = {a: MLP((2, 3, 1), a).symmetry.kinds for a in ACTIVATIONS}
    assert kinds["gelu"] == {"permutation": True, "rescaling": False, "sign_flip": False}
    assert kinds["relu"]["rescaling"] and not kinds["relu"]["sign_flip"]
    assert kinds["tanh"]["sign_flip"] and kinds["sigmoid"]["sign_flip"] and not kinds["tanh"]["rescaling"]


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_negative_rescaling_changes_relu_outputs(act):
    spec = MLP((3, 6, 1), act)
    theta = _theta(spec)
    g = GroupElement((np.arange(6),), (np.array([1, 1, -2.0, 1, 1, 1]),))
    assert np.abs(_out(spec, spec.symmetry.act(theta, g), X) - _out(spec, theta, X)).max() > 1e-3


def test_sign_flip_is_not_a_gelu_symmetry():
    spec = MLP((3, 6, 1), "gelu")
    theta = _theta(spec)
    g = GroupElement((np.arange(6),), (np.array([1, -1.0, 1, 1, 1, 1]),))
    spec_t = MLP((3, 6, 1), "tanh")
    flipped = spec_t.symmetry.act(theta, g)  # the tanh flip, applied to a gelu network
    assert np.abs(_out(spec, flipped, X) - _out(spec, theta, X)).max() > 1e-3


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_alignment_recovers_planted_element(act):
    spec = MLP((3, 7, 6, 2), act)
    theta = _theta(spec)
    g = spec.symmetry.sample(1, np.random.default_rng(2))[0]
    copy = spec.symmetry.act(theta, g)
    aligned, found = spec.symmetry.align(copy, theta)
    np.testing.assert_allclose(aligned, theta, atol=1e-12, rtol=0)
    # the permutation found undoes the planted one exactly; signs too
    for p_planted, p_found, c_planted, c_found in zip(g.perms, found.perms, g.factors, found.factors):
        np.testing.assert_array_equal(p_planted[p_found], np.arange(len(p_found)))
        if act in ("tanh", "sigmoid"):
            np.testing.assert_array_equal(c_found, c_planted[p_found])
    np.testing.assert_allclose(spec.symmetry.act(copy, found), aligned, atol=0, rtol=0)


def test_canonical_form_is_invariant_to_rescaling():
    spec = MLP((3, 5, 4, 1), "relu")
    theta = _theta(spec)
    g = GroupElement(tuple(np.arange(w) for w in spec.hidden_widths),
                       tuple(np.exp(np.random.default_rng(3).normal(size=w)) for w in spec.hidden_widths))
    a, b = spec.symmetry.canonicalise(theta), spec.symmetry.canonicalise(spec.symmetry.act(theta, g))
    np.testing.assert_allclose(a, b, atol=1e-13)
    W1 = a[: 5 * 3].reshape(5, 3)
    b1 = a[15:20]
    np.testing.assert_allclose((W1 ** 2).sum(1) + b1 ** 2, 1.0, atol=1e-14)


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_hungarian_agrees_with_brute_force_on_tiny_layers(act):
    spec = MLP((3, 6, 1), act)
    rng = np.random.default_rng(4)
    signs = act == "tanh"
    for trial in range(5):
        theta, other = _theta(spec, seed=trial), _theta(spec, seed=100 + trial)
        A = spec.symmetry._unit_features(spec.symmetry.canonicalise(other), 0)
        B = spec.symmetry._unit_features(spec.symmetry.canonicalise(theta), 0)
        cost, _ = match_cost(A, B, signs, unsigned_last=True)
        best = min(sum(cost[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
        aligned, g = spec.symmetry.align(other, theta)
        assert sum(cost[i, g.perms[0][i]] for i in range(6)) == pytest.approx(best, rel=1e-12, abs=1e-14)
        rng.normal()


def test_align_batch_distances():
    spec = MLP((3, 5, 1), "tanh")
    theta = _theta(spec)
    copies = np.stack([spec.symmetry.act(theta, g) for g in spec.symmetry.sample(3, np.random.default_rng(5))])
    other = _theta(spec, seed=9)[None]
    aligned, dist = spec.symmetry.align_batch(np.concatenate([copies, other]), theta)
    assert aligned.shape == (4, spec.n_params)
    assert np.all(dist[:3] < 1e-14) and dist[3] > 0.1


def test_balance_is_the_minimum_norm_point_of_the_orbit():
    spec = MLP((3, 5, 4, 1), "relu")
    theta = _theta(spec)
    b = spec.symmetry.balance(theta)
    rng = np.random.default_rng(6)
    g = GroupElement(tuple(np.arange(w) for w in spec.hidden_widths),
                       tuple(np.exp(rng.normal(size=w)) for w in spec.hidden_widths))
    # invariant along the orbit, and no other point of the orbit has a smaller norm
    np.testing.assert_allclose(spec.symmetry.balance(spec.symmetry.act(theta, g)), b, atol=1e-10)
    for h in spec.symmetry.sample(20, rng, log_scale=0.3):
        h = GroupElement(tuple(np.arange(w) for w in spec.hidden_widths), h.factors)
        assert np.linalg.norm(spec.symmetry.act(b, h)) >= np.linalg.norm(b) - 1e-12
    np.testing.assert_allclose(_out(spec, b, X), _out(spec, theta, X), atol=1e-12)
