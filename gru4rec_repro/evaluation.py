"""The one evaluation: rank records -> Recall@K and MRR@K under each protocol.

Every model writes the same rank record (see :mod:`gru4rec_repro.contract`);
this module is the only place that turns it into metrics.

Protocols (SPEC.md section 7), with ``higher`` = h items strictly above the
target and ``ties`` = t other items with exactly its score. Today's
protocols count a hit when rank <= K:

* ``conservative``: rank = h + t + 1   (the default in every table; the
  authors' evaluation since June 2018)
* ``optimistic``:   rank = h + 1
* ``median``:       rank = h + t / 2 + 1
* ``random``:       a uniformly random tie-break, as an exact expectation: the
  rank is uniform on h + 1, ..., h + t + 1 (t + 1 values), so
  Recall@K = P(rank <= K) = clip(K - h, 0, t + 1) / (t + 1) and
  MRR@K = E[1/rank; rank <= K] = (H(min(K, h + t + 1)) - H(h)) / (t + 1) when
  h < K (else 0), H(n) = 1 + 1/2 + ... + 1/n the harmonic number. Both
  arguments of H are <= K, so H comes from a table of exact partial sums.

The authors' evaluation code of 2016-2017 (ICLR 2016, Bogina & Kuflik 2017,
CIKM 2018) counted a hit only when rank < K (ranks 1..K-1 at cut-off K):

* ``paper2016``:        rank = h + 1 (optimistic ties), hit when rank < K;
  MRR@K averages 1/rank over those hits (0 elsewhere);
* ``paper2016_random``: the random tie-break above with the same rank < K cut
  (exactly ``random`` at cut-off K - 1). The 2016-2017 baseline numbers sit
  between ``paper2016`` and this one.

Recall@K is the share (expected share, for the random tie-breaks) of events
that are hits; MRR@K the mean of the (expected) 1/rank of hits, 0 otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .contract import validate_ranks

#: Protocols with one rank per event (rank <= K).
RANK_POLICIES = ("conservative", "optimistic", "median")
#: Every protocol ``per_event`` and ``metrics_from_ranks`` know, in metrics.json order.
POLICIES = ("conservative", "optimistic", "median", "random", "paper2016", "paper2016_random")
CUTOFFS = (1, 5, 10, 20)
DEFAULT_POLICY = "conservative"
#: What each protocol means, one line each (table notes print these).
POLICY_DESCRIPTIONS = {
    "conservative": "conservative ties, rank = higher + ties + 1, hit when rank <= K",
    "optimistic": "optimistic ties, rank = higher + 1, hit when rank <= K",
    "median": "median ties, rank = higher + ties/2 + 1, hit when rank <= K",
    "random": "uniformly random tie-break (exact expectation), hit when rank <= K",
    "paper2016": "2016-2017 protocol of the authors' code: rank = higher + 1, hit only when rank < K",
    "paper2016_random": "2016-2017 cut with a random tie-break: expected over ties, hit only when rank < K",
}


def _check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown tie policy {policy!r}; use one of {POLICIES}")
    return policy


def ranks_under(ranks: pd.DataFrame, policy: str = DEFAULT_POLICY) -> np.ndarray:
    """1-based rank of each event's target under a single-rank policy (float64).

    The random tie-break has no single rank (see :func:`per_event`); the
    ``paper2016`` rank is the optimistic one (its cut is rank < K).
    """
    higher = ranks["higher"].to_numpy(dtype=np.float64)
    ties = ranks["ties"].to_numpy(dtype=np.float64)
    if policy in ("optimistic", "paper2016"):
        return higher + 1.0
    if policy == "conservative":
        return higher + ties + 1.0
    if policy == "median":
        return higher + ties / 2.0 + 1.0
    if policy in POLICIES:
        raise ValueError(f"policy {policy!r} has no single rank per event; use per_event()")
    raise ValueError(f"unknown tie policy {policy!r}; use one of {POLICIES}")


def harmonic(n: int) -> np.ndarray:
    """H(0..n): H(0) = 0, H(i) = 1 + 1/2 + ... + 1/i (exact partial sums, float64)."""
    out = np.zeros(n + 1, dtype=np.float64)
    if n > 0:
        out[1:] = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64))
    return out


def random_tiebreak(higher, ties, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected hit@k and reciprocal rank@k of a uniformly random tie-break.

    The rank is uniform on higher + 1, ..., higher + ties + 1. Returns
    (P(rank <= k), E[1/rank if rank <= k else 0]) per event, exactly.
    """
    h = np.asarray(higher, dtype=np.int64)
    t = np.asarray(ties, dtype=np.int64)
    n = (t + 1).astype(np.float64)
    k = int(k)
    if k <= 0:
        zero = np.zeros(h.shape, dtype=np.float64)
        return zero, zero.copy()
    top = np.minimum(k, h + t + 1)  # last rank inside the cut-off
    inside = h < k
    hits = np.where(inside, top - h, 0).astype(np.float64)
    H = harmonic(k)
    lo = np.minimum(h, k)  # H(h) only needed where h < k
    rr = np.where(inside, H[np.where(inside, top, 0)] - H[lo], 0.0)
    return hits / n, rr / n


def _hit_rr(ranks: pd.DataFrame, k: int, policy: str) -> tuple[np.ndarray, np.ndarray]:
    _check_policy(policy)
    if policy == "random":
        return random_tiebreak(ranks["higher"].to_numpy(), ranks["ties"].to_numpy(), k)
    if policy == "paper2016_random":
        return random_tiebreak(ranks["higher"].to_numpy(), ranks["ties"].to_numpy(), k - 1)
    r = ranks_under(ranks, policy)
    inside = r < k if policy == "paper2016" else r <= k
    return inside.astype(np.float64), np.where(inside, 1.0 / r, 0.0)


def per_event(ranks: pd.DataFrame, k: int = 20, policy: str = DEFAULT_POLICY) -> pd.DataFrame:
    """Per-event hit@k and reciprocal rank@k (0 beyond k) under any protocol.

    Returns columns ``session_id``, ``position``, ``hit``, ``rr``: the paired
    unit for the statistics (:mod:`gru4rec_repro.stats`). Under ``random`` and
    ``paper2016_random`` the values are expectations (hit in [0, 1]).
    """
    hit, rr = _hit_rr(ranks, k, policy)
    return pd.DataFrame(
        {
            "session_id": ranks["session_id"].to_numpy(),
            "position": ranks["position"].to_numpy(),
            "hit": hit,
            "rr": rr,
        }
    )


def metrics_from_ranks(ranks: pd.DataFrame, cutoffs=CUTOFFS, policies=POLICIES) -> dict:
    """``{"events": n, "conservative": {"recall@20": .., "mrr@20": ..}, "random": {..}, ...}``."""
    ranks = validate_ranks(ranks)
    out: dict = {"events": int(len(ranks))}
    n = max(len(ranks), 1)
    for policy in policies:
        values = {}
        for k in cutoffs:
            hit, rr = _hit_rr(ranks, k, policy)
            values[f"recall@{k}"] = float(hit.sum() / n)
            values[f"mrr@{k}"] = float(rr.sum() / n)
        out[policy] = values
    return out
