r"""The equivalence search: many parameter sets θ with f_θ(X) = f_θ*(X), found together.

Objective (for every element independently):

    L(θ) = (1/n) Σ_{x ∈ X} ‖f_θ(x) − f_θ*(x)‖²        (probe set X, n inputs)

All active candidates advance together, in lock-step, as one batch θ of shape [B, P]
(on a GPU as batched tensor operations; on the CPU element by element, each single-threaded, spread
over one worker thread per core, which keeps every element's bits independent of its batch-mates and
of the thread count, see :mod:`~genni.search.batching`).  Finished elements (converged, or out of
attempts) leave the batch and are replaced by new ones from the queue, so memory is set by the batch
size, not by how many elements are asked for, and results stream out as they finish.

The package, by idea:

* :mod:`~genni.search.settings` — :class:`SearchSettings`, its defaults, :data:`STATUS`, :func:`resolve_solver`;
* :mod:`~genni.search.problem` — :class:`Problem` (what to match), :class:`Found` (what comes back),
  :func:`as_found` (a :class:`Found` for θ found some other way);
* :mod:`~genni.search.steps` — one LM (direct or matrix-free) or Adam step, with the maths;
* :mod:`~genni.search.batching` — element by element on worker threads on the CPU, batched off it;
* :mod:`~genni.search.driver` — the batch: attempts, hops, restarts, dead units; :func:`stream` and
  :func:`run_search`.
"""

from .driver import batch_capacity, run_search, stream
from .problem import Found, Problem, as_found, count_dead_units
from .settings import CG_AUTO_P, DEFAULT_MAX_STEPS, DEFAULT_PATIENCE, STATUS, SearchSettings, resolve_solver

__all__ = ["STATUS", "DEFAULT_MAX_STEPS", "DEFAULT_PATIENCE", "CG_AUTO_P", "SearchSettings", "resolve_solver",
           "Problem", "Found", "as_found", "count_dead_units", "batch_capacity", "stream", "run_search"]
