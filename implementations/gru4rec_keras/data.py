"""Session-parallel mini-batches (SPEC.md section 4), in numpy.

Sessions are ordered by the time of their first event (``time_sort=False``:
by SessionId, as the authors' 2016 script and the tutorial port). Each of the B lanes
holds one session; at every step a lane feeds its current item and targets the
next one. When a lane's session ends, the next unused session takes the lane
and that lane's hidden state must be reset -- only at that step. When no
sessions are left, finished lanes are dropped and the batch shrinks.

The iterator only says what to do; the model does it:

* ``keep``: lane indices to keep, applied first (the batch shrinks);
* ``reset``: boolean mask over the (kept) lanes whose state is reset before
  this step, or ``None``;
* ``window_new``: the lanes that started a new session at the start of the
  current window (a window = the run of steps between two refills). It equals
  ``reset`` at the first step of a window and is repeated on every further
  step of the window; only the tutorial port's flaw switch uses it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def item_index(train: pd.DataFrame) -> np.ndarray:
    """The shared item index (GRU4REC_API.md): ascending ItemId of the training split."""
    return np.unique(train["ItemId"].to_numpy(dtype=np.int64))


@dataclass
class SessionData:
    """Events of one split, grouped by session, sessions in the order they are served.

    ``items``: item index of every event, sessions laid out one after the other
    in the order they are served; ``offsets``: start of each session in
    ``items`` (length n_sessions + 1); ``session_ids``: SessionId of each
    served session; ``item_ids``: the ItemId of each event (for rank records).
    """

    items: np.ndarray
    offsets: np.ndarray
    session_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, item_ids: np.ndarray, where: str = "split",
                   drop_unknown: bool = False, time_sort: bool = True) -> "SessionData":
        """Build from a ``SessionId, ItemId, Time`` frame.

        ``time_sort``: serve sessions by the time of their first event (ties by
        SessionId); ``False``: in ascending SessionId order.
        ``drop_unknown``: drop events whose item is not in ``item_ids`` and then
        sessions shorter than 2 (evaluation); otherwise an unknown item is an error.
        """
        missing = {"SessionId", "ItemId", "Time"} - set(df.columns)
        if missing:
            raise ValueError(f"{where}: missing column(s) {sorted(missing)}")
        df = df[["SessionId", "ItemId", "Time"]]
        pos = np.searchsorted(item_ids, df["ItemId"].to_numpy(dtype=np.int64))
        pos = np.minimum(pos, len(item_ids) - 1)
        known = item_ids[pos] == df["ItemId"].to_numpy(dtype=np.int64)
        if not known.all():
            if not drop_unknown:
                raise ValueError(f"{where}: {int((~known).sum())} event(s) with items not in the item index")
            df = df[known]
            pos = pos[known]
        df = df.assign(_item=pos.astype(np.int32))
        if drop_unknown:
            length = df.groupby("SessionId")["SessionId"].transform("size")
            df = df[length >= 2]
        df = df.sort_values(["SessionId", "Time"], kind="stable")
        sid = df["SessionId"].to_numpy(dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if len(sid) else np.zeros(0, np.int64)
        lengths = np.diff(np.r_[starts, len(sid)])
        if (lengths < 2).any():
            raise ValueError(f"{where}: {int((lengths < 2).sum())} session(s) shorter than 2 events")
        first_time = df["Time"].to_numpy(dtype=np.float64)[starts]
        if time_sort:
            order = np.argsort(first_time, kind="stable")  # ties: ascending SessionId
        else:
            order = np.arange(len(starts))  # the frame is sorted by SessionId
        idx = np.concatenate([np.arange(starts[o], starts[o] + lengths[o]) for o in order]) \
            if len(order) else np.zeros(0, np.int64)
        return cls(
            items=df["_item"].to_numpy()[idx].astype(np.int32),
            offsets=np.r_[0, np.cumsum(lengths[order])].astype(np.int64),
            session_ids=sid[starts][order],
            item_ids=df["ItemId"].to_numpy(dtype=np.int64)[idx],
        )


@dataclass
class Step:
    in_idx: np.ndarray       # (B,) int32 input item of each lane
    out_idx: np.ndarray      # (B,) int32 target item of each lane
    keep: np.ndarray | None  # lanes kept (applied before reset), None = all
    reset: np.ndarray | None  # (B,) bool lanes reset before this step, None = none
    window_new: np.ndarray   # (B,) bool lanes that started a session at this window's start
    event: np.ndarray        # (B,) int64 position in SessionData.items of each input event


def session_parallel(data: SessionData, batch_size: int, min_lanes: int = 1,
                     drop_tail: bool = False) -> Iterator[Step]:
    """Yield the mini-batches of one epoch.

    ``min_lanes``: the epoch ends as soon as fewer lanes than this remain
    (GRU4Rec uses 2 when ``n_sample = 0``: a single lane has no negatives).
    ``drop_tail``: the tutorial port's flaw -- the epoch ends as soon as a
    finished lane cannot be refilled, dropping what the other lanes still hold.
    """
    offsets = data.offsets
    n_sessions = data.n_sessions
    lanes = min(batch_size, n_sessions)
    if lanes == 0:  # min_lanes is checked after each refill only: the first window always runs,
        return      # as in the authors' code (its check is in the reset hook after a window)
    iters = np.arange(lanes)          # session served by each lane
    next_session = lanes
    start = offsets[iters].copy()     # current input event of each lane
    end = offsets[iters + 1].copy()
    reset = None                      # a fresh model starts from zero state
    window_new = np.zeros(lanes, dtype=bool)
    keep = None
    while True:
        minlen = int((end - start).min())
        for i in range(minlen - 1):
            yield Step(
                in_idx=data.items[start + i],
                out_idx=data.items[start + i + 1],
                keep=keep if i == 0 else None,
                reset=reset if i == 0 else None,
                window_new=window_new,
                event=start + i,
            )
        start = start + (minlen - 1)
        finished = np.flatnonzero(end - start <= 1)
        n_left = n_sessions - next_session
        if drop_tail and len(finished) > n_left:
            return
        refill, drop = finished[:n_left], finished[n_left:]
        new_sessions = np.arange(next_session, next_session + len(refill))
        next_session += len(refill)
        iters[refill] = new_sessions
        start[refill] = offsets[new_sessions]
        end[refill] = offsets[new_sessions + 1]
        new = np.zeros(len(iters), dtype=bool)
        new[refill] = True
        if len(drop):
            keep = np.setdiff1d(np.arange(len(iters)), drop)
            iters, start, end, new = iters[keep], start[keep], end[keep], new[keep]
        else:
            keep = None
        if len(iters) < max(min_lanes, 1):
            return
        reset = new if new.any() else None
        window_new = new
