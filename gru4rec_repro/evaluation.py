"""The one evaluation: rank records -> Recall@K and MRR@K under each tie policy.

Every model writes the same rank record (see :mod:`gru4rec_repro.contract`);
this module is the only place that turns it into metrics.

Tie policies (SPEC.md section 7), with ``higher`` items strictly above the
target and ``ties`` other items with exactly its score:

* ``optimistic``:   rank = higher + 1
* ``conservative``: rank = higher + ties + 1   (the default in every table)
* ``median``:       rank = higher + ties / 2 + 1

Recall@K is the share of events whose rank is <= K; MRR@K the mean of 1/rank,
counting 0 beyond K.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .contract import validate_ranks

POLICIES = ("conservative", "optimistic", "median")
CUTOFFS = (1, 5, 10, 20)
DEFAULT_POLICY = "conservative"


def ranks_under(ranks: pd.DataFrame, policy: str = DEFAULT_POLICY) -> np.ndarray:
    """1-based rank of each event's target under a tie policy (float64)."""
    higher = ranks["higher"].to_numpy(dtype=np.float64)
    ties = ranks["ties"].to_numpy(dtype=np.float64)
    if policy == "optimistic":
        return higher + 1.0
    if policy == "conservative":
        return higher + ties + 1.0
    if policy == "median":
        return higher + ties / 2.0 + 1.0
    raise ValueError(f"unknown tie policy {policy!r}; use one of {POLICIES}")


def per_event(ranks: pd.DataFrame, k: int = 20, policy: str = DEFAULT_POLICY) -> pd.DataFrame:
    """Per-event hit@k (0/1) and reciprocal rank@k (0 beyond k).

    Returns columns ``session_id``, ``position``, ``hit``, ``rr``: the paired
    unit for the statistics (:mod:`gru4rec_repro.stats`).
    """
    r = ranks_under(ranks, policy)
    inside = r <= k
    return pd.DataFrame(
        {
            "session_id": ranks["session_id"].to_numpy(),
            "position": ranks["position"].to_numpy(),
            "hit": inside.astype(np.float64),
            "rr": np.where(inside, 1.0 / r, 0.0),
        }
    )


def metrics_from_ranks(ranks: pd.DataFrame, cutoffs=CUTOFFS) -> dict:
    """``{"events": n, "conservative": {"recall@20": .., "mrr@20": ..}, ...}``."""
    ranks = validate_ranks(ranks)
    out: dict = {"events": int(len(ranks))}
    for policy in POLICIES:
        r = ranks_under(ranks, policy)
        values = {}
        for k in cutoffs:
            inside = r <= k
            n = max(len(r), 1)
            values[f"recall@{k}"] = float(inside.sum() / n)
            values[f"mrr@{k}"] = float(np.where(inside, 1.0 / r, 0.0).sum() / n)
        out[policy] = values
    return out
