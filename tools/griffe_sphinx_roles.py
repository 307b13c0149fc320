"""A griffe extension for the documentation site (``mkdocs.yml``): the Sphinx roles in genni's docstrings
(``:class:`~genni.errors.GenniError```, ``:func:`run```, ``:mod:`.ricci```, ...) become cross-references.

Each role's target is resolved the way Sphinx would read it: a dotted path as written, a name in the scope
of the object whose docstring holds it (its members, its module's names and imports, then its parents),
or, with a leading dot, relative to the module and then to the packages above it.  A resolved target
becomes an autorefs link that falls back to plain code where the site renders no page for the object
(private helpers and modules the API reference leaves out); a target inside genni that resolves to
nothing is a warning, which fails ``mkdocs build --strict`` (except in the docstrings of private objects,
which the site never shows).  Targets outside genni (numpy, torch) are
plain code.  ``~`` shows the last component only, as in Sphinx.

RST definition lists whose terms are literals and runs of ``name : description`` lines (outside numpy
sections) become bullet lists, RST's ``::`` before a literal block
becomes ``:`` (the indented block is a Markdown code block already),
and the star of θ*, P* and ‖·‖_* and the underscore of ‖·‖_F are escaped outside code, so that Markdown
does not read two of them as emphasis.
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const):`(?P<text>[^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
_STAR = re.compile(r"(θ|(?<![A-Za-z])P|_)\*(?!\*)|(‖)_(?!\*)")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
_TERM = re.compile(r"``[^`]+``")
_FIELD = re.compile(r"[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s:\s")
_UNDERLINE = re.compile(r"-{3,}\s*")
_NUMPY_SECTIONS = {"Parameters", "Other Parameters", "Returns", "Yields", "Receives", "Raises", "Warns",
                   "Attributes", "Methods", "Functions", "Classes", "Modules", "Examples", "Deprecated"}
_PACKAGE = "genni"

logger = griffe.get_logger("griffe_sphinx_roles")


def _exists(collection, path: str) -> bool:
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _resolve(obj: griffe.Object | griffe.Alias, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s docstring, or None."""
    collection = obj.modules_collection
    if target.startswith("."):
        module = obj if obj.is_module else obj.module
        name = target.lstrip(".")
        while module is not None:
            path = f"{module.path}.{name}"
            if _exists(collection, path):
                return path
            module = module.parent
        return None
    if _exists(collection, target):
        return target
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            base = scope.resolve(head)
        except (griffe.NameResolutionError, KeyError, griffe.AliasResolutionError):
            scope = scope.parent
            continue
        path = f"{base}.{rest}" if rest else base
        return path if _exists(collection, path) else None
    return None


def _link(obj, match: re.Match) -> str:
    text = match["text"].strip()
    if "<" in text and text.endswith(">"):  # "title <target>"
        title, _, target = text[:-1].partition("<")
        title, target = title.strip(), target.strip()
    else:
        target = text.lstrip("~!")
        title = target.rsplit(".", 1)[-1] if text.startswith("~") else target.lstrip(".")
    code = f"<code>{html.escape(title)}</code>"
    path = _resolve(obj, target)
    if path is None:
        private = any(part.startswith("_") and not part.endswith("__") for part in obj.path.split("."))
        if not private and (target.split(".")[0] in (_PACKAGE, "") or "." not in target):
            location = f"{obj.relative_filepath}:{obj.lineno}" if obj.lineno else str(obj.relative_filepath)
            logger.warning("%s: %s: cannot resolve %s in the docstring of %s", location, match[0], target, obj.path)
        return code
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _escaped(m: re.Match) -> str:
    return f"{m[1]}\\*" if m[1] is not None else f"{m[2]}\\_"


def _escape_line(line: str) -> str:
    out, start = [], 0
    for m in _CODE_SPAN.finditer(line):
        out += [_STAR.sub(_escaped, line[start:m.start()]), m.group(0)]
        start = m.end()
    return "".join(out) + _STAR.sub(_escaped, line[start:])


def _escape_stars(text: str) -> str:
    """The stars of θ*, P* and _* and the underscore of ‖_ escaped, except in code spans and indented code
    blocks."""
    out, in_block, blank_before = [], False, True
    for line in text.split("\n"):
        if line.strip():
            in_block = line.startswith(("    ", "\t")) and (in_block or blank_before)
            line = line if in_block else _escape_line(line)
        out.append(line)
        blank_before = not line.strip()
    return "\n".join(out)


def _definition_lists(text: str) -> str:
    """RST definition lists whose terms are literals (a line ````name```` over indented lines) as Markdown
    bullet lists: ``- ``name``: the definition``."""
    lines, out, i, listing = text.split("\n"), [], 0, False
    while i < len(lines):
        line = lines[i]
        j = i + 1
        while j < len(lines) and lines[j].startswith("    ") and lines[j].strip():
            j += 1
        if _TERM.fullmatch(line) and j > i + 1:
            if out and out[-1].strip() and not listing:
                out.append("")
            out.append(f"- {line}: {lines[i + 1].strip()}")
            out += [f"  {x.strip()}" for x in lines[i + 2:j]]
            i, listing = j, True
            continue
        out.append(line)
        i, listing = i + 1, False
    return "\n".join(out)


def _field_lists(text: str) -> str:
    """Lines ``name : description`` (with indented continuation lines) outside numpy sections as
    Markdown bullet lists, one item per line, instead of one run-on paragraph."""
    lines, out, listing, section = text.split("\n"), [], False, False
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and _UNDERLINE.fullmatch(lines[i + 1]) and line.strip():
            section = line.strip() in _NUMPY_SECTIONS
        if listing and line.startswith((" ", "\t")) and line.strip():
            out.append(f"  {line.strip()}")
            continue
        if i > 0 and not section and _FIELD.match(line):
            if out and out[-1].strip() and not listing:
                out.append("")
            out.append(f"- {line}")
            listing = True
            continue
        if listing and line.strip():
            out.append("")
        listing = False
        out.append(line)
    return "\n".join(out)


def convert(obj, text: str) -> str:
    """``text`` (a docstring of ``obj``) with its Sphinx roles as autorefs, its definition and field lists as
    bullet lists, ``::`` as ``:`` and the stars of θ*, P* and _* escaped."""
    text = _escape_stars(_field_lists(_definition_lists(text)))
    text = _ROLE.sub(lambda m: _link(obj, m), text)
    return _LITERAL.sub(":", text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        if pkg.path != _PACKAGE:
            return
        seen: set[int] = set()
        stack: list = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert(obj, obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)
