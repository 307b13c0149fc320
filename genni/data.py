"""Built-in classification data sets.

Two kinds of set are provided.

Generated sets draw as many points as asked for, so they have no row limit.
Each split (train, probe, held-out) comes from its own random stream, and
every stream is derived from the one ``seed``:

``moons``
    Two interleaving half circles in 2-D (``sklearn.datasets.make_moons``),
    gaussian noise, default standard deviation 0.1.
``circles``
    Two concentric circles in 2-D, the inner one half the radius of the outer
    one (``sklearn.datasets.make_circles`` with ``factor=0.5``), gaussian
    noise, default standard deviation 0.05.
``xor``
    Points uniform on the square [-1, 1]^2. The label is 1 when
    ``x1 * x2 > 0`` (first or third quadrant), else 0. The label comes from
    the clean point, and gaussian noise (default 0, i.e. none) is then added
    to the coordinates.
``spirals``
    Two interleaved Archimedean spirals in 2-D, about 1.5 turns each. The
    radius grows from 0 to 1 along each arm, the second arm is the first
    turned by half a turn, and gaussian noise (default standard deviation
    0.05) is added to the coordinates. The classes are balanced.
``spheres``
    Two concentric spheres in 3-D, radius 1 (class 0) and radius 2 (class 1),
    directions uniform on the sphere, and gaussian noise (default standard
    deviation 0.1) added to the radius. The classes are balanced.
``gaussian``
    Two isotropic unit-variance gaussian classes in 2-D with means (-1, 0)
    (class 0) and (+1, 0) (class 1). The classes are balanced. The ``noise``
    argument is ignored.

Shipped sets are the small tables that come with scikit-learn, so no network
is needed. Every feature is standardised with the mean and standard
deviation of the whole table (a constant column becomes 0). The rows are
shuffled with the seed and then split into probe, held-out and train rows,
and no row is in more than one split:

``digits``
    8x8 images of handwritten digits: 1797 rows, 64 features, 10 classes.
``iris``
    Iris flower measurements: 150 rows, 4 features, 3 classes.
``wine``
    Chemical analysis of wines: 178 rows, 13 features, 3 classes.
``breast_cancer``
    Wisconsin diagnostic breast cancer: 569 rows, 30 features, 2 classes.

``normal`` (GENNI's setting) has no labels: inputs i.i.d. N(0, I_dim) with ``dim`` given, probe,
held-out and training rows from independent streams; its ``y_*`` are None, so only random or
loaded references go with it.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genni.errors import ConfigError

__all__ = ["DATASETS", "Dataset", "dataset_info", "image_shape", "load_dataset", "shift_inputs"]

_GENERATED: tuple[str, ...] = (
    "moons",
    "circles",
    "xor",
    "spirals",
    "spheres",
    "gaussian",
)
_SHIPPED: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer")

_UNLABELLED: tuple[str, ...] = ("normal",)

DATASETS: tuple[str, ...] = _GENERATED + _SHIPPED + _UNLABELLED

# name -> (d_in, n_classes, n_rows); n_rows is None for generated sets.
_INFO: dict[str, tuple[int, int, int | None]] = {
    "moons": (2, 2, None),
    "circles": (2, 2, None),
    "xor": (2, 2, None),
    "spirals": (2, 2, None),
    "spheres": (3, 2, None),
    "gaussian": (2, 2, None),
    "digits": (64, 10, 1797),
    "iris": (4, 3, 150),
    "wine": (13, 3, 178),
    "breast_cancer": (30, 2, 569),
    "normal": (0, 0, None),  # d_in = the config's dim; no labels
}

# Noise used when ``noise=None``.
_DEFAULT_NOISE: dict[str, float] = {
    "moons": 0.1,
    "circles": 0.05,
    "xor": 0.0,
    "spirals": 0.05,
    "spheres": 0.1,
    "gaussian": 0.0,
}

_STD_FLOOR = 1e-12
_SPIRAL_TURNS = 1.5


@dataclass(frozen=True, eq=False)
class Dataset:
    """One data set split into train, probe and held-out parts.

    Attributes
    ----------
    name : str
        One of ``DATASETS``.
    d_in : int
        Number of input features.
    n_classes : int
        Number of classes; labels are ``0 .. n_classes - 1``.
    X_train : ndarray, shape [n_train, d_in]
        float64 training inputs.
    y_train : ndarray, shape [n_train]
        int64 training labels.
    X_probe : ndarray, shape [n_probe, d_in]
        float64 probe inputs.
    y_probe : ndarray, shape [n_probe]
        int64 probe labels.
    X_heldout : ndarray, shape [n_heldout, d_in]
        float64 held-out inputs.
    y_heldout : ndarray, shape [n_heldout]
        int64 held-out labels.
    """

    name: str
    d_in: int
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_probe: np.ndarray
    y_probe: np.ndarray
    X_heldout: np.ndarray
    y_heldout: np.ndarray


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _INFO:
        raise ConfigError(
            f"unknown dataset '{name}' (choose from: {', '.join(DATASETS)})"
        )
    return name


def dataset_info(name: str, dim: int | None = None) -> tuple[int, int, int | None]:
    """Describe a data set without generating or loading anything.

    Parameters
    ----------
    name : str
        One of ``DATASETS``.

    Returns
    -------
    (d_in, n_classes, n_rows) : tuple of int, int, int or None
        ``n_rows`` is the number of rows of a shipped table, or None for a
        generated set (which can draw any number of points).

    Raises
    ------
    ConfigError
        If ``name`` is not a known data set, or ``normal`` comes without a positive ``dim``.
    ``normal`` (inputs i.i.d. N(0, I_dim), no labels) has ``d_in = dim`` and 0 classes.
    """
    name = _check_name(name)
    if name in _UNLABELLED:
        return (_check_count("dim", dim, minimum=1), 0, None)
    return _INFO[name]


_IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {"digits": (1, 8, 8)}


def image_shape(name: str, shape: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
    """The [C, H, W] an input row is (rows are stored flattened, row-major): ``digits`` are 1×8×8
    images; ``normal`` inputs are images when the config gives ``[data] shape``; otherwise None."""
    if shape is not None:
        return tuple(int(s) for s in shape)
    return _IMAGE_SHAPES.get(name)


def _check_count(key: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        if minimum == 1:
            raise ConfigError(f"{key} must be positive, got {value}")
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _as_arrays(
    X: np.ndarray, y: np.ndarray, d_in: int
) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64).reshape(-1, d_in))
    y = np.ascontiguousarray(np.asarray(y, dtype=np.int64).reshape(-1))
    return X, y


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Labels with class counts differing by at most one, in random order."""
    return rng.permutation(np.arange(n, dtype=np.int64) % n_classes)


def _sklearn_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _gen_moons(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n, noise=noise, random_state=_sklearn_seed(rng))


def _gen_circles(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(
        n_samples=n, noise=noise, factor=0.5, random_state=_sklearn_seed(rng)
    )


def _gen_xor(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    if noise > 0:
        X = X + noise * rng.standard_normal((n, 2))
    return X, y


def _gen_spirals(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    y = _balanced_labels(n, 2, rng)
    t = rng.uniform(0.0, 1.0, size=n)  # position along the arm; radius = t
    angle = 2.0 * np.pi * _SPIRAL_TURNS * t + np.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    if noise > 0:
        X = X + noise * rng.standard_normal((n, 2))
    return X, y


def _gen_spheres(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    y = _balanced_labels(n, 2, rng)
    direction = rng.standard_normal((n, 3))
    # A normalised isotropic gaussian vector is uniform on the unit sphere.
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = 1.0 + y.astype(np.float64)
    if noise > 0:
        radius = radius + noise * rng.standard_normal(n)
    return direction * radius[:, None], y


def _gen_gaussian(
    n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    del noise  # unit variance by definition
    y = _balanced_labels(n, 2, rng)
    X = rng.standard_normal((n, 2))
    X[:, 0] += 2.0 * y - 1.0
    return X, y


_Generator = Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]

_GENERATORS: dict[str, _Generator] = {
    "moons": _gen_moons,
    "circles": _gen_circles,
    "xor": _gen_xor,
    "spirals": _gen_spirals,
    "spheres": _gen_spheres,
    "gaussian": _gen_gaussian,
}


def _generate(
    name: str, n: int, noise: float, seq: np.random.SeedSequence
) -> tuple[np.ndarray, np.ndarray]:
    d_in = _INFO[name][0]
    if n == 0:
        return _as_arrays(np.empty((0, d_in)), np.empty(0), d_in)
    X, y = _GENERATORS[name](n, noise, np.random.default_rng(seq))
    return _as_arrays(X, y, d_in)


@functools.cache
def _shipped_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole standardised table (read-only arrays, cached)."""
    from sklearn import datasets

    loader = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    mean = X.mean(axis=0)
    std = np.maximum(X.std(axis=0), _STD_FLOOR)
    X = (X - mean) / std
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_dataset(
    name: str,
    *,
    n_probe: int,
    n_heldout: int,
    n_train: int = 1000,
    seed: int = 0,
    noise: float | None = None,
    dim: int | None = None,
) -> Dataset:
    """Load or generate a data set, split into train, probe and held-out parts.

    Parameters
    ----------
    name : str
        One of ``DATASETS``.
    n_probe : int
        Number of probe rows (positive).
    n_heldout : int
        Number of held-out rows (positive).
    n_train : int, default 1000
        Number of training rows (zero or more). A generated set draws exactly
        this many. A shipped set takes this many of the rows left after the
        probe and held-out rows, or all of them if fewer are left; 0 gives an
        empty training part.
    seed : int, default 0
        Seed for all randomness. The same seed gives bitwise-identical
        arrays. For a generated set the three parts come from independent
        streams; for a shipped set the seed fixes the row shuffle.
    noise : float or None, default None
        Noise level of a generated set (see the module docstring); None means
        the set's own default. Ignored by ``gaussian`` and the shipped sets.

    Returns
    -------
    Dataset
        With fields

        X_train : ndarray, shape [n_train, d_in]
            float64, C-contiguous (for a shipped set ``n_train`` may be
            smaller than asked, see above).
        y_train : ndarray, shape [n_train]
            int64 labels in ``0 .. n_classes - 1``.
        X_probe : ndarray, shape [n_probe, d_in]
            float64, C-contiguous.
        y_probe : ndarray, shape [n_probe]
            int64.
        X_heldout : ndarray, shape [n_heldout, d_in]
            float64, C-contiguous.
        y_heldout : ndarray, shape [n_heldout]
            int64.

    Raises
    ------
    ConfigError
        If the name is unknown, a count is out of range, the noise is negative,
        or a shipped table has too few rows for ``n_probe + n_heldout`` plus
        at least one training row.
    """
    name = _check_name(name)
    n_probe = _check_count("n_probe", n_probe, minimum=1)
    n_heldout = _check_count("n_heldout", n_heldout, minimum=1)
    n_train = _check_count("n_train", n_train, minimum=0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if noise is not None:
        if (
            isinstance(noise, bool)
            or not isinstance(noise, numbers.Real)
            or not np.isfinite(noise)
            or noise < 0
        ):
            raise ConfigError(f"noise must be a non-negative number, got {noise!r}")
        noise = float(noise)

    d_in, n_classes, n_rows = dataset_info(name, dim)

    if name in _UNLABELLED:  # GENNI's setting: i.i.d. N(0, I) inputs, probe and held-out drawn independently
        seq_train, seq_probe, seq_heldout = np.random.SeedSequence(seed).spawn(3)
        draw = lambda seq, n: np.random.default_rng(seq).standard_normal((n, d_in))  # noqa: E731
        return Dataset(name=name, d_in=d_in, n_classes=0, X_train=draw(seq_train, n_train), y_train=None,
                       X_probe=draw(seq_probe, n_probe), y_probe=None, X_heldout=draw(seq_heldout, n_heldout),
                       y_heldout=None)

    if n_rows is None:
        level = _DEFAULT_NOISE[name] if noise is None else noise
        seq_train, seq_probe, seq_heldout = np.random.SeedSequence(seed).spawn(3)
        X_train, y_train = _generate(name, n_train, level, seq_train)
        X_probe, y_probe = _generate(name, n_probe, level, seq_probe)
        X_heldout, y_heldout = _generate(name, n_heldout, level, seq_heldout)
    else:
        if n_probe + n_heldout > n_rows - 1:
            raise ConfigError(
                f"{name} has {n_rows} rows; n_probe + n_heldout = {n_probe + n_heldout} "
                f"must leave at least one for training (at most {n_rows - 1})"
            )
        X_all, y_all = _shipped_table(name)
        order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(n_rows)
        probe_idx = order[:n_probe]
        heldout_idx = order[n_probe : n_probe + n_heldout]
        train_idx = order[n_probe + n_heldout :][:n_train]
        X_train, y_train = _as_arrays(X_all[train_idx], y_all[train_idx], d_in)
        X_probe, y_probe = _as_arrays(X_all[probe_idx], y_all[probe_idx], d_in)
        X_heldout, y_heldout = _as_arrays(X_all[heldout_idx], y_all[heldout_idx], d_in)

    return Dataset(
        name=name,
        d_in=d_in,
        n_classes=n_classes,
        X_train=X_train,
        y_train=y_train,
        X_probe=X_probe,
        y_probe=y_probe,
        X_heldout=X_heldout,
        y_heldout=y_heldout,
    )


DEFAULT_N_FAR = 4096
DEFAULT_FAR_SCALE = 3.0


def input_stream(name: str, *, seed: int = 0, noise: float | None = None, dim: int | None = None):
    """Fresh inputs from a generated data set's distribution, for questions that need more inputs than
    the probe holds (does the rank of J stop growing?).  A fourth stream of the run's seed, independent
    of the train, probe and held-out parts; the same seed and sequence of calls give the same points.

    returns : draw(n) -> ndarray, shape [n, d_in], float64
    raises : ConfigError for a shipped table (it has no rows beyond its own)
    """
    name = _check_name(name)
    d_in, _, n_rows = dataset_info(name, dim)
    if n_rows is not None:
        raise ConfigError(f"{name} is a shipped table of {n_rows} rows: it has no fresh inputs to draw")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(4)[3])
    level = _DEFAULT_NOISE.get(name, 0.0) if noise is None else float(noise)

    def draw(n: int) -> np.ndarray:
        if name in _UNLABELLED:
            return rng.standard_normal((n, d_in))
        return _as_arrays(*_GENERATORS[name](n, level, rng), d_in)[0]

    return draw


def far_inputs(X: np.ndarray, n: int = DEFAULT_N_FAR, *, scale: float = DEFAULT_FAR_SCALE,
               seed: int = 0) -> tuple[np.ndarray, dict]:
    """Inputs far outside the data, on which "equivalent on the data" and "equivalent" part.

    A Gaussian cloud around the data: with centre c = mean of the rows of X and the data's
    radius r = max_x ‖x − c‖,

        x_far = c + (scale · r / √d) · z,    z ~ N(0, I_d),

    so the root-mean-square distance from c is scale · r (3 r by default): for d = 2 about
    90 % of the points lie outside the ball that holds the data, and they reach well past it
    in every direction.  The stream is seeded by (seed, "far"), so the same run config gives
    bitwise the same points.

    X : ndarray, shape [m, d] (the probe and held-out inputs together)
    returns : (X_far : ndarray, shape [n, d], float64;  facts : dict of ``centre`` [d],
        ``radius``, ``scale``, ``how`` (the sentence above))
    """
    X = np.asarray(X, dtype=np.float64)
    n = _check_count("n_far", n, minimum=1)
    if X.ndim != 2 or len(X) == 0:
        raise ConfigError(f"far inputs need a non-empty [m, d] array of data inputs, got shape {X.shape}")
    if not (isinstance(scale, numbers.Real) and np.isfinite(scale) and scale > 0):
        raise ConfigError(f"far_scale must be a positive number, got {scale!r}")
    d = X.shape[1]
    centre = X.mean(0)
    radius = float(np.sqrt(((X - centre) ** 2).sum(1).max()))
    if radius == 0.0:
        radius = 1.0  # all inputs coincide: a unit cloud around them
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFA7]))
    X_far = np.ascontiguousarray(centre + (scale * radius / np.sqrt(d)) * rng.standard_normal((n, d)))
    how = (f"Gaussian cloud around the data's mean: per-coordinate std {scale:g}·r/√d with r = {radius:.4g} "
           f"(largest distance of a probe or held-out input from the mean), i.e. RMS distance {scale:g}·r")
    return X_far, {"centre": centre, "radius": radius, "scale": float(scale), "how": how}


def shift_inputs(X: np.ndarray, *, rotate: float = 0.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A shifted copy of a data set's inputs, for asking how networks that agree on the data disagree
    under a change of distribution; the labels stay those of the unshifted rows.

    ``rotate`` (degrees, 2-D inputs only): every row turned by that angle about the mean of the rows,
        x' = c + R(angle)(x − c),  c = mean of X
    (a covariate shift: the class regions turn with the inputs, the network's boundary does not).
    ``noise`` (≥ 0): then isotropic Gaussian noise of that standard deviation added to every coordinate,
        x'' = x' + noise · z,  z ~ N(0, I_d),
    in the data's units (for a shipped table, standard deviations of each feature).  For ``moons``,
    ``circles``, ``spirals`` and ``xor`` this is the same distribution as drawing the set with noise
    √(σ² + noise²) in place of its own σ.  The stream is seeded by (seed, "shift"), so the same
    arguments give bitwise the same array.

    X : ndarray, shape [n, d];  returns : ndarray, shape [n, d], float64 (X itself is not changed)
    raises : ConfigError for a rotation of inputs that are not 2-D, or a non-finite or negative noise
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ConfigError(f"shift_inputs needs a non-empty [n, d] array of inputs, got shape {X.shape}")
    for key, value in (("rotate", rotate), ("noise", noise)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if noise < 0:
        raise ConfigError(f"noise must be non-negative, got {noise!r}")
    out = X.copy()
    if rotate:
        if X.shape[1] != 2:
            raise ConfigError(f"rotate turns 2-D inputs; these have {X.shape[1]} features (use noise)")
        a = np.deg2rad(float(rotate))
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        c = X.mean(0)
        out = c + (X - c) @ R.T
    if noise:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5F1F7]))
        out = out + float(noise) * rng.standard_normal(X.shape)
    return np.ascontiguousarray(out)
