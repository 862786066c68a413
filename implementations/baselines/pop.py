"""POP: recommend the most popular training items, the same list for every session.

SPEC.md section 6: score = supp / (1 + supp), supp = number of training
events of the item, for the ``top_n`` (100) most popular items; every other
item scores 0, so a target outside the top list ties with all of them.

Ties in support at the cut are broken by ascending ItemId (the item index is
ascending ItemId): among items with equal support, the smaller ids make the
list. Items inside the list with equal support keep equal scores (ties).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from gru4rec_repro.contract import RunContext

from .common import (
    PredictionEvents, check_split, index_items, item_supports, rank_events,
    resolve_params, write_fit_log, write_npz,
)

DEFAULTS = {"top_n": 100}


def popularity_scores(supp: np.ndarray, top_n: int = 100) -> np.ndarray:
    """supp / (1 + supp) for the ``top_n`` items with most support, 0 elsewhere.

    Order for the cut: support descending, then item index ascending.
    """
    supp = np.asarray(supp, dtype=np.float64)
    order = np.lexsort((np.arange(len(supp)), -supp))
    top = order[:top_n]
    scores = np.zeros(len(supp), dtype=np.float64)
    scores[top] = supp[top] / (1.0 + supp[top])
    return scores


class Pop:
    """POP baseline: ``fit`` on the training split, then score prediction events."""

    def __init__(self, top_n: int = 100):
        if top_n < 1:
            raise ValueError(f"pop: top_n must be >= 1, got {top_n}")
        self.top_n = int(top_n)

    def fit(self, train: pd.DataFrame) -> "Pop":
        self.item_ids, item_idx = index_items(check_split(train, "train"))
        self.supp = item_supports(item_idx, len(self.item_ids))
        self.scores = popularity_scores(self.supp, self.top_n)
        return self

    def score_block(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(rows), len(self.scores)))


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    """Rank record of POP (deterministic: ``seed`` is not used)."""
    p = resolve_params(params, DEFAULTS, "pop")
    t0 = time.perf_counter()
    model = Pop(p["top_n"]).fit(train)
    write_fit_log(ctx, time.perf_counter() - t0, len(train))
    write_npz(ctx.outdir / "weights.npz", item_ids=model.item_ids, scores=model.scores)
    events = PredictionEvents.from_test(test, model.item_ids)
    return rank_events(events, lambda rows: model.score_block(events, rows),
                       progress=ctx.progress, desc="pop ranking")
