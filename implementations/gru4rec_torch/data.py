"""Session-parallel mini-batches (SPEC.md section 4).

Sessions are taken in the order of their first event's time (or of their
SessionId, ``time_sort=False``). Each of the
``batch_size`` lanes holds one session; at every step each lane feeds its
current item and targets the next one. When a lane's session has no target
left, the next unused session takes the lane, and that lane's hidden state is
reset (only in that lane, only at that step). When no sessions are left,
finished lanes are dropped and the batch shrinks, so no tail session is lost.
With ``min_lanes = 2`` (training without extra samples, where one lane alone
has no negatives) the epoch ends as soon as fewer than 2 lanes remain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd


@dataclass
class SessionData:
    """Events of a split as item indices, grouped by session.

    ``items[offsets[s]:offsets[s + 1]]`` are the items of session ``s`` in time
    order; ``order`` lists the sessions by the time of their first event;
    ``session_ids`` maps ``s`` back to the SessionId.
    """

    items: np.ndarray
    offsets: np.ndarray
    order: np.ndarray
    session_ids: np.ndarray

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)


def item_index(train: pd.DataFrame) -> np.ndarray:
    """The shared item index: ``item_ids[i]`` is the ItemId of index ``i`` (ascending)."""
    return np.unique(train["ItemId"].to_numpy())


def item_support(train: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """Training events of each item, in item-index order (the support of
    sampling and logQ)."""
    return pd.Series(train["ItemId"].to_numpy()).value_counts().reindex(item_ids).to_numpy()


def session_data(df: pd.DataFrame, item_ids: np.ndarray, where: str = "split",
                 time_sort: bool = True) -> SessionData:
    """Group ``df`` (SessionId, ItemId, Time) into :class:`SessionData`.

    ``time_sort``: sessions are served in the order of their first event's
    time (True, the authors' code) or of their SessionId (False, the authors'
    2016 script).

    Events whose item is not in ``item_ids`` are dropped (the test split keeps
    only items seen in training); sessions left with fewer than 2 events are
    dropped too, as they have nothing to predict.
    """
    missing = [c for c in ("SessionId", "ItemId", "Time") if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected SessionId, ItemId, Time")
    df = df[df["ItemId"].isin(item_ids)]
    df = df.sort_values(["SessionId", "Time"], kind="stable")
    sessions = df["SessionId"].to_numpy()
    length = pd.Series(sessions).value_counts(sort=False)
    keep = np.isin(sessions, length.index[length.to_numpy() >= 2])
    df = df[keep]
    sessions = df["SessionId"].to_numpy()
    items = np.searchsorted(item_ids, df["ItemId"].to_numpy()).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]]) if len(sessions) else np.zeros(0, np.int64)
    offsets = np.r_[starts, len(sessions)].astype(np.int64)
    first_time = df["Time"].to_numpy()[starts]
    order = np.argsort(first_time, kind="stable") if time_sort else np.arange(len(starts))
    return SessionData(items=items, offsets=offsets, order=order, session_ids=sessions[starts])


class Step(NamedTuple):
    """One mini-batch. Before feeding it, keep only lanes ``keep`` (if not
    None; the batch shrinks), then reset the hidden state of lanes where
    ``reset`` is true (if not None; indexed after ``keep``)."""

    in_idx: np.ndarray
    out_idx: np.ndarray
    reset: np.ndarray | None
    keep: np.ndarray | None
    session: np.ndarray | None = None   # session of each lane (when asked for)
    position: np.ndarray | None = None  # index of the input event in its session


def session_parallel(data: SessionData, batch_size: int, min_lanes: int = 1,
                     with_positions: bool = False) -> Iterator[Step]:
    """Yield the :class:`Step` s of one epoch over ``data``."""
    if data.n_sessions == 0:
        return
    offsets, order, items = data.offsets, data.order, data.items
    lanes = min(batch_size, data.n_sessions)
    session = order[:lanes].copy()  # session held by each lane
    start = offsets[session]  # current input event of each lane
    end = offsets[session + 1]
    next_session = lanes  # position in ``order`` of the next unused session
    reset = keep = None
    while True:
        steps = int((end - start).min()) - 1  # steps before some lane runs out
        for i in range(steps):
            cur = start + i
            yield Step(items[cur], items[cur + 1], reset, keep,
                       session.copy() if with_positions else None,
                       (cur - offsets[session]) if with_positions else None)
            reset = keep = None
        start = start + steps
        finished = end - start <= 1
        n_finished = int(finished.sum())
        n_new = min(n_finished, data.n_sessions - next_session)
        valid = ~finished
        if n_new:  # refill the first finished lanes (in lane order) with new sessions
            refill = np.flatnonzero(finished)[:n_new]
            valid[refill] = True
            new = order[next_session:next_session + n_new]
            next_session += n_new
            session[refill] = new
            start[refill] = offsets[new]
            end[refill] = offsets[new + 1]
        n_valid = int(valid.sum())
        if n_valid == 0 or n_valid < min_lanes:
            return
        refilled = finished & valid
        if n_valid < len(valid):
            keep = np.flatnonzero(valid)
            session, start, end, refilled = session[keep], start[keep], end[keep], refilled[keep]
        reset = refilled if refilled.any() else None
