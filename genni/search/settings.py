"""How to search: :class:`SearchSettings` (the ``[search]`` section of a config), its defaults and
the status codes of a finished element."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

STATUS = ("converged", "stalled", "max_steps", "diverged", "dead_units")
"""Why an element finished; ``/equivalents/status`` stores the index into this tuple."""

DEFAULT_MAX_STEPS = {"lm": 400, "adam": 5000}
"""Steps per attempt when ``max_steps`` is not given, per method."""
DEFAULT_PATIENCE = {"lm": 40, "adam": 500}
"""Steps without enough progress after which an attempt stalls when ``patience`` is not given, per method."""
CG_AUTO_P = 4096
"""``solver = "auto"`` takes the matrix-free step above this many parameters (one element's JᵀJ is
then 128 MB or more in float64)."""

MU0_NEAR = 1e-3
"""LM's initial μ (relative to mean diag(JᵀJ)) for a start near a solution (``mu0`` unset)."""
MU0_FAR = 1.0
"""LM's initial μ for a random draw of the initialisation (``mu0`` unset)."""

MU_MIN, MU_MAX = 1e-15, 1e12
"""LM's damping μ is kept ≥ MU_MIN; an element whose μ exceeds MU_MAX has no descent direction (stalled)."""


@dataclass(frozen=True)
class SearchSettings:
    """How to search (the ``[search]`` section of a config).

    n : elements requested;  tol : converged when L ≤ tol (absolute, mean squared)
    method : "lm" | "adam";  max_steps : steps per attempt (None: method default)
    batch_size : elements advanced together;  restarts : extra attempts per element
    init : "random" (torch.nn.Linear's init × init_scale) | "perturb" (θ* + a random
        init × init_scale);  lr : Adam's learning rate;  device : torch device
    patience, stall_factor : an attempt stalls when L has not fallen to stall_factor·L
        within ``patience`` steps (None: method default)
    memory_mb : cap on the batch's Jacobian working memory (shrinks the batch if needed)
    damping : "marquardt" | "identity" (LM's D, see the module docstring)
    revive : re-draw dead ReLU units (f unchanged) instead of losing them
    hops, hop_scale : perturbations of a stalled element before it restarts
    mu0 : initial μ (None: :meth:`initial_mu`'s rule: 1 for a random draw, 10⁻³ for a start near a solution)
    geodesic : α of geodesic acceleration (0: off; direct solver only)
    precision : "mixed" (direct LM: JᵀJ and its factorisation in float32 while μ bounds the step's error,
        :func:`genni.search.steps.single_precision`; float64 otherwise) | "float64" (throughout)
    solver : "direct" (Cholesky of JᵀJ + μD, forms J and JᵀJ) | "cg" (matrix-free: preconditioned
        conjugate gradients with J·v and Jᵀ·u) | "auto" (cg when P > CG_AUTO_P, resolved by
        :func:`resolve_solver`);  cg_tol, cg_max : the inner solver's stopping rule
    """

    n: int = 64
    tol: float = 1e-10
    method: str = "lm"
    max_steps: int | None = None
    batch_size: int = 64
    init: str = "random"
    init_scale: float = 1.0
    restarts: int = 4
    lr: float = 1e-2
    device: str = "cpu"
    patience: int | None = None
    memory_mb: float = 1024.0
    damping: str = "identity"
    revive: bool = True
    hops: int = 3
    hop_scale: float = 0.003
    stall_factor: float = 0.5
    mu0: float | None = None
    geodesic: float = 0.75
    precision: str = "mixed"
    solver: str = "auto"
    cg_tol: float = 1e-6
    cg_max: int = 250

    @property
    def matrix_free(self) -> bool:
        """The LM step by conjugate gradients (``solver = "cg"``, or ``"auto"`` above :data:`CG_AUTO_P`)."""
        return self.method == "lm" and self.solver == "cg"

    @classmethod
    def from_config(cls, section: dict) -> SearchSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in names})

    def initial_mu(self, random_draw: bool) -> float:
        """μ at the start of an attempt: ``mu0`` when set; otherwise :data:`~genni.search.settings.MU0_FAR` for a random draw of
        the initialisation (far from any solution: a gradient-like first step), :data:`~genni.search.settings.MU0_NEAR` for a
        start near a solution (θ* + noise, a given start, a hop from a stalled point), where Gauss–Newton
        steps are good at once (Madsen, Nielsen & Tingleff's rule of thumb, with μ relative to mean diag(JᵀJ))."""
        if self.mu0 is not None:
            return self.mu0
        return MU0_FAR if random_draw else MU0_NEAR

    @property
    def steps_per_attempt(self) -> int:
        return self.max_steps or DEFAULT_MAX_STEPS[self.method]

    @property
    def stall_window(self) -> int:
        return self.patience or DEFAULT_PATIENCE[self.method]


def resolve_solver(settings: SearchSettings, n_params: int) -> SearchSettings:
    """``solver = "auto"`` made concrete: "cg" when P > :data:`CG_AUTO_P`, else "direct"."""
    if settings.solver not in ("auto", "direct", "cg"):
        raise ValueError(f"solver must be auto, direct or cg, got {settings.solver!r}")
    if settings.solver != "auto":
        return settings
    return replace(settings, solver="cg" if n_params > CG_AUTO_P else "direct")


__all__ = ["STATUS", "DEFAULT_MAX_STEPS", "DEFAULT_PATIENCE", "CG_AUTO_P", "MU0_NEAR", "MU0_FAR", "MU_MIN", "MU_MAX",
           "SearchSettings", "resolve_solver"]
