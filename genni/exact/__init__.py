"""Exact answers for piecewise-linear (relu, leaky-relu) MLPs on a whole input domain.

``domain``: the box D the answers hold on;  ``pieces``: each network's activation patterns and the
affine maps on their regions;  ``kinks``: each unit's boundary located along lines, and inputs on both
sides of it (the inputs that find the rank of J).
"""

from .domain import DEFAULT_DOMAIN_SCALE, Domain, default_domain, normal_box, probe_box
from .kinks import Kinks, KinkStream, Lines, clip_lines, kink_inputs, kink_stream, line_kinks, random_lines
from .pieces import Network, Pieces, check_piecewise_linear

__all__ = ["DEFAULT_DOMAIN_SCALE", "Domain", "default_domain", "normal_box", "probe_box", "Network", "Pieces",
           "check_piecewise_linear", "Kinks", "KinkStream", "Lines", "clip_lines", "kink_inputs", "kink_stream",
           "line_kinks", "random_lines"]
