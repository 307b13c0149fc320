"""The reference network θ*: trained on a data set's labels, a seeded random teacher, or loaded from a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import GenniError
from .models import Model
from .progress import bar
from .seeds import element_generator


@dataclass(frozen=True)
class Reference:
    """A reference network.

    theta : ndarray, shape [P] (float64)
    source : "train" | "random" | "file"
    accuracy : accuracy on the held-out labels (None for a teacher without labels)
    train_accuracy : accuracy on the training labels (None unless trained)
    """

    theta: np.ndarray
    source: str
    accuracy: float | None = None
    train_accuracy: float | None = None


def predict(model: Model, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Class predictions: sign of a single logit, else argmax. theta : [P], X : [n, w_0] -> [n]."""
    with torch.no_grad():
        out = model.forward(theta, X)
    return (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)


def accuracy(model: Model, theta, X, y) -> float:
    """Fraction of inputs whose predicted class equals the label."""
    t = torch.as_tensor(theta, dtype=torch.float64)
    pred = predict(model, t, torch.as_tensor(X, dtype=torch.float64))
    return float((pred.numpy() == np.asarray(y)).mean())


def train_reference(model: Model, X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float,
                    weight_decay: float = 0.0, seed: int = 0, init_scale: float = 1.0,
                    progress: bool = False) -> np.ndarray:
    """Train θ* by full-batch Adam on the labels.

    Minimises the mean cross-entropy, with a single output as a logit
    (binary cross-entropy, class 1 ↔ f > 0), otherwise softmax over w_L outputs,
    plus ``weight_decay · ‖θ‖²``.

    X : ndarray, shape [n, w_0];  y : ndarray, shape [n] (int labels)
    returns : ndarray, shape [P] (float64)
    """
    if len(X) == 0:
        raise GenniError("cannot train the reference: the training set is empty (n_train = 0)")
    g, _ = element_generator(seed, 0xA11CE)
    theta = model.init_theta(1, g, init_scale)[0].requires_grad_(True)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y)
    opt = torch.optim.Adam([theta], lr=lr)
    single = model.out_dim == 1
    for _ in bar(range(epochs), progress=progress, desc="train reference", unit="epoch", leave=False):
        opt.zero_grad()
        out = model.forward(theta, Xt)
        if single:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], yt.to(torch.float64))
        else:
            loss = torch.nn.functional.cross_entropy(out, yt)
        if weight_decay:
            loss = loss + weight_decay * (theta * theta).sum()
        loss.backward()
        opt.step()
    return theta.detach().numpy().copy()


def random_reference(model: Model, *, seed: int, init_scale: float = 1.0, init: str = "torch",
                     bias_std: float = 0.01) -> np.ndarray:
    """A seeded random teacher, shape [P]: ``init = "torch"``: torch.nn.Linear's initialisation (every
    weight and bias uniform on ±1/√fan_in) times ``init_scale``; ``init = "he"``: He-normal weights
    N(0, 2/fan_in) times ``init_scale`` and biases N(0, bias_std²) (the initialisation under which relu
    networks keep their signal through depth)."""
    g, _ = element_generator(seed, 0x7EAC)
    if init == "torch":
        return model.init_theta(1, g, init_scale)[0].numpy()
    theta = torch.zeros(model.n_params, dtype=torch.float64)
    for w, n_out, b in model.filter_groups():  # one weight tensor, its n_out filters, its bias
        size = w.stop - w.start
        theta[w] = torch.randn(size, generator=g, dtype=torch.float64) * (init_scale * np.sqrt(2.0 * n_out / size))
        if b is not None:
            theta[b] = torch.randn(b.stop - b.start, generator=g, dtype=torch.float64) * bias_std
    return theta.numpy()


def load_reference(model, path: str | Path) -> np.ndarray:
    """θ* from a ``state_dict`` saved with ``torch.save`` (loaded with ``weights_only=True``; the model's
    :meth:`~genni.models.base.Model.load_state_dict` names any key or shape that does not fit)."""
    return model.load_state_dict(path)


def _ref_seed(cfg: dict) -> int:
    """``[reference] seed`` when given (independently trained networks on the same data), else the run's seed."""
    seed = cfg["reference"].get("seed")
    return int(cfg["seed"] if seed is None else seed)


def make_reference(cfg: dict, model: Model, data, *, progress: bool = False) -> Reference:
    """The reference the resolved config asks for (see :mod:`genni.config`)."""
    ref = cfg["reference"]
    if ref["source"] == "train":
        theta = train_reference(model, data.X_train, data.y_train, epochs=ref["epochs"], lr=ref["lr"],
                                weight_decay=ref["weight_decay"], seed=_ref_seed(cfg),
                                init_scale=ref["init_scale"], progress=progress)
        if not np.isfinite(theta).all():
            raise GenniError("training the reference diverged (NaN weights); lower [reference] lr")
    elif ref["source"] == "random":
        theta = random_reference(model, seed=_ref_seed(cfg), init_scale=ref["init_scale"], init=ref.get("init", "torch"),
                                 bias_std=ref.get("bias_std", 0.01))
        if ref.get("centre"):
            theta = model.centre_biases(theta, data.X_probe)
    else:
        theta = load_reference(model, ref["path"])
    # accuracy means something only for a network meant to fit the labels (not a random teacher)
    labelled = ref["source"] != "random" and (
        model.out_dim == data.n_classes or (model.out_dim == 1 and data.n_classes == 2))
    acc = accuracy(model, theta, data.X_heldout, data.y_heldout) if labelled else None
    train_acc = accuracy(model, theta, data.X_train, data.y_train) if labelled and len(data.X_train) else None
    return Reference(theta=theta, source=ref["source"], accuracy=acc, train_accuracy=train_acc)
