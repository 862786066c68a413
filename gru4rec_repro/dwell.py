"""Dwell time and item boosting (Bogina & Kuflik, RecTemp 2017; SPEC.md section 3).

* dwell time of an event = time of the next click in the same session minus
  its own time; the last event of a session has no successor and counts 0;
* boosting with threshold t: each event is repeated ``1 + floor(dt / t)``
  times in place, so long-viewed items appear several times in a row.

The repeats of one event share its Time exactly (no epsilon): every split is
kept in (SessionId, Time) order with a stable sort, so a run of repeats stays
in place and in order, and the repeats are identical rows anyway.

Two named variants (``apply_to``): ``"train"`` boosts only the training data
(train_full, train_tr), as the paper describes; ``"train+test"`` also boosts
test and train_valid, as a public replication did (every repeated position
becomes a "same item again" target: the suspected leak).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .split import DATASET_KEYS, SPLITS, read_manifest, read_split, session_bounds, sort_sessions, write_split

log = logging.getLogger(__name__)

APPLY_TO = {"train": ("train_full", "train_tr"), "train+test": SPLITS}


def dwell_times(df: pd.DataFrame) -> np.ndarray:
    """Seconds to the next click of the same session; 0 for a session's last event.

    ``df`` must be sorted by (SessionId, Time) (as every split is).
    """
    sid = df["SessionId"].to_numpy()
    time = df["Time"].to_numpy(dtype=np.float64)
    dwell = np.zeros(len(df), dtype=np.float64)
    if len(df) > 1:
        same_session = sid[1:] == sid[:-1]
        dwell[:-1] = np.where(same_session, time[1:] - time[:-1], 0.0)
    return dwell


def boost(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Repeat each event ``1 + floor(dwell / threshold)`` times in place."""
    if not threshold > 0:
        raise ValueError(f"dwell threshold must be > 0 seconds, got {threshold!r}")
    df = sort_sessions(df)
    repeats = 1 + np.floor(dwell_times(df) / threshold).astype(np.int64)
    return df.loc[df.index.repeat(repeats)].reset_index(drop=True)


def make_dwell_variant(
    split_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold: float,
    apply_to: str,
    *,
    log: logging.Logger | None = None,
) -> dict:
    """Write the four splits of ``split_dir`` to ``out_dir`` with boosting applied.

    ``apply_to``: ``"train"`` (train_full, train_tr) or ``"train+test"`` (all
    four). The new manifest also carries the source manifest's ``dataset`` and
    ``validation`` entries (:data:`gru4rec_repro.split.DATASET_KEYS`). Returns it.
    """
    if apply_to not in APPLY_TO:
        raise ValueError(f"apply_to must be one of {sorted(APPLY_TO)}, got {apply_to!r}")
    logger = log or logging.getLogger(__name__)
    splits = {}
    for name in SPLITS:
        df = read_split(split_dir, name)
        if name in APPLY_TO[apply_to]:
            boosted = boost(df, threshold)
            logger.info("dwell boost t=%s on %s: %d -> %d events", threshold, name, len(df), len(boosted))
            df = boosted
        splits[name] = df
    source = read_manifest(split_dir)
    extra = {
        **{k: source[k] for k in DATASET_KEYS if k in source},  # what the dataset lacks, in one manifest
        "dwell_boost": {"threshold": float(threshold), "apply_to": apply_to,
                        "boosted_splits": list(APPLY_TO[apply_to])},
        "derived_from": {"dir": str(split_dir), "splits": {
            k: v["sha256"] for k, v in source["splits"].items()}},
    }
    return write_split(splits, out_dir, log=logger, extra=extra)
