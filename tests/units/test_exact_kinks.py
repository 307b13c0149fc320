"""Kink inputs (genni.exact.kinks): exact kinks along lines, pairs straddling them, the rank they reach,
and the ``[identify] rank_inputs`` key."""

import numpy as np
import pytest

import genni
from genni import config, store
from genni.errors import ConfigError, GenniError
from genni.exact import Domain, KinkStream, Network, clip_lines, kink_inputs, line_kinks, normal_box, random_lines
from genni.identifiability import output_jacobian, spectrum
from genni.models import MLP
from genni.train import random_reference


def _net(widths, activation="relu", seed=0, bias_std=0.5):
    model = MLP(tuple(widths), activation)
    return model, random_reference(model, seed=seed, init="he", bias_std=bias_std)


@pytest.mark.parametrize("widths, activation", [((2, 6, 5, 1), "relu"), ((4, 5, 5, 5, 2), "leaky_relu"),
                                                ((1, 4, 3, 1), "relu")])
def test_every_input_lies_in_the_domain(widths, activation):
    model, theta = _net(widths, activation)
    domain = Domain(np.linspace(-1.0, -0.5, widths[0]), np.linspace(0.5, 2.0, widths[0]))
    for n in (1, 7, 200):
        X = kink_inputs(model, theta, domain, n, rng=3)
        assert X.shape == (n, widths[0]) and X.dtype == np.float64
        assert domain.contains(X).all()


def test_one_input_kinks_are_minus_b_over_w():
    """d_in = 1: the first-layer kinks along the whole interval are −b_j / w_j, those inside it; deeper kinks
    are zeros of their unit."""
    model, theta = _net((1, 7, 5, 1), seed=4, bias_std=1.0)
    net = Network.of(model, theta)
    domain = Domain(np.array([-2.5]), np.array([3.0]))
    W, b = net.layers[0]
    closed = -b / W[:, 0]
    inside = (closed > domain.lo[0]) & (closed < domain.hi[0])
    assert 2 <= inside.sum() < 7  # some kinks inside, some outside: the test sees both
    for u in (1.0, -1.0):
        k = line_kinks(net, clip_lines(domain, np.array([[0.3]]), np.array([[u]])))
        first = k.unit < 7
        assert sorted(k.unit[first]) == sorted(np.flatnonzero(inside))
        x = k.points[first, 0]
        np.testing.assert_allclose(x, closed[k.unit[first]], rtol=0, atol=1e-9)
        Z, _ = net.preactivations(k.points)
        assert np.abs(Z[np.arange(len(k.unit)), k.unit]).max() < 1e-9
        assert np.all(np.diff(k.t) > 0)


def test_no_sign_change_on_a_fine_grid_is_missed():
    """Every sign change of every unit between neighbouring points of a fine grid along each line has a
    located kink of that unit in that grid cell."""
    model, theta = _net((3, 6, 6, 4, 1), seed=2)
    net = Network.of(model, theta)
    domain = normal_box(3)
    lines = random_lines(domain, 6, np.random.default_rng(0))
    k = line_kinks(net, lines)
    for i in range(6):
        t = np.linspace(lines.t0[i], lines.t1[i], 20001)
        Z, _ = net.preactivations(lines.at(np.full(t.size, i), t))
        cell, unit = np.nonzero((Z[1:] > 0) != (Z[:-1] > 0))
        on = k.line == i
        for c, j in zip(cell, unit):
            assert np.any(on & (k.unit == j) & (k.t >= t[c]) & (k.t <= t[c + 1])), (i, c, j)


def test_pairs_straddle_their_kink():
    """Rows 2i, 2i + 1 lie on either side of kink i: its unit's sign differs, and no other unit's does."""
    model, theta = _net((2, 6, 6, 1), seed=1)
    net = Network.of(model, theta)
    domain = normal_box(2)
    k = line_kinks(net, random_lines(domain, 10, np.random.default_rng(1)))
    X, unit = k.pairs(domain)
    assert len(unit) > 20 and domain.contains(X).all()
    on = net.preactivations(X)[0] > 0
    flipped = on[0::2] != on[1::2]
    assert flipped[np.arange(len(unit)), unit].all()
    assert (flipped.sum(1) == 1).all()
    # the stream gives pairs too, with every unit that changes state on the lines among them
    Xs = KinkStream(model, theta, domain, 5)(400)
    on = net.preactivations(Xs)[0] > 0
    assert ((on[0::2] != on[1::2]).sum(1) == 1).all()
    assert set(np.flatnonzero((on[0::2] != on[1::2]).any(0))) >= set(unit)


def test_the_stream_is_seeded_and_chunk_free():
    """The same seed gives the same points, and drawing in pieces gives what one draw gives."""
    model, theta = _net((3, 5, 4, 1), seed=7)
    domain = normal_box(3)
    whole = KinkStream(model, theta, domain, 11)(301)
    s = KinkStream(model, theta, domain, 11)
    pieces = np.vstack([s(1), s(100), s(0), s(200)])
    assert np.array_equal(whole, pieces)
    assert not np.array_equal(whole, KinkStream(model, theta, domain, 12)(301))


@pytest.mark.parametrize("widths", [(2, 6, 1), (2, 4, 4, 1)])
def test_kink_rank_at_least_iid_rank_and_never_above_the_bound(widths):
    """At m = 8·P inputs, kink inputs give rank J ≥ what as many i.i.d. N(0, I) inputs give (on these ten
    networks each), and never more than P − #hidden."""
    model = MLP(widths, "relu")
    m = 8 * model.n_params
    for seed in range(10):
        theta = random_reference(model, seed=seed, init="he", bias_std=0.5)
        kinks = spectrum(output_jacobian(model, theta, KinkStream(model, theta, normal_box(widths[0]), seed)(m))).rank
        iid = spectrum(output_jacobian(model, theta, np.random.default_rng(seed).standard_normal((m, widths[0])))).rank
        assert iid <= kinks <= model.expected_rank()


def test_kink_inputs_refuse_what_they_cannot_do():
    model, theta = _net((2, 4, 1))
    with pytest.raises(GenniError, match="relu or leaky_relu MLP"):
        kink_inputs(MLP((2, 4, 1), "tanh"), theta, normal_box(2), 4)
    with pytest.raises(GenniError, match="R\\^3"):
        kink_inputs(model, theta, normal_box(3), 4)
    with pytest.raises(GenniError, match="offset"):
        kink_inputs(model, theta, normal_box(2), 4, offset=0.0)
    dead = np.zeros_like(theta)  # every pre-activation is 0 everywhere: no kink anywhere
    with pytest.raises(GenniError, match="no hidden unit changes state"):
        KinkStream(model, dead, normal_box(2), max_lines=32)(4)


def _cfg(**identify):
    return {"data": {"dataset": "normal", "dim": 3, "n_probe": 8, "n_heldout": 16, "n_far": 16},
            "model": {"widths": [3, 4, 1], "activation": identify.pop("activation", "relu")},
            "reference": {"source": "random", "init": "he", "bias_std": 0.5}, "search": {"n": 1},
            "identify": identify}


def test_rank_inputs_key():
    assert "rank_inputs" not in config.load()["identify"]  # rank growth off: the default run's config is unchanged
    assert config.resolve(_cfg(rank_growth_max=64))["identify"]["rank_inputs"] == "kinks"
    assert config.resolve(_cfg(rank_growth_max=64, activation="leaky_relu"))["identify"]["rank_inputs"] == "kinks"
    assert config.resolve(_cfg(rank_growth_max=64, activation="tanh"))["identify"]["rank_inputs"] == "data"
    assert config.resolve(_cfg(rank_inputs="data"))["identify"]["rank_inputs"] == "data"
    assert ("identify", "rank_inputs") in config.RESUMABLE_KEYS
    for bad, match in [({"rank_inputs": "grid"}, r"\[identify\] rank_inputs = 'grid' is not one of: data, kinks"),
                       ({"rank_inputs": 1}, r"\[identify\] rank_inputs must be a string"),
                       ({"rank_inputs": "kinks", "activation": "tanh"},
                        r"\[identify\] rank_inputs = 'kinks' needs a relu or leaky_relu MLP")]:
        with pytest.raises(ConfigError, match=match) as e:
            config.resolve(_cfg(**bad))
        assert "\n" not in str(e.value)


def test_identify_grows_the_rank_over_kink_inputs(tmp_path):
    """`identify` with rank growth on a relu MLP uses kink inputs by default, says so, and reaches P − #hidden."""
    path = tmp_path / "kinks.h5"
    genni.find(config.resolve(_cfg(rank_growth_max=4096)), path, reference_only=True)
    info = genni.identify(path)
    a = store.load_run(path).identifiability_attrs
    assert "kink" in a["rank_growth_how"] and info["rank_growth_how"] == a["rank_growth_how"]
    assert info["rank_growth_rank"] == 21 - 4


def test_rank_growth_survives_an_svd_that_does_not_converge(monkeypatch):
    """LAPACK's gesdd fails to converge on rare stacks of kink-input Jacobians; rank_growth then takes gesvd and
    gives the same ranks."""
    from genni import identifiability

    model, theta = _net((3, 5, 4, 1), seed=7)
    expect = identifiability.rank_growth(model, theta, KinkStream(model, theta, normal_box(3), 2), 8, 512, patience=2)
    svd, calls = np.linalg.svd, []

    def flaky(A, *args, **kw):
        calls.append(1)
        if len(calls) % 2:
            raise np.linalg.LinAlgError("SVD did not converge")
        return svd(A, *args, **kw)

    monkeypatch.setattr(np.linalg, "svd", flaky)
    got = identifiability.rank_growth(model, theta, KinkStream(model, theta, normal_box(3), 2), 8, 512, patience=2)
    assert len(calls) > 1 and np.array_equal(got, expect)
