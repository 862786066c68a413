"""What the four baselines share: item index, test prediction events, blocked ranking.

Every baseline follows the same steps (SPEC.md section 7):

1. index the training items, ``item_ids = numpy.unique(train.ItemId)``;
2. turn the test split into *prediction events*: for every event of a test
   session but the last, the input is that event (the session so far ends
   there) and the target is the next item; test events whose item is not in
   train are dropped first, then sessions shorter than 2 give no event;
3. score a block of prediction events against ALL items at once as a dense
   ``(B, n_items)`` matrix and count, per row, the items strictly above the
   target and the other items tied with it; blocks keep the memory bounded.

The model-specific part is a single ``score_block(events, rows) -> (B, n_items)``
function. :class:`PredictionEvents` also gives each event its *session so far*
(:meth:`PredictionEvents.history_counts`), which S-POP and BPR-MF need.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from gru4rec_repro import atomic
from gru4rec_repro.contract import RANK_COLUMNS, RunContext, rank_counts

log = logging.getLogger("gru4rec_repro.baselines")

SPLIT_COLUMNS = ("SessionId", "ItemId", "Time")

#: Memory for one block of dense scores, in bytes (small blocks stay in cache and
#: avoid page faults: 32 MB ranked faster than 256 MB in benchmarks/).
SCORE_BLOCK_BYTES = 32 * 2**20


def check_split(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Check a split's columns and return it sorted by (SessionId, Time)."""
    missing = [c for c in SPLIT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name} split: missing column(s) {missing}; expected {list(SPLIT_COLUMNS)}")
    if name == "train" and df.empty:
        raise ValueError("train split: no events")
    if is_sorted(df):  # as read_split returns it: skip a sort of 31.6M rows
        return df
    return df.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)


def is_sorted(df: pd.DataFrame) -> bool:
    """Whether a split is sorted by (SessionId, Time)."""
    sessions = df["SessionId"].to_numpy()
    times = df["Time"].to_numpy()
    same = sessions[1:] == sessions[:-1]
    return bool((sessions[1:] >= sessions[:-1]).all() and (times[1:][same] >= times[:-1][same]).all())


def index_sessions(train: pd.DataFrame) -> np.ndarray:
    """Each training event's session index 0..n_sessions-1 (ascending SessionId; train sorted)."""
    sessions = train["SessionId"].to_numpy()
    new_session = np.ones(len(sessions), dtype=bool)
    new_session[1:] = sessions[1:] != sessions[:-1]
    return np.cumsum(new_session) - 1


def resolve_params(params: dict | None, defaults: dict, model: str) -> dict:
    """Fill defaults; an unknown key is an error (a typo would silently run the default)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{model}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **params}


def index_items(train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The item index (ascending ItemId) and each training event's item index."""
    # hashing then sorting the few distinct ids: the same answer as
    # numpy.unique(..., return_inverse=True), 8x faster on 31.6M events
    codes, distinct = pd.factorize(train["ItemId"].to_numpy(np.int64))
    order = np.argsort(distinct)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[codes]


def item_supports(train_item_idx: np.ndarray, n_items: int) -> np.ndarray:
    """supp: number of training events of each item (int64)."""
    return np.bincount(train_item_idx, minlength=n_items).astype(np.int64)


@dataclass
class PredictionEvents:
    """The test split as arrays, and its prediction events.

    ``item_idx``/``session_id`` hold every kept test event (sorted by session
    and time); ``input_pos`` holds, for each prediction event, the index of its
    input event in those arrays (its target is the event after it).
    """

    item_ids: np.ndarray  # the item index: item_ids[i] is the ItemId of item i
    session_id: np.ndarray  # (n_test_events,)
    item_idx: np.ndarray  # (n_test_events,)
    session_start: np.ndarray  # (n_test_events,) index of the session's first event
    input_pos: np.ndarray  # (n_events,) index of each prediction event's input event

    @classmethod
    def from_test(cls, test: pd.DataFrame, item_ids: np.ndarray) -> "PredictionEvents":
        test = check_split(test, "test")
        items = test["ItemId"].to_numpy(np.int64)
        known = np.isin(items, item_ids)
        if not known.all():
            log.info("dropping %d test events whose item is not in train", int((~known).sum()))
        items = items[known]
        sessions = test["SessionId"].to_numpy(np.int64)[known]
        item_idx = np.searchsorted(item_ids, items)
        n = len(items)
        new_session = np.ones(n, dtype=bool)
        new_session[1:] = sessions[1:] != sessions[:-1]
        starts = np.flatnonzero(new_session)
        session_start = starts[np.cumsum(new_session) - 1] if n else np.zeros(0, np.int64)
        # an event is an input when the next event belongs to the same session
        has_next = np.zeros(n, dtype=bool)
        has_next[:-1] = ~new_session[1:]
        return cls(item_ids, sessions, item_idx, session_start.astype(np.int64),
                   np.flatnonzero(has_next).astype(np.int64))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.input_pos)

    def input_item(self, rows: np.ndarray) -> np.ndarray:
        return self.item_idx[self.input_pos[rows]]

    def target_item(self, rows: np.ndarray) -> np.ndarray:
        return self.item_idx[self.input_pos[rows] + 1]

    def position(self, rows: np.ndarray) -> np.ndarray:
        p = self.input_pos[rows]
        return p - self.session_start[p]

    def history_counts(self, rows: np.ndarray) -> sp.csr_matrix:
        """(len(rows), n_items) counts of each item in the session so far.

        The session so far of a prediction event is its session's events up to
        and including the input event (repeats counted).
        """
        end = self.input_pos[rows] + 1
        start = self.session_start[self.input_pos[rows]]
        lengths = end - start
        owner = np.repeat(np.arange(len(rows)), lengths)
        # event index start, start+1, ..., end-1 for every row, without a loop
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        events = np.repeat(start, lengths) + offsets
        counts = sp.csr_matrix(
            (np.ones(len(events)), (owner, self.item_idx[events])),
            shape=(len(rows), self.n_items),
        )
        counts.sum_duplicates()
        return counts


def default_block(n_items: int, itemsize: int = 8) -> int:
    return max(1, SCORE_BLOCK_BYTES // (max(n_items, 1) * itemsize))


def rank_events(
    events: PredictionEvents,
    score_block: Callable[[np.ndarray], np.ndarray],
    *,
    block: int | None = None,
    progress: bool = True,
    desc: str = "ranking",
) -> pd.DataFrame:
    """The rank record of every prediction event, scored ``block`` events at a time.

    ``score_block(rows)`` returns the dense ``(len(rows), n_items)`` scores of
    the prediction events ``rows``.
    """
    n = len(events)
    block = block or default_block(events.n_items)
    higher = np.zeros(n, np.int64)
    ties = np.zeros(n, np.int64)
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, block), desc=desc, disable=not progress, unit="block"):
        rows = np.arange(start, min(start + block, n))
        scores = score_block(rows)
        if scores.shape != (len(rows), events.n_items):
            raise RuntimeError(f"score_block returned shape {scores.shape}, expected {(len(rows), events.n_items)}")
        higher[rows], ties[rows] = rank_counts(scores, events.target_item(rows))
    log.info("%s: %d events against %d items in %.1f s", desc, n, events.n_items, time.perf_counter() - t0)
    all_rows = np.arange(n)
    record = pd.DataFrame(
        {
            "session_id": events.session_id[events.input_pos],
            "position": events.position(all_rows),
            "target": events.item_ids[events.target_item(all_rows)],
            "higher": higher,
            "ties": ties,
        }
    )
    return record.astype(RANK_COLUMNS)


def write_fit_log(ctx: RunContext, seconds: float, n_events: int, **extra) -> None:
    """``train_log.jsonl`` for a model fitted in one pass (no epochs, no loss)."""
    entry = {
        "epoch": 1,
        "loss": None,
        "seconds": float(seconds),
        "events_per_s": float(n_events / seconds) if seconds > 0 else None,
        "threads": int(ctx.threads),
        "device": "cpu",
        **extra,
    }
    atomic.write_text(json.dumps(entry) + "\n", ctx.outdir / "train_log.jsonl")


def write_npz(path, **arrays) -> None:
    """``numpy.savez`` under a temporary name, renamed into place."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
