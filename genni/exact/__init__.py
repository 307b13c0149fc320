"""Exact answers for piecewise-linear (relu, leaky-relu) MLPs on a whole input domain.

``domain``: the box D the answers hold on;  ``pieces``: each network's activation patterns and the
affine maps on their regions;  ``regions``: the linear regions inside D, walked across facets;  ``rank``:
the functional dimension on D, certified where the walk allows;  ``sup``: the certified sup-norm
discrepancy max_{x∈D} max_k |f_θ(x)_k − f_θ*(x)_k| of two parameter sets, by mixed-integer linear
programming (``encoding``: the MILP's encoding of the networks);  ``kinks``: each unit's boundary
located along lines, and inputs on both sides of it (the inputs that find the rank of J).
"""

from .domain import DEFAULT_DOMAIN_SCALE, Domain, default_domain, normal_box, probe_box
from .kinks import Kinks, KinkStream, Lines, clip_lines, kink_inputs, kink_stream, line_kinks, random_lines
from .pieces import Network, Pieces, check_piecewise_linear
from .rank import STATUSES, ExactRank, exact_rank
from .regions import Region, Walk, enumerate_regions, sampled_regions, walk
from .sup import SUP_STATUS_CODES, Sup, certified_sup, certified_sups, relative_bound

__all__ = ["DEFAULT_DOMAIN_SCALE", "Domain", "default_domain", "normal_box", "probe_box", "Network", "Pieces",
           "check_piecewise_linear", "STATUSES", "ExactRank", "exact_rank", "Region", "Walk", "enumerate_regions",
           "sampled_regions", "walk",
           "SUP_STATUS_CODES", "Sup", "certified_sup", "certified_sups", "relative_bound",
           "Kinks", "KinkStream", "Lines", "clip_lines", "kink_inputs", "kink_stream", "line_kinks", "random_lines"]
