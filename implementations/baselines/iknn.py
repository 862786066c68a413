"""Item-KNN: score items by their similarity to the session's last item.

SPEC.md section 6. With X the (session x item) matrix of event counts of the
training split and supp_i the number of training events of item i:

    cooc = X^T X                      (cooc_ij = sum over sessions of n_i(s) * n_j(s))
    s_ij = cooc_ij / ((supp_i + lmbd)^alpha * (supp_j + lmbd)^(1 - alpha)),   s_ii = 0

Each item keeps only its ``neighbors`` (100) most similar items; every other
item scores 0 for it. A session is scored by the row of its LAST item only.

Ties at the neighbour cut (equal similarity) are broken by ascending ItemId,
so the result is deterministic. (The authors' code takes the last entries of
an unstable argsort, i.e. an unspecified order among equal similarities.)

The co-occurrence is computed with sparse matrix products over blocks of item
rows, and the top-``neighbors`` cut is taken per block, so the full X^T X is
never held in memory at once.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from gru4rec_repro.contract import RunContext

from .common import (
    PredictionEvents, check_split, index_sessions, index_items, item_supports, log, rank_events,
    resolve_params, write_fit_log, write_npz,
)

DEFAULTS = {"lmbd": 20.0, "alpha": 0.5, "neighbors": 100}

#: Upper bound on the co-occurrence entries of one block of item rows.
BLOCK_ENTRIES = 40_000_000


def session_item_counts(session_idx: np.ndarray, item_idx: np.ndarray, n_sessions: int, n_items: int) -> sp.csr_matrix:
    """X: (n_sessions, n_items) number of events of each item in each session."""
    x = sp.csr_matrix(
        (np.ones(len(item_idx), dtype=np.float64), (session_idx, item_idx)),
        shape=(n_sessions, n_items),
    )
    x.sum_duplicates()
    return x


def top_per_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int):
    """Keep each row's ``k`` largest values (ties: ascending column), as (rows, cols, vals)."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    row_start = np.flatnonzero(first)
    rank_in_row = np.arange(len(rows)) - row_start[np.cumsum(first) - 1]
    keep = rank_in_row < k
    return rows[keep], cols[keep], vals[keep]


def item_similarities(
    x: sp.csr_matrix,
    supp: np.ndarray,
    lmbd: float = 20.0,
    alpha: float = 0.5,
    neighbors: int = 100,
    *,
    progress: bool = False,
) -> sp.csr_matrix:
    """(n_items, n_items) sparse matrix of s_ij, only each row's top ``neighbors`` kept."""
    n_items = x.shape[1]
    xt = x.T.tocsr()
    left = np.power(supp + lmbd, alpha, dtype=np.float64)
    right = np.power(supp + lmbd, 1.0 - alpha, dtype=np.float64)
    block = max(1, BLOCK_ENTRIES // max(n_items, 1))
    kept_rows, kept_cols, kept_vals = [], [], []
    for a in tqdm(range(0, n_items, block), desc="iknn similarities", disable=not progress, unit="block"):
        cooc = (xt[a:a + block] @ x).tocsr()
        rows = np.repeat(np.arange(a, a + cooc.shape[0]), np.diff(cooc.indptr))
        cols = cooc.indices.astype(np.int64)
        vals = cooc.data
        off_diagonal = (cols != rows) & (vals > 0)
        rows, cols, vals = rows[off_diagonal], cols[off_diagonal], vals[off_diagonal]
        vals = vals / (left[rows] * right[cols])
        rows, cols, vals = top_per_row(rows, cols, vals, neighbors)
        kept_rows.append(rows)
        kept_cols.append(cols)
        kept_vals.append(vals)
        del cooc
    sims = sp.csr_matrix(
        (np.concatenate(kept_vals), (np.concatenate(kept_rows), np.concatenate(kept_cols))),
        shape=(n_items, n_items),
    )
    sims.sort_indices()
    return sims


class ItemKNN:
    """Item-KNN baseline: ``fit`` builds the neighbour matrix, rows score sessions."""

    def __init__(self, lmbd: float = 20.0, alpha: float = 0.5, neighbors: int = 100, progress: bool = False):
        if neighbors < 1:
            raise ValueError(f"iknn: neighbors must be >= 1, got {neighbors}")
        if lmbd < 0:
            raise ValueError(f"iknn: lmbd must be >= 0, got {lmbd}")
        self.lmbd, self.alpha, self.neighbors = float(lmbd), float(alpha), int(neighbors)
        self.progress = progress

    def fit(self, train: pd.DataFrame) -> "ItemKNN":
        train = check_split(train, "train")
        self.item_ids, item_idx = index_items(train)
        n_items = len(self.item_ids)
        session_idx = index_sessions(train)
        self.supp = item_supports(item_idx, n_items)
        x = session_item_counts(session_idx, item_idx, int(session_idx.max()) + 1, n_items)
        self.sims = item_similarities(x, self.supp, self.lmbd, self.alpha, self.neighbors,
                                      progress=self.progress)
        log.info("iknn: %d items, %d kept similarities", n_items, self.sims.nnz)
        return self

    def score_block(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        return self.sims[events.input_item(rows)].toarray()


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    """Rank record of Item-KNN (deterministic: ``seed`` is not used)."""
    p = resolve_params(params, DEFAULTS, "iknn")
    t0 = time.perf_counter()
    model = ItemKNN(p["lmbd"], p["alpha"], p["neighbors"], progress=ctx.progress).fit(train)
    seconds = time.perf_counter() - t0
    ctx.log.info("iknn: fitted in %.1f s", seconds)
    write_fit_log(ctx, seconds, len(train))
    write_npz(ctx.outdir / "weights.npz", item_ids=model.item_ids, sims_data=model.sims.data,
              sims_indices=model.sims.indices, sims_indptr=model.sims.indptr)
    events = PredictionEvents.from_test(test, model.item_ids)
    return rank_events(events, lambda rows: model.score_block(events, rows),
                       progress=ctx.progress, desc="iknn ranking")
