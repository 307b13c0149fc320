"""`genni project`: stored subspaces and grids, resume of an interrupted grid, paths, figures."""

import numpy as np
import pytest
import torch

import genni
from genni import config, projection, stages, store
from genni.cli import main
from genni.discrepancy import discrepancy
from genni.errors import GenniError
from genni.models import MLP


class Interrupt(Exception):
    pass


@pytest.fixture
def run_file(tmp_path, tiny_config):
    path = tmp_path / "run.h5"
    genni.find(config.load(tiny_config), path)
    return path


def test_project_stores_contract_names_and_true_values(run_file):
    info = genni.project(run_file, subspace="pca", resolution=21, paths=2)
    run = store.load_run(run_file)
    p = run.projections["pca"]
    k, P = 2, run.theta_ref.shape[0]
    assert p["basis"].shape == (k, P) and p["origin"].shape == (P,)
    np.testing.assert_allclose(p["basis"] @ p["basis"].T, np.eye(k), atol=1e-12)
    assert p["coords"].shape == (run.n_equivalents, k) and p["residuals"].shape == (run.n_equivalents,)
    assert p["axes"].shape == (k, 21) and p["values"].shape == (21, 21) and p["values_heldout"].shape == (21, 21)
    assert not np.isnan(p["values"]).any() and p["attrs"]["epsilon"] == info["epsilon"]
    # values are the discrepancy at origin + Σ axes[i][j_i] basis[i]
    spec = MLP.from_dict(run.architecture)
    import torch
    for i, j in [(0, 0), (5, 17), (20, 3)]:
        theta = p["origin"] + p["axes"][0, i] * p["basis"][0] + p["axes"][1, j] * p["basis"][1]
        d = discrepancy(spec, torch.as_tensor(theta[None]), torch.as_tensor(run.X), torch.as_tensor(run.Y)).item()
        assert p["values"][i, j] == pytest.approx(d, rel=1e-12, abs=1e-300)
    b = run.projections["barriers"]
    assert b["linear"].shape == (2, 33) and b["barriers"].shape == (3, 3)
    assert b["linear"][:, 0].max() < 1e-20  # every path starts at θ*


def test_interrupted_grid_resumes_to_identical_values(run_file, tmp_path, monkeypatch):
    full = tmp_path / "full.h5"
    full.write_bytes(run_file.read_bytes())
    genni.project(full, subspace="random", resolution=15, paths=0, batch=32)
    calls = {"n": 0}
    real = store.write_grid_runs
    monkeypatch.setattr(stages.project, "WRITE_EVERY", 0.0)  # a write after every chunk

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Interrupt
        return real(*args, **kw)

    monkeypatch.setattr(store, "write_grid_runs", flaky)
    with pytest.raises(Interrupt):
        genni.project(run_file, subspace="random", resolution=15, paths=0, batch=32)
    partial = store.load_run(run_file).projections["random"]["values"]
    assert np.isnan(partial).any() and not np.isnan(partial).all()
    monkeypatch.setattr(store, "write_grid_runs", real)
    genni.project(run_file, subspace="random", resolution=15, paths=0, batch=32)
    a = store.load_run(full).projections["random"]
    b = store.load_run(run_file).projections["random"]
    assert np.array_equal(a["values"], b["values"]) and np.array_equal(a["values_heldout"], b["values_heldout"])


def test_project_errors(run_file):
    with pytest.raises(GenniError, match="run genni identify first"):
        genni.project(run_file, subspace="null", paths=0)
    with pytest.raises(GenniError, match="unknown subspace"):
        genni.project(run_file, subspace="umap")
    with pytest.raises(GenniError, match="must be 2 or 3"):
        genni.project(run_file, dims=4)
    with pytest.raises(GenniError, match="unknown device"):
        genni.project(run_file, device="tpu9", paths=0)
    if not torch.cuda.is_available():
        with pytest.raises(GenniError, match="CUDA is not available"):
            genni.project(run_file, device="cuda", paths=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_grid_on_cuda_equals_cpu(run_file):
    """Same grid on the GPU and the CPU (float64 on both: equal to 1e-12 of the grid's scale)."""
    run = store.load_run(run_file)
    spec = MLP.from_dict(run.architecture)
    sub = projection.random_subspace(spec, run.theta_ref, run.theta_ref[None], k=2, seed=0)
    axes = np.tile(np.linspace(-1, 1, 21), (2, 1))
    cpu = projection.evaluate_grid(spec, run.X, run.Y, sub.origin, sub.basis, axes)
    gpu = projection.evaluate_grid(spec, run.X, run.Y, sub.origin, sub.basis, axes, device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-12 * np.abs(cpu).max())


def test_project_cli_and_figures(run_file, tmp_path, capsys):
    assert main(["identify", str(run_file), "--quiet"]) == 0
    assert main(["project", str(run_file), "--resolution", "11", "--quiet", "--paths", "2"]) == 0
    assert main(["project", str(run_file), "--subspace", "plane", "--resolution", "11", "--quiet", "--paths", "0"]) == 0
    assert main(["project", str(run_file), "--dims", "3", "--resolution", "7", "--quiet", "--paths", "0"]) == 0
    assert main(["project", str(run_file), "--subspace", "plane", "--elements", "0", "99", "--quiet"]) == 2
    figs = tmp_path / "figs"
    assert main(["plot", str(run_file), "-o", str(figs), "--format", "png"]) == 0
    for name in ("projections", "projection_3d", "paths"):
        assert (figs / f"{name}.png").stat().st_size > 10_000
    run = store.load_run(run_file)
    assert {"pca", "plane", "pca_3d", "barriers"} <= set(run.projections)
    assert run.projections["pca_3d"]["values"].shape == (7, 7, 7)


def test_epsilon_is_relative():
    assert projection.default_epsilon(50.0, 1e-6) == pytest.approx(5e-5)
