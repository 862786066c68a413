"""S-POP: the items of the current session, most frequent first, POP as tie-break.

SPEC.md section 6: score = (number of times the item occurred in the session
so far, the input event included) + the POP score supp / (1 + supp) of the
``top_n`` (100) most popular training items (0 for the others). The POP part
is below 1, so it only orders items with equal in-session counts.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from gru4rec_repro.contract import RunContext

from .common import PredictionEvents, rank_events, resolve_params, write_fit_log, write_npz
from .pop import Pop

DEFAULTS = {"top_n": 100}


class SPop:
    """S-POP baseline: POP scores plus in-session item counts."""

    def __init__(self, top_n: int = 100):
        self.pop = Pop(top_n)

    def fit(self, train: pd.DataFrame) -> "SPop":
        self.pop.fit(train)
        self.item_ids = self.pop.item_ids
        return self

    def score_block(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        counts = events.history_counts(rows).tocoo()  # no duplicate entries
        scores = np.tile(self.pop.scores, (len(rows), 1))
        scores[counts.row, counts.col] += counts.data
        return scores


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    """Rank record of S-POP (deterministic: ``seed`` is not used)."""
    p = resolve_params(params, DEFAULTS, "spop")
    t0 = time.perf_counter()
    model = SPop(p["top_n"]).fit(train)
    write_fit_log(ctx, time.perf_counter() - t0, len(train))
    write_npz(ctx.outdir / "weights.npz", item_ids=model.item_ids, scores=model.pop.scores)
    events = PredictionEvents.from_test(test, model.item_ids)
    return rank_events(events, lambda rows: model.score_block(events, rows),
                       progress=ctx.progress, desc="spop ranking")
