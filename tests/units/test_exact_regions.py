"""Linear regions and the exact functional dimension of relu / leaky-relu MLPs on a box.

Oracles: closed forms in 1-D (regions are the intervals between the first layer's kinks −b_j/w_j;
1-H-1 nets reach the bound 2H + 1), GENNI's toy (rank 1 of bound 2), a planted dead unit (deficit =
its free weights), the regions' areas tiling the box and dense sampling in 2-D, autograd for the
fixed-pattern Jacobian, and every rank over sampled inputs of D.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull, HalfspaceIntersection

from genni import identifiability
from genni.errors import GenniError
from genni.exact import Domain, Network, Pieces, normal_box, probe_box
from genni.exact.rank import exact_rank
from genni.exact.regions import enumerate_regions, halfspaces, sampled_regions, walk
from genni.models import MLP
from genni.models.mlp import layout


def _theta(model, seed, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(model.n_params)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_affine_maps_and_pattern_jacobian_match_the_network(activation, bias):
    model = MLP((3, 5, 4, 2), activation, bias=bias)
    th = _theta(model, 0)
    net = Network.of(model, th)
    X = np.random.default_rng(1).standard_normal((9, 3))
    Z, f = net.preactivations(X)
    assert np.allclose(f, model.forward(torch.tensor(th), torch.tensor(X)).numpy(), atol=1e-13)
    _, J = model.jacobian(torch.tensor(th), torch.tensor(X))
    for i in range(len(X)):
        A, c, F, g = net.affine(Z[i] > 0)
        assert np.allclose(A @ X[i] + c, Z[i], atol=1e-13)
        assert np.allclose(F @ X[i] + g, f[i], atol=1e-13)
        assert np.allclose(net.pattern_jacobian(Z[i] > 0, X[i:i + 1])[0], J[i].numpy(), atol=1e-13)


def test_non_piecewise_linear_models_are_refused():
    with pytest.raises(GenniError, match="relu or leaky_relu"):
        Network.of(MLP((2, 3, 1), "tanh"), np.zeros(13))
    with pytest.raises(GenniError, match="dimension"):
        next(walk(Pieces.of(MLP((2, 3, 1), "relu"), [np.ones(13)]), Domain([0.0], [1.0])))


def _one_d(H, seed, activation="relu", lo=-1.0, hi=1.0):
    """A 1-H-1 net whose kinks −b/w are spread inside (lo, hi)."""
    model = MLP((1, H, 1), activation)
    rng = np.random.default_rng(seed)
    w = rng.choice([-1.0, 1.0], H) * rng.uniform(0.5, 2.0, H)
    kinks = np.sort(rng.uniform(lo + 0.05, hi - 0.05, H))
    v = rng.choice([-1.0, 1.0], H) * rng.uniform(0.5, 2.0, H)
    th = layout.flatten([(torch.tensor(w[:, None]), torch.tensor(-w * kinks)),
                         (torch.tensor(v[None]), torch.tensor([0.3]))]).numpy()
    return model, th, kinks


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_one_d_regions_are_the_intervals_between_kinks(activation):
    model, th, kinks = _one_d(6, 0, activation)
    D = Domain([-1.0], [1.0])
    w = enumerate_regions(Pieces.of(model, [th]), D)
    assert w.complete and w.n_regions == len(kinks) + 1
    centres = np.sort(w.arrays()["points"][:, 0])
    edges = np.r_[-1.0, kinks, 1.0]
    assert np.all((centres > edges[:-1]) & (centres < edges[1:]))  # one interior point per interval
    assert np.allclose(centres, (edges[:-1] + edges[1:]) / 2, atol=1e-9)  # the Chebyshev centre is the midpoint


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_one_d_network_reaches_its_bound_2H_plus_1(activation):
    H = 5
    model, th, _ = _one_d(H, 1, activation)
    e = exact_rank(model, th, Domain([-1.0], [1.0]))
    assert model.expected_rank() == 2 * H + 1
    assert e.rank == 2 * H + 1 and e.status == "certified at the bound"
    assert e.gap > 1e6


def test_one_d_dead_unit_gives_a_certified_deficit_of_two():
    """A unit inactive on all of D hides its three parameters; the bound already discounts one."""
    H = 4
    model, th, _ = _one_d(H, 2)
    (W, b), (V, c) = layout.unflatten(torch.tensor(th), model.widths)
    W[0, 0], b[0] = 1.0, -5.0  # z = x − 5 < 0 on [−1, 1]
    th = layout.flatten([(W, b), (V, c)]).numpy()
    e = exact_rank(model, th, Domain([-1.0], [1.0]))
    assert e.regions.complete and e.regions.n_regions == H
    assert e.status == "certified deficit" and e.rank == model.expected_rank() - 2


def test_genni_toy_has_functional_dimension_one_of_bound_two():
    """f = a₁relu(w₁x) + a₂relu(w₂x), w < 0, no biases: f = (a₁w₁ + a₂w₂)·x on x < 0 and 0 on x > 0, so
    J's rows are x·(a₁, a₂, w₁, w₂) and 0: rank 1, two regions."""
    model = MLP((1, 2, 1), "relu", bias=False)
    th = np.array([-0.0838, -0.0343, -0.2652, 0.1627])
    e = exact_rank(model, th, normal_box(1))
    assert e.regions.n_regions == 2 and e.regions.complete
    assert (e.rank, e.bound, e.status) == (1, 2, "certified deficit")


def _area(region, domain):
    B, g, norms, _ = halfspaces(region.A, region.c, region.pattern, domain)
    hs = HalfspaceIntersection(np.hstack([B, -g[:, None]]), region.point)
    return ConvexHull(hs.intersections).volume


@pytest.mark.parametrize("activation,bias", [("relu", True), ("leaky_relu", True), ("relu", False)])
def test_two_d_regions_tile_the_box_and_contain_every_sampled_pattern(activation, bias):
    model = MLP((2, 8, 6, 1), activation, bias=bias)
    th = _theta(model, 3)
    D = Domain([-2.0, -1.5], [2.5, 2.0])
    p = Pieces.of(model, [th])
    regions = list(walk(p, D))
    patterns = {r.pattern.tobytes() for r in regions}
    assert len(patterns) == len(regions)  # each region once
    assert sum(_area(r, D) for r in regions) == pytest.approx(np.prod(D.width), rel=1e-9)
    for r in regions:  # the interior point is inside its region, with its pattern
        assert r.radius > 0 and D.contains(r.point[None])[0]
        assert (p.pattern(r.point[None])[0] == r.pattern).all()
    X = D.sample(200_000, np.random.default_rng(4))
    sampled = {row.tobytes() for row in p.pattern(X)}
    assert sampled <= patterns


def test_common_refinement_of_two_networks_tiles_the_box():
    model = MLP((2, 5, 1), "relu")
    D = Domain([-1.0, -1.0], [1.0, 1.0])
    p = Pieces.of(model, [_theta(model, 5), _theta(model, 6)])
    regions = list(walk(p, D))
    assert sum(_area(r, D) for r in regions) == pytest.approx(4.0, rel=1e-9)
    one = len(list(walk(Pieces.of(model, [_theta(model, 5)]), D)))
    assert len(regions) >= one


def test_budget_stops_the_walk_and_says_so():
    model = MLP((2, 8, 8, 1), "relu")
    w = enumerate_regions(Pieces.of(model, [_theta(model, 7)]), Domain([-3.0, -3.0], [3.0, 3.0]), max_regions=5)
    assert not w.complete and w.n_regions == 5 and w.status == "incomplete after 5 regions: region budget"
    e = exact_rank(model, _theta(model, 7), Domain([-3.0, -3.0], [3.0, 3.0]), max_regions=2, samples=0)
    assert e.status in ("lower bound", "certified at the bound")
    assert e.regions.n_regions <= 2 and e.n_sampled == 0


def test_sampled_regions_alone_can_certify_the_bound_and_agree_with_the_walk():
    model = MLP((2, 6, 4, 1), "relu")
    D = Domain([-3.0, -3.0], [3.0, 3.0])
    th = _theta(model, 18)  # at the bound on D (the walk certifies it with samples=0)
    walked = exact_rank(model, th, D, samples=0)
    sampled = exact_rank(model, th, D)
    assert walked.status == sampled.status == "certified at the bound"
    assert sampled.regions.status.startswith("stopped at the bound after the regions of")
    assert sampled.n_sampled == sampled.regions.n_regions
    walked_patterns = {p.tobytes() for p in enumerate_regions(Pieces.of(model, [th]), D).arrays()["patterns"]}
    assert {p.tobytes() for p in sampled.regions.arrays()["patterns"]} <= walked_patterns


@pytest.mark.parametrize("widths,activation", [((2, 6, 4, 1), "relu"), ((3, 5, 5, 2), "leaky_relu"),
                                               ((2, 4, 4, 4, 1), "relu")])
def test_exact_rank_is_at_least_every_sampled_rank_and_at_most_the_bound(widths, activation):
    model = MLP(widths, activation)
    th = _theta(model, 8)
    D = Domain(-2.0 * np.ones(widths[0]), 2.0 * np.ones(widths[0]))
    e = exact_rank(model, th, D)
    assert e.rank <= e.bound
    for n in (8, 64, 2048):
        X = D.sample(n, np.random.default_rng(n))
        sp = identifiability.spectrum(identifiability.output_jacobian(model, th, X))
        assert sp.rank <= e.rank


def test_planted_dead_unit_deficit_equals_its_free_weights():
    """A first-layer unit inactive on all of D silences its d_in + 1 incoming and w_2 outgoing weights;
    the bound already discounts its rescaling: deficit d_in + w_2."""
    model = MLP((2, 6, 4, 1), "relu")
    D = Domain([-3.0, -3.0], [3.0, 3.0])
    th = _theta(model, 18)  # a network at the bound on D
    e = exact_rank(model, th, D)
    assert e.status == "certified at the bound"
    (W1, b1), *rest = layout.unflatten(torch.tensor(th), model.widths)
    W1[0], b1[0] = torch.tensor([0.5, -0.5]), -5.0  # z ≤ 3 − 5 < 0 on D
    dead = layout.flatten([(W1, b1), *rest]).numpy()
    e = exact_rank(model, dead, D)
    assert e.status == "certified deficit" and e.bound - e.rank == 2 + 4


def test_default_domains():
    X = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, 2.0]])
    D = probe_box(X, 3.0)
    assert np.allclose(D.lo, [-2.0, -1.0]) and np.allclose(D.hi, [4.0, 5.0])
    assert np.allclose(normal_box(3, 2.0).hi, 2.0)
    with pytest.raises(GenniError):
        probe_box(X, -1.0)
    with pytest.raises(GenniError):
        Domain([1.0], [0.0])


def test_sampled_regions_count_the_distinct_patterns_met_and_never_exceed_the_walk():
    model = MLP((2, 8, 6, 1), "relu")
    p, D = Pieces.of(model, [_theta(model, 3)]), Domain([-2.0, -1.5], [2.5, 2.0])
    walked = len(list(walk(p, D)))
    n = 20_000
    met = sampled_regions(p, D, n, seed=5, batch=n)
    oracle = len(np.unique(p.pattern(D.sample(n, np.random.default_rng(5))), axis=0))
    assert met == oracle and 1 < met <= walked
    assert sampled_regions(p, D, n, seed=5, batch=777) <= walked  # batched draws: still patterns of real regions


def test_sampled_regions_find_every_interval_of_a_one_d_network_when_all_are_wide():
    model = MLP((1, 5, 1), "relu")
    th = _theta(model, 11)
    W, b = th[:5], th[5:10]
    D = Domain([-3.0], [3.0])
    cuts = np.sort(np.concatenate([[-3.0, 3.0], (-b / W)[np.abs(-b / W) < 3.0]]))
    n = 200_000
    assert np.diff(cuts).min() * n / 6.0 > 50  # a miss has probability below e^-50
    assert sampled_regions(Pieces.of(model, [th]), D, n, seed=0) == len(list(walk(Pieces.of(model, [th]), D)))
