"""Item-KNN: score items by their similarity to the session's last item.

SPEC.md section 6. With X the (session x item) matrix of event counts of the
training split, B = (X > 0) its presence matrix, and supp_i the number of
training events of item i:

    cooc_ij = (X^T B)_ij = sum over sessions s of n_i(s) * [j occurs in s]   (``cooc: authors``, default)
    cooc_ij = (X^T X)_ij = sum over sessions s of n_i(s) * n_j(s)           (``cooc: symmetric``)
    s_ij = cooc_ij / ((supp_i + lmbd)^alpha * (supp_j + lmbd)^(1 - alpha)),   s_ii = 0

A session whose last item is i is scored by row i: s_ij is the score of item j.

The default follows the authors' baselines code (hidasib/GRU4Rec,
``baselines.py``, ``ItemKNN.fit``, lines 261-276 of commit a4ed5fb): for item
i it visits every training event of i and, for the session of that event, adds
1 to every item of the session with ``iarray[items] += 1`` -- numpy's fancy
``+=`` adds once per distinct index, so an item j repeated in the session still
counts once per event of i. The result is not symmetric (cooc_ij != cooc_ji
when i or j repeats in a session); row i (the item whose events are counted)
is the row used when i is the last item (``predict_next``, line 298, reads ``sims[i]``),
and supp_i (an event count, ``groupby(ItemIdx).size()``) takes the exponent
alpha. ``cooc: symmetric`` is the product of the two counts, which this
project used before (on real RSC15, measured outside the project, issue 10:
Recall@20 2% and MRR@20 7% below the authors' code).

Each item keeps only its ``neighbors`` (100) most similar items; every other
item scores 0 for it.

Ties at the neighbour cut (equal similarity) are broken by ascending ItemId,
so the result is deterministic. (The authors' code takes the last entries of
an unstable argsort, i.e. an unspecified order among equal similarities.)

The co-occurrence is computed with sparse matrix products over blocks of item
rows, and the top-``neighbors`` cut is taken per block, so the full
co-occurrence matrix is never held in memory at once. B shares X's index
arrays (``fit`` overwrites X's data with ones once X^T is built).
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

DEFAULTS = {"lmbd": 20.0, "alpha": 0.5, "neighbors": 100, "cooc": "authors"}

#: The co-occurrence definitions (module docstring).
COOC = ("authors", "symmetric")

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


def presence(x: sp.csr_matrix) -> sp.csr_matrix:
    """B: 1 where X is non-zero (X must have no explicit zeros); shares X's index arrays."""
    return sp.csr_matrix((np.ones_like(x.data), x.indices, x.indptr), shape=x.shape, copy=False)


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
    cooc: str = "authors",
    *,
    overwrite_x: bool = False,
    progress: bool = False,
) -> sp.csr_matrix:
    """(n_items, n_items) sparse matrix of s_ij, only each row's top ``neighbors`` kept.

    ``x`` is the (session x item) count matrix X; ``cooc`` picks X^T B
    (``"authors"``) or X^T X (``"symmetric"``), see the module docstring.
    ``overwrite_x`` lets the authors' definition turn ``x`` into B in place
    (saves one data array: 200 MB at RSC15's size).
    """
    if cooc not in COOC:
        raise ValueError(f"iknn: cooc must be one of {list(COOC)}, got {cooc!r}")
    n_items = x.shape[1]
    xt = x.T.tocsr()
    if cooc == "symmetric":
        right_factor = x
    elif overwrite_x:  # xt above is a copy: X's counts are no longer needed
        x.data[:] = 1
        right_factor = x
    else:
        right_factor = presence(x)
    left = np.power(supp + lmbd, alpha, dtype=np.float64)
    right = np.power(supp + lmbd, 1.0 - alpha, dtype=np.float64)
    block = max(1, BLOCK_ENTRIES // max(n_items, 1))
    kept_rows, kept_cols, kept_vals = [], [], []
    for a in tqdm(range(0, n_items, block), desc="iknn similarities", disable=not progress, unit="block"):
        counts = (xt[a:a + block] @ right_factor).tocsr()
        rows = np.repeat(np.arange(a, a + counts.shape[0]), np.diff(counts.indptr))
        cols = counts.indices.astype(np.int64)
        vals = counts.data
        off_diagonal = (cols != rows) & (vals > 0)
        rows, cols, vals = rows[off_diagonal], cols[off_diagonal], vals[off_diagonal]
        vals = vals / (left[rows] * right[cols])
        rows, cols, vals = top_per_row(rows, cols, vals, neighbors)
        kept_rows.append(rows)
        kept_cols.append(cols)
        kept_vals.append(vals)
        del counts
    sims = sp.csr_matrix(
        (np.concatenate(kept_vals), (np.concatenate(kept_rows), np.concatenate(kept_cols))),
        shape=(n_items, n_items),
    )
    sims.sort_indices()
    return sims


class ItemKNN:
    """Item-KNN baseline: ``fit`` builds the neighbour matrix, rows score sessions."""

    def __init__(self, lmbd: float = 20.0, alpha: float = 0.5, neighbors: int = 100, cooc: str = "authors",
                 progress: bool = False):
        if neighbors < 1:
            raise ValueError(f"iknn: neighbors must be >= 1, got {neighbors}")
        if lmbd < 0:
            raise ValueError(f"iknn: lmbd must be >= 0, got {lmbd}")
        if cooc not in COOC:
            raise ValueError(f"iknn: cooc must be one of {list(COOC)}, got {cooc!r}")
        self.lmbd, self.alpha, self.neighbors, self.cooc = float(lmbd), float(alpha), int(neighbors), cooc
        self.progress = progress

    def fit(self, train: pd.DataFrame) -> "ItemKNN":
        train = check_split(train, "train")
        self.item_ids, item_idx = index_items(train)
        n_items = len(self.item_ids)
        session_idx = index_sessions(train)
        self.supp = item_supports(item_idx, n_items)
        x = session_item_counts(session_idx, item_idx, int(session_idx.max()) + 1, n_items)
        self.sims = item_similarities(x, self.supp, self.lmbd, self.alpha, self.neighbors, self.cooc,
                                      overwrite_x=True, progress=self.progress)
        log.info("iknn: %d items, %d kept similarities", n_items, self.sims.nnz)
        return self

    def score_block(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        return self.sims[events.input_item(rows)].toarray()


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    """Rank record of Item-KNN (deterministic: ``seed`` is not used)."""
    p = resolve_params(params, DEFAULTS, "iknn")
    t0 = time.perf_counter()
    model = ItemKNN(p["lmbd"], p["alpha"], p["neighbors"], p["cooc"], progress=ctx.progress).fit(train)
    seconds = time.perf_counter() - t0
    ctx.log.info("iknn: fitted in %.1f s", seconds)
    write_fit_log(ctx, seconds, len(train), cooc=model.cooc)
    write_npz(ctx.outdir / "weights.npz", item_ids=model.item_ids, sims_data=model.sims.data,
              sims_indices=model.sims.indices, sims_indptr=model.sims.indptr)
    events = PredictionEvents.from_test(test, model.item_ids)
    return rank_events(events, lambda rows: model.score_block(events, rows),
                       progress=ctx.progress, desc="iknn ranking")
