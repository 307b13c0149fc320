"""genni: symmetries and identifiability of neural networks.

Find many parameter sets that compute the same function as a reference network,
store them in one HDF5 file per run, and explain and draw them.
"""

from . import discrepancy, objectives, stages
from ._version import __version__
from .config import load as load_config
from .data import DATASETS, Dataset, load_dataset
from .errors import ConfigError, GenniError
from .explore import explore
from .geometry import distance, pairwise, ricci_layers
from .identifiability import output_jacobian, spectrum
from .models import MLP, GroupElement, Model, Symmetry
from .models.activations import ACTIVATIONS
from .models.base import module_to_theta
from .notebook import Run, load_run
from .objectives import Objective
from .search import Found, Problem, SearchSettings, run_search
from .stages.calls import find, identify, layer_paths, project, ricci
from .store import RunData

__all__ = [
    "__version__",
    "ACTIVATIONS", "DATASETS",
    "ConfigError", "GenniError",
    "Dataset", "Found", "MLP", "Model", "Problem", "Run", "RunData", "SearchSettings", "Symmetry", "GroupElement",
    "identify", "output_jacobian", "spectrum",
    "discrepancy", "distance", "pairwise", "explore", "find",
    "project", "layer_paths", "ricci", "ricci_layers",
    "load_config", "load_dataset", "load_run", "module_to_theta",
    "run_search", "stages",
    "objectives", "Objective",
]
