"""The statistics module, on hand-made rank records whose answers are known."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gru4rec_repro import stats
from gru4rec_repro.evaluation import metrics_from_ranks


def record(sessions: dict[int, list[tuple[int, int]]]) -> pd.DataFrame:
    """Rank record from {session_id: [(higher, ties), ...]}; targets are 100 + position."""
    rows = [
        (sid, pos, 100 + pos, h, t)
        for sid, events in sessions.items()
        for pos, (h, t) in enumerate(events)
    ]
    return pd.DataFrame(rows, columns=["session_id", "position", "target", "higher", "ties"])


def random_record(n_sessions=300, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = {}
    for s in range(n_sessions):
        length = int(rng.integers(1, 6))
        sessions[s] = [(int(rng.integers(0, 60)), int(rng.integers(0, 3))) for _ in range(length)]
    return record(sessions)


# ------------------------------------------------------------------------ seeds

def test_seed_summary_is_mean_and_sample_sd():
    mean, sd, n = stats.seed_summary([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1) and n == 3


def test_one_seed_has_no_sd():
    mean, sd, n = stats.seed_summary([0.42])
    assert mean == 0.42 and math.isnan(sd) and n == 1


# --------------------------------------------------------------- session scores

def test_session_scores_average_the_events_of_each_session():
    # session 1: ranks 1 and 31 (conservative: 20 higher + 10 ties + 1); session 2: rank 4
    ranks = record({1: [(0, 0), (20, 10)], 2: [(2, 1)]})
    recall = stats.session_scores(ranks, "recall")
    mrr = stats.session_scores(ranks, "mrr")
    assert recall.to_dict() == {1: 0.5, 2: 1.0}
    assert mrr.to_dict() == {1: 0.5, 2: 0.25}
    events = stats.session_scores(ranks, "mrr", unit="event")
    assert events.to_list() == [1.0, 0.0, 0.25]


def test_tie_policy_is_applied():
    ranks = record({1: [(0, 25)]})  # optimistic rank 1, conservative rank 26
    assert stats.session_scores(ranks, "recall").iloc[0] == 0.0
    assert stats.session_scores(ranks, "recall", policy="optimistic").iloc[0] == 1.0


# ------------------------------------------------------------ paired comparison

def test_identical_records_give_zero_difference_and_p_one():
    a = random_record()
    for metric in ("recall", "mrr"):
        for unit in ("session", "event"):
            c = stats.paired_comparison(a, a.copy(), metric, n_boot=200, unit=unit)
            assert c["diff"] == 0.0
            assert c["ci95"] == (0.0, 0.0) and c["ci95_t"] == (0.0, 0.0)
            assert c["p"] == 1.0
            assert stats.equivalence_verdict(c)["verdict"] == "equivalent"


def test_metrics_match_the_shared_evaluation():
    a, b = random_record(seed=1), random_record(seed=1)
    b["higher"] = b["higher"] // 2
    c = stats.paired_comparison(a, b, "mrr", n_boot=50)
    assert c["metric_a"] == pytest.approx(metrics_from_ranks(a)["conservative"]["mrr@20"])
    assert c["metric_b"] == pytest.approx(metrics_from_ranks(b)["conservative"]["mrr@20"])
    assert c["diff"] == pytest.approx(c["metric_a"] - c["metric_b"])
    assert c["rel_diff"] == pytest.approx(c["diff"] / c["metric_b"])


def planted_shift(seed=2, share=0.3):
    """b = a with a share of targets moved to rank 1."""
    a = random_record(seed=seed)
    b = a.copy()
    moved = np.random.default_rng(seed).random(len(b)) < share
    b.loc[moved, ["higher", "ties"]] = 0
    return a, b


def test_planted_shift_is_detected_with_the_right_sign():
    a, b = planted_shift()
    for metric in ("recall", "mrr"):
        c = stats.paired_comparison(a, b, metric, n_boot=500, seed=1)
        assert c["diff"] < 0 and c["ci95"][1] < 0 and c["ci95_t"][1] < 0
        assert c["p"] < 1e-6
        assert stats.equivalence_verdict(c)["verdict"] == "different"
        back = stats.paired_comparison(b, a, metric, n_boot=500, seed=1)
        assert back["diff"] == pytest.approx(-c["diff"])


def test_session_t_test_is_scipy_ttest_rel_on_session_sums():
    a, b = planted_shift(share=0.05)
    c = stats.paired_comparison(a, b, "recall", n_boot=10)
    ea, eb = stats.per_event(a), stats.per_event(b)
    sums_a = ea.groupby("session_id")["hit"].sum()
    sums_b = eb.groupby("session_id")["hit"].sum()
    assert c["p"] == pytest.approx(sps.ttest_rel(sums_a, sums_b).pvalue, rel=1e-12)
    assert c["n_units"] == len(sums_a) and c["n_events"] == len(a)


def test_session_t_interval_uses_the_ratio_standard_error():
    # three sessions: differences per event (a - b) of hits: s1 [1, 0], s2 [0], s3 [-1, 1, 1]
    a = record({1: [(0, 0), (0, 0)], 2: [(0, 0)], 3: [(99, 0), (0, 0), (0, 0)]})
    b = record({1: [(99, 0), (0, 0)], 2: [(0, 0)], 3: [(0, 0), (99, 0), (99, 0)]})
    c = stats.paired_comparison(a, b, "recall", n_boot=10)
    S, n = np.array([1.0, 0.0, 1.0]), np.array([2.0, 1.0, 3.0])
    D = 2 / 6
    se = math.sqrt(np.sum((S - D * n) ** 2) / (3 * 2)) / n.mean()
    half = sps.t.ppf(0.975, 2) * se
    assert c["diff"] == pytest.approx(D)
    assert c["ci95_t"] == pytest.approx((D - half, D + half))


def test_event_unit_matches_scipy_paired_t_test_and_interval():
    a, b = planted_shift(share=0.05, seed=3)
    c = stats.paired_comparison(a, b, "mrr", n_boot=10, unit="event")
    ea, eb = stats.per_event(a)["rr"], stats.per_event(b)["rr"]
    ref = sps.ttest_rel(ea, eb)
    assert c["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert c["ci95_t"] == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-9)


def test_bootstrap_interval_of_two_sessions_is_known():
    # S = [1, 0], one event each: replicates are 0, 0.5, 1 with prob. 1/4, 1/2, 1/4
    a = record({1: [(0, 0)], 2: [(0, 0)]})
    b = record({1: [(99, 0)], 2: [(0, 0)]})
    c = stats.paired_comparison(a, b, "recall", n_boot=4000, seed=0)
    assert c["ci95"] == (0.0, 1.0)
    boot = stats.bootstrap_ratio(np.array([1.0, 0.0]), np.array([1.0, 1.0]), 4000, seed=0)
    assert set(np.unique(boot)) == {0.0, 0.5, 1.0}
    assert np.mean(boot == 0.5) == pytest.approx(0.5, abs=0.03)


def test_bootstrap_is_seeded_and_close_to_the_t_interval():
    a, b = planted_shift(share=0.1, seed=4)
    c1 = stats.paired_comparison(a, b, "recall", n_boot=2000, seed=7)
    c2 = stats.paired_comparison(a, b, "recall", n_boot=2000, seed=7)
    assert c1["ci95"] == c2["ci95"]
    width_t = c1["ci95_t"][1] - c1["ci95_t"][0]
    assert c1["ci95"][0] == pytest.approx(c1["ci95_t"][0], abs=0.15 * width_t)
    assert c1["ci95"][1] == pytest.approx(c1["ci95_t"][1], abs=0.15 * width_t)


def test_records_on_different_events_are_refused():
    a = record({1: [(0, 0), (1, 0)], 2: [(0, 0)]})
    b = record({1: [(0, 0), (1, 0)]})
    with pytest.raises(ValueError, match="not on the same test events"):
        stats.paired_comparison(a, b, "recall", n_boot=10)
    c = stats.paired_comparison(a, b, "recall", n_boot=10, align="intersect")
    assert (c["n_events"], c["dropped_a"], c["dropped_b"]) == (2, 1, 0)
    b_other = a.copy()
    b_other.loc[0, "target"] = 7
    with pytest.raises(ValueError, match="different targets"):
        stats.paired_comparison(a, b_other, "recall", n_boot=10)


def test_seeds_are_averaged_per_event_before_pairing():
    s1 = record({1: [(0, 0), (50, 0)], 2: [(3, 0)]})
    s2 = record({1: [(50, 0), (50, 0)], 2: [(1, 0)]})
    b = record({1: [(50, 0), (50, 0)], 2: [(50, 0)]})
    c = stats.paired_comparison([s1, s2], b, "mrr", n_boot=10)
    seed_mean = np.mean([metrics_from_ranks(s)["conservative"]["mrr@20"] for s in (s1, s2)])
    assert c["metric_a"] == pytest.approx(seed_mean)
    # per event: (1 + 0)/2, 0, (1/4 + 1/2)/2
    assert c["metric_a"] == pytest.approx((0.5 + 0 + 0.375) / 3)
    with pytest.raises(ValueError, match="not on the same test events"):
        stats.event_values([s1, record({1: [(0, 0)]})])


# ----------------------------------------------------------------- seed gap

def test_seed_gap_test_is_welch_and_compares_with_twice_the_pooled_sd():
    a, b = [0.60, 0.61, 0.62], [0.50, 0.51, 0.52, 0.53]
    g = stats.seed_gap_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert g["welch_p"] == pytest.approx(ref.pvalue)
    assert g["gap"] == pytest.approx(np.mean(a) - np.mean(b))
    pooled = math.sqrt((2 * 0.01**2 + 3 * np.var(b, ddof=1)) / 5)
    assert g["pooled_sd"] == pytest.approx(pooled)
    assert g["exceeds_spread"] is True
    small = stats.seed_gap_test([0.60, 0.62, 0.64], [0.61, 0.63, 0.65])
    assert small["gap"] == pytest.approx(-0.01) and small["pooled_sd"] == pytest.approx(0.02)
    assert small["exceeds_spread"] is False


def test_seed_gap_with_one_seed_on_one_side():
    g = stats.seed_gap_test([0.5], [0.60, 0.62])
    assert math.isnan(g["welch_p"])
    assert g["pooled_sd"] == pytest.approx(math.sqrt(0.0002))
    assert g["exceeds_spread"] is True
    assert stats.seed_gap_test([0.5], [0.6])["exceeds_spread"] is None


def test_seed_gap_without_any_spread():
    assert stats.seed_gap_test([0.5, 0.5], [0.5, 0.5])["welch_p"] == 1.0
    assert stats.seed_gap_test([0.5, 0.5], [0.4, 0.4])["welch_p"] == 0.0
    # identical seeds whose float mean and sd are off by rounding (mean of 0.1 x 3 != 0.1)
    same = stats.seed_gap_test([0.1] * 3, [0.1] * 3)
    assert same["welch_p"] == 1.0 and same["gap"] == 0.0 and same["sd_a"] == 0.0
    assert stats.seed_gap_test([0.1] * 3, [0.2] * 3)["welch_p"] == 0.0
    # one side identical: Welch's test with that side's variance 0, no warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = stats.seed_gap_test([0.1] * 3, [0.2, 0.25, 0.3])
    b_sd = np.std([0.2, 0.25, 0.3], ddof=1)
    assert one["welch_t"] == pytest.approx((0.1 - 0.25) / (b_sd / np.sqrt(3)))
    assert one["welch_df"] == pytest.approx(2.0)


# ---------------------------------------------------------- multiple comparisons

def test_holm_on_a_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_benjamini_hochberg_on_a_hand_computed_example():
    # sorted p * 4 / rank: 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert stats.benjamini_hochberg([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05] * 5)
    assert stats.benjamini_hochberg([0.001, 0.3, 0.9]) == pytest.approx([0.003, 0.45, 0.9])


def test_adjustments_skip_missing_p_values():
    out = stats.holm([0.01, float("nan"), 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert stats.adjust([0.01, 0.04], "bh") == pytest.approx([0.02, 0.04])


# ----------------------------------------------------------------- verdicts

def comparison(ci90, ci95, p, metric_b=0.5):
    return {"metric_b": metric_b, "ci90": ci90, "ci95": ci95, "p": p}


def test_verdict_rules_on_test_events():
    # band = 0.02 * 0.5 = 0.01
    assert stats.equivalence_verdict(comparison((-0.004, 0.006), (-0.005, 0.007), 0.3))["verdict"] == "equivalent"
    # significant yet inside the band: still equivalent
    assert stats.equivalence_verdict(comparison((0.002, 0.008), (0.001, 0.009), 1e-9))["verdict"] == "equivalent"
    assert stats.equivalence_verdict(comparison((0.02, 0.04), (0.015, 0.045), 1e-9))["verdict"] == "different"
    assert stats.equivalence_verdict(comparison((-0.04, -0.02), (-0.045, -0.015), 1e-9))["verdict"] == "different"
    # outside the band but not significant after adjustment
    assert stats.equivalence_verdict(
        comparison((0.02, 0.04), (0.015, 0.045), 1e-9), p_adjusted=0.2)["verdict"] == "inconclusive"
    # straddles the band edge
    assert stats.equivalence_verdict(comparison((0.005, 0.02), (0.003, 0.022), 1e-4))["verdict"] == "inconclusive"
    # a wider margin makes it equivalent
    assert stats.equivalence_verdict(
        comparison((0.005, 0.02), (0.003, 0.022), 1e-4), margin=0.05)["verdict"] == "equivalent"


def test_verdict_uses_the_seeds_when_both_sides_have_two():
    close = comparison((-0.004, 0.006), (-0.005, 0.007), 0.3)
    noisy = {"n_a": 3, "n_b": 3, "welch_ci90": (-0.03, 0.03), "welch_p": 0.8}
    tight = {"n_a": 3, "n_b": 3, "welch_ci90": (-0.005, 0.005), "welch_p": 0.8}
    assert stats.equivalence_verdict(close, seed_gap=noisy)["verdict"] == "inconclusive"
    assert stats.equivalence_verdict(close, seed_gap=tight)["verdict"] == "equivalent"
    far = comparison((0.02, 0.04), (0.015, 0.045), 1e-9)
    assert stats.equivalence_verdict(far, seed_gap=noisy)["verdict"] == "inconclusive"
    sig = {"n_a": 3, "n_b": 3, "welch_ci90": (0.02, 0.04), "welch_p": 0.001}
    assert stats.equivalence_verdict(far, seed_gap=sig)["verdict"] == "different"
    assert stats.equivalence_verdict(far, seed_gap=sig, welch_p_adjusted=0.2)["verdict"] == "inconclusive"
    one_seed = {"n_a": 1, "n_b": 3, "welch_ci90": (float("nan"),) * 2, "welch_p": float("nan")}
    assert stats.equivalence_verdict(far, seed_gap=one_seed)["verdict"] == "different"


def test_metric_ci_brackets_the_seed_mean():
    s1, s2 = random_record(seed=5), random_record(seed=5)
    s2["higher"] = s2["higher"] + 3
    value, lo, hi = stats.metric_ci([s1, s2], "recall", n_boot=300, seed=0)
    per_seed = [metrics_from_ranks(s)["conservative"]["recall@20"] for s in (s1, s2)]
    assert value == pytest.approx(np.mean(per_seed))
    assert lo < value < hi and hi - lo < 0.2


# ------------------------------------------------------ unpaired comparison, one run's CI

def test_refusal_names_both_runs():
    a = record({1: [(0, 0), (1, 0)], 2: [(0, 0)]})
    b = record({1: [(0, 0), (1, 0)]})
    with pytest.raises(ValueError, match="'torch-a' and 'keras-b'.*unpaired_comparison"):
        stats.paired_comparison(a, b, "recall", n_boot=10, names=("torch-a", "keras-b"))
    assert not stats.same_events(a, b) and stats.same_events(a, a.iloc[::-1])


def test_unpaired_comparison_of_two_independent_test_sets():
    # a: 40 sessions of 2 events, hit in sessions 0-29 -> recall 0.75
    # b: 50 sessions of 1 event, hit in sessions 0-24 -> recall 0.5
    a = record({s: [(0, 0), (0, 0)] if s < 30 else [(50, 0), (50, 0)] for s in range(40)})
    b = record({100 + s: [(0, 0)] if s < 25 else [(50, 0)] for s in range(50)})
    c = stats.unpaired_comparison(a, b, "recall", n_boot=2000, seed=3)
    assert not c["paired"] and (c["n_events_a"], c["n_events_b"]) == (80, 50)
    assert c["diff"] == pytest.approx(0.25)
    # by hand: a's session sums are 2 or 0 with n_s = 2 -> SE = sqrt(40 * 0.75 * 0.25 / (40 * 39))
    se_a = math.sqrt(30 * (2 - 1.5) ** 2 / (40 * 39) + 10 * 1.5 ** 2 / (40 * 39)) / 2
    se_b = math.sqrt(25 * 0.5 ** 2 / (50 * 49) + 25 * 0.5 ** 2 / (50 * 49))
    assert c["se"] == pytest.approx(math.hypot(se_a, se_b))
    assert c["p"] == pytest.approx(2 * sps.norm.sf(0.25 / math.hypot(se_a, se_b)))
    assert c["ci95"][0] < 0.25 < c["ci95"][1]
    assert c["ci95"][0] == pytest.approx(c["ci95_t"][0], abs=0.05)


def test_run_ci_covers_seeds_and_sessions():
    s1 = record({s: [(0, 0)] if s % 2 else [(50, 0)] for s in range(100)})  # recall 0.5
    s2 = record({s: [(0, 0)] if s % 4 else [(50, 0)] for s in range(100)})  # recall 0.75
    one = stats.run_ci([s1], "recall")
    se1 = math.sqrt(100 * 0.25 / (100 * 99))
    assert one["covers"] == "sessions" and one["se_sessions"] == pytest.approx(se1)
    assert one["seed_half"] == 0
    assert (one["low"], one["high"]) == pytest.approx((0.5 - 1.959964 * se1, 0.5 + 1.959964 * se1))
    both = stats.run_ci([s1, s2], "recall")
    assert both["covers"] == "seeds+sessions" and both["value"] == pytest.approx(0.625)
    # seed-averaged values per session: 1 (s odd, s % 4 != 0), 0.5 (s even, s % 4 != 0), 0 (s % 4 == 0)
    v = np.array([1.0 if s % 2 else (0.5 if s % 4 else 0.0) for s in range(100)])
    se_sess = math.sqrt(np.sum((v - 0.625) ** 2) / (100 * 99))
    se_seed = np.std([0.5, 0.75], ddof=1) / math.sqrt(2)
    assert both["se_sessions"] == pytest.approx(se_sess)
    # the seed part with Student's t, n - 1 = 1 degree of freedom (12.7), the session part with z
    half = math.hypot(1.959964 * se_sess, sps.t.ppf(0.975, 1) * se_seed)
    assert (both["low"], both["high"]) == pytest.approx((0.625 - half, 0.625 + half))


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_seed_part_uses_t_with_n_minus_1_degrees_of_freedom(n):
    values = 0.6 + 0.01 * np.arange(n) ** 1.5
    sd = np.std(values, ddof=1)
    expected = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert stats.seed_half_width(values) == pytest.approx(expected)
    assert stats.seed_half_width(values, level=0.9) == pytest.approx(sps.t.ppf(0.95, n - 1) * sd / math.sqrt(n))
    if n == 3:  # the figure: t(2) is 2.2 times z
        assert stats.seed_half_width(values) / (1.959964 * sd / math.sqrt(n)) == pytest.approx(2.2, abs=0.01)
    assert stats.seed_half_width(values[:1]) == 0.0


def test_seed_part_of_a_difference_is_welchs():
    a, b = np.array([0.70, 0.72, 0.69]), np.array([0.60, 0.66, 0.61, 0.64])
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert stats.gap_seed_half_width(a, b) == pytest.approx((ci.high - ci.low) / 2)
    # one seed on one side: that side adds no spread; the other side's t(n - 1) part
    assert stats.gap_seed_half_width(a, [0.5]) == pytest.approx(stats.seed_half_width(a))
    assert stats.gap_seed_half_width([0.5], b) == pytest.approx(stats.seed_half_width(b))
    assert stats.gap_seed_half_width([0.5], [0.4]) == 0.0
    assert stats.gap_seed_half_width([0.5, 0.5], [0.4, 0.4]) == 0.0


def test_comparison_ci_adds_the_seed_part_to_the_session_part():
    a1 = record({s: [(0, 0)] if s % 2 else [(50, 0)] for s in range(100)})   # recall 0.5
    a2 = record({s: [(0, 0)] if s % 4 else [(50, 0)] for s in range(100)})   # recall 0.75
    b1 = record({s: [(0, 0)] if s % 3 else [(50, 0)] for s in range(100)})   # recall 0.66
    b2 = record({s: [(0, 0)] if s % 5 else [(50, 0)] for s in range(100)})   # recall 0.8
    c = stats.paired_comparison([a1, a2], [b1, b2], "recall", n_boot=100)
    per_a, per_b = [0.5, 0.75], [0.66, 0.8]
    ci = stats.comparison_ci(c, per_a, per_b)
    welch = sps.ttest_ind(per_a, per_b, equal_var=False).confidence_interval(0.95)
    half = math.hypot(1.959964 * c["se"], (welch.high - welch.low) / 2)
    assert c["se"] > 0 and ci["seed_half"] > 0 and ci["covers"] == "seeds+sessions"
    assert (ci["low"], ci["high"]) == pytest.approx((c["diff"] - half, c["diff"] + half))
    assert (ci["rel_low"], ci["rel_high"]) == pytest.approx((ci["low"] / c["metric_b"], ci["high"] / c["metric_b"]))
    only_sessions = stats.comparison_ci(c, [0.625], [0.73])
    assert only_sessions["covers"] == "sessions"
    assert only_sessions["high"] - c["diff"] == pytest.approx(1.959964 * c["se"])


def test_a_comparison_can_measure_b_under_another_protocol():
    # a: target always first; b: 4 ties above nothing (optimistic rank 1, random rank 1..5)
    a = record({s: [(0, 0)] for s in range(30)})
    b = record({s: [(0, 4)] for s in range(30)})
    same = stats.paired_comparison(a, b, "mrr", policy="paper2016", n_boot=50)
    other = stats.paired_comparison(a, b, "mrr", policy="paper2016", policy_b="paper2016_random", n_boot=50)
    assert same["diff"] == 0 and same["policy_b"] == "paper2016"
    assert other["metric_b"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    assert other["metric_a"] == 1.0 and other["policy_b"] == "paper2016_random"
