"""The documentation site: its executable pages run, its API page keeps up with ``genni.__all__``, and
``mkdocs build --strict`` passes (and fails on a broken link, anchor or cross-reference).

An executable page's code is every fenced block whose info string is exactly ``python``; its blocks
run in order, in one namespace, in an empty temporary working directory.  Code that is shown but not
run uses another info string (``sh``, ``toml``, ``pycon``, ``text``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import genni

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

EXECUTABLE = ("tutorial.md",)
"""The pages under docs/ whose ``python`` blocks the suite runs."""

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ``python`` blocks of a Markdown text: (line number of the block's first code line, code)."""
    return [(text.count("\n", 0, m.start("body")) + 1, m["body"])
            for m in _FENCE.finditer(text) if m["info"].strip() == "python"]


def test_python_blocks_are_the_python_fences_only():
    text = textwrap.dedent("""\
        # Title

        ```python
        a = 1
        ```

        ```sh
        genni inspect run.h5
        ```

        ````python
        b = a + 1
        ```
        c = b
        ```
        ````

        ```pycon
        >>> not run
        ```
        """)
    blocks = python_blocks(text)
    assert [line for line, _ in blocks] == [4, 12]
    assert blocks[0][1] == "a = 1\n"
    assert blocks[1][1] == "b = a + 1\n```\nc = b\n```\n"


@pytest.mark.parametrize("page", EXECUTABLE)
def test_executable_page_runs(page, tmp_path, monkeypatch):
    """Every ``python`` block of the page runs without error, in order, in one namespace; a traceback
    names the page and its line."""
    source = DOCS / page
    blocks = python_blocks(source.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for line, code in blocks:
        exec(compile("\n" * (line - 1) + code, str(source), "exec"), namespace)  # noqa: S102


def test_api_page_names_every_public_name():
    """docs/api/genni.md documents or links every name of ``genni.__all__``."""
    page = (DOCS / "api" / "genni.md").read_text(encoding="utf-8")
    missing = [name for name in genni.__all__ if not re.search(rf"genni\.{re.escape(name)}\b", page)]
    assert not missing, f"docs/api/genni.md does not mention genni.{', genni.'.join(missing)}"


def test_benchmark_results_page_includes_every_result_table():
    page = (DOCS / "benchmark-results.md").read_text(encoding="utf-8")
    included = set(re.findall(r'^--8<-- "benchmarks/results/([\w.-]+\.md)"$', page, re.MULTILINE))
    tables = {p.name for p in (ROOT / "benchmarks" / "results").glob("*.md")}
    assert tables and included == tables


_CODE = re.compile(r"(`{3,}).*?^\1|`[^`\n]*`", re.MULTILINE | re.DOTALL)
_BARE_STAR = re.compile(r"(θ|(?<![A-Za-z])P|‖_)\*(?!\*)")


def test_pages_escape_the_star_of_theta():
    """θ*, P* and ‖·‖_* outside code are written with an escaped star: the site's Markdown reads two bare
    ones in a paragraph as emphasis (GitHub's does not, so the slip shows on the site only)."""
    bare = []
    for page in sorted(DOCS.rglob("*.md")):
        prose = _CODE.sub("", page.read_text(encoding="utf-8"))
        bare += [f"{page.relative_to(ROOT)}: {m.group(0)}" for m in _BARE_STAR.finditer(prose)]
    assert not bare, "write θ\\* (escaped) outside code: " + ", ".join(bare[:10])


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("the docs packages are not installed (make docs, or pip install -e '.[docs]')")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d",
                           str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_site_builds_strict(tmp_path):
    done = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "genni.html").read_text(encoding="utf-8")
    assert 'id="genni.find"' in api and 'id="genni.identify"' in api


def test_site_build_fails_on_broken_links(tmp_path):
    """The site's settings turn a missing page, a missing anchor and an unknown API object into errors."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n## Present\n\n[a](missing.md), [b](#absent), [c][genni.no_such_thing]"
                                   ", [d](#present)\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: docs\nnav:\n  - index.md\n", encoding="utf-8")
    done = _mkdocs(config, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "missing.md" in out and "#absent" in out and "genni.no_such_thing" in out
    assert "#present" not in out


@pytest.fixture(scope="module")
def griffe_genni():
    """genni as griffe sees it (static analysis, as the site's build loads it), and the roles extension."""
    griffe = pytest.importorskip("griffe", reason="the docs packages are not installed (make docs, or pip install -e '.[docs]')")
    from tools import griffe_sphinx_roles

    return griffe.load("genni", search_paths=[str(ROOT)], resolve_aliases=False), griffe_sphinx_roles


def test_roles_become_cross_references(griffe_genni):
    pkg, roles = griffe_genni
    assert roles.convert(pkg["plots"], ":class:`~genni.store.RunData`") == (
        '<autoref identifier="genni.store.RunData" optional><code>RunData</code></autoref>')
    # relative to the module, then its packages; a name in the docstring's scope (here an import)
    assert 'identifier="genni.geometry.ricci"' in roles.convert(pkg["geometry"], ":mod:`.ricci`")
    assert 'identifier="genni.geometry.statistics"' in roles.convert(pkg["geometry.ricci.flow"], ":mod:`.statistics`")
    assert roles.convert(pkg["search.driver"], ":class:`Found`") == (
        '<autoref identifier="genni.search.problem.Found" optional><code>Found</code></autoref>')
    assert roles.convert(pkg["models"], ":func:`torch.nn.utils.parameters_to_vector`") == (
        "<code>torch.nn.utils.parameters_to_vector</code>")


def test_a_role_naming_nothing_is_a_warning(griffe_genni, caplog):
    pkg, roles = griffe_genni
    with caplog.at_level("WARNING"):
        assert roles.convert(pkg["store"], "see :func:`genni.store.no_such_function`") == (
            "see <code>genni.store.no_such_function</code>")
    assert "genni.store.no_such_function" in caplog.text


def test_docstring_markup_becomes_markdown(griffe_genni):
    pkg, roles = griffe_genni
    text = ("Summary.\n\nA file::\n\n    f_θ*(x)\n\n``moons``\n    two half circles,\n    with noise\n"
            "theta : shape [P];  X : [n, w_0]\n    the probe inputs\nreturns : float\nThen f_θ*(x) and ‖A‖_F, `θ*`.")
    assert roles.convert(pkg, text).split("\n") == [
        "Summary.", "", "A file:", "", "    f_θ*(x)", "",
        "- ``moons``: two half circles,", "  with noise", "",
        "- theta : shape [P];  X : [n, w_0]", "  the probe inputs", "- returns : float", "",
        "Then f_θ\\*(x) and ‖A‖\\_F, `θ*`."]
