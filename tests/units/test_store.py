"""HDF5 run files: round trip, streaming + resume after an interruption, refusals."""

import json

import h5py
import numpy as np
import pytest

import genni
from genni import config, store
from genni.errors import GenniError
from genni.models import MLP


class Interrupt(Exception):
    pass


@pytest.fixture
def cfg(tiny_config):
    return config.load(tiny_config)


def test_round_trip(tmp_path, cfg):
    path = tmp_path / "run.h5"
    info = genni.find(cfg, path)
    assert info["created"] and info["n_new"] == 6
    run = store.load_run(path)
    assert run.config == cfg
    assert run.architecture["widths"] == [2, 6, 1]
    assert run.n_equivalents == 6
    assert sorted(run.equivalents["index"]) == list(range(6))
    assert run.equivalents["theta"].shape == (6, run.theta_ref.shape[0])
    # the stored discrepancies are those of the stored θ (recomputed independently)
    spec = MLP.from_dict(run.architecture)
    out = spec.forward(__import__("torch").as_tensor(run.equivalents["theta"]), __import__("torch").as_tensor(run.X)).numpy()
    d = ((out - run.Y) ** 2).sum(-1).mean(-1)
    np.testing.assert_allclose(run.equivalents["discrepancy"], d, rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(run.equivalents["converged"], d <= cfg["search"]["tol"])
    # readable with plain h5py: contract names and attributes
    with h5py.File(path, "r") as f:
        for key in ("genni_version", "schema_version", "created", "config", "seed"):
            assert key in f.attrs
        assert json.loads(f["reference/theta"].attrs["architecture"])["activation"] == "tanh"
        assert f["equivalents/theta"].maxshape == (None, run.theta_ref.shape[0])
        assert f["equivalents/theta"].chunks is not None
        assert f["probe/X"].shape == (64, 2) and f["probe/Y_heldout"].shape == (64, 1)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, cfg):
    full = tmp_path / "full.h5"
    genni.find(cfg, full)
    part = tmp_path / "part.h5"
    seen = []

    def boom(chunk):
        seen.append(len(chunk))
        if sum(seen) >= 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        genni.find(cfg, part, callback=boom)
    # the chunk that raised never reached the file; earlier ones did
    stored = store.load_run(part).n_equivalents
    assert stored == sum(seen[:-1]) < 6
    info = genni.find(cfg, part)
    assert not info["created"] and info["n_new"] == 6 - stored
    a, b = store.load_run(full), store.load_run(part)
    oa, ob = np.argsort(a.equivalents["index"]), np.argsort(b.equivalents["index"])
    np.testing.assert_array_equal(a.equivalents["index"][oa], b.equivalents["index"][ob])
    np.testing.assert_allclose(a.equivalents["theta"][oa], b.equivalents["theta"][ob], rtol=0, atol=1e-9)
    # asking for more extends the run; asking again for the same does nothing
    more = config.with_overrides(cfg, n=8)
    assert genni.find(more, part)["n_new"] == 2
    assert genni.find(more, part)["n_new"] == 0
    assert store.load_run(part).equivalents_attrs["n_requested"] == 8


def test_changed_config_is_refused_and_file_untouched(tmp_path, cfg):
    path = tmp_path / "run.h5"
    genni.find(cfg, path)
    before = path.read_bytes()
    other = config.with_overrides(cfg, seed=99)
    with pytest.raises(GenniError, match="different config \\(seed differ"):
        genni.find(other, path)
    assert path.read_bytes() == before


def test_foreign_truncated_and_missing_files(tmp_path):
    with pytest.raises(GenniError, match="not found"):
        store.load_run(tmp_path / "nope.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(GenniError, match="not an HDF5 file"):
        store.load_run(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(GenniError, match="not a genni run"):
        store.load_run(foreign)


def test_truncated_file_is_refused(tmp_path, cfg):
    path = tmp_path / "run.h5"
    genni.find(cfg, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(GenniError):
        store.load_run(cut)
    with pytest.raises(GenniError):
        genni.find(cfg, cut)
    assert cut.read_bytes() == data[: len(data) // 2]


def test_create_refuses_to_overwrite(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("keep me")
    with pytest.raises(GenniError, match="already exists"):
        store.create_run(p, config={}, architecture={}, theta_ref=np.zeros(3), reference={},
                         X=np.zeros((1, 1)), X_heldout=np.zeros((1, 1)), Y=np.zeros((1, 1)), Y_heldout=np.zeros((1, 1)))
    assert p.read_text() == "keep me"


@pytest.mark.parametrize("shape, run", [((5, 7), 3), ((4, 3, 6), 7), ((9,), 4)])
def test_grid_values_written_in_runs_land_in_place(tmp_path, cfg, shape, run):
    path = tmp_path / "run.h5"
    genni.find(config.with_overrides(cfg, n=1), path)
    sig = {"signature": "x"}
    done = store.prepare_projection(path, "g", arrays={"axes": np.zeros((len(shape), 1))}, attrs=sig, grid_shape=shape)
    assert not done["values"].any()
    truth = np.random.default_rng(0).normal(size=shape)
    flat = truth.reshape(-1)
    for start in range(0, flat.size, run):
        idx = np.arange(start, min(start + run, flat.size))
        store.write_grid_values(path, "g", "values", idx, flat[idx])
    got = store.load_run(path).projections["g"]
    assert np.array_equal(got["values"], truth) and np.isnan(got["values_heldout"]).all()
    with pytest.raises(GenniError, match="contiguous"):
        store.write_grid_values(path, "g", "values", np.array([0, 2]), np.zeros(2))
    # the same signature keeps the values (resume); another one starts afresh
    assert store.prepare_projection(path, "g", arrays={}, attrs=sig, grid_shape=shape)["values"].all()
    assert not store.prepare_projection(path, "g", arrays={"axes": np.zeros(1)}, attrs={"signature": "y"},
                                        grid_shape=shape)["values"].any()
