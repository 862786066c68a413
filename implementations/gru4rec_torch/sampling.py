"""The pre-drawn store of extra negative samples (SPEC.md section 4).

Extra negatives are drawn with probability proportional to support^alpha
(support = the item's number of training events) by inverting the cumulative
distribution. As in the authors' code they are drawn ahead of time, about
``store_size`` item indices at once, as ``store_size // n_sample`` rows of
``n_sample``; each mini-batch takes the next row, and the store is drawn again
when it is used up. The first store is drawn when the store is made (the
authors' code draws it when it builds its data iterator, before its epoch
timer starts), so an epoch's time counts the same draws in both programs.
"""
from __future__ import annotations

import numpy as np
import torch


def sampling_cdf(support: np.ndarray, alpha: float) -> np.ndarray:
    """Cumulative distribution of support^alpha over the item index (last value exactly 1)."""
    weights = np.asarray(support, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def invert_cdf(cdf: np.ndarray, u: np.ndarray, guide: np.ndarray | None = None) -> np.ndarray:
    """First index ``i`` with ``cdf[i] > u`` for each ``u`` in [0, 1): the same
    as ``np.searchsorted(cdf, u, side="right")``, but a guide table of the
    CDF at ``K`` equal steps starts each search next to its answer, which is
    several times faster on millions of draws than a binary search.
    """
    if guide is None:
        guide = guide_table(cdf)
    K = len(guide) - 1
    idx = guide[np.minimum((u * K).astype(np.int64), K - 1)]  # u * K may round up to K
    active = np.flatnonzero(cdf[idx] <= u)
    while active.size:  # walk up to the answer; few draws need more than a step or two
        idx[active] += 1
        active = active[cdf[idx[active]] <= u[active]]
    return idx


def guide_table(cdf: np.ndarray, steps_per_item: int = 4) -> np.ndarray:
    """``guide[j]`` = first index with ``cdf > j / K`` (K = steps_per_item * n_items)."""
    K = steps_per_item * len(cdf)
    return np.searchsorted(cdf, np.arange(K + 1) / K, side="right")


class SampleStore:
    """Rows of ``n_sample`` item indices drawn ahead of time from support^alpha."""

    def __init__(self, support: np.ndarray, alpha: float, n_sample: int, store_size: int,
                 rng: np.random.Generator, device: torch.device | str = "cpu"):
        if n_sample <= 0:
            raise ValueError("SampleStore needs n_sample > 0")
        self.cdf = sampling_cdf(support, alpha)
        self.guide = guide_table(self.cdf)
        self.n_sample = int(n_sample)
        self.n_rows = max(1, int(store_size) // self.n_sample)
        self.rng = rng
        self.device = torch.device(device)
        self._rng_state_at_draw = None
        self.rows = None
        self._draw()  # drawn up front, as the authors' code does when it builds its iterator

    def _draw(self) -> None:
        self._rng_state_at_draw = self.rng.bit_generator.state
        u = self.rng.random(self.n_rows * self.n_sample)
        idx = invert_cdf(self.cdf, u, self.guide)
        self.rows = torch.from_numpy(idx.reshape(self.n_rows, self.n_sample)).to(self.device)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        """The extra negatives of the next mini-batch, shape ``(n_sample,)`` int64."""
        if self.pointer >= self.n_rows:
            self._draw()
        sample = self.rows[self.pointer]
        self.pointer += 1
        return sample

    def state_dict(self) -> dict:
        """Enough to redraw the same store and continue where it was (not the store itself)."""
        return {"rng_state_at_draw": self._rng_state_at_draw, "pointer": self.pointer,
                "rng_state": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state["rng_state_at_draw"] is None:
            self.rows, self.pointer = None, self.n_rows
        else:
            self.rng.bit_generator.state = state["rng_state_at_draw"]
            self._draw()
            self.pointer = state["pointer"]
        self.rng.bit_generator.state = state["rng_state"]
