import os
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)  # small tensors: a second thread buys little and thrashes when the cores are busy

TINY_CONFIG = """
name = "tiny"
seed = 1
[data]
dataset = "moons"
n_probe = 64
n_heldout = 64
n_train = 200
[model]
widths = [2, 6, 1]
activation = "tanh"
[reference]
source = "random"
init_scale = 3.0
[search]
n = 6
tol = 1e-10
batch_size = 4
restarts = 1
"""


@pytest.fixture
def tiny_config(tmp_path):
    """Path to a tiny, fast experiment config."""
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_CONFIG)
    return p


def append_symmetry_copies(path, k: int, seed: int = 0) -> int:
    """Append k exact symmetry copies of the stored θ* (the stored model's own group, sampled with this
    seed) as converged elements; returns how many elements the run held before."""
    from genni import models, store

    run = store.load_run(path)
    model = models.from_dict(run.architecture)
    theta = np.stack([model.symmetry.act(run.theta_ref, g) for g in model.symmetry.sample(k, np.random.default_rng(seed))])
    start = int(run.equivalents["index"].max()) + 1 if run.n_equivalents else 0
    zeros = np.zeros(k)
    store.append_equivalents(path, types.SimpleNamespace(
        index=np.arange(start, start + k), theta=theta, discrepancy=zeros, discrepancy_heldout=zeros,
        relative_discrepancy=zeros, relative_discrepancy_heldout=zeros, converged=np.ones(k, bool), steps=zeros,
        restarts=zeros, init_seed=zeros, status=zeros, dead_units=zeros, hops=zeros))
    return run.n_equivalents


def run_contents(path: Path) -> dict:
    """Every dataset and attribute of a run file, except what records when or how fast it ran."""
    out = {}

    def keep(name: str) -> bool:
        return "seconds" not in name and not name.endswith(("@created", "@genni_version"))

    def visit(name, obj):
        for k, v in obj.attrs.items():
            if keep(f"{name}@{k}"):
                out[f"{name}@{k}"] = v
        if isinstance(obj, h5py.Dataset) and keep(name):
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            if keep(f"@{k}"):
                out[f"@{k}"] = v
        f.visititems(visit)
    return out


def bitwise_same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:  # strings: compare the values, not the pointers
        return a.shape == b.shape and a.tolist() == b.tolist()
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
