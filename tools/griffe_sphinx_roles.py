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

RST's ``::`` before a literal block becomes ``:`` (the indented block is a Markdown code block already).
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const):`(?P<text>[^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
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


def convert(obj, text: str) -> str:
    """``text`` (a docstring of ``obj``) with its Sphinx roles as autorefs and ``::`` as ``:``."""
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
