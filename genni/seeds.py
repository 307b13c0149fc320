"""Reproducible random streams: one torch generator per (seed, key…), independent of every other key."""

from __future__ import annotations

import numpy as np
import torch


def element_generator(seed: int, *key: int) -> tuple[torch.Generator, int]:
    """A torch generator seeded reproducibly from ``(seed, *key)``; returns it and its 63-bit seed."""
    s = int(np.random.SeedSequence([int(seed), *map(int, key)]).generate_state(1, dtype=np.uint64)[0]) >> 1
    g = torch.Generator()
    g.manual_seed(s)
    return g, s


__all__ = ["element_generator"]
