"""kind = "module": a researcher's own ``torch.nn.Module``, behind the :class:`~genni.models.base.Model` interface.

Config::

    [model]
    kind = "module"
    module = "mypackage.nets:SmallConvNet"   # a callable (class or function) returning an nn.Module
    # module = "nets/small.py:make"          # or a Python file (relative to the config file's folder)
    kwargs = { channels = 8 }                # optional: keyword arguments for it
    input_shape = [1, 8, 8]                  # optional: the shape of one input row (default: the data's)
    # outputs = 3                            # optional: default the module's own output width

Inputs are stored flat, [n, d_in]; when ``input_shape`` is known the model reshapes each batch to
[n, *input_shape] (a forward pre-hook on the module, so ``module()(X)`` accepts flat rows too).  Image
data sets supply their [C, H, W]; a module that wants flat rows on image data says
``input_shape = [d_in]``; on flat data a module that fails on flat rows and starts with a Conv2d of C
input channels gets [C, s, s] when d_in = C·s².  The module runs once on a batch of two rows; its output
[2, k] says the outputs, k.

Where the factory comes from (``module_dir``: the config file's folder, recorded as an absolute path in
the resolved config and the stored architecture, so later stages find it from any directory):

- ``"path/to/file.py:factory"``: that file (relative paths from ``module_dir``), imported by its location
  under a name unique to it;
- ``"package.module:Factory"``: from ``module_dir`` when that folder holds the package, else from
  ``sys.path``, else from the current directory.

The factory is called once per description; the module is converted to float64 and kept in eval mode.

θ is ``parameters_to_vector(module.parameters())``, in ``named_parameters()`` order.  **Buffers** (e.g.
BatchNorm running statistics) are not part of θ: they stay as the factory, or a state_dict loaded with
:meth:`TorchModule.load_state_dict`, set them — in this process's cached module only, since they are not
part of the JSON description.

Symmetries: none is assumed.  A module declares its own by defining any of

- ``genni_symmetry_tangents(theta) -> [P, m]`` — tangents at θ of its continuous symmetries;
- ``genni_sample_symmetries(n, rng) -> list`` and ``genni_act(theta, g) -> [P]`` — random group
  elements and their action on θ (both or neither);
- ``genni_representation_points() -> [(name, submodule path), ...]`` — the hidden representations
  for layer paths (default: the top-level children called once in a forward pass, in call order,
  but the last, skipping reshapes and no-ops such as Flatten, Identity and Dropout);
- ``genni_align(theta, theta_ref) -> [P]`` — g·θ closest to θ_ref under the declared symmetries, so that
  ``identify`` classifies planted copies as symmetry copies (without it, alignment is the identity).

:mod:`genni.models.examples` holds small factories (a conv net; an MLP declaring its rescaling symmetry).

**Modules held in memory** (:func:`genni.explore` with a module that is no plain MLP): a module object
needs no factory.  :func:`remember` keeps a private copy in a process-local registry under a token, and
the description records the token (``memory``), the module's class (as ``module``) and ``about`` (its
class, repr, parameter names and shapes).  Such a description cannot be rebuilt from a run file alone:
in another process building it raises a one-line :class:`~genni.errors.GenniError` naming what to pass,
``genni.load_run(path, model=net)``, which remembers ``net`` under the stored token.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, GenniError
from .base import Model, _first_line, _shape
from .factory import import_factory, module_file, split_module_path
from .symmetry import GroupElement, Symmetry

_DECLARED = ("genni_symmetry_tangents", "genni_sample_symmetries", "genni_act", "genni_representation_points",
             "genni_align")
_NO_REPRESENTATION = (torch.nn.Flatten, torch.nn.Unflatten, torch.nn.Identity,
                      torch.nn.modules.dropout._DropoutNd, torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)
"""Children whose output is a reshape of (or, in eval mode, equal to) their input: never a representation."""


class _ReshapeInput:
    """Forward pre-hook: rows [n, d_in] (or already [n, *shape]) -> [n, *shape]."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)

    def __call__(self, _module, args):
        if not args:
            return None
        x = args[0]
        return (x.reshape(x.shape[0], *self.shape), *args[1:])

    def __repr__(self) -> str:
        return f"_ReshapeInput({self.shape})"


@dataclass
class _Built:
    """What building a description once yields (cached per description)."""

    net: torch.nn.Module
    n_params: int
    points: list[tuple[str, str]]


_CACHE: dict = {}

_MEMORY: dict[str, torch.nn.Module] = {}
"""token -> a private copy of a module held in memory (:func:`remember`)."""

MEMORY_NOTE = ("the model is a torch module that lived only in the memory of the Python process that made this run: "
               "the file holds θ*, the data, the module's class, repr and parameter names and shapes, but cannot "
               "rebuild the module; load the run with genni.load_run(path, model=net)")
"""What a run file of a module held in memory says about it (the ``in_memory`` attribute of /reference)."""


def about(net: torch.nn.Module) -> dict:
    """What can be stored about a module object: its class (``package.module:Qualname``), its repr, and its
    parameters' names and shapes in ``named_parameters()`` order (the order of θ)."""
    cls = type(net)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "repr": repr(net),
            "parameters": [[name, list(p.shape)] for name, p in net.named_parameters()]}


def memory_token(net: torch.nn.Module) -> str:
    """A token for a module object: 16 hex digits of a SHA-256 of its :func:`about` and its parameters' values
    (float64), so the same module gives the same token in every process."""
    h = hashlib.sha256(json.dumps(about(net), sort_keys=True).encode())
    for p in net.parameters():
        h.update(p.detach().to(torch.float64).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def remember(net: torch.nn.Module, token: str | None = None) -> str:
    """Keep a private deep copy of ``net`` under ``token`` (default :func:`memory_token`) in this process, for
    the descriptions that name the token; returns the token.  A module remembered again under the same token
    replaces the earlier one.  ``ConfigError`` when the module cannot be deep-copied."""
    if not isinstance(net, torch.nn.Module):
        raise ConfigError(f"the model must be a torch.nn.Module, got a {type(net).__name__}")
    try:
        kept = copy.deepcopy(net).cpu()  # genni evaluates modules on the CPU (the search may move θ elsewhere)
    except Exception as exc:
        raise ConfigError(f"the module {type(net).__qualname__} cannot be deep-copied ({_first_line(exc)})") from None
    token = memory_token(net) if token is None else token
    _MEMORY[token] = kept
    for key in [k for k in _CACHE if k.memory == token]:
        del _CACHE[key]
    return token


def forget(token: str) -> None:
    """Drop the module remembered under ``token`` (descriptions naming it need :func:`remember` again)."""
    _MEMORY.pop(token, None)
    for key in [k for k in _CACHE if k.memory == token]:
        del _CACHE[key]


def remembered(token: str) -> bool:
    """A module is remembered under ``token`` in this process."""
    return token in _MEMORY


def _where(module_path: str, memory: str | None) -> str:
    """How errors name a module: its config value, or its class when it is held in memory."""
    return (f"the module {module_path} (held in memory)" if memory is not None
            else f"config: [model] module = {module_path!r}")


def _instantiate(module_path: str, module_dir: str | None, kwargs: dict, memory: str | None = None) -> torch.nn.Module:
    """Import the factory and call it with ``kwargs`` (or, for a module held in memory, copy the remembered
    module), check what comes out; the module as float64, in eval mode."""
    where = _where(module_path, memory)
    if memory is not None:
        if memory not in _MEMORY:
            raise GenniError(f"this run's model, the torch module {module_path}, lived only in the memory of "
                             "the process that made the run and cannot be rebuilt from the file: pass it, "
                             "genni.load_run(path, model=net)")
        net = copy.deepcopy(_MEMORY[memory])
    else:
        factory = import_factory(module_path, module_dir)
        try:
            net = factory(**kwargs)
        except Exception as exc:
            args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise ConfigError(f"{where}: calling it with ({args}) raised {_first_line(exc)}") from None
    if not isinstance(net, torch.nn.Module):
        raise ConfigError(f"{where}: the factory returned a {type(net).__name__}, not a torch.nn.Module")
    if not any(p.numel() for p in net.parameters()):
        raise ConfigError(f"{where}: the module has no parameters")
    has_sample, has_act = (callable(getattr(net, k, None)) for k in ("genni_sample_symmetries", "genni_act"))
    if has_sample != has_act:
        one, other = ("genni_sample_symmetries", "genni_act")[::1 if has_sample else -1]
        raise ConfigError(f"{where}: the module declares {one} without {other} (declare both or neither)")
    return net.double().eval()


def _batch(d_in: int) -> torch.Tensor:
    """The two rows every check runs the module on, [2, d_in]."""
    return torch.randn(2, d_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _run(net: torch.nn.Module, d_in: int, shape: tuple[int, ...] | None):
    """(output, None) of the module on :func:`_batch` rows reshaped to ``shape`` (flat when None), or
    (None, the exception it raised)."""
    hook = net.register_forward_pre_hook(_ReshapeInput(shape)) if shape is not None else None
    try:
        with torch.no_grad():
            return net(_batch(d_in)), None
    except Exception as exc:  # noqa: BLE001 - the researcher's module may raise anything
        return None, exc
    finally:
        if hook is not None:
            hook.remove()


def _image_shape(net: torch.nn.Module, d_in: int) -> tuple[int, int, int] | None:
    """[C, s, s] when the module's first layer with parameters is a Conv2d with C input channels and d_in / C
    is a perfect square s²; else None."""
    first = next((m for m in net.modules() if any(True for _ in m.parameters(recurse=False))), None)
    if not isinstance(first, torch.nn.Conv2d) or d_in % first.in_channels:
        return None
    side = math.isqrt(d_in // first.in_channels)
    return (first.in_channels, side, side) if side * side * first.in_channels == d_in else None


def infer_io(net: torch.nn.Module, where: str, d_in: int,
             shape: tuple[int, ...] | None) -> tuple[tuple[int, ...] | None, int]:
    """(input_shape, outputs) that the module itself says: it runs once on a batch of two rows (reshaped to
    ``shape``; flat rows when None, and when the module fails on those, [C, s, s] from a first Conv2d layer,
    :func:`_image_shape`), and its output [2, k] gives k.  One-line ConfigError when it cannot say."""
    out, err = _run(net, d_in, shape)
    if err is not None and shape is None:
        guess = _image_shape(net, d_in)
        if guess is not None:
            out2, err2 = _run(net, d_in, guess)
            if err2 is None:
                shape, out, err = guess, out2, None
    shown = _shape((2, *shape)) if shape is not None else _shape((2, d_in))
    if err is not None:
        hint = (f" (rows are reshaped to {_shape(shape)}; input_shape = [{d_in}] passes them flat)" if shape else
                f" (the data's rows are flat, {d_in} features: set [model] input_shape, e.g. [C, H, W])")
        raise ConfigError(f"{where}: the module fails on a {shown} batch: {_first_line(err)}{hint}")
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{where}: the module returns a {type(out).__name__} on a {shown} batch, not a tensor of "
                          "outputs [2, k]")
    if out.dim() != 2 or out.shape[0] != 2 or out.shape[1] < 1:
        raise ConfigError(f"{where}: the module maps a {shown} batch to outputs of shape {_shape(out.shape)}, not "
                          "[2, k] (k outputs per input): flatten its output, or set [model] outputs")
    return shape, int(out.shape[1])


def _build(model: TorchModule, net: torch.nn.Module | None = None) -> _Built:
    """Import, call, convert to float64 / eval (or take ``net``, a module :func:`_instantiate` made for this
    description), check against d_in → d_out, find the representations."""
    built = _CACHE.get(model)
    if built is not None:
        return built
    where = _where(model.module_path, model.memory)
    if net is None:
        net = _instantiate(model.module_path, model.module_dir, model.kwargs, model.memory)
    n_params = sum(p.numel() for p in net.parameters())
    if model.input_shape is not None:
        net.register_forward_pre_hook(_ReshapeInput(model.input_shape))
    x = _batch(model.d_in)
    shown = _shape((2, *model.input_shape)) if model.input_shape is not None else _shape((2, model.d_in))
    calls: list[tuple[str, bool]] = []
    hooks = [m.register_forward_hook(
        lambda _m, _i, o, name=name: calls.append((name, isinstance(o, torch.Tensor) and o.dim() >= 1
                                                   and o.shape[0] == 2)))
        for name, m in net.named_modules() if name]
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as exc:
        hint = (f" (rows are reshaped to {_shape(model.input_shape)}; input_shape = [{model.d_in}] passes them flat)"
                if model.input_shape else "")
        raise ConfigError(f"{where}: the module fails on a {shown} batch: {_first_line(exc)}{hint}") from None
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{where}: the module returns a {type(out).__name__} on a {shown} batch, not a tensor "
                          f"of shape [2, {model.d_out}]")
    if tuple(out.shape) != (2, model.d_out):
        raise ConfigError(f"{where}: the module maps a {shown} batch to outputs of shape {_shape(out.shape)}, but "
                          f"the model needs shape [2, {model.d_out}] ({model.d_out} output(s) per input)")
    try:
        copy.deepcopy(net)
    except Exception as exc:
        raise ConfigError(f"{where}: the module cannot be deep-copied ({_first_line(exc)})") from None
    points = _declared_points(net, where) if callable(getattr(net, "genni_representation_points", None)) \
        else _default_points(net, calls)
    built = _Built(net=net, n_params=int(n_params), points=points)
    _CACHE[model] = built
    return built


def _declared_points(net: torch.nn.Module, where: str) -> list[tuple[str, str]]:
    pts = [(str(n), str(p)) for n, p in net.genni_representation_points()]
    subs = dict(net.named_modules())
    bad = [p for _, p in pts if p not in subs or not p]
    if bad:
        raise ConfigError(f"{where}: genni_representation_points names {bad[0]!r}, not a submodule of the module")
    return pts


def _default_points(net: torch.nn.Module, calls: list[tuple[str, bool]]) -> list[tuple[str, str]]:
    """The children of the root (or of its only called child, recursively) called exactly once with a
    batch-first tensor output, in call order, but the last; reshapes and no-ops skipped."""
    subs = dict(net.named_modules())
    prefix = ""
    while True:
        level = [(n, ok) for n, ok in calls if n.startswith(prefix) and "." not in n[len(prefix):]]
        names = list(dict.fromkeys(n for n, _ in level))
        if len(names) == 1 and any(True for _ in subs[names[0]].children()):
            prefix = names[0] + "."
            continue
        break
    counts: dict[str, int] = {}
    for n, _ in level:
        counts[n] = counts.get(n, 0) + 1
    kept = [n for n in names if counts[n] == 1 and all(ok for m, ok in level if m == n)
            and not isinstance(subs[n], _NO_REPRESENTATION)]
    out = []
    for n in kept[:-1]:
        last = n.rsplit(".", 1)[-1]
        out.append((f"{n}:{type(subs[n]).__name__}" if last.isdigit() else n, n))
    return out


@dataclass(frozen=True)
class TorchModule(Model):
    """A torch module built by ``module_path`` ("package.module:Factory" or "path/file.py:factory") with
    keyword arguments ``kwargs_json`` (canonical JSON, so the description stays hashable), mapping d_in flat
    input features (reshaped to ``input_shape`` when given) to d_out outputs.  ``module_dir``: the folder a
    relative file path and a package are looked up from (the config file's folder; None: the current
    directory).  See the module docstring.

    memory : the token of a module held in memory (:func:`remember`; then ``module_path`` is its class, for
        the record, and no factory is imported);  about_json : what :func:`about` says of it (canonical JSON)
    """

    module_path: str
    d_in: int
    d_out: int
    kwargs_json: str = "{}"
    input_shape: tuple[int, ...] | None = None
    module_dir: str | None = None
    kind: str = "module"
    memory: str | None = None
    about_json: str = "{}"

    def __post_init__(self):
        split_module_path(self.module_path)
        if self.module_dir is not None and not isinstance(self.module_dir, str):
            raise ConfigError(f"config: [model] module_dir must be a folder path, got {self.module_dir!r}")
        for k in ("d_in", "d_out"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"module: {k} must be a positive integer, got {v!r}")
            object.__setattr__(self, k, int(v))
        try:
            kw = json.loads(self.kwargs_json)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config: [model] kwargs is not valid JSON ({_first_line(exc)})") from None
        if not isinstance(kw, dict):
            raise ConfigError(f"config: [model] kwargs must be a table of keyword arguments, got {kw!r}")
        object.__setattr__(self, "kwargs_json", json.dumps(kw, sort_keys=True))
        if self.input_shape is not None:
            shp = self.input_shape
            if (not isinstance(shp, (list, tuple)) or not shp
                    or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shp)):
                raise ConfigError(f"config: [model] input_shape must be a list of positive integers, got {shp!r}")
            shp = tuple(int(s) for s in shp)
            if int(np.prod(shp)) != self.d_in:
                raise ConfigError(f"config: [model] input_shape = {list(shp)} holds {int(np.prod(shp))} features "
                                  f"but the data have {self.d_in} per input")
            object.__setattr__(self, "input_shape", shp)

    @property
    def kwargs(self) -> dict:
        """The factory's keyword arguments (a fresh dict)."""
        return json.loads(self.kwargs_json)

    # --- construction -------------------------------------------------------------------------------
    CONFIG_KEYS = ("module", "kwargs", "input_shape", "module_dir")

    @classmethod
    def from_config(cls, m: dict, d_in: int, d_out: int | None, input_shape=None) -> TorchModule:
        """Builds (imports, calls, checks d_in → d_out) now, so a bad config fails before any work.

        d_out None: the module's own output width (:func:`infer_io`); with no ``input_shape`` (neither in
        ``m`` nor the data's) and a module that fails on flat rows, [C, s, s] from its first Conv2d."""
        path = m.get("module")
        if path is None:
            raise ConfigError('config: [model] kind = "module" needs module = "package.module:Factory" or '
                              '"file.py:factory"')
        split_module_path(path)
        module_dir = m.get("module_dir")
        kwargs = m.get("kwargs")
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, dict):
            raise ConfigError(f"config: [model] kwargs must be a table of keyword arguments, got {kwargs!r}")
        try:
            kw_json = json.dumps(kwargs, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config: [model] kwargs must hold JSON values only ({_first_line(exc)})") from None
        shape = m.get("input_shape")
        shape = input_shape if shape is None else shape
        shape = None if shape is None else tuple(shape)
        net = None
        if d_out is None or shape is None:
            cls(module_path=path, d_in=d_in, d_out=d_out or 1, kwargs_json=kw_json, input_shape=shape)  # the checks
            net = _instantiate(path, module_dir, kwargs)
            shape, width = infer_io(net, f"config: [model] module = {path!r}", d_in, shape)
            d_out = width if d_out is None else d_out
        model = cls(module_path=path, d_in=d_in, d_out=d_out, kwargs_json=kw_json, input_shape=shape,
                    module_dir=module_dir)
        _build(model, net)
        return model

    @classmethod
    def from_memory(cls, net: torch.nn.Module, d_in: int, d_out: int,
                    input_shape: tuple[int, ...] | None = None) -> TorchModule:
        """A module object held in memory (:func:`remember`), mapping d_in flat features (reshaped to
        ``input_shape`` when given) to d_out outputs; built and checked now, like :meth:`from_config`."""
        token = remember(net)
        cls_ = type(net)
        model = cls(module_path=f"{cls_.__module__}:{cls_.__qualname__}", d_in=d_in, d_out=d_out,
                    input_shape=None if input_shape is None else tuple(input_shape), memory=token,
                    about_json=json.dumps(about(net), sort_keys=True))
        _build(model)
        return model

    @property
    def about(self) -> dict:
        """What the description records of a module held in memory (:func:`about`); empty otherwise."""
        return json.loads(self.about_json)

    def to_dict(self) -> dict:
        """The description; ``module_dir`` only where it is set (with ``module_file``, the file's absolute
        location, for a ``file.py:factory`` module); a module held in memory adds its token, ``about`` and
        :data:`MEMORY_NOTE`."""
        out = {"kind": self.kind, "module": self.module_path, "kwargs": self.kwargs,
               "input_shape": None if self.input_shape is None else list(self.input_shape),
               "d_in": self.d_in, "d_out": self.d_out}
        if self.module_dir is not None:
            out["module_dir"] = self.module_dir
            where = module_file(self.module_path, self.module_dir)
            if where is not None:
                out["module_file"] = str(where)
        if self.memory is not None:
            out.update(memory=self.memory, about=self.about, in_memory=MEMORY_NOTE)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> TorchModule:
        shape = d.get("input_shape")
        return cls(module_path=d["module"], d_in=d["d_in"], d_out=d["d_out"],
                   kwargs_json=json.dumps(d.get("kwargs") or {}, sort_keys=True),
                   input_shape=None if shape is None else tuple(shape), module_dir=d.get("module_dir"),
                   memory=d.get("memory"), about_json=json.dumps(d.get("about") or {}, sort_keys=True))

    # --- layout -------------------------------------------------------------------------------------
    def _net(self) -> torch.nn.Module:
        """The cached module (shared: never handed out, never mutated but by :meth:`load_state_dict`)."""
        return _build(self).net

    @property
    def n_params(self) -> int:
        return _build(self).n_params

    @property
    def in_dim(self) -> int:
        return self.d_in

    @property
    def out_dim(self) -> int:
        return self.d_out

    def module(self, theta=None) -> torch.nn.Module:
        """A fresh deep copy of the module (float64, eval mode, accepting flat rows), loaded with θ [P] when
        given; changing it never changes the model."""
        net = copy.deepcopy(self._net())
        if theta is not None:
            th = torch.as_tensor(theta, dtype=torch.float64).detach().reshape(-1)
            if th.numel() != self.n_params:
                raise ValueError(f"theta has {th.numel()} entries but {self.describe()} has {self.n_params}")
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(th.clone(), net.parameters())
        return net

    def _functional_module(self) -> torch.nn.Module:
        return self._net()  # functional_call swaps the parameters in, so the cached module is never changed

    def representation_points(self) -> list[tuple[str, str]]:
        """Declared by the module (``genni_representation_points``), or the default of the module docstring."""
        return list(_build(self).points)

    def describe(self) -> str:
        declared = self.symmetry.kinds["declared"]
        sym = "symmetries as the module declares them" if declared else "no symmetries assumed — none declared"
        where = ", held in memory" if self.memory is not None else ""
        return f"torch module {self.module_path}{where} ({self.n_params:,} parameters; {sym})"

    # --- reference weights --------------------------------------------------------------------------
    def _state_target(self) -> torch.nn.Module:
        return self._net()  # buffers loaded from a state_dict are set on this process's cached module

    # --- what the module declares about its symmetries ---------------------------------------------
    def _declared(self, name: str):
        fn = getattr(self._net(), name, None)
        return fn if callable(fn) else None


class ModuleSymmetry(Symmetry):
    """The symmetries a module declares (see the module docstring), else the trivial group.  Group elements
    are the module's own objects, carried as ``GroupElement(extra={"module": g})``."""

    model: TorchModule

    def _checked(self, name: str, out, columns: bool) -> np.ndarray:
        """The module's answer as float64, refused in one line unless it is [P, m] (``columns``) or [P]."""
        P = self.model.n_params
        out = np.asarray(out, dtype=np.float64)
        if not (out.ndim == 2 and out.shape[0] == P if columns else out.shape == (P,)):
            raise ConfigError(f"{self.model.module_path}: {name} returned shape {_shape(out.shape)}, not "
                              f"[{P}{', m' if columns else ''}]")
        return out

    @property
    def kinds(self) -> dict[str, bool]:
        """``{"declared": True}`` when the module declares tangents or a group action, else False."""
        return {"declared": any(self.model._declared(k) is not None for k in _DECLARED[:3])}

    def tangents(self, theta: np.ndarray) -> np.ndarray:
        fn = self.model._declared("genni_symmetry_tangents")
        if fn is None:
            return np.zeros((self.model.n_params, 0))
        return self._checked("genni_symmetry_tangents", fn(np.array(theta, dtype=np.float64, copy=True)), True)

    def sample(self, n: int, rng: np.random.Generator) -> list[GroupElement]:
        fn = self.model._declared("genni_sample_symmetries")
        if fn is None:
            return [self.identity() for _ in range(n)]
        gs = list(fn(n, rng))
        if len(gs) != n:
            raise ConfigError(f"{self.model.module_path}: genni_sample_symmetries({n}, rng) returned {len(gs)} "
                              "elements")
        return [GroupElement(extra={"module": g}) for g in gs]

    def act(self, theta: np.ndarray, g) -> np.ndarray:
        fn = self.model._declared("genni_act")
        if fn is None or g is None or "module" not in g.extra:
            return np.array(theta, dtype=np.float64, copy=True)
        return self._checked("genni_act", fn(np.array(theta, dtype=np.float64, copy=True), g.extra["module"]), False)

    @property
    def aligns(self) -> bool:  # the module declares genni_align(theta, theta_ref) -> aligned θ
        return self.model._declared("genni_align") is not None

    def align(self, theta: np.ndarray, theta_ref: np.ndarray):
        """The module's ``genni_align(theta, theta_ref)`` (g·θ closest to θ_ref), else θ unchanged."""
        fn = self.model._declared("genni_align")
        th = np.array(theta, dtype=np.float64, copy=True)
        if fn is None:
            return th, None
        return self._checked("genni_align", fn(th, np.array(theta_ref, dtype=np.float64, copy=True)), False), None


TorchModule.symmetry_class = ModuleSymmetry

__all__ = ["MEMORY_NOTE", "ModuleSymmetry", "TorchModule", "about", "forget", "memory_token", "remember", "remembered"]
