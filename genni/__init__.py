"""genni: symmetries and identifiability of neural networks.

Find many parameter sets that compute the same function as a reference network,
store them in one HDF5 file per run, and explain and draw them.
"""

from . import stages
from ._version import __version__
from .config import load as load_config
from .data import DATASETS, Dataset, load_dataset
from .errors import ConfigError, GenniError
from .geometry import distance, pairwise, ricci_layers
from .identifiability import output_jacobian, spectrum
from .nets import ACTIVATIONS, MLPSpec, forward, init_theta, jacobian
from .params import flatten, module_to_theta, n_params, unflatten
from .search import Found, Problem, SearchSettings, discrepancy, run_search
from .stages.calls import find, identify, layer_paths, project, ricci
from .store import RunData, load_run
from .symmetries import GroupElement, align, canonicalise

__all__ = [
    "__version__",
    "ACTIVATIONS", "DATASETS",
    "ConfigError", "GenniError",
    "Dataset", "Found", "MLPSpec", "Problem", "RunData", "SearchSettings",
    "GroupElement", "align", "canonicalise", "identify", "output_jacobian", "spectrum",
    "discrepancy", "distance", "pairwise", "find", "flatten", "forward", "init_theta", "jacobian",
    "project", "layer_paths", "ricci", "ricci_layers",
    "load_config", "load_dataset", "load_run", "module_to_theta", "n_params",
    "run_search", "stages", "unflatten",
]
