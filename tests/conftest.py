import os

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
"""


@pytest.fixture
def tiny_config(tmp_path):
    """Path to a tiny, fast experiment config."""
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_CONFIG)
    return p
