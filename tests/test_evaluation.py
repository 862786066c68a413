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
    for policy in ("conservative", "optimistic", "median", "random"):  # only the first event is ranked 1
        assert m[policy]["recall@1"] == pytest.approx(1 / 4)
        assert m[policy]["mrr@1"] == pytest.approx(1 / 4)
    assert m["paper2016"]["recall@1"] == 0.0  # the 2016 cut rank < 1 never holds
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


# ---------------------------------------------------------------- random and 2016 protocols

def brute_force_random(higher, ties, k, strict=False):
    """Expected hit and 1/rank of a random tie-break by enumerating every equally likely rank."""
    hits, rrs = [], []
    for h, t in zip(higher, ties):
        ranks = [h + 1 + j for j in range(t + 1)]  # the target's place among its t + 1 tied items
        inside = [r for r in ranks if (r < k if strict else r <= k)]
        hits.append(len(inside) / len(ranks))
        rrs.append(sum(1.0 / r for r in inside) / len(ranks))
    return np.array(hits), np.array(rrs)


# events straddling the cut-offs: ties reaching across K, starting at K, all inside, none
HIGHER = [0, 0, 3, 17, 19, 19, 20, 0, 4, 9, 250]
TIES = [0, 40, 5, 10, 0, 3, 7, 3000, 0, 1, 20]
EDGE = record(HIGHER, TIES)


@pytest.mark.parametrize("k", CUTOFFS)
def test_random_tiebreak_matches_enumeration(k):
    hit, rr = brute_force_random(HIGHER, TIES, k)
    pe = per_event(EDGE, k=k, policy="random")
    np.testing.assert_allclose(pe["hit"], hit, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pe["rr"], rr, rtol=0, atol=1e-14)
    m = metrics_from_ranks(EDGE)
    assert m["random"][f"recall@{k}"] == pytest.approx(hit.mean(), abs=1e-14)
    assert m["random"][f"mrr@{k}"] == pytest.approx(rr.mean(), abs=1e-14)


@pytest.mark.parametrize("k", CUTOFFS)
def test_paper2016_random_is_the_strict_cut(k):
    hit, rr = brute_force_random(HIGHER, TIES, k, strict=True)
    pe = per_event(EDGE, k=k, policy="paper2016_random")
    np.testing.assert_allclose(pe["hit"], hit, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pe["rr"], rr, rtol=0, atol=1e-14)


def test_random_tiebreak_agrees_with_monte_carlo():
    """Shuffle the tied items many times (an independent simulation of the tie-break)."""
    rng = np.random.default_rng(0)
    draws = 20000
    sim_hit = np.zeros(len(HIGHER))
    sim_rr = np.zeros(len(HIGHER))
    for i, (h, t) in enumerate(zip(HIGHER, TIES)):
        place = rng.integers(0, t + 1, size=draws)  # target's place among t + 1 tied items
        r = h + 1 + place
        sim_hit[i] = np.mean(r <= 20)
        sim_rr[i] = np.mean(np.where(r <= 20, 1.0 / r, 0.0))
    pe = per_event(EDGE, k=20, policy="random")
    np.testing.assert_allclose(pe["hit"], sim_hit, atol=0.015)
    np.testing.assert_allclose(pe["rr"], sim_rr, atol=0.01)


def test_random_sits_between_optimistic_and_conservative():
    m = metrics_from_ranks(EDGE)
    for k in CUTOFFS:
        for name in ("recall", "mrr"):
            key = f"{name}@{k}"
            assert m["conservative"][key] - 1e-12 <= m["random"][key] <= m["optimistic"][key] + 1e-12
            assert m["paper2016_random"][key] <= m["paper2016"][key] + 1e-12


def test_paper2016_counts_ranks_below_k_only():
    # optimistic ranks 1, 19, 20, 21 (ties do not matter for paper2016)
    rec = record([0, 18, 19, 20], [5, 0, 9, 0])
    m = metrics_from_ranks(rec)
    assert m["paper2016"]["recall@20"] == pytest.approx(2 / 4)  # ranks 1 and 19; 20 is out
    assert m["paper2016"]["mrr@20"] == pytest.approx((1 + 1 / 19) / 4)
    assert m["optimistic"]["recall@20"] == pytest.approx(3 / 4)
    assert m["paper2016"]["recall@1"] == 0.0  # rank < 1 never holds
    pe = per_event(rec, k=20, policy="paper2016")
    assert pe["hit"].tolist() == [1, 1, 0, 0]


def test_random_without_ties_is_the_plain_rank():
    rec = record([0, 4, 19, 30], [0, 0, 0, 0])
    m = metrics_from_ranks(rec)
    for k in CUTOFFS:
        assert m["random"][f"recall@{k}"] == pytest.approx(m["conservative"][f"recall@{k}"])
        assert m["random"][f"mrr@{k}"] == pytest.approx(m["conservative"][f"mrr@{k}"])


def test_policies_without_a_single_rank_say_so():
    with pytest.raises(ValueError, match="per_event"):
        ranks_under(RANKS, "random")
    with pytest.raises(ValueError, match="tie policy"):
        per_event(RANKS, policy="lucky")
