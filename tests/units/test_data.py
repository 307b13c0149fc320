"""Tests for genni.data: the built-in data sets."""

from __future__ import annotations

import numpy as np
import pytest

from genni.data import DATASETS as ALL_DATASETS
from genni.data import Dataset, dataset_info, load_dataset
from genni.errors import ConfigError

GENERATED = ("moons", "circles", "xor", "spirals", "spheres", "gaussian")
SHIPPED = ("digits", "iris", "wine", "breast_cancer")

DEFAULT_NOISE = {
    "moons": 0.1,
    "circles": 0.05,
    "xor": 0.0,
    "spirals": 0.05,
    "spheres": 0.1,
}

DATASETS = tuple(d for d in ALL_DATASETS if d != "normal")  # the labelled sets; "normal" is tested below

ARRAYS = ("X_train", "y_train", "X_probe", "y_probe", "X_heldout", "y_heldout")


def _load(name: str, seed: int = 0, **kw) -> Dataset:
    kw.setdefault("n_probe", 30)
    kw.setdefault("n_heldout", 20)
    kw.setdefault("n_train", 200)
    return load_dataset(name, seed=seed, **kw)


def test_dataset_names():
    assert ALL_DATASETS == GENERATED + SHIPPED + ("normal",)


def test_normal_inputs_are_unlabelled_gaussians():
    """GENNI's setting: i.i.d. N(0, I_d) inputs, probe and held-out drawn independently, no labels."""
    ds = load_dataset("normal", n_probe=4000, n_heldout=4000, n_train=0, seed=0, dim=3)
    assert ds.d_in == 3 and ds.n_classes == 0 and ds.y_probe is None and ds.y_heldout is None
    assert ds.X_probe.shape == (4000, 3) and ds.X_train.shape == (0, 3)
    np.testing.assert_allclose(ds.X_probe.mean(0), 0.0, atol=0.06)
    np.testing.assert_allclose(np.cov(ds.X_probe.T), np.eye(3), atol=0.08)
    assert not np.array_equal(ds.X_probe[:10], ds.X_heldout[:10])
    again = load_dataset("normal", n_probe=4000, n_heldout=4000, n_train=0, seed=0, dim=3)
    assert np.array_equal(ds.X_heldout, again.X_heldout)
    assert dataset_info("normal", 5) == (5, 0, None)
    with pytest.raises(ConfigError, match="dim"):
        dataset_info("normal")


def test_dataset_info_values():
    assert dataset_info("iris") == (4, 3, 150)
    assert dataset_info("wine") == (13, 3, 178)
    assert dataset_info("breast_cancer") == (30, 2, 569)
    assert dataset_info("digits") == (64, 10, 1797)
    assert dataset_info("spheres") == (3, 2, None)
    for name in GENERATED:
        assert dataset_info(name)[2] is None


@pytest.mark.parametrize("name", DATASETS)
def test_shapes_and_dtypes(name):
    d_in, n_classes, _ = dataset_info(name)
    ds = _load(name)
    assert ds.name == name
    assert ds.d_in == d_in
    assert ds.n_classes == n_classes
    expected_rows = {"train": 200, "probe": 30, "heldout": 20}
    if name == "iris":
        expected_rows["train"] = 150 - 30 - 20
    if name == "wine":
        expected_rows["train"] = 178 - 30 - 20
    for part, rows in expected_rows.items():
        X = getattr(ds, f"X_{part}")
        y = getattr(ds, f"y_{part}")
        assert X.shape == (rows, d_in), part
        assert y.shape == (rows,), part
        assert X.dtype == np.float64
        assert y.dtype == np.int64
        assert X.flags.c_contiguous
        assert np.all(np.isfinite(X))
        assert y.min() >= 0 and y.max() < n_classes


@pytest.mark.parametrize("name", GENERATED)
def test_generated_all_classes_in_train(name):
    ds = _load(name, n_train=200)
    assert set(np.unique(ds.y_train).tolist()) == set(range(ds.n_classes))


@pytest.mark.parametrize("name", DATASETS)
def test_deterministic(name):
    a = _load(name, seed=3)
    b = _load(name, seed=3)
    for field in ARRAYS:
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize("name", DATASETS)
def test_different_seeds_differ(name):
    a = _load(name, seed=0)
    b = _load(name, seed=1)
    for field in ("X_train", "X_probe", "X_heldout"):
        assert not np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize("name", DATASETS)
def test_parts_differ(name):
    ds = _load(name, n_probe=20, n_heldout=20, n_train=20)
    assert not np.array_equal(ds.X_probe, ds.X_heldout)
    assert not np.array_equal(ds.X_probe, ds.X_train)
    assert not np.array_equal(ds.X_heldout, ds.X_train)


@pytest.mark.parametrize("name", GENERATED)
def test_generated_zero_train(name):
    ds = _load(name, n_train=0)
    assert ds.X_train.shape == (0, ds.d_in)
    assert ds.X_train.dtype == np.float64
    assert ds.y_train.shape == (0,)
    assert ds.y_train.dtype == np.int64


@pytest.mark.parametrize("name", GENERATED)
def test_generated_tiny_parts(name):
    ds = _load(name, n_probe=1, n_heldout=1, n_train=1)
    assert ds.X_probe.shape == (1, ds.d_in)
    assert ds.X_heldout.shape == (1, ds.d_in)
    assert ds.X_train.shape == (1, ds.d_in)


def _rows(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in X}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_disjoint_and_standardised(name):
    d_in, _, n_rows = dataset_info(name)
    ds = _load(name, n_probe=40, n_heldout=30, n_train=10**6, seed=5)
    assert ds.X_train.shape[0] == n_rows - 70
    probe, heldout, train = _rows(ds.X_probe), _rows(ds.X_heldout), _rows(ds.X_train)
    assert not probe & heldout
    assert not probe & train
    assert not heldout & train

    X = np.concatenate([ds.X_probe, ds.X_heldout, ds.X_train])
    y = np.concatenate([ds.y_probe, ds.y_heldout, ds.y_train])
    assert X.shape == (n_rows, d_in)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-9)
    std = X.std(axis=0)
    constant = std < 1e-9
    np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-9)
    # Constant columns (blank pixels in digits) become exactly 0.
    assert np.all(X[:, constant] == 0.0)
    if name != "digits":
        assert not constant.any()
    assert set(np.unique(y).tolist()) == set(range(ds.n_classes))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_n_train_limits(name):
    full = _load(name, n_probe=10, n_heldout=10, n_train=10**6)
    some = _load(name, n_probe=10, n_heldout=10, n_train=7)
    none = _load(name, n_probe=10, n_heldout=10, n_train=0)
    assert some.X_train.shape == (7, some.d_in)
    assert np.array_equal(some.X_train, full.X_train[:7])
    assert none.X_train.shape == (0, none.d_in)
    assert none.y_train.shape == (0,)
    assert np.array_equal(none.X_probe, full.X_probe)
    assert np.array_equal(none.X_heldout, full.X_heldout)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_too_large_request(name):
    _, _, n_rows = dataset_info(name)
    with pytest.raises(
        ConfigError, match=rf"{name} has {n_rows} rows.*at most {n_rows - 1}"
    ):
        load_dataset(name, n_probe=1024, n_heldout=n_rows, seed=0)
    # Exactly one row left over is allowed.
    ds = load_dataset(name, n_probe=n_rows - 2, n_heldout=1)
    assert ds.X_train.shape == (1, ds.d_in)
    with pytest.raises(ConfigError, match=str(n_rows)):
        load_dataset(name, n_probe=n_rows - 1, n_heldout=1)


def test_iris_error_message():
    with pytest.raises(ConfigError) as info:
        load_dataset("iris", n_probe=1000, n_heldout=24)
    assert str(info.value) == (
        "iris has 150 rows; n_probe + n_heldout = 1024 must leave at least one for training (at most 149)"
    )


def test_spheres_radii():
    ds = _load("spheres", n_train=2000)
    norms = np.linalg.norm(ds.X_train, axis=1)
    assert abs(np.median(norms[ds.y_train == 0]) - 1.0) < 0.15
    assert abs(np.median(norms[ds.y_train == 1]) - 2.0) < 0.15


@pytest.mark.parametrize("name", ("spirals", "spheres", "gaussian"))
def test_balanced(name):
    ds = _load(name, n_train=201)
    counts = np.bincount(ds.y_train, minlength=2)
    assert abs(int(counts[0]) - int(counts[1])) <= 1


def test_xor_labels_without_noise():
    ds = _load("xor", n_train=500)
    for X, y in (
        (ds.X_train, ds.y_train),
        (ds.X_probe, ds.y_probe),
        (ds.X_heldout, ds.y_heldout),
    ):
        assert np.all(np.abs(X) <= 1.0)
        assert np.array_equal(y, (X[:, 0] * X[:, 1] > 0).astype(np.int64))


def test_gaussian_means():
    ds = _load("gaussian", n_train=4000)
    m0 = ds.X_train[ds.y_train == 0].mean(axis=0)
    m1 = ds.X_train[ds.y_train == 1].mean(axis=0)
    np.testing.assert_allclose(m0, [-1.0, 0.0], atol=0.1)
    np.testing.assert_allclose(m1, [1.0, 0.0], atol=0.1)


@pytest.mark.parametrize("name", ("moons", "circles", "xor", "spirals", "spheres"))
def test_noise_parameter(name):
    default = _load(name)
    explicit = _load(name, noise=DEFAULT_NOISE[name])
    assert np.array_equal(default.X_train, explicit.X_train)
    other = _load(name, noise=0.3)
    assert not np.array_equal(default.X_train, other.X_train)


def test_gaussian_ignores_noise():
    assert np.array_equal(
        _load("gaussian").X_train, _load("gaussian", noise=0.7).X_train
    )


def test_unknown_name():
    with pytest.raises(
        ConfigError, match=r"unknown dataset 'foo' \(choose from: moons, circles, "
    ):
        load_dataset("foo", n_probe=10, n_heldout=10)
    with pytest.raises(ConfigError, match="unknown dataset 'foo'"):
        dataset_info("foo")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_probe": 0, "n_heldout": 10}, "n_probe"),
        ({"n_probe": -3, "n_heldout": 10}, "n_probe"),
        ({"n_probe": 10, "n_heldout": 0}, "n_heldout"),
        ({"n_probe": 10, "n_heldout": 10, "n_train": -1}, "n_train"),
        ({"n_probe": 10, "n_heldout": 10, "noise": -0.1}, "noise"),
    ],
)
@pytest.mark.parametrize("name", ("moons", "iris"))
def test_bad_counts(name, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        load_dataset(name, **kwargs)


@pytest.mark.parametrize("name,dim", [("normal", 3), ("moons", None)])
def test_input_stream_draws_fresh_points_of_the_same_distribution(name, dim):
    """A fourth stream: none of its points is a probe, held-out or training point; the same seed gives
    the same points (for the same sequence of calls).  Shipped tables have no fresh inputs."""
    from genni.data import input_stream

    ds = load_dataset(name, n_probe=500, n_heldout=500, n_train=500, seed=0, dim=dim)
    X = input_stream(name, seed=0, dim=dim)(2000)
    assert X.shape == (2000, ds.d_in) and X.dtype == np.float64
    seen = np.concatenate([ds.X_train, ds.X_probe, ds.X_heldout])
    assert not (X[:, None, :] == seen[None, :, :]).all(-1).any()
    np.testing.assert_allclose(X.mean(0), seen.mean(0), atol=0.1)  # same distribution (to sampling error)
    assert np.array_equal(input_stream(name, seed=0, dim=dim)(2000), X)
    with pytest.raises(ConfigError, match="no fresh inputs"):
        input_stream("iris")


def test_shift_inputs_rotates_about_the_mean_and_keeps_distances():
    """A rotation turns every row about the mean: distances to the mean and between rows are kept, the
    mean stays, and a quarter turn maps (c + u) to (c + u rotated by 90°)."""
    from genni.data import shift_inputs

    X = _load("moons").X_probe
    Xr = shift_inputs(X, rotate=90.0)
    c = X.mean(0)
    np.testing.assert_allclose(Xr.mean(0), c, atol=1e-12)
    u = X - c
    np.testing.assert_allclose(Xr - c, np.stack([-u[:, 1], u[:, 0]], 1), atol=1e-12)
    d = lambda A: np.linalg.norm(A[:, None] - A[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(Xr), d(X), atol=1e-12)
    assert np.array_equal(shift_inputs(X), X) and shift_inputs(X) is not X


def test_shift_inputs_noise_matches_a_noisier_draw():
    """Added noise of std s on moons (own σ = 0.1) has the spread of moons drawn with σ' = √(σ² + s²):
    the distance of each point from the clean half circles grows to σ' on average (in mean square)."""
    from genni.data import shift_inputs

    def off_curve(X):  # distance from the nearer of sklearn's two unit half circles, centres (0, 0), (1, 0.5)
        a = np.abs(np.linalg.norm(X, axis=1) - 1)
        b = np.abs(np.linalg.norm(X - [1.0, 0.5], axis=1) - 1)
        return np.minimum(a, b)

    X = load_dataset("moons", n_probe=20000, n_heldout=1, n_train=0, seed=3).X_probe
    s = 0.2
    Xs = shift_inputs(X, noise=s, seed=1)
    ref = load_dataset("moons", n_probe=20000, n_heldout=1, n_train=0, seed=3, noise=np.hypot(0.1, s)).X_probe
    assert abs(np.sqrt((off_curve(Xs) ** 2).mean()) / np.sqrt((off_curve(ref) ** 2).mean()) - 1) < 0.03
    assert np.array_equal(shift_inputs(X, noise=s, seed=1), Xs)
    assert not np.array_equal(shift_inputs(X, noise=s, seed=2), Xs)
    np.testing.assert_allclose((Xs - X).std(), s, rtol=0.02)


@pytest.mark.parametrize("kwargs,match", [({"rotate": 10.0}, "2-D inputs"), ({"noise": -1.0}, "non-negative"),
                                          ({"noise": float("nan")}, "finite")])
def test_shift_inputs_refuses_what_it_cannot_do(kwargs, match):
    from genni.data import shift_inputs

    with pytest.raises(ConfigError, match=match):
        shift_inputs(np.zeros((5, 3)), **kwargs)
