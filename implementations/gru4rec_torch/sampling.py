"""The pre-drawn store of extra negative samples (SPEC.md section 4).

Extra negatives are drawn with probability proportional to support^alpha
(support = the item's number of training events) by inverting the cumulative
distribution. As in the authors' code they are drawn ahead of time, about
``store_size`` item indices at once, as ``store_size // n_sample`` rows of
``n_sample``; each mini-batch takes the next row, and the store is drawn again
when it is used up.
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


class SampleStore:
    """Rows of ``n_sample`` item indices drawn ahead of time from support^alpha."""

    def __init__(self, support: np.ndarray, alpha: float, n_sample: int, store_size: int,
                 rng: np.random.Generator, device: torch.device | str = "cpu"):
        if n_sample <= 0:
            raise ValueError("SampleStore needs n_sample > 0")
        self.cdf = sampling_cdf(support, alpha)
        self.n_sample = int(n_sample)
        self.n_rows = max(1, int(store_size) // self.n_sample)
        self.rng = rng
        self.device = torch.device(device)
        self.pointer = self.n_rows  # drawn on first use
        self._rng_state_at_draw = None
        self.rows = None

    def _draw(self) -> None:
        self._rng_state_at_draw = self.rng.bit_generator.state
        u = self.rng.random(self.n_rows * self.n_sample)
        idx = np.searchsorted(self.cdf, u, side="right")
        np.minimum(idx, len(self.cdf) - 1, out=idx)  # u < 1 always; guards rounding
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
