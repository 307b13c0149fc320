"""Architectures ("kinds") behind one interface, :class:`genni.models.base.Model`, each with its symmetry
group as one object (:class:`genni.models.symmetry.Symmetry`, ``model.symmetry``).

Adding a kind: write ``genni/models/<kind>.py`` (or a package) with a frozen dataclass subclassing
``Model`` and a ``Symmetry`` subclass, add it to :data:`REGISTRY`; the model and symmetry contracts in
``tests/contracts/`` then check it.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Model
from .cnn import CNN
from .mlp import MLP
from .module import TorchModule
from .resmlp import ResMLP
from .symmetry import GroupElement, Symmetry

REGISTRY: dict[str, type[Model]] = {"mlp": MLP, "resmlp": ResMLP, "cnn": CNN, "module": TorchModule}
"""kind -> model class."""


def model_class(kind: str) -> type[Model]:
    if kind not in REGISTRY:
        raise ConfigError(f"unknown model kind '{kind}' (supported: {', '.join(REGISTRY)})")
    return REGISTRY[kind]


def from_dict(d: dict) -> Model:
    """The model a JSON description names (``kind``, default ``mlp`` for descriptions without one)."""
    return model_class(d.get("kind", "mlp")).from_dict(d)


def describe(d: dict) -> str:
    """A stored architecture's phrase for titles and reports: its ``description``, else rebuilt from the
    description's fields."""
    if d.get("description"):
        return str(d["description"])
    return from_dict(d).describe()


__all__ = ["CNN", "MLP", "Model", "ResMLP", "TorchModule", "GroupElement", "Symmetry", "REGISTRY", "model_class",
           "from_dict", "describe"]
