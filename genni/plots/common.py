"""What every figure shares: the run's title, wrapped titles, decade ticks on colour bars, per-layer lines."""

from __future__ import annotations

import textwrap

import numpy as np

from ..models import describe
from ..store import RunData


def run_title(run: RunData) -> str:
    """The run's name, architecture and data set: the first line of every run figure's title."""
    data = run.config["data"]["dataset"]
    return f"{run.config.get('name')}: {describe(run.architecture)} on {'given inputs' if data == 'given' else data}"


def wrap(text: str, width: int) -> str:
    """A title broken into lines of at most ``width`` characters (a long architecture fits a narrow figure)."""
    return "\n".join(textwrap.wrap(text, width)) or text


def log_ticks(cb, levels) -> None:
    """Decade ticks (10^k) on a log-scaled contour colour bar, at most ~8 of them."""
    lo, hi = np.log10(levels[0]), np.log10(levels[-1])
    ks = np.arange(np.ceil(lo), np.floor(hi) + 1)
    if len(ks) < 2:  # less than a decade: label the ends
        ticks = [levels[0], levels[-1]]
    else:
        ticks = 10.0 ** ks[:: max(1, int(np.ceil(len(ks) / 8)))]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:.1e}" if len(ks) < 2 else f"1e{int(np.log10(t))}" for t in ticks])


def by_layer(ax, x, values: np.ndarray, ylabel: str, title: str):
    """One line per network (row 0 = reference, bold) across layers."""
    for m in range(len(values) - 1, -1, -1):
        ref = m == 0
        ax.plot(x, values[m], "-o" if ref else "-", color="k" if ref else "#1f78b4", lw=2 if ref else 0.7,
                ms=4, alpha=1 if ref else 0.45, zorder=3 if ref else 2,
                label="reference θ*" if ref else ("equivalents" if m == 1 else None))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=8, rotation=30)
    ax.grid(alpha=0.3)
