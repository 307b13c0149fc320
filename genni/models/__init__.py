"""Architectures ("kinds") behind one interface, :class:`genni.models.base.Model`.

Adding a kind: write ``genni/models/<kind>.py`` with a frozen dataclass subclassing ``Model``, add one
line to :data:`REGISTRY`, and ``tests/test_model_contract.py`` checks it against the interface.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Model

REGISTRY: dict[str, str] = {
    "mlp": "genni.models.mlp:MLP",
    "resmlp": "genni.models.resmlp:ResMLP",
    "cnn": "genni.models.cnn:CNN",
    "module": "genni.models.module:TorchModule",
}
"""kind -> "module:Class" (imported on first use, so a kind's module may import genni freely)."""


def model_class(kind: str) -> type[Model]:
    if kind not in REGISTRY:
        raise ConfigError(f"unknown model kind '{kind}' (supported: {', '.join(REGISTRY)})")
    mod, cls = REGISTRY[kind].split(":")
    return getattr(importlib.import_module(mod), cls)


def from_dict(d: dict) -> Model:
    """The model a JSON description names (``kind``, default ``mlp`` for files written before kinds)."""
    return model_class(d.get("kind", "mlp")).from_dict(d)


def describe(d: dict) -> str:
    """A stored architecture's phrase for titles and reports: its ``description`` (written with the run
    since kinds exist), else rebuilt from the MLP fields of older files."""
    if d.get("description"):
        return str(d["description"])
    return from_dict(d).describe()


__all__ = ["Model", "REGISTRY", "model_class", "from_dict", "describe"]
