"""Experiment configuration: TOML in, a validated, fully resolved config out.

The resolved config is a plain nested dict (JSON-serialisable, every default
filled in, ``model.widths`` made concrete); it is what a run file stores in its
root attribute ``config``.  Unknown sections or keys and wrong types raise
:class:`~genni.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from . import data as _data
from . import models as _models
from .errors import ConfigError
from .models.activations import ACTIVATIONS, PIECEWISE_LINEAR
from .search import DEFAULT_MAX_STEPS, DEFAULT_PATIENCE, SearchSettings
from .walk import WalkSettings

GIVEN = "given"
"""``[data] dataset`` and ``[reference] source`` of a run made by :func:`genni.explore`: the inputs and the
reference come from the caller's memory (never valid in a TOML config: it names no data set or file)."""

RANK_INPUTS = ("data", "kinks")
"""``[identify] rank_inputs``: the fresh inputs the rank of J grows over (:func:`default_rank_inputs`)."""

_SD = SearchSettings()  # the [search] defaults live in one place: SearchSettings
_WD = WalkSettings()    # and the walk's in WalkSettings

# section -> key -> (allowed python types, default, allowed values or None)
SCHEMA: dict = {
    "": {"name": ((str,), "genni_run", None), "seed": ((int,), 0, None)},
    "data": {
        "dataset": ((str,), "moons", _data.DATASETS),
        "n_probe": ((int,), 512, None),
        "n_heldout": ((int,), 512, None),
        "n_train": ((int,), 1000, None),
        "noise": ((int, float), None, None),
        "dim": ((int,), None, None),  # dataset = "normal" only: inputs i.i.d. N(0, I_dim)
        "shape": ((list,), None, None),  # dataset = "normal" only, instead of dim: images [C, H, W]
        "n_far": ((int,), _data.DEFAULT_N_FAR, None),  # inputs far outside the data (data.far_inputs)
        "far_scale": ((int, float), _data.DEFAULT_FAR_SCALE, None),  # their RMS distance / the data's radius
    },
    "model": {
        "kind": ((str,), "mlp", tuple(_models.REGISTRY)),
        # kind = "mlp"
        "widths": ((list,), None, None),
        "activation": ((str,), "relu", ACTIVATIONS),
        "negative_slope": ((int, float), 0.01, None),
        "bias": ((bool,), True, None),
        # kind = "resmlp" (activation, negative_slope too)
        "width": ((int,), None, None),
        "hidden": ((int,), None, None),
        "blocks": ((int,), None, None),
        # kind = "cnn" (activation, negative_slope too)
        "channels": ((list,), None, None),
        "kernel_size": ((int,), None, None),
        "padding": ((int,), None, None),
        "pool": ((str,), None, ("max", "avg", "none")),
        "pool_size": ((int,), None, None),
        "dense": ((list,), None, None),
        "input_shape": ((list,), None, None),  # cnn, module: [C, H, W] of an input row (default: the data's)
        # kind = "module": a researcher's own torch module
        "module": ((str,), None, None),  # "package.module:Factory" or "path/to/file.py:factory"
        "module_dir": ((str,), None, None),  # where `module` is looked up (default: the config file's folder)
        "kwargs": ((dict,), None, None),  # keyword arguments for the factory
        "outputs": ((int,), None, None),  # every kind but mlp (its widths[-1]): outputs (default: outputs_default)
    },
    "reference": {
        "source": ((str,), "train", ("train", "random", "file")),
        "path": ((str,), None, None),
        "epochs": ((int,), 2000, None),
        "lr": ((int, float), 1e-2, None),
        "weight_decay": ((int, float), 1e-3, None),
        "init_scale": ((int, float), 1.0, None),
        "init": ((str,), "torch", ("torch", "he")),  # random teachers: torch.nn.Linear's init, or He-normal
        "seed": ((int,), None, None),  # the reference's own seed (training init, teacher); default: the run's seed
        "bias_std": ((int, float), 0.01, None),     # init = "he": biases N(0, bias_std²)
        "centre": ((bool,), False, None),  # random teachers: biases moved so every hidden unit's pre-activation
                                           # has median 0 on the probe inputs (none dead, none always on)
    },
    "search": {
        "n": ((int,), _SD.n, None),
        "tol": ((int, float), _SD.tol, None),
        "method": ((str,), _SD.method, ("lm", "adam")),
        "max_steps": ((int,), _SD.max_steps, None),  # default per method (search.DEFAULT_MAX_STEPS)
        "batch_size": ((int,), _SD.batch_size, None),
        "init": ((str,), _SD.init, ("random", "perturb", "walk")),
        "init_scale": ((int, float), _SD.init_scale, None),
        "restarts": ((int,), _SD.restarts, None),
        "lr": ((int, float), _SD.lr, None),
        "device": ((str,), _SD.device, None),
        "damping": ((str,), _SD.damping, ("identity", "marquardt")),
        "geodesic": ((int, float), _SD.geodesic, None),
        "hops": ((int,), _SD.hops, None),
        "hop_scale": ((int, float), _SD.hop_scale, None),
        "revive": ((bool,), _SD.revive, None),
        "patience": ((int,), _SD.patience, None),  # default per method (search.DEFAULT_PATIENCE)
        "stall_factor": ((int, float), _SD.stall_factor, None),
        "mu0": ((int, float), _SD.mu0, None),
        "precision": ((str,), _SD.precision, ("mixed", "float64")),  # direct LM's JᵀJ and factorisation
        "solver": ((str,), _SD.solver, ("auto", "direct", "cg")),  # LM linear solve; cg = matrix-free
        "cg_tol": ((int, float), _SD.cg_tol, None),
        "cg_max": ((int,), _SD.cg_max, None),
        # walks (init = "walk", and `genni walk`): see genni.walk
        "chains": ((int,), _WD.chains, None),
        "thin": ((int,), _WD.thin, None),
        "step_size": ((int, float), _WD.step_size, None),
        "segment_epsilon": ((int, float), _WD.segment_epsilon, None),
        "horizontal": ((bool,), _WD.horizontal, None),
    },
    "identify": {
        # > 0: `identify` also takes the rank of J over fresh inputs, doubling from n_probe up to this many
        # until it stops changing (identifiability.rank_growth); rank_inputs = "data": generated data sets only
        "rank_growth_max": ((int,), 0, None),
        # which fresh inputs: "data" (the data distribution) | "kinks" (both sides of every hidden unit's kink
        # in the domain box, genni.exact.kinks; relu / leaky-relu MLPs only); default: default_rank_inputs
        "rank_inputs": ((str,), None, RANK_INPUTS),
        # relu / leaky-relu MLPs: exact answers on an input box (genni.exact): the functional dimension from
        # the linear regions, and each element's sup-norm discrepancy on the box by MILP
        "exact": ((bool,), False, None),
        "domain_scale": ((int, float), 3.0, None),  # the box: the probe's bounding box × this (normal data: ± this sd)
        "max_regions": ((int,), 100_000, None),  # the region walk's budget
        "max_seconds": ((int, float), 600.0, None),
        "sup_seconds": ((int, float), 60.0, None),  # time limit of each element's MILP
    },
}

# keys that may differ between the config that created a run file and the one
# that resumes it: they change how much or where work is done, not what it means
RESUMABLE_KEYS = (("search", "n"), ("search", "device"), ("search", "batch_size"), ("identify", "rank_growth_max"),
                  ("identify", "rank_inputs"), ("identify", "exact"), ("identify", "domain_scale"),
                  ("identify", "max_regions"), ("identify", "max_seconds"), ("identify", "sup_seconds"),
                  ("model", "module_dir"))

_POSITIVE = {
    ("data", "n_probe"), ("data", "n_heldout"), ("search", "n"), ("search", "tol"),
    ("search", "max_steps"), ("search", "batch_size"), ("reference", "lr"), ("search", "lr"),
    ("search", "init_scale"), ("reference", "init_scale"), ("search", "hop_scale"), ("search", "mu0"),
    ("search", "patience"), ("search", "stall_factor"), ("data", "n_far"), ("data", "far_scale"),
    ("search", "chains"), ("search", "thin"), ("search", "step_size"), ("search", "segment_epsilon"),
    ("data", "dim"), ("search", "cg_tol"), ("search", "cg_max"), ("model", "width"), ("model", "hidden"),
    ("model", "blocks"), ("model", "kernel_size"), ("model", "pool_size"), ("model", "outputs"),
    ("identify", "domain_scale"), ("identify", "max_regions"), ("identify", "max_seconds"), ("identify", "sup_seconds"),
}
_NON_NEGATIVE = {("reference", "bias_std"), ("data", "n_train"), ("reference", "epochs"), ("search", "restarts"),
                 ("reference", "weight_decay"), ("data", "noise"), ("model", "negative_slope"),
                 ("search", "geodesic"), ("search", "hops"), ("identify", "rank_growth_max"),
                 ("model", "padding")}


def _key_name(section: str, key: str) -> str:
    return f"[{section}] {key}" if section else key


def _check_value(section: str, key: str, value):
    types, _default, choices = SCHEMA[section][key]
    name = _key_name(section, key)
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        want = " or ".join({"int": "an integer", "float": "a number", "str": "a string",
                            "list": "a list", "bool": "true or false",
                            "dict": "a table"}[t.__name__] for t in types)
        raise ConfigError(f"config: {name} must be {want}, got {value!r}")
    if isinstance(value, float) and value != value:
        raise ConfigError(f"config: {name} is NaN")
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise ConfigError(f"config: {name} must be finite, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"config: {name} = {value!r} is not one of: {', '.join(map(str, choices))}")
    if (section, key) == ("search", "stall_factor") and not value < 1:
        raise ConfigError(f"config: {name} must be below 1, got {value!r}")
    if (section, key) in _POSITIVE and not value > 0:
        raise ConfigError(f"config: {name} must be positive, got {value!r}")
    if (section, key) in _NON_NEGATIVE and not value >= 0:
        raise ConfigError(f"config: {name} must be non-negative, got {value!r}")
    return float(value) if float in types and int in types else value


def resolve(raw: dict, root: str | Path | None = None) -> dict:
    """Validate a parsed TOML table and return the fully resolved config.

    raw : the dict from ``tomllib`` (sections ``data``, ``model``, ``reference``, ``search``)
    root : the config file's folder: ``[model] module_dir`` defaults to it (relative values are taken from
        it); None: the current directory
    returns : nested dict with every key of :data:`SCHEMA` present
    """
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a TOML table")
    out: dict = {}
    for key, value in raw.items():
        if key in SCHEMA and key:
            if not isinstance(value, dict):
                raise ConfigError(f"config: [{key}] must be a table")
            continue
        if key not in SCHEMA[""]:
            raise ConfigError(f"config: unknown key '{key}'")
        out[key] = _check_value("", key, value)
    for section, keys in SCHEMA.items():
        if not section:
            continue
        table = raw.get(section, {})
        resolved = {}
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(f"config: unknown key '{key}' in [{section}] (known: {', '.join(keys)})")
            resolved[key] = _check_value(section, key, value)
        for key, (_t, default, _c) in keys.items():
            resolved.setdefault(key, default)
        out[section] = resolved
    for key, (_t, default, _c) in SCHEMA[""].items():
        out.setdefault(key, default)
    _resolve_model(out, raw.get("model", {}), root)
    srch = out["search"]
    if srch["max_steps"] is None:
        srch["max_steps"] = DEFAULT_MAX_STEPS[srch["method"]]
    if srch["patience"] is None:
        srch["patience"] = DEFAULT_PATIENCE[srch["method"]]
    _resolve_rank_inputs(out, "rank_inputs" in raw.get("identify", {}))
    ref = out["reference"]
    if ref["source"] == "file" and not ref["path"]:
        raise ConfigError("config: [reference] source = 'file' needs [reference] path")
    if ref["centre"] and ref["source"] != "random":
        raise ConfigError("config: [reference] centre = true applies to random teachers (source = 'random'), "
                          f"not source = '{ref['source']}'")
    return out


def default_rank_inputs(model: dict) -> str:
    """``[identify] rank_inputs`` when the config does not say: ``"kinks"`` for relu / leaky-relu MLPs (kind
    mlp), whose rank over kink inputs reaches its final value with the fewest inputs
    (benchmarks/results/rank_inputs.md), else ``"data"``.  model : a resolved ``[model]`` table or an
    architecture description (``kind``, ``activation``)."""
    kinks = model.get("kind", "mlp") == "mlp" and model.get("activation") in PIECEWISE_LINEAR
    return "kinks" if kinks else "data"


def _resolve_rank_inputs(cfg: dict, given: bool) -> None:
    """``[identify] rank_inputs``: checked against the model when given; when not, its default where rank growth
    is on (rank_growth_max > 0) and left out where it is off (it means nothing there)."""
    ident, m = cfg["identify"], cfg["model"]
    if given and ident["rank_inputs"] == "kinks" and default_rank_inputs(m) != "kinks":
        what = f"{m.get('activation')} {m['kind']}" if m.get("activation") else f"kind {m['kind']}"
        raise ConfigError(f"config: [identify] rank_inputs = 'kinks' needs a relu or leaky_relu MLP (kind mlp), "
                          f"got a {what}")
    if not given:
        if ident["rank_growth_max"] > 0:
            ident["rank_inputs"] = default_rank_inputs(m)
        else:
            del ident["rank_inputs"]


def _module_dir(given: dict, root: str | Path | None) -> str:
    """``[model] module_dir`` as an absolute folder: as given (relative to ``root``), else ``root``, else the
    current directory."""
    base = Path(root) if root is not None else Path.cwd()
    value = given.get("module_dir")
    folder = base if value is None else (Path(value).expanduser() if Path(value).expanduser().is_absolute()
                                         else base / value)
    folder = Path(os.path.normpath(folder.absolute()))
    if value is not None and not folder.is_dir():
        raise ConfigError(f"config: [model] module_dir = {value!r} is not a folder (looked for {folder})")
    return str(folder)


def _resolve_model(cfg: dict, given: dict, root: str | Path | None = None) -> None:
    d = cfg["data"]
    if d["shape"] is not None:
        sh = d["shape"]
        if d["dataset"] != "normal":
            raise ConfigError(f"config: [data] shape is only for dataset = 'normal' (dataset {d['dataset']} has its "
                              "own inputs)")
        if d["dim"] is not None:
            raise ConfigError("config: give [data] dim or [data] shape, not both")
        if not sh or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sh):
            raise ConfigError(f"config: [data] shape must be a list of positive integers, got {sh!r}")
        d["dim"] = int(np.prod(sh))
    if d["dataset"] == "normal":
        if d["dim"] is None:
            raise ConfigError("config: [data] dataset = 'normal' needs [data] dim (the input dimension) or "
                              "[data] shape")
        if cfg["reference"]["source"] == "train":
            raise ConfigError("config: [data] dataset = 'normal' has no labels to train on: use [reference] source = "
                              "'random' or 'file'")
    elif d["dim"] is not None:
        raise ConfigError(f"config: [data] dim is only for dataset = 'normal' (dataset {d['dataset']} has its own inputs)")
    d_in, n_classes, n_rows = _data.dataset_info(d["dataset"], d["dim"])
    if n_rows is not None and d["n_probe"] + d["n_heldout"] > n_rows - 1:
        raise ConfigError(
            f"config: dataset {d['dataset']} has {n_rows} rows; n_probe + n_heldout = "
            f"{d['n_probe'] + d['n_heldout']} must leave at least one for training (at most {n_rows - 1})")
    m = cfg["model"]
    n_out = 1 if n_classes in (0, 2) else n_classes
    kind = m["kind"]
    cls = _models.model_class(kind)
    own = set(cls.CONFIG_KEYS) | ({"outputs"} if kind != "mlp" else set())
    stray = sorted(k for k in given if k != "kind" and k not in own)
    if stray:
        raise ConfigError(f"config: [model] {stray[0]} is not a key of kind = '{kind}' (its keys: "
                          f"{', '.join(sorted(own))})")
    if kind == "module":
        given = {**given, "module_dir": _module_dir(given, root)}
    model = _build_model(d, kind, m if kind == "mlp" else given, cfg["reference"])
    if kind == "mlp":
        out_width = m["widths"][-1] if m["widths"] is not None else n_out
        m["widths"] = list(model.widths)
    else:
        out_width = model.out_dim
        desc = {**model.to_dict(), "outputs": model.out_dim}
        for k in own:
            v = desc.get(k, given.get(k))
            m[k] = list(v) if isinstance(v, tuple) else v
    for k in list(m):  # the resolved [model] holds the kind and its own keys only
        if k != "kind" and k not in own:
            del m[k]
    if cfg["reference"]["source"] == "train" and out_width not in {n_out, n_classes}:
        allowed = sorted({n_out, n_classes})
        what = f"[model] widths[-1] = {out_width}" if kind == "mlp" else f"the model has {out_width} outputs"
        raise ConfigError(
            f"config: {what} but dataset {d['dataset']} has {n_classes} classes "
            f"(output width must be {' or '.join(map(str, allowed))} to train on its labels)")


def outputs_default(kind: str, keys: dict, n_classes: int, reference: dict | None = None) -> int | None:
    """A model's outputs when ``[model] outputs`` is not given, in this order:

    1. ``module``: None — the module's own output width, read by running it (:func:`genni.models.module.infer_io`);
    2. ``cnn``, ``resmlp`` with ``[reference] source = "file"``: the rows of the state_dict's output layer
       (``out.weight``), when the file reads;
    3. the data set's: 1 for binary and unlabelled sets, one per class otherwise.
    """
    if keys.get("outputs") is not None:
        return keys["outputs"]
    if kind == "module":
        return None
    if kind in ("cnn", "resmlp") and reference and reference.get("source") == "file" and reference.get("path"):
        width = _state_dict_outputs(reference["path"])
        if width is not None:
            return width
    return 1 if n_classes in (0, 2) else n_classes


def _state_dict_outputs(path: str) -> int | None:
    """Rows of ``out.weight`` in the state_dict at ``path``; None when the file does not read or lacks it
    (``find`` then names what is wrong with the file)."""
    from .errors import GenniError
    from .models.base import read_state_dict

    try:
        state = read_state_dict(Path(path))
    except (GenniError, OSError, ValueError, RuntimeError):
        return None
    w = state.get("out.weight", state.get("module.out.weight")) if hasattr(state, "get") else None
    return int(w.shape[0]) if getattr(w, "ndim", 0) == 2 and w.shape[0] > 0 else None


def _build_model(d: dict, kind: str, keys: dict, reference: dict | None = None):
    """The model of kind ``kind`` from its [model] keys (``outputs`` default: :func:`outputs_default`) on
    [data] d; the kind's own errors name the data set."""
    d_in, n_classes, _ = _data.dataset_info(d["dataset"], d.get("dim"))
    cls = _models.model_class(kind)
    n_out = outputs_default(kind, keys, n_classes, reference)
    try:
        return cls.from_config({k: keys.get(k) for k in cls.CONFIG_KEYS}, d_in, n_out,
                               _data.image_shape(d["dataset"], d.get("shape")))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("the data set", f"dataset {d['dataset']}")) from None


def model_of(cfg: dict):
    """The :class:`genni.models.Model` a resolved config describes."""
    return _build_model(cfg["data"], cfg["model"].get("kind", "mlp"), cfg["model"], cfg.get("reference"))


def load(path: str | Path | None = None) -> dict:
    """Read and resolve a TOML config; ``None`` gives the built-in default experiment."""
    if path is None:
        text = resources.files("genni").joinpath("default.toml").read_text()
        where = "built-in default"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {p}: {exc}") from None
        where = str(p)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {where} is not valid TOML: {exc}") from None
    return resolve(raw, root=None if path is None else Path(path).absolute().parent)


def to_json(cfg: dict) -> str:
    """Canonical JSON text of a resolved config (sorted keys)."""
    return json.dumps(cfg, sort_keys=True)


def with_overrides(cfg: dict, *, n: int | None = None, seed: int | None = None, device: str | None = None) -> dict:
    """A copy with command-line overrides applied (and re-validated)."""
    out = copy.deepcopy(cfg)
    if n is not None:
        out["search"]["n"] = _check_value("search", "n", n)
    if seed is not None:
        out["seed"] = _check_value("", "seed", seed)
    if device is not None:
        out["search"]["device"] = _check_value("search", "device", device)
    return out


EXPLORE_SECTIONS = ("search", "identify")
"""The sections whose every key :func:`explore_config` takes (as a keyword or in a section dict)."""

EXPLORE_DATA_KEYS = ("n_far", "far_scale")
"""The ``[data]`` keys :func:`explore_config` takes; the rest come from the inputs given."""

EXPLORE_DEFAULTS = {"search": {"init": "perturb", "init_scale": 0.01}}
"""Where :func:`explore_config`'s defaults differ from a TOML config's: the search starts from θ* moved by 1 % of a
fresh initialisation, as the built-in default experiment does (relu searches from random starts stall)."""


def _explore_key(key: str, value) -> list[tuple[str, str, object]]:
    """(section, key, value) for one keyword of :func:`genni.explore`: a top-level key, a key of a section it
    takes (flat), or a whole section as a dict; a one-line ``ConfigError`` for anything else."""
    takes = {k: sec for sec in EXPLORE_SECTIONS for k in SCHEMA[sec]} | {k: "data" for k in EXPLORE_DATA_KEYS}
    takes |= {k: "" for k in SCHEMA[""]}
    if key in EXPLORE_SECTIONS or key == "data":
        if not isinstance(value, dict):
            raise ConfigError(f"explore: {key}= must be a dict of [{key}] keys, got {value!r}")
        out = []
        for k, v in value.items():
            if takes.get(k) != key:
                known = EXPLORE_DATA_KEYS if key == "data" else tuple(SCHEMA[key])
                raise ConfigError(f"explore: unknown key '{k}' in {key}= (known: {', '.join(known)})")
            out.append((key, k, v))
        return out
    if key in takes:
        return [(takes[key], key, value)]
    if key == "model" or key in SCHEMA["model"]:
        raise ConfigError(f"explore: {key} is a [model] key; the architecture is the model you pass")
    if key == "reference" or key in SCHEMA["reference"]:
        raise ConfigError(f"explore: {key} is a [reference] key; the reference is the model you pass (θ* its "
                          "parameters)")
    if key in SCHEMA["data"]:
        raise ConfigError(f"explore: {key} is a [data] key that the inputs decide (X and heldout); explore takes "
                          f"{', '.join(EXPLORE_DATA_KEYS)}")
    import difflib
    near = sorted((k for k in takes if len(k) > 2 and (key.startswith(k) or k.startswith(key))), key=len,
                  reverse=True) or difflib.get_close_matches(key, list(takes), n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise ConfigError(f"explore: unknown keyword '{key}' ({hint}keys: name, seed, n_far, far_scale, every [search] "
                      "and [identify] key, or search={...}, identify={...}, data={...})")


def model_table(model) -> dict:
    """The resolved ``[model]`` table of a :class:`genni.models.Model`: ``kind`` and the kind's own keys
    (``outputs`` too for every kind but mlp), as :func:`resolve` writes them."""
    own = tuple(type(model).CONFIG_KEYS) + (("outputs",) if model.kind != "mlp" else ())
    desc = {**model.to_dict(), "outputs": model.out_dim}
    return {"kind": model.kind, **{k: list(desc[k]) if isinstance(desc.get(k), tuple) else desc.get(k) for k in own}}


def explore_config(keys: dict, *, model: dict, n_probe: int, n_heldout: int, d_in: int,
                   shape: tuple[int, ...] | None = None) -> dict:
    """The resolved config of a run of given inputs and a given reference (:func:`genni.explore`).

    keys : the keywords of ``genni.explore`` (flat keys such as ``tol``, or sections such as
        ``search={"tol": 1e-12}``), checked as a TOML config's keys are, each error one line naming the key
    model : the model's ``[model]`` table (``kind`` and the kind's keys);  n_probe, n_heldout : rows given;
    d_in : input features per row;  shape : the [C, H, W] of an image row, or None
    returns : a config like :func:`resolve`'s, with ``[data] dataset`` and ``[reference] source`` = ``"given"``
    """
    raw: dict = {"": {}, "data": {}, "search": {}, "identify": {}}
    for key, value in keys.items():
        for section, k, v in _explore_key(key, value):
            if k in raw[section]:
                raise ConfigError(f"explore: {_key_name(section, k)} is given twice")
            raw[section][k] = _check_value(section, k, v)
    out: dict = {k: raw[""].get(k, default) for k, (_t, default, _c) in SCHEMA[""].items()}
    for section in ("search", "identify"):
        defaults = {k: default for k, (_t, default, _c) in SCHEMA[section].items()} | EXPLORE_DEFAULTS.get(section, {})
        out[section] = {k: raw[section].get(k, default) for k, default in defaults.items()}
    far = {k: raw["data"].get(k, SCHEMA["data"][k][1]) for k in EXPLORE_DATA_KEYS}
    out["data"] = {"dataset": GIVEN, "n_probe": int(n_probe), "n_heldout": int(n_heldout), "n_train": 0,
                   "noise": None, "dim": int(d_in), "shape": None if shape is None else [int(s) for s in shape],
                   **far}
    out["model"] = dict(model)
    out["reference"] = {"source": GIVEN}
    srch = out["search"]
    if srch["max_steps"] is None:
        srch["max_steps"] = DEFAULT_MAX_STEPS[srch["method"]]
    if srch["patience"] is None:
        srch["patience"] = DEFAULT_PATIENCE[srch["method"]]
    _resolve_rank_inputs(out, "rank_inputs" in raw["identify"])
    if out["identify"]["rank_growth_max"] > 0 and out["identify"]["rank_inputs"] == "data":
        raise ConfigError("explore: [identify] rank_growth_max draws fresh inputs from a built-in data set, and "
                          "given inputs have none: leave it at 0, or use rank_inputs = 'kinks' (relu MLPs)")
    return out


def differences(stored: dict, given: dict) -> list[str]:
    """Keys (``section.key``) whose values differ, ignoring :data:`RESUMABLE_KEYS`.

    A key that the stored config lacks (it was written by a genni that did not know the key)
    counts as holding its default, so adding a key with a default never orphans old run files."""
    a, b = copy.deepcopy(stored), copy.deepcopy(given)
    for c in (a, b):  # both sides: a non-MLP kind's resolved [model] leaves out the MLP's keys altogether
        for section, keys in SCHEMA.items():
            target = c if not section else c.get(section)
            if isinstance(target, dict):
                for key, (_t, default, _c) in keys.items():
                    if key not in target and default is not None:
                        target[key] = default
    for section, key in RESUMABLE_KEYS:
        for c in (a, b):
            c.get(section, {}).pop(key, None)
    diffs = []
    for section in sorted(set(a) | set(b)):
        va, vb = a.get(section), b.get(section)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += [f"{section}.{k}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
        elif va != vb:
            diffs.append(section)
    return diffs
