"""The paper tables, built from a tiny hand-made results folder whose numbers are known.

The fake test set has 40 sessions (ids 100-139) with 2 predicted events each
(80 events). Every run is a constant rank over those events unless said
otherwise: ``ranks_of(r, ties=t)`` gives conservative rank r with t of its items
tied (optimistic rank r - t), so every protocol's Recall@20 and MRR@20 follow
by hand.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gru4rec_repro import atomic, paper, tables
from gru4rec_repro.evaluation import metrics_from_ranks
from gru4rec_repro.tables import claims as claims_mod
from gru4rec_repro.tables.common import SAME_LEVEL, relative_difference
from gru4rec_repro.tables.protocols import largest_gap

SESSIONS = range(100, 140)
Z = 1.959963984540054


def ranks_of(rank, sessions=SESSIONS, events=2, targets=None, ties=0):
    """A rank record with the conservative rank rank(session, position) (callable or int)."""
    rows = []
    for s in sessions:
        for p in range(events):
            r = rank(s, p) if callable(rank) else rank
            t = min(ties, r - 1)
            target = targets(s, p) if targets else 1000 * s + p
            rows.append((s, p, target, r - 1 - t, t))
    return pd.DataFrame(rows, columns=["session_id", "position", "target", "higher", "ties"])


def write_run(root, run, seed, ranks, log=None):
    d = root / "runs" / run / f"seed{seed}"
    atomic.write_parquet(ranks, d / "ranks.parquet")
    atomic.write_json(metrics_from_ranks(ranks), d / "metrics.json")
    if log is not None:
        atomic.write_text("".join(json.dumps(e) + "\n" for e in log), d / "train_log.jsonl")


def epochs(seconds, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(seconds))]
    return [{"epoch": i + 1, "loss": l, "seconds": s, "events_per_s": 1.0, "threads": 1, "device": "cpu"}
            for i, (s, l) in enumerate(zip(seconds, losses))]


RUNS = {
    "pop": "pop", "iknn": "iknn", "bprmf": "bprmf",
    "torch-xe-2016": "gru4rec_torch", "torch-top1-2016": "gru4rec_torch", "torch-bpr-2016": "gru4rec_torch",
    "torch-xe": "gru4rec_torch", "keras-xe": "gru4rec_keras",
    "torch-bprmax": "gru4rec_torch", "keras-bprmax": "gru4rec_keras",
    "torch-top1": "gru4rec_torch", "torch-top1max": "gru4rec_torch", "torch-bpr": "gru4rec_torch",
    "torch-xe-best": "gru4rec_torch",
    "torch-dwell75-train": "gru4rec_torch", "torch-dwell75-traintest": "gru4rec_torch",
    "keras-port": "gru4rec_keras", "keras-port-as-published": "gru4rec_keras",
    "keras-port-flaw-drop-tail": "gru4rec_keras",
}


def config(runs=RUNS, seeds=(1, 2)):
    return {"runs": {r: {"implementation": impl, "params": {}} for r, impl in runs.items()},
            "seeds": list(seeds), "study": {"equivalence_margin": 0.02, "n_boot": 200}}


def one_off(base, other):
    """Rank ``base`` everywhere but ``other`` at session 100, position 0."""
    return ranks_of(lambda s, p: other if (s, p) == (100, 0) else base)


def make_results(root):
    """Write the fake results folder under ``root`` (= results/<dataset>) and return it."""
    # POP: rank 1 at position 0 of the first 10 sessions, rank 50 elsewhere -> R = M = 10/80
    write_run(root, "pop", 1, ranks_of(lambda s, p: 1 if (s < 110 and p == 0) else 50),
              log=[{"epoch": 1, "loss": None, "seconds": 0.5}])
    # Item-KNN: nothing above, 4 ties -> conservative rank 5 (R 1, M 0.2), optimistic rank 1
    write_run(root, "iknn", 1, ranks_of(5, ties=4))
    # BPR-MF: rank 30 -> 0 everywhere; its diagnostics say 80% of the score is the bias
    write_run(root, "bprmf", 1, ranks_of(30))
    atomic.write_json({"score_share_bias": 0.8, "score_share_factors": 0.2},
                      root / "runs/bprmf/seed1/diagnostics.json")
    # GRU4Rec 2016 xe: seed 1 rank 2, seed 2 rank 4 -> M per seed 0.5 and 0.25
    write_run(root, "torch-xe-2016", 1, ranks_of(2), epochs([1.0, 1.0]))
    write_run(root, "torch-xe-2016", 2, ranks_of(4), epochs([1.0, 1.0]))
    write_run(root, "torch-top1-2016", 1, ranks_of(3), epochs([1.0]))
    # BPR 2016: rank 1 in sessions 100-123 (48 of 80 events), rank 50 elsewhere -> R 0.6
    write_run(root, "torch-bpr-2016", 1, ranks_of(lambda s, p: 1 if s < 124 else 50), epochs([1.0]))
    # torch-xe and keras-xe: the same records -> difference 0
    same = ranks_of(lambda s, p: 1 if s % 2 == 0 else 30)
    for seed, (ts, ks) in {1: ([2, 4], [6, 6]), 2: ([3, 3], [9, 9])}.items():
        write_run(root, "torch-xe", seed, same, epochs(ts))
        write_run(root, "keras-xe", seed, same, epochs(ks, [2.0, 1.5]))
    # bprmax: torch always first, keras never in the top 20; BPR the same as BPR-max
    for seed in (1, 2):
        write_run(root, "torch-bprmax", seed, ranks_of(1), epochs([1.0]))
        write_run(root, "keras-bprmax", seed, ranks_of(100), epochs([1.0]))
        write_run(root, "torch-bpr", seed, ranks_of(1), epochs([1.0]))
    # TOP1-max far above TOP1, both with a little seed spread
    write_run(root, "torch-top1max", 1, ranks_of(1), epochs([1.0]))
    write_run(root, "torch-top1max", 2, one_off(1, 2), epochs([1.0]))
    write_run(root, "torch-top1", 1, ranks_of(3), epochs([1.0]))
    write_run(root, "torch-top1", 2, one_off(3, 2), epochs([1.0]))
    # README-best xe: rank 1 in 15 sessions (30 of 80 events), rank 9 elsewhere
    best = ranks_of(lambda s, p: 1 if s < 115 else 9)
    for seed in (1, 2):
        write_run(root, "torch-xe-best", seed, best, epochs([1.0]))
    # dwell: train-only on the original test set; train+test on a boosted one where
    # every session is [a, a, b] -> half of the targets after position 0 repeat their input
    write_run(root, "torch-dwell75-train", 1, ranks_of(2), epochs([1.0]))
    boosted = ranks_of(1, events=3, targets=lambda s, p: 7 * s if p < 2 else 7 * s + 1)
    write_run(root, "torch-dwell75-traintest", 1, boosted, epochs([1.0]))
    # Keras port: rank 10; as published rank 20 (seed 1) and 40 (seed 2); the drop-tail
    # flaw misses the last session and puts sessions 120-138 at rank 1000
    for seed in (1, 2):
        write_run(root, "keras-port", seed, ranks_of(10), epochs([5.0]))
        write_run(root, "keras-port-as-published", seed, ranks_of(20 * seed), epochs([5.0]))
        flaw = ranks_of(lambda s, p: 10 if s < 120 else 1000, sessions=range(100, 139))
        write_run(root, "keras-port-flaw-drop-tail", seed, flaw, epochs([4.0]))
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results") / "tiny")


@pytest.fixture(scope="module")
def built(results):
    return tables.build_tables(results, config(), "tiny")


def row(df, **where):
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        mask &= df[k].to_numpy() == v
    assert mask.sum() == 1, where
    return df[mask].iloc[0]


# ------------------------------------------------------------------------ package

def test_every_family_module_is_discovered():
    assert set(tables.TABLES) >= {"baselines", "iclr2016", "losses", "authors_current", "dwell",
                                  "frameworks", "keras_port", "protocols", "claims"}
    assert tables.TABLES[:3] == ("baselines", "iclr2016", "losses")
    with pytest.raises(ValueError, match="unknown table 'pie'"):
        tables.build_table("pie", ".", config(), "tiny")


# ---------------------------------------------------------------- published numbers

def test_every_published_number_has_source_setting_and_protocol():
    for (table, row_key), pub in paper.PUBLISHED.items():
        assert pub.source and pub.setting and pub.protocol, (table, row_key)
        assert pub.policy in ("paper2016", "conservative"), (table, row_key)
        assert pub.source in pub.cite() and pub.protocol in pub.cite()
    # the tutorial's GRU4Rec row is its own loss table's cross-entropy row, not ICLR 2016
    gru = paper.published("baselines", "GRU4Rec")
    assert (gru.recall, gru.mrr) == (0.5781, 0.2375)
    assert "ICLR" not in gru.source and "tutorial" in gru.protocol
    assert paper.published("iclr2016", "cross-entropy, 1000 units").mrr == 0.2153
    # the Keras port publishes no numbers (SPEC.md section 5)
    assert not paper.rows_of("keras_port")
    best = paper.published("authors_current", "cross-entropy, README best")
    assert best.policy == "conservative" and best.get("recall", 5) == 0.4906 and best.get("mrr", 10) == 0.3130
    assert math.isnan(paper.published("authors_current", "BPR-max, no embedding").get("recall", 5))


#: Every published number (SPEC.md section 8; the authors' figures: section 4): (table, row) ->
#: (Recall@20, MRR@20, the constant of gru4rec_repro.paper naming its source).
SPEC_NUMBERS = {
    ("baselines", "POP"): (0.0050, 0.0012, "ICLR2016_T1"),
    ("baselines", "S-POP"): (0.2672, 0.1775, "ICLR2016_T1"),
    ("baselines", "Item-KNN"): (0.5065, 0.2048, "ICLR2016_T1"),
    ("baselines", "BPR-MF"): (0.2574, 0.0618, "ICLR2016_T1"),
    ("baselines", "GRU4Rec"): (0.5781, 0.2375, "TUTORIAL_BASELINES"),
    ("iclr2016", "POP"): (0.0050, 0.0012, "ICLR2016_T1"),
    ("iclr2016", "S-POP"): (0.2672, 0.1775, "ICLR2016_T1"),
    ("iclr2016", "Item-KNN"): (0.5065, 0.2048, "ICLR2016_T1"),
    ("iclr2016", "BPR-MF"): (0.2574, 0.0618, "ICLR2016_T1"),
    ("iclr2016", "TOP1, 100 units"): (0.5853, 0.2305, "ICLR2016_T3"),
    ("iclr2016", "BPR, 100 units"): (0.6069, 0.2407, "ICLR2016_T3"),
    ("iclr2016", "cross-entropy, 100 units"): (0.6074, 0.2430, "ICLR2016_T3"),
    ("iclr2016", "TOP1, 1000 units"): (0.6206, 0.2693, "ICLR2016_T3"),
    ("iclr2016", "BPR, 1000 units"): (0.6322, 0.2467, "ICLR2016_T3"),
    ("iclr2016", "cross-entropy, 1000 units"): (0.5777, 0.2153, "ICLR2016_T3"),
    ("losses", "cross-entropy"): (0.5781, 0.2375, "TUTORIAL_LOSSES"),
    ("losses", "TOP1"): (0.6117, 0.2367, "TUTORIAL_LOSSES"),
    ("losses", "BPR"): (0.6322, 0.2467, "TUTORIAL_LOSSES"),
    ("losses", "TOP1-max"): (0.7086, 0.3045, "TUTORIAL_LOSSES"),
    ("losses", "BPR-max"): (0.7211, 0.3170, "TUTORIAL_LOSSES"),
    ("authors_current", "cross-entropy, README best"): (0.7283, 0.3205, "README"),
    ("authors_current", "BPR-max, constrained embedding"): (0.7261, 0.3124, "RUN_RSC15"),
    ("authors_current", "BPR-max, no embedding"): (0.7197, 0.3157, "RUN_RSC15"),
    ("authors_current", "cross-entropy, no embedding (2018)"): (0.7180, 0.3087, "RUN_RSC15"),
    ("dwell", "GRU4Rec"): (0.5853, 0.2305, "BOGINA2017"),
    ("dwell", "GRU4Rec, dwell threshold 75"): (0.7885, 0.5834, "BOGINA2017"),
    ("dwell", "GRU4Rec, dwell threshold 100"): (0.7754, 0.548, "BOGINA2017"),
    ("dwell", "GRU4Rec with sampling"): (0.7117, 0.308, "BOGINA2017"),
    ("dwell", "with sampling, dwell threshold 100"): (0.84, 0.61, "BOGINA2017"),
    ("dwell", "with sampling, dwell threshold 75"): (0.853, 0.636, "BOGINA2017"),
}


def test_every_published_number_and_its_source_is_spec_section_8():
    assert set(paper.PUBLISHED) == set(SPEC_NUMBERS)
    for key, (recall, mrr, source) in SPEC_NUMBERS.items():
        pub = paper.PUBLISHED[key]
        assert (pub.recall, pub.mrr) == (recall, mrr), key
        assert getattr(paper, source) in pub.source, key
        # a tutorial row copying ICLR 2016 Table 1 names both
        if key[0] == "baselines" and source == "ICLR2016_T1" and key[1] != "Item-KNN":
            assert pub.source.startswith(paper.TUTORIAL_BASELINES), key
    # the README-best setting's other cut-offs (SPEC.md section 4)
    best = paper.published("authors_current", "cross-entropy, README best")
    assert {k: best.get(m, k) for m, k in (("recall", 1), ("recall", 5), ("recall", 10))} == {
        1: 0.1845, 5: 0.4906, 10: 0.6218}
    assert (best.get("mrr", 1), best.get("mrr", 5), best.get("mrr", 10)) == (0.1845, 0.2954, 0.3130)
    # the claimed ICLR 2016 gains (section 8: about +20% Recall@20, +30% MRR@20)
    iclr = paper.CLAIMS["iclr2016_gru_vs_iknn"]
    assert (iclr["recall"], iclr["mrr"]) == (0.20, 0.30) and "ICLR 2016" in iclr["source"]


def test_published_settings_say_only_what_spec_states():
    """ICLR 2016 Table 3: tanh output for TOP1/BPR, softmax for cross-entropy; batch 50, lr 0.01,
    dropout 0.5 and SessionId order only for the TOP1 100-unit row (SPEC.md sections 4, 8)."""
    for key in paper.rows_of("iclr2016")[4:]:
        pub = paper.published("iclr2016", key)
        assert pub.params["n_sample"] == 0 and pub.params["constrained_embedding"] is False
        top1_100 = key == "TOP1, 100 units"
        assert ("batch 50" in pub.setting) == top1_100 == ("batch_size" in pub.params), key
        assert ("SessionId order" in pub.setting) == top1_100 == ("time_sort" in pub.params), key
        if key.startswith("cross-entropy"):
            assert "softmax output" in pub.setting and "tanh" not in pub.setting
            assert pub.params["final_act"] == "linear"
        else:
            assert "tanh output" in pub.setting and pub.params["final_act"] == "tanh"
    readme = paper.published("authors_current", "cross-entropy, README best").params
    assert (readme["learning_rate"], readme["n_epochs"], readme["sample_alpha"]) == (0.1, 10, 0.75)
    assert paper.published("authors_current", "BPR-max, constrained embedding").params["learning_rate"] == 0.2


def test_relative_difference_and_the_same_level_mark():
    assert relative_difference(0.6, 0.6069) == pytest.approx(0.6 / 0.6069 - 1)
    assert math.isnan(relative_difference(0.2, 0.0050))  # published below 0.01: not printed
    assert SAME_LEVEL == 0.05


# ------------------------------------------------------------------------ tables

def test_baselines_show_paper_protocol_random_ties_and_conservative(built):
    df = built["baselines"]
    assert list(df["run"]) == ["pop", "iknn", "bprmf", "torch-xe"]
    pop = row(df, run="pop")
    assert pop["paper_recall"] == 0.0050 and pop["paper_protocol"] == "paper2016"
    assert pop["recall_ours"] == pytest.approx(10 / 80) and pop["n_seeds"] == 1
    assert math.isnan(pop["recall_rel_diff"]) and not pop["recall_same_level"]  # 0.0050 < 0.01
    # one seed: CI over test sessions only. Sessions 100-109 sum 1 of n_s = 2, others 0.
    se = math.sqrt((10 * (1 - 0.25) ** 2 + 30 * 0.25 ** 2) / (40 * 39)) / 2
    assert (pop["recall_ci_low"], pop["recall_ci_high"]) == pytest.approx((0.125 - Z * se, 0.125 + Z * se))
    knn = row(df, run="iknn")
    # 4 ties above nothing: 2016 cut (optimistic rank 1) 1 / 1; random ranks 1..5 uniform;
    # conservative rank 5
    assert (knn["recall_ours"], knn["mrr_ours"]) == (1.0, 1.0)
    assert knn["mrr_ours_paper2016_random"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    assert knn["mrr_ours_conservative"] == pytest.approx(0.2)
    assert knn["recall_rel_diff"] == pytest.approx(1 / 0.5065 - 1)
    gru = row(df, run="torch-xe")
    assert gru["paper_recall"] == 0.5781 and gru["method"] == "GRU4Rec (tutorial's row)"


def test_baselines_notes_print_the_bprmf_score_shares(results, tmp_path):
    tables.make_table("baselines", results, config(), "tiny", tmp_path)
    md = (tmp_path / "baselines.md").read_text()
    assert "item bias 80.0%, from the factors 20.0%" in md
    assert "ICLR 2016 (Hidasi et al.), Table 1" in md and "not an ICLR 2016 number" in md


def test_iclr2016_marks_ours_within_five_percent(built):
    df = built["iclr2016"]
    assert list(df["run"]) == ["pop", "iknn", "bprmf", "torch-top1-2016", "torch-bpr-2016", "torch-xe-2016"]
    bpr = row(df, run="torch-bpr-2016")
    assert bpr["recall_ours"] == pytest.approx(0.6) and bpr["paper_recall"] == 0.6069
    assert bpr["recall_same_level"] and bpr["recall_rel_diff"] == pytest.approx(0.6 / 0.6069 - 1)
    assert not bpr["mrr_same_level"]  # 0.6 vs 0.2407
    xe = row(df, run="torch-xe-2016")
    # seeds rank 2 and rank 4; the 2016 cut keeps both (< 20): MRR 0.5 and 0.25
    assert xe["mrr_ours"] == pytest.approx(0.375) and xe["n_seeds"] == 2
    se_seeds = np.std([0.5, 0.25], ddof=1) / math.sqrt(2)  # every session alike: SE_sessions = 0
    # the seed part uses Student's t with n - 1 = 1 degree of freedom, not z = 1.96
    assert xe["mrr_ci_high"] - xe["mrr_ours"] == pytest.approx(sps.t.ppf(0.975, 1) * se_seeds)


def test_iclr2016_display_marks_the_same_level(results):
    t = tables.build_table("iclr2016", results, config(), "tiny")
    cell = t.display.loc[t.data["run"] == "torch-bpr-2016", "R@20 rel. diff"].item()
    assert cell == "-1.1% ≈"


def test_authors_current_uses_conservative_and_the_readme_cutoffs(built):
    df = built["authors_current"]
    assert list(df["run"]) == ["torch-xe-best", "torch-bprmax", "keras-bprmax"]
    best = row(df, run="torch-xe-best")
    assert best["paper_protocol"] == "conservative"
    # rank 1 in 30 of 80 events, rank 9 elsewhere
    assert best["recall@1_ours"] == pytest.approx(30 / 80) and best["paper_recall@1"] == 0.1845
    assert best["recall@5_ours"] == pytest.approx(30 / 80) and best["recall@10_ours"] == 1.0
    assert best["mrr@10_ours"] == pytest.approx((30 + 50 / 9) / 80)
    assert best["mrr_ours"] == best["mrr_ours_conservative"]
    bm = row(df, run="torch-bprmax")
    assert math.isnan(bm["paper_recall@5"]) and bm["paper_recall"] == 0.7261


def test_losses_rows_per_framework(built):
    df = built["losses"]
    assert list(df["run"]) == ["torch-xe", "keras-xe", "torch-top1", "torch-bpr", "torch-top1max",
                               "torch-bprmax", "keras-bprmax"]
    xe = row(df, run="keras-xe")
    assert xe["recall_ours"] == 0.5 and xe["framework"] == "Keras" and xe["loss"] == "cross-entropy"
    assert row(df, run="keras-bprmax")["mrr_ours"] == 0.0


def test_frameworks_identical_runs_are_equivalent(built):
    df = built["frameworks"]
    assert list(df["setting"].unique()) == ["xe", "bprmax"]
    xe = row(df, setting="xe", metric="recall@20")
    assert xe["diff"] == 0 and (xe["ci_low"], xe["ci_high"]) == (0, 0)
    assert xe["p"] == 1 and xe["p_adj"] == 1 and xe["welch_p"] == 1
    assert xe["verdict"] == "equivalent"
    # seconds per epoch: torch seeds 3 and 3, keras 6 and 9
    assert xe["s_per_epoch_a"] == 3 and xe["s_per_epoch_b"] == 7.5
    assert xe["s_per_epoch_ratio"] == 2.5


def test_frameworks_large_gap_is_different(built):
    bm = row(built["frameworks"], setting="bprmax", metric="mrr@20")
    assert bm["diff"] == -1.0 and bm["rel_diff"] == -1.0
    assert bm["p_adj"] == 0 and bm["verdict"] == "different"
    assert bm["gap_exceeds_seed_spread"]


def test_paired_comparison_of_runs_on_different_events_is_refused(tmp_path):
    write_run(tmp_path, "torch-xe", 1, ranks_of(1))
    write_run(tmp_path, "keras-xe", 1, ranks_of(1, sessions=range(100, 130)))
    cfg = config({"torch-xe": "gru4rec_torch", "keras-xe": "gru4rec_keras"}, seeds=(1,))
    with pytest.raises(ValueError, match="'keras-xe' and 'torch-xe'.*not on the same test events"):
        tables.build_table("frameworks", tmp_path, cfg, "tiny")


def test_dwell_rows_per_boosting_and_the_measured_leak(built, results, tmp_path):
    df = built["dwell"]
    assert list(df["run"]) == ["torch-top1-2016", "torch-dwell75-train", "torch-dwell75-traintest",
                               "torch-bprmax"]
    train = row(df, run="torch-dwell75-train")
    tt = row(df, run="torch-dwell75-traintest")
    assert train["mrr_ours"] == 0.5 and tt["mrr_ours"] == 1.0
    assert train["repeat_share"] == 0.0 and tt["repeat_share"] == 0.5
    assert tt["paper_mrr"] == 0.5834
    tables.make_table("dwell", results, config(), "tiny", tmp_path)
    md = (tmp_path / "dwell.md").read_text()
    assert ("targets equal to the input item 0.0% of 80 test events with train-only boosting "
            "(torch-dwell75-train) vs 50.0% of 120 with train+test boosting") in md
    assert "MRR@20 (2016 cut) 0.5000 vs 1.0000" in md


def test_keras_port_as_published_and_flaws_against_the_port(built):
    df = built["keras_port"]
    assert list(df["run"]) == ["keras-port", "keras-port-as-published", "keras-port-flaw-drop-tail"]
    pub = row(df, run="keras-port-as-published")
    # seed 1 rank 20 (MRR 0.05), seed 2 rank 40 (R 0): paired against rank 10 everywhere
    assert pub["recall_mean"] == 0.5 and pub["recall_change"] == pytest.approx(-0.5)
    assert pub["mrr_change"] == pytest.approx(0.025 - 0.1) and pub["paired"]
    # the seed-level test as in the frameworks table: port seeds are identical (sd 0)
    assert pub["recall_gap_exceeds_seed_spread"] is not None
    assert not math.isnan(pub["recall_welch_p"])
    flaw = row(df, run="keras-port-flaw-drop-tail")
    # different test events: compared UNPAIRED on each side's own events
    assert not flaw["paired"]
    assert flaw["recall_mean"] == pytest.approx(40 / 78)
    assert flaw["recall_change"] == pytest.approx(40 / 78 - 1)
    assert flaw["recall_change_ci_high"] < 0 and flaw["recall_p_adj"] < 0.05
    assert math.isnan(row(df, run="keras-port")["recall_change"])


def test_protocols_table_every_run_and_the_largest_gap(built):
    df = built["protocols"]
    assert list(dict.fromkeys(df["run"])) == list(RUNS)
    knn = row(df, run="iknn", metric="mrr@20")
    assert knn["conservative"] == pytest.approx(0.2) and knn["median"] == pytest.approx(1 / 3)
    assert knn["random"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    assert knn["optimistic"] == 1.0 and knn["paper2016"] == 1.0
    assert knn["paper2016_random"] == pytest.approx(knn["random"])  # all tied ranks are < 20
    assert knn["largest_gap"] == pytest.approx((1 - 0.2) / 0.2)
    assert (knn["lowest"], knn["highest"]) == ("conservative", "optimistic")
    assert largest_gap([0.0, 0.5]) != largest_gap([0.0, 0.5])  # NaN when the smallest is 0
    # rank 20 exactly: counted by today's protocols, not by the 2016 cut
    pub = row(df, run="keras-port-as-published", metric="recall@20")
    assert pub["conservative"] == 0.5 and pub["paper2016"] == 0.0


def test_claims_verdicts_follow_the_rule(built):
    df = built["claims"]
    top1 = row(df, a="torch-top1max", b="torch-top1", metric="mrr")
    assert top1["claimed_rel"] == pytest.approx(0.3045 / 0.2367 - 1)
    assert top1["paired"] and top1["seed_test"] == "Welch"
    assert top1["ci_low"] > top1["margin_band"] and top1["p_adj"] < 0.05 and top1["seed_p_adj"] < 0.05
    assert top1["verdict"] == "holds"
    same = row(df, a="torch-bprmax", b="torch-bpr", metric="recall")
    assert same["diff"] == 0 and same["verdict"] == "contradicted"  # no effect (equivalent)
    for ties in ("optimistic ties", "random tie-break"):
        iclr = row(df, claim=f"ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with {ties})", metric="mrr")
        assert iclr["a"] == "torch-bpr-2016" and iclr["claimed_rel"] == 0.30  # best MRR under the 2016 cut
        assert iclr["seed_test"] == "none (one seed each)" and iclr["protocol"] == "paper2016"
    # Item-KNN's 4 ties above nothing: optimistic MRR 1 -> GRU4Rec's 0.6 is 40% below it;
    # random tie-break MRR (1 + 1/2 + ... + 1/5) / 5 = 0.4567 -> GRU4Rec 31.4% above it
    opt = row(df, claim="ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with optimistic ties)", metric="mrr")
    rnd = row(df, claim="ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with random tie-break)", metric="mrr")
    assert (opt["protocol_b"], rnd["protocol_b"]) == ("paper2016", "paper2016_random")
    assert opt["metric_b"] == 1.0 and opt["ci_high"] < 0 and opt["verdict"] == "contradicted"
    knn_random = (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5
    assert rnd["metric_b"] == pytest.approx(knn_random) and rnd["rel_diff"] == pytest.approx(0.6 / knn_random - 1)
    assert rnd["verdict"] != opt["verdict"]
    dwell_tt = row(df, a="torch-dwell75-traintest", metric="mrr")
    assert not dwell_tt["paired"]
    for r in df.itertuples():  # the verdict column follows the rule, row by row
        if r.verdict == "holds":
            assert r.ci_low > r.margin_band and r.p_adj < 0.05
            assert math.isnan(r.seed_p_adj) or r.seed_p_adj < 0.05
        elif r.verdict == "inconclusive":
            assert not (r.ci_low > r.margin_band and r.p_adj < 0.05
                        and (math.isnan(r.seed_p_adj) or r.seed_p_adj < 0.05))


def test_claims_table_shows_both_iclr_tie_rules(results, tmp_path):
    tables.make_table("claims", results, config(), "tiny", tmp_path)
    md = (tmp_path / "claims.md").read_text()
    assert "| ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with optimistic ties)" in md
    assert "| ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with random tie-break)" in md
    assert "2016 cut, random ties (SPEC.md section 7" in md


def test_claim_verdict_rule_branches():
    nan = float("nan")
    ci = (0.01, 0.03)
    assert claims_mod.claim_verdict(ci, +1, 0.001, nan, False)[0] == "holds"
    assert claims_mod.claim_verdict(ci, +1, 0.001, 0.2, False)[0] == "inconclusive"  # seeds do not confirm
    assert claims_mod.claim_verdict(ci, +1, 0.2, nan, False)[0] == "inconclusive"
    assert claims_mod.claim_verdict(ci, -1, 0.001, 0.01, False)[0] == "contradicted"
    assert claims_mod.claim_verdict((-0.001, 0.002), +1, 0.5, nan, True)[0] == "contradicted"
    assert claims_mod.claim_verdict((-0.001, 0.002), +1, 0.5, nan, False)[0] == "inconclusive"


def test_a_claim_inside_the_equivalence_band_never_holds():
    nan = float("nan")
    # significant (CI excludes 0, p tiny) but inside a +-0.02 band: equivalence is decided first
    v, why = claims_mod.claim_verdict((0.005, 0.015), +1, 1e-9, 1e-6, True, band=0.02)
    assert v == "contradicted" and "equivalent" in why
    # not equivalent (e.g. the seed gap's CI is wider) and still inside the band: not "holds"
    v, why = claims_mod.claim_verdict((0.005, 0.015), +1, 1e-9, 1e-6, False, band=0.02)
    assert v == "inconclusive" and "does not clear the margin" in why
    # the CI reaches past the band but does not clear it: not "holds"
    assert claims_mod.claim_verdict((0.01, 0.05), +1, 1e-9, nan, False, band=0.02)[0] == "inconclusive"
    # clears the band: holds
    assert claims_mod.claim_verdict((0.021, 0.05), +1, 1e-9, nan, False, band=0.02)[0] == "holds"


def test_claims_ci_covers_seeds_and_sessions(built):
    """TOP1-max vs TOP1, MRR@20 (2016 cut), by hand: both runs have 2 seeds and differ at
    session 100 only, so the CI has a session part and a seed part."""
    r = row(built["claims"], a="torch-top1max", b="torch-top1", metric="mrr")
    a = np.array([1.0, (79 + 1 / 2) / 80])               # rank 1; rank 1 but one event at rank 2
    b = np.array([1 / 3, (79 / 3 + 1 / 2) / 80])         # rank 3; rank 3 but one event at rank 2
    diff = a.mean() - b.mean()
    assert r["diff"] == pytest.approx(diff)
    # sessions: the seed-averaged per-session sums of a - b are 2 x 2/3 except session 100
    # (events (0.75 - 5/12) and 2/3, sum 1); linearisation SE of the ratio over 40 sessions
    sums = np.array([1.0] + [4 / 3] * 39)
    se_sessions = math.sqrt(np.sum((sums - diff * 2) ** 2) / (40 * 39)) / 2
    assert r["se_sessions"] == pytest.approx(se_sessions)
    # seeds: the half-width of scipy's Welch 95% CI of the per-seed metrics
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    seed_half = (welch.high - welch.low) / 2
    assert r["seed_half_width"] == pytest.approx(seed_half) and seed_half > 0 and se_sessions > 0
    half = math.hypot(Z * se_sessions, seed_half)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((diff - half, diff + half))
    assert (r["rel_ci_low"], r["rel_ci_high"]) == pytest.approx(((diff - half) / b.mean(), (diff + half) / b.mean()))
    assert r["ci_covers"] == "seeds+sessions"
    # wider than the sessions-only bootstrap CI it replaces
    assert r["ci_high"] - r["ci_low"] > r["ci_sessions_boot_high"] - r["ci_sessions_boot_low"]


def test_claimed_size_column_follows_the_ci(results, built):
    df = built["claims"]
    for r in df.itertuples():
        if math.isnan(r.claimed_rel):
            assert r.claimed_size_in_ci is None
        else:
            assert r.claimed_size_in_ci == (r.rel_ci_low <= r.claimed_rel <= r.rel_ci_high)
    # ICLR MRR: claimed +30%; against the random tie-break ours is +31.4% with a CI around it
    rnd = row(df, claim="ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with random tie-break)", metric="mrr")
    assert rnd["rel_ci_low"] < 0.30 < rnd["rel_ci_high"] and rnd["claimed_size_in_ci"]
    opt = row(df, claim="ICLR 2016: best GRU4Rec > Item-KNN (Item-KNN with optimistic ties)", metric="mrr")
    assert not opt["claimed_size_in_ci"]
    t = tables.build_table("claims", results, config(), "tiny")
    shown = t.display.loc[(t.data["a"] == rnd["a"]) & (t.data["protocol_b"] == "paper2016_random")
                          & (t.data["metric"] == "mrr"), "Claimed size in CI"].item()
    assert shown == "yes"


def test_claimed_size_is_judged_on_the_ci_over_seeds(tmp_path):
    """Every session alike (no session spread): only the seeds make the CI wide enough to hold
    the claimed +28.6% MRR of TOP1-max over TOP1."""
    for seed, rank in ((1, 2), (2, 4), (3, 5)):
        write_run(tmp_path, "torch-top1max", seed, ranks_of(rank))  # MRR 0.5, 0.25, 0.2
        write_run(tmp_path, "torch-top1", seed, ranks_of(4))        # MRR 0.25
    cfg = config({"torch-top1max": "gru4rec_torch", "torch-top1": "gru4rec_torch"}, seeds=(1, 2, 3))
    r = row(tables.build_table("claims", tmp_path, cfg, "tiny").data, metric="mrr")
    assert r["rel_diff"] == pytest.approx((0.95 / 3) / 0.25 - 1)                # +26.7%
    assert r["ci_sessions_boot_low"] == r["ci_sessions_boot_high"] == pytest.approx(0.95 / 3 - 0.25)
    half = sps.t.ppf(0.975, 2) * np.std([0.5, 0.25, 0.2], ddof=1) / math.sqrt(3)  # the other side: sd 0
    assert r["rel_ci_high"] == pytest.approx(r["rel_diff"] + half / 0.25)
    assert r["claimed_rel"] == pytest.approx(0.3045 / 0.2367 - 1) and r["claimed_size_in_ci"]


def test_best_gru4rec_run_is_picked_per_metric_under_the_2016_cut(results):
    st = tables.Study(results, config(), "tiny")
    # R@20 (2016 cut): top1-2016 1.0, xe-2016 1.0 (tie: the first in ICLR_GRU_RUNS), bpr-2016 0.6;
    # MRR@20: bpr-2016 0.6 > xe-2016 0.375 > top1-2016 1/3
    assert claims_mod.best_run(st, claims_mod.ICLR_GRU_RUNS, "recall") == "torch-top1-2016"
    assert claims_mod.best_run(st, claims_mod.ICLR_GRU_RUNS, "mrr") == "torch-bpr-2016"
    runs = {r: impl for r, impl in RUNS.items() if r != "torch-bpr-2016"}
    st = tables.Study(results, config(runs), "tiny")
    assert claims_mod.best_run(st, claims_mod.ICLR_GRU_RUNS, "mrr") == "torch-xe-2016"
    assert claims_mod.best_run(st, ("torch-xe-2016-1000",), "mrr") is None


def test_bpr_max_over_bpr_notes_its_claimed_size_has_no_extra_samples(results):
    t = tables.build_table("claims", results, config(), "tiny")
    note = [n for n in t.notes if n.startswith("'CIKM 2018: BPR-max > BPR' claimed size")]
    assert len(note) == 1
    assert "R@20 +14.1%" in note[0] and "BPR WITHOUT extra samples" in note[0]


def test_seed_level_p_picks_the_test():
    p, name = claims_mod.seed_level_p([0.5, 0.6, 0.7], [0.2])
    assert name == "one-sample t" and p == pytest.approx(
        __import__("scipy").stats.ttest_1samp([0.5, 0.6, 0.7], 0.2).pvalue)
    assert claims_mod.seed_level_p([0.5, 0.6], [0.1, 0.2])[1] == "Welch"
    assert math.isnan(claims_mod.seed_level_p([0.5], [0.1])[0])


TOP1_2016 = {"loss": "top1", "final_act": "tanh", "layers": [100], "embedding": 0,
             "constrained_embedding": False, "batch_size": 50, "dropout_p_hidden": 0.5,
             "onehot_dropout": "hidden", "learning_rate": 0.01, "n_sample": 0, "time_sort": False,
             "n_epochs": 10}
BPRMAX = {"loss": "bpr-max", "final_act": "elu", "elu_param": 0.5, "layers": [100], "embedding": 0,
          "constrained_embedding": True, "batch_size": 32, "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0,
          "learning_rate": 0.05, "momentum": 0.1, "n_sample": 2048, "sample_alpha": 0.0, "bpreg": 0.5,
          "n_epochs": 10}
XE = {"loss": "cross-entropy", "final_act": "linear", "layers": [100], "embedding": 0,
      "constrained_embedding": True, "batch_size": 32, "dropout_p_hidden": 0.4, "learning_rate": 0.2,
      "momentum": 0.2, "n_sample": 2048, "sample_alpha": 0.5, "logq": 1.0, "n_epochs": 10}
XE_BEST = {**XE, "dropout_p_embed": 0.1, "dropout_p_hidden": 0.0, "learning_rate": 0.1, "momentum": 0.0,
           "sample_alpha": 0.75, "elu_param": 0.0}


def config_with_params(epochs=3):
    """The fake study with the default study's settings (config/config.yaml) and study.epochs."""
    cfg = config()
    params = {"torch-top1-2016": TOP1_2016,
              "torch-bpr-2016": {**TOP1_2016, "loss": "bpr", "batch_size": 32, "time_sort": True},
              "torch-xe-2016": {**TOP1_2016, "loss": "cross-entropy", "final_act": "linear"},
              "torch-bprmax": BPRMAX, "keras-bprmax": BPRMAX, "torch-top1": {**BPRMAX, "loss": "top1"},
              "torch-bpr": {**BPRMAX, "loss": "bpr"}, "torch-top1max": {**BPRMAX, "loss": "top1-max"},
              "torch-xe": XE, "keras-xe": XE, "torch-xe-best": XE_BEST,
              "bprmf": {"factors": 100, "n_epochs": 10, "learning_rate": 0.1, "bias_reg": 1.0}}
    for run, p in params.items():
        cfg["runs"][run]["params"] = dict(p)
    cfg["study"]["epochs"] = epochs
    return cfg


def test_iclr2016_rows_print_each_runs_own_setting(results):
    t = tables.build_table("iclr2016", results, config_with_params(), "tiny")
    shown = dict(zip(t.data["run"], t.display["Setting (ours)"]))
    assert shown["torch-top1-2016"] == "top1, tanh output, batch 50, SessionId order"
    assert shown["torch-xe-2016"] == "cross-entropy, softmax output, batch 50, SessionId order"
    assert shown["torch-bpr-2016"] == "bpr, tanh output, batch 32, time order"
    assert shown["iknn"] == "–"
    epochs = dict(zip(t.data["run"], t.display["Epochs"]))
    assert epochs["torch-top1-2016"] == "3" and epochs["bprmf"] == "10" and epochs["iknn"] == "–"
    d = t.data.set_index("run")
    assert d.loc["torch-top1-2016", "differs_from_published"] == "n_epochs 3 (published 10)"
    assert d.loc["torch-bpr-2016", "differs_from_published"] == "none"  # Table 3 states no epochs for BPR
    assert d.loc["bprmf", "differs_from_published"] == "learning_rate 0.1 (published 0.01)"
    assert "dropout 0/0.5, lr 0.01" in d.loc["torch-top1-2016", "setting"]
    notes = " ".join(t.notes)
    assert "GRU4Rec runs: the 2016 settings" not in notes  # no blanket setting any more
    assert "torch-top1-2016: top1, tanh output, 100 units, one-hot input, batch 50" in notes
    # without study.epochs every run trains its own n_epochs
    t10 = tables.build_table("iclr2016", results, config_with_params(epochs=None), "tiny")
    assert t10.data.set_index("run").loc["torch-top1-2016", "differs_from_published"] == "none"


def test_authors_current_prints_epochs_and_every_parameter_off_the_published_setting(results):
    t = tables.build_table("authors_current", results, config_with_params(), "tiny")
    d = t.data.set_index("run")
    assert d.loc["torch-bprmax", "differs_from_published"] == (
        "n_epochs 3 (published 10), learning_rate 0.05 (published 0.2)")
    assert d.loc["torch-xe-best", "differs_from_published"] == "n_epochs 3 (published 10)"
    assert list(t.display["Epochs"]) == ["3", "3", "3"]
    notes = " ".join(t.notes)
    assert "trained as published" not in notes
    assert "torch-bprmax: n_epochs 3 (published 10), learning_rate 0.05 (published 0.2)" in notes
    ok = tables.build_table("authors_current", results, config_with_params(epochs=None), "tiny")
    assert ok.data.set_index("run").loc["torch-xe-best", "differs_from_published"] == "none"


def test_losses_notes_say_the_rows_mix_two_settings(results):
    t = tables.build_table("losses", results, config_with_params(), "tiny")
    note = [n for n in t.notes if n.startswith("The rows mix two settings")]
    assert len(note) == 1
    assert "torch-xe (cross-entropy) and torch-bprmax (BPR-max) differ in" in note[0]
    assert "learning_rate 0.2 vs 0.05" in note[0] and "dropout_p_hidden 0.4 vs 0.0" in note[0]
    assert "torch-top1: torch-bprmax's setting with the loss swapped." in note[0]
    assert "Keras: keras-xe (cross-entropy) and keras-bprmax (BPR-max) differ in" in note[0]


def test_protocols_and_claims_print_the_epochs(results):
    t = tables.build_table("protocols", results, config_with_params(), "tiny")
    epochs = dict(zip(t.data["run"], t.display["Epochs"]))
    assert epochs["torch-xe"] == "3" and epochs["pop"] == "–" and epochs["bprmf"] == "10"
    claims = " ".join(tables.build_table("claims", results, config_with_params(), "tiny").notes)
    assert "torch-top1max vs torch-top1: epochs 3 vs 3; differ in loss top1-max vs top1" in claims


# ----------------------------------------------------------------------- writing

def test_written_tables_carry_their_notes(results, tmp_path):
    tables.write_tables(results, config(), "tiny", tmp_path)
    for name in tables.TABLES:
        for ext in ("md", "csv", "tex", "notes.txt"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    md = (tmp_path / "frameworks.md").read_text()
    assert "| Setting" in md and "conservative tie policy" in md and "Holm" in md
    assert "covering test sessions and seeds together" in md
    tex = (tmp_path / "frameworks.tex").read_text()
    assert "\\begin{table}" in tex and "\\toprule" in tex and "\\label{tab:frameworks}" in tex
    assert "\\caption{" in tex
    csv = pd.read_csv(tmp_path / "baselines.csv")
    assert csv.loc[csv["method"] == "POP", "recall_ours"].item() == pytest.approx(0.125)
    assert "Verdict rule" in (tmp_path / "claims.md").read_text()


def test_paper_note_only_off_rsc15(results, tmp_path):
    tables.make_table("baselines", results, config(), "rsc15", tmp_path)
    assert "not RSC15" not in (tmp_path / "baselines.md").read_text()
    tables.make_table("baselines", results, config(), "tiny", tmp_path)
    assert "not RSC15" in (tmp_path / "baselines.md").read_text()


def test_table_without_configured_runs_is_written_empty(results, tmp_path):
    only = config({"keras-xe": "gru4rec_keras"})  # in no table but protocols
    for name in ("frameworks", "iclr2016", "authors_current", "claims", "keras_port", "baselines"):
        df = tables.make_table(name, results, only, "tiny", tmp_path)
        assert df.empty, name
        assert "No run of this table" in (tmp_path / f"{name}.md").read_text()


def test_configured_run_without_files_is_an_error(results, tmp_path):
    with pytest.raises(FileNotFoundError, match="spop"):
        tables.build_table("baselines", results, config({"spop": "spop"}), "tiny")
    broken = tmp_path / "broken"
    write_run(broken, "pop", 1, ranks_of(1))
    (broken / "runs" / "pop" / "seed1" / "ranks.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="ranks.parquet"):
        tables.build_table("baselines", broken, config({"pop": "pop"}), "tiny")


def test_stale_metrics_file_is_an_error(tmp_path):
    write_run(tmp_path, "pop", 1, ranks_of(1))
    atomic.write_json(metrics_from_ranks(ranks_of(50)), tmp_path / "runs/pop/seed1/metrics.json")
    with pytest.raises(ValueError, match="disagrees"):
        tables.build_table("baselines", tmp_path, config({"pop": "pop"}), "tiny")


def test_stale_random_protocol_is_an_error(tmp_path):
    write_run(tmp_path, "pop", 1, ranks_of(5, ties=4))
    m = metrics_from_ranks(ranks_of(5, ties=4))
    m["random"]["recall@20"] = 0.5
    atomic.write_json(m, tmp_path / "runs/pop/seed1/metrics.json")
    with pytest.raises(ValueError, match="random recall@20 0.5 disagrees"):
        tables.build_table("baselines", tmp_path, config({"pop": "pop"}), "tiny")


def test_bad_train_log_names_the_line(tmp_path):
    write_run(tmp_path, "torch-xe", 1, ranks_of(1))
    (tmp_path / "runs/torch-xe/seed1/train_log.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ValueError, match="train_log.jsonl:2"):
        tables.Study(tmp_path, config({"torch-xe": "gru4rec_torch"}), "tiny").run("torch-xe")


def test_seeds_of_a_run_on_different_events_name_the_run(tmp_path):
    write_run(tmp_path, "torch-xe", 1, ranks_of(1))
    write_run(tmp_path, "torch-xe", 2, ranks_of(1, sessions=range(100, 120)))
    with pytest.raises(ValueError, match="run 'torch-xe' seed 2 is not on the same test events as seed 1"):
        tables.Study(tmp_path, config({"torch-xe": "gru4rec_torch"}), "tiny").run("torch-xe")


def test_keras_port_as_published_note_lists_what_the_run_switches_on():
    from types import SimpleNamespace

    from gru4rec_repro.tables.keras_port import switched_on

    port = {"variant": "port", "dropout": 0.5, "n_epochs": 30}
    st = SimpleNamespace(runs_config={
        "keras-port": {"params": port},
        "keras-port-as-published": {"params": {**port, "dropout": 0.25, "flaw_drop_tail": True,
                                               "flaw_carry_state": True, "flaw_reset_late": False}},
    })
    assert switched_on(st, "keras-port-as-published") == [
        "drop-tail", "carry-state", "dropout 0.25 (faithful: 0.5)"]
    assert switched_on(st, "keras-port") == []
