"""The shared evaluation: tie policies, Recall@K and MRR@K on a hand-made rank record."""
import numpy as np
import pandas as pd
import pytest

from gru4rec_repro.contract import RANK_COLUMNS, validate_ranks
from gru4rec_repro.evaluation import CUTOFFS, POLICIES, metrics_from_ranks, per_event, ranks_under


def record(higher, ties):
    n = len(higher)
    return pd.DataFrame({
        "session_id": np.repeat([7, 8], [2, n - 2]),
        "position": [0, 1] + list(range(n - 2)),
        "target": np.arange(100, 100 + n),
        "higher": higher,
        "ties": ties,
    })


# Four events. Ranks by hand:
#   higher ties | optimistic conservative median
#      0     0  |     1          1          1
#      2     3  |     3          6          4.5
#     19     2  |    20         22         21
#     30     0  |    31         31         31
RANKS = record([0, 2, 19, 30], [0, 3, 2, 0])


def test_ranks_under_each_policy():
    assert ranks_under(RANKS, "optimistic").tolist() == [1, 3, 20, 31]
    assert ranks_under(RANKS, "conservative").tolist() == [1, 6, 22, 31]
    assert ranks_under(RANKS, "median").tolist() == [1, 4.5, 21, 31]
    with pytest.raises(ValueError, match="tie policy"):
        ranks_under(RANKS, "pessimistic")


def test_metrics_at_20_count_zero_beyond_the_cutoff():
    m = metrics_from_ranks(RANKS)
    assert m["events"] == 4
    assert set(m) == {"events", *POLICIES}
    assert m["optimistic"]["recall@20"] == pytest.approx(3 / 4)  # ranks 1, 3, 20
    assert m["optimistic"]["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 20) / 4)
    assert m["conservative"]["recall@20"] == pytest.approx(2 / 4)  # ranks 1, 6
    assert m["conservative"]["mrr@20"] == pytest.approx((1 + 1 / 6) / 4)
    assert m["median"]["recall@20"] == pytest.approx(2 / 4)  # ranks 1, 4.5
    assert m["median"]["mrr@20"] == pytest.approx((1 + 1 / 4.5) / 4)


def test_metrics_at_every_cutoff():
    m = metrics_from_ranks(RANKS)
    assert set(m["median"]) == {f"{name}@{k}" for k in CUTOFFS for name in ("recall", "mrr")}
    for policy in POLICIES:  # only the first event is ranked 1 under every policy
        assert m[policy]["recall@1"] == pytest.approx(1 / 4)
        assert m[policy]["mrr@1"] == pytest.approx(1 / 4)
    assert m["optimistic"]["recall@5"] == pytest.approx(2 / 4)
    assert m["optimistic"]["mrr@5"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["conservative"]["recall@5"] == pytest.approx(1 / 4)
    assert m["conservative"]["mrr@5"] == pytest.approx(1 / 4)
    assert m["conservative"]["recall@10"] == pytest.approx(2 / 4)
    assert m["median"]["mrr@5"] == pytest.approx((1 + 1 / 4.5) / 4)


def test_a_rank_exactly_at_k_counts():
    m = metrics_from_ranks(record([19, 0, 20], [0, 19, 0]), cutoffs=(20,))  # conservative ranks 20, 20, 21
    assert m["conservative"]["recall@20"] == pytest.approx(2 / 3)
    assert m["conservative"]["mrr@20"] == pytest.approx((1 / 20 + 1 / 20) / 3)
    assert m["optimistic"]["mrr@20"] == pytest.approx((1 / 20 + 1 + 0) / 3)


def test_per_event_is_the_paired_unit():
    pe = per_event(RANKS, k=20, policy="conservative")
    assert pe["session_id"].tolist() == [7, 7, 8, 8]
    assert pe["position"].tolist() == [0, 1, 0, 1]
    assert pe["hit"].tolist() == [1, 1, 0, 0]
    assert pe["rr"].tolist() == pytest.approx([1, 1 / 6, 0, 0])
    pe = per_event(RANKS, k=20, policy="optimistic")
    assert pe["hit"].tolist() == [1, 1, 1, 0]
    assert pe["rr"].tolist() == pytest.approx([1, 1 / 3, 1 / 20, 0])
    # the mean of the per-event values is the metric
    m = metrics_from_ranks(RANKS)
    assert pe["rr"].mean() == pytest.approx(m["optimistic"]["mrr@20"])


def test_empty_record_gives_zero_events():
    empty = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in RANK_COLUMNS.items()})
    m = metrics_from_ranks(empty)
    assert m["events"] == 0
    assert m["conservative"]["recall@20"] == 0.0


def test_bad_rank_records_are_refused():
    with pytest.raises(ValueError, match="missing column"):
        metrics_from_ranks(RANKS.drop(columns="ties"))
    with pytest.raises(ValueError, match="negative"):
        validate_ranks(record([0, -1], [0, 0]))
