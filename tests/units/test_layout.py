"""The package's shape, checked from its source: small files, no import cycle, h5py only in store,
figures that only draw."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

PKG = Path(__file__).resolve().parents[2] / "genni"
MODULES = sorted(PKG.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {_name(p): p for p in MODULES}


def _imports(path: Path) -> set[str]:
    """The genni modules ``path`` imports when it runs, at module level or inside functions ("from pkg
    import x" counts as importing the submodule pkg.x when there is one, else pkg itself); imports under
    ``if TYPE_CHECKING:`` serve annotations only and never run."""
    me = _name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # never executed: annotations only
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "genni"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "genni":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in NAMES else mod)
    return {m for m in out if m in NAMES and m != me}


def test_no_file_in_genni_is_over_600_lines():
    long = {str(p.relative_to(PKG)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_no_import_cycle_anywhere_in_genni():
    """Edges: every import, also those inside functions; a package importing its own submodules and a
    submodule importing its package's siblings are ordinary edges too.  Strongly connected components
    (scipy) of more than one module are cycles."""
    names = sorted(NAMES)
    index = {n: i for i, n in enumerate(names)}
    rows, cols = [], []
    for n in names:
        for m in _imports(NAMES[n]):
            if not n.startswith(m + "."):  # importing one's own parent package runs its __init__ first anyway
                rows.append(index[n])
                cols.append(index[m])
    graph = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    k, labels = connected_components(graph, directed=True, connection="strong")
    cycles = [sorted(names[i] for i in range(len(names)) if labels[i] == c) for c in range(k)]
    assert [c for c in cycles if len(c) > 1] == []


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other inside functions form a cycle."""
    a, b = PKG / "walk.py", PKG / "search" / "__init__.py"
    real = _imports

    def fake(path):
        got = real(path)
        return got | ({"genni.search"} if path == a else {"genni.walk"} if path == b else set())
    monkeypatch.setitem(globals(), "_imports", fake)
    with pytest.raises(AssertionError):
        test_no_import_cycle_anywhere_in_genni()


def test_only_store_imports_h5py_and_plots_only_draw():
    def top(path):
        mods = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                mods.add(node.module.split(".")[0])
        return mods
    h5 = {_name(p) for p in MODULES if "h5py" in top(p)}
    assert h5 and all(n.startswith("genni.store") for n in h5), h5
    compute = {_name(p): top(p) & {"torch", "scipy", "sklearn"} for p in MODULES if _name(p).startswith("genni.plots")}
    assert all(not v for v in compute.values()), compute
    plots_use = set().union(*(_imports(p) for p in MODULES if _name(p).startswith("genni.plots")))
    assert {m for m in plots_use if not m.startswith("genni.plots")} <= {"genni.store", "genni.models"}
