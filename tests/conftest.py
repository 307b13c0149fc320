import os
import types

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))

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
