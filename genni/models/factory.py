"""Where a ``[model] kind = "module"`` factory comes from: ``"path/to/file.py:factory"`` (a Python file,
imported by its location) or ``"package.module:Factory"`` (a package), both looked up from ``module_dir``,
the config file's folder (:mod:`genni.models.module`, docs/config.md).  Every failure is one
:class:`~genni.errors.ConfigError` line naming the value as written and where it was looked for."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

from ..errors import ConfigError
from .base import _first_line

FILE_SUFFIX = ".py"
"""``[model] module = "path/to/file.py:factory"``: a Python file, imported by its location."""


def split_module_path(path) -> tuple[str, str]:
    """``(target, factory)`` of a ``[model] module`` value: target is ``package.module`` or a path to a
    ``.py`` file, factory the (dotted) attribute after the last colon.  One-line ConfigError otherwise."""
    if isinstance(path, str):
        target, sep, attr = path.rpartition(":")
        if sep and target and attr and (target.endswith(FILE_SUFFIX) or ":" not in target):
            if not target.endswith(FILE_SUFFIX) and ("/" in target or os.sep in target):
                raise ConfigError(f"config: [model] module = {path!r}: a file path must name a {FILE_SUFFIX} file "
                                  f"('path/to/file.py:factory')")
            return target, attr
    raise ConfigError(f"config: [model] module must be 'package.module:Factory' or 'file.py:factory', got {path!r}")


def module_file(path: str, module_dir: str | None) -> Path | None:
    """The absolute location of a ``file.py:factory`` module path (relative paths from ``module_dir``, else
    the current directory); None for ``package.module:Factory``."""
    target, _ = split_module_path(path)
    if not target.endswith(FILE_SUFFIX):
        return None
    p = Path(target).expanduser()
    if not p.is_absolute():
        p = (Path(module_dir) if module_dir else Path.cwd()) / p
    return Path(os.path.normpath(p.absolute()))


def _import_file(path: str, where: str, module_dir: str | None):
    """The module of a ``file.py:factory`` path, imported once per process by its location under a name
    unique to that location (``genni_module_<hash>_<stem>``); its folder joins the end of ``sys.path`` so
    that it imports its siblings as a script would."""
    target, _ = split_module_path(path)
    full = module_file(path, module_dir)
    if not full.is_file():
        raise ConfigError(f"{where}: file {target} not found (looked for {full})")
    digest = hashlib.sha1(str(full).encode()).hexdigest()[:12]
    name = f"genni_module_{digest}_{re.sub(r'[^0-9A-Za-z_]', '_', full.stem)}"
    mod = sys.modules.get(name)
    if mod is not None:
        return mod, str(full)
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: cannot import {full} as a Python file")
    mod = importlib.util.module_from_spec(spec)
    if str(full.parent) not in sys.path:
        sys.path.append(str(full.parent))
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"{where}: importing {full} failed ({_first_line(exc)})") from None
    return mod, str(full)


def _holds(folder: Path, top: str) -> bool:
    return (folder / top).is_dir() or (folder / f"{top}.py").is_file()


def _origins(mod) -> list[Path]:
    """Where a module was imported from: its file, or a package's folders."""
    places = [getattr(mod, "__file__", None), *list(getattr(mod, "__path__", None) or [])]
    return [Path(p).resolve() for p in places if p]


def _import_package(pkg: str, where: str, module_dir: str | None):
    """``package.module``: from ``module_dir`` when that folder holds the top-level package (it goes to the
    front of ``sys.path``), else from ``sys.path``, else from the current directory (like ``python -m``)."""
    top = pkg.split(".")[0]
    folder = Path(module_dir) if module_dir else None
    if folder is not None and _holds(folder, top):
        before = sys.modules.get(top)
        if before is not None and _origins(before) and not any(
                o == folder.resolve() / top or o.parent == folder.resolve() for o in _origins(before)):
            raise ConfigError(f"{where}: {top} is already imported from {_origins(before)[0]}, not from {folder} "
                              "(two packages of one name in one process)")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        try:
            return importlib.import_module(pkg)
        except Exception as exc:
            raise ConfigError(f"{where}: importing {pkg} from {folder} failed ({_first_line(exc)})") from None
    try:
        return importlib.import_module(pkg)
    except ModuleNotFoundError as exc:
        cwd = Path.cwd()
        if exc.name != top or not _holds(cwd, top) or str(cwd) in sys.path or "" in sys.path:
            looked = "the Python path" + (f" and {folder}" if folder is not None else "")
            raise ConfigError(f"{where}: cannot import {pkg} ({_first_line(exc)}; looked in {looked})") from None
        sys.path.insert(0, str(cwd))  # like `python -m`: the researcher's own package in the current directory
        try:
            return importlib.import_module(pkg)
        except Exception as exc2:
            sys.path.remove(str(cwd))
            raise ConfigError(f"{where}: cannot import {pkg} ({_first_line(exc2)})") from None
    except Exception as exc:
        raise ConfigError(f"{where}: importing {pkg} failed ({_first_line(exc)})") from None


def import_factory(path: str, module_dir: str | None = None):
    """The callable a ``[model] module`` value names: ``"package.module:Factory"`` (see
    :func:`_import_package`) or ``"path/to/file.py:factory"`` (see :func:`_import_file`; relative paths
    from ``module_dir``, the config file's folder).  One-line ConfigError naming the value as written and
    where it was looked for."""
    where = f"config: [model] module = {path!r}"
    target, attr = split_module_path(path)
    if target.endswith(FILE_SUFFIX):
        mod, origin = _import_file(path, where, module_dir)
    else:
        mod, origin = _import_package(target, where, module_dir), target
    looked = f" (imported from {mod.__file__})" if origin == target and getattr(mod, "__file__", None) else ""
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: {origin} has no attribute {attr!r}{looked}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{where}: {attr} in {origin} is not callable ({type(obj).__name__}){looked}; it must "
                          "be a callable returning a torch.nn.Module")
    return obj


__all__ = ["FILE_SUFFIX", "import_factory", "module_file", "split_module_path"]
