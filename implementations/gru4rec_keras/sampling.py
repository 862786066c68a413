"""Extra negative samples: a pre-drawn store, support^alpha (SPEC.md section 4).

The whole mini-batch shares ``n_sample`` extra items drawn with probability
proportional to support^``sample_alpha`` (support = training events of the
item). As in the authors' code, about ``store_size`` item ids are drawn at
once from the cumulative distribution and handed out ``n_sample`` at a time;
the store is redrawn when used up.
"""
from __future__ import annotations

import numpy as np


def sampling_probability(support: np.ndarray, alpha: float) -> np.ndarray:
    """P(item) proportional to support^alpha."""
    weight = np.asarray(support, dtype=np.float64) ** alpha
    return weight / weight.sum()


def inverse_cdf(cdf: np.ndarray, u: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cdf, u, side="right")`` (the first index with cdf > u), exactly,
    via a bucket table: ``buckets[j]`` = that index for u = j / K. Each draw starts at its
    bucket below and steps up, a step or two on average instead of a binary search
    (measured 5x faster on 10M draws over 37k items)."""
    K = len(buckets) - 1
    # one bucket lower than floor(u * K), so a rounding of u * K upwards cannot start past the answer
    idx = buckets[np.clip((u * K).astype(np.int64) - 1, 0, K - 1)]
    active = np.flatnonzero(cdf[idx] <= u)
    while active.size:
        idx[active] += 1
        active = active[cdf[idx[active]] <= u[active]]
    return idx


class SampleStore:
    """Hands out rows of ``n_sample`` item indices from a pre-drawn store."""

    def __init__(self, support: np.ndarray, n_sample: int, alpha: float, store_size: int, seed: int):
        self.n_sample = int(n_sample)
        self.cdf = np.cumsum(sampling_probability(support, alpha))
        self.cdf[-1] = 1.0
        K = 8 * len(self.cdf)
        self.buckets = np.searchsorted(self.cdf, np.arange(K + 1) / K, side="right")
        self.rows = max(1, int(store_size) // max(self.n_sample, 1))
        self.rng = np.random.default_rng(seed)
        self.store = np.zeros((0, self.n_sample), dtype=np.int32)
        self.pos = 0
        self._state_before_draw = None
        self._draw()  # the first store is drawn when the store is made (as the authors' code
        # does; a timed epoch then counts the same draws as theirs)

    def _draw(self) -> None:
        self._state_before_draw = self.rng.bit_generator.state
        u = self.rng.random((self.rows, self.n_sample))
        self.store = inverse_cdf(self.cdf, u.ravel(), self.buckets).astype(np.int32).reshape(u.shape)
        self.pos = 0

    def next(self) -> np.ndarray:
        """The extra negatives of the next mini-batch, (n_sample,) int32."""
        if self.pos >= len(self.store):
            self._draw()
        row = self.store[self.pos]
        self.pos += 1
        return row

    # checkpointing: the store is regenerated from the generator state it was drawn from
    def get_state(self) -> dict:
        return {"state_before_draw": self._state_before_draw, "pos": self.pos,
                "state": self.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        if state["state_before_draw"] is None:
            self.store = np.zeros((0, self.n_sample), dtype=np.int32)
            self.pos = 0
            self.rng.bit_generator.state = state["state"]
            return
        self.rng.bit_generator.state = state["state_before_draw"]
        self._draw()
        self.pos = state["pos"]
        self.rng.bit_generator.state = state["state"]
