"""The oracle that proves the discrepancy is computed right: exact symmetric copies
of a network have discrepancy < 1e-20 (float64), a non-symmetry does not."""

import pytest
import torch

from genni.discrepancy import discrepancy
from genni.models import MLP
from genni.models.activations import ACTIVATIONS
from genni.models.mlp import layout
from genni.seeds import element_generator


def _copy(spec, theta, layer, perm=None, scale=None, flip=None):
    """θ with hidden layer ``layer`` (1-based) permuted / rescaled / sign-flipped, built by hand."""
    Ws = [(W.clone(), b.clone()) for W, b in layout.unflatten(theta, spec.widths)]
    (Win, bin_), (Wout, bout) = Ws[layer - 1], Ws[layer]
    if perm is not None:
        Win, bin_, Wout = Win[perm], bin_[perm], Wout[:, perm]
    if scale is not None:  # relu(c z) = c relu(z) for c > 0
        Win, bin_, Wout = Win * scale[:, None], bin_ * scale, Wout / scale[None, :]
    if flip is not None:  # tanh(-z) = -tanh(z)
        Win, bin_, Wout = Win * flip[:, None], bin_ * flip, Wout * flip[None, :]
    Ws[layer - 1], Ws[layer] = (Win, bin_), (Wout, bout)
    return layout.flatten(Ws)


@pytest.fixture
def setting():
    X = torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return X


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_permuted_copy_is_exactly_equivalent(act, setting):
    spec = MLP((2, 8, 8, 1), act)
    theta = spec.init_theta(1, element_generator(0, 0)[0], 3.0)[0]
    Y = spec.forward(theta, setting)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    copy = _copy(spec, _copy(spec, theta, 1, perm=perm), 2, perm=perm.flip(0))
    assert not torch.equal(copy, theta)
    assert discrepancy(spec, copy[None], setting, Y).item() < 1e-20


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_positive_rescaling_is_equivalent_and_negative_is_not(act, setting):
    spec = MLP((2, 8, 8, 1), act)
    theta = spec.init_theta(1, element_generator(0, 0)[0], 3.0)[0]
    Y = spec.forward(theta, setting)
    c = torch.linspace(0.25, 4.0, 8, dtype=torch.float64)  # exact powers of two at the ends
    copy = _copy(spec, theta, 2, scale=c)
    assert discrepancy(spec, copy[None], setting, Y).item() < 1e-20
    bad = _copy(spec, theta, 2, scale=-c)
    assert discrepancy(spec, bad[None], setting, Y).item() > 1e-6


def test_tanh_sign_flip_is_equivalent(setting):
    spec = MLP((2, 8, 8, 1), "tanh")
    theta = spec.init_theta(1, element_generator(0, 0)[0], 3.0)[0]
    Y = spec.forward(theta, setting)
    flip = torch.tensor([1, -1, 1, -1, -1, 1, 1, -1], dtype=torch.float64)
    copy = _copy(spec, theta, 1, flip=flip)
    assert discrepancy(spec, copy[None], setting, Y).item() < 1e-20
    # the same flip is not a symmetry of relu
    spec_r = MLP((2, 8, 8, 1), "relu")
    Yr = spec_r.forward(theta, setting)
    assert discrepancy(spec_r, copy[None], setting, Yr).item() > 1e-6


def test_discrepancy_closed_form():
    spec = MLP((1, 1), "relu")  # f(x) = w x + b
    X = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    Y = torch.zeros(3, 1, dtype=torch.float64)
    theta = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # outputs 1, 2, 3
    assert discrepancy(spec, theta, X, Y).item() == pytest.approx((1 + 4 + 9) / 3, abs=1e-15)
