"""Every stage of the default experiment at small sizes, through the command line, into one run file.

``python -m tools.reference_run OUT.h5`` writes the run file and ``OUT.json`` (the machine and library
versions it was made with).  ``tests/system/test_reference_run.py`` runs the same sequence and compares
with ``tests/data/reference_default.h5``: bitwise where the machine fingerprint matches (same CPU model,
same torch / numpy / scipy, one thread everywhere), the layout (datasets, attributes, shapes, dtypes)
everywhere.

The sequence is the built-in default experiment (two moons, a 2-16-16-1 relu network trained on their
labels, elements from θ* + 1 % noise) with fewer elements and smaller grids than ``genni run``:
find (3 elements), walk (1 chain, 3 steps), identify, layer paths under two metrics, Ricci curvature,
three projections (pca 2-D with a path, null 2-D, pca 3-D) and a connecting path between two stored
elements.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def stages(out: str) -> list[list[str]]:
    """The command lines, in order (the default experiment: no config)."""
    q = "--quiet"
    return [
        ["find", "DEFAULT", "-o", out, "--n", "3", q],
        ["walk", out, "--chains", "1", "--steps", "3", q],
        ["identify", out, q],
        ["paths", out, q],
        ["paths", out, "--metric", "zscore_procrustes", q],
        ["ricci", out, "--bootstrap", "20", "--max-networks", "3", q],
        ["project", out, "--resolution", "21", "--paths", "1", q],
        ["project", out, "--subspace", "null", "--resolution", "15", "--paths", "0", q],
        ["project", out, "--dims", "3", "--resolution", "7", "--paths", "0", q],
        ["connect", out, "1", "2", "--max-steps", "20", q],
    ]


def fingerprint() -> dict:
    """What must match for bitwise equality: the CPU model, the libraries and the thread count."""
    import numpy
    import scipy
    import torch

    from genni.machine import cpu_name
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    simd = sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    return {"cpu": cpu_name(), "simd": " ".join(simd), "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "threads": torch.get_num_threads()}


def default_config(folder: Path) -> Path:
    """The built-in default experiment written out as a file (``find`` takes a config path)."""
    from importlib import resources
    p = folder / "default.toml"
    p.write_text(resources.files("genni").joinpath("default.toml").read_text())
    return p


def main(argv: list[str]) -> int:
    """Run inside one process with one thread (the caller sets the environment: see :data:`THREADS_ENV`)."""
    import torch
    torch.set_num_threads(1)
    from genni.cli import main as genni_main
    out = Path(argv[0]).resolve()
    cfg = default_config(out.parent)
    for line in stages(str(out)):
        line = [str(cfg) if a == "DEFAULT" else a for a in line]
        code = genni_main(line)
        if code not in (0, None):
            print(f"reference_run: {' '.join(line)} exited {code}", file=sys.stderr)
            return 1
    out.with_suffix(".json").write_text(json.dumps(fingerprint(), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    for k, v in THREADS_ENV.items():
        if os.environ.get(k) != v:  # the thread environment must be set before numpy and torch load
            os.execve(sys.executable, [sys.executable, "-m", "tools.reference_run", *sys.argv[1:]],
                      {**os.environ, **THREADS_ENV})
    sys.exit(main(sys.argv[1:]))
