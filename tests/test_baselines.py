"""The four baselines of SPEC.md section 6 on hand-made sessions with answers computed by hand."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from gru4rec_repro.contract import RANK_COLUMNS, RunContext, rank_counts, resolve
from gru4rec_repro.evaluation import metrics_from_ranks
from implementations.baselines import bprmf, iknn, pop, spop
from implementations.baselines.common import PredictionEvents, index_items, rank_events


def frame(sessions: dict) -> pd.DataFrame:
    """{session id: [item ids in click order]} -> a split (Time = click index)."""
    rows = [(sid, item, float(t)) for sid, items in sessions.items() for t, item in enumerate(items)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype(
        {"SessionId": "int64", "ItemId": "int64"})


def ranks_of(module, train, test, params=None, tmp_path=None, seed=1):
    ctx = RunContext(outdir=tmp_path, progress=False)
    return module.run(train, test, params or {}, seed, ctx)


def as_tuples(ranks: pd.DataFrame):
    return list(ranks[["session_id", "position", "target", "higher", "ties"]].itertuples(index=False, name=None))


# --- shared machinery ---------------------------------------------------------------

def test_rank_counts_match_a_count_by_hand():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(50, 9)).astype(np.float64)  # many ties
    target = rng.integers(0, 9, size=50)
    ref_higher = [sum(v > row[t] for v in row) for row, t in zip(scores, target)]
    ref_ties = [sum(v == row[t] for v in row) - 1 for row, t in zip(scores, target)]
    higher, ties = rank_counts(scores, target)
    assert higher.tolist() == ref_higher
    assert ties.tolist() == ref_ties


def test_rank_events_gives_the_same_record_for_any_block_size():
    items = np.arange(10, 19)
    sessions = {s: list(np.random.default_rng(s).choice(items, size=2 + s % 4)) for s in range(12)}
    events = PredictionEvents.from_test(frame(sessions), items)
    table = np.random.default_rng(0).integers(0, 3, size=(len(events), len(items))).astype(float)
    whole = rank_events(events, lambda rows: table[rows], block=10_000, progress=False)
    blocked = rank_events(events, lambda rows: table[rows], block=3, progress=False)
    pd.testing.assert_frame_equal(whole, blocked)
    higher, ties = rank_counts(table, events.target_item(np.arange(len(events))))
    assert whole["higher"].tolist() == higher.tolist() and whole["ties"].tolist() == ties.tolist()
    assert dict(whole.dtypes.astype(str)) == RANK_COLUMNS


def test_item_index_is_ascending_item_id():
    train = frame({1: [30, 10, 30], 2: [20, 10]})
    item_ids, item_idx = index_items(train)
    assert item_ids.tolist() == [10, 20, 30]
    assert item_idx.tolist() == [2, 0, 2, 1, 0]


def test_prediction_events_drop_unknown_items_and_short_sessions():
    items = np.array([10, 20, 30])
    test = frame({5: [10, 99, 20, 20], 6: [30, 99], 7: [30, 10]})  # 99 is not a training item
    events = PredictionEvents.from_test(test, items)
    rows = np.arange(len(events))
    # session 5 becomes [10, 20, 20]; session 6 becomes [30] (no prediction)
    assert events.session_id[events.input_pos].tolist() == [5, 5, 7]
    assert events.position(rows).tolist() == [0, 1, 0]
    assert items[events.input_item(rows)].tolist() == [10, 20, 30]
    assert items[events.target_item(rows)].tolist() == [20, 20, 10]
    # the session so far, repeats counted
    assert events.history_counts(rows).toarray().tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_splits_in_any_row_order_give_the_same_record(tmp_path):
    train = frame({1: [1, 2, 2], 2: [2, 3], 3: [1, 3, 2]})
    test = frame({7: [1, 2, 3], 8: [3, 1]})
    shuffle = np.random.default_rng(0).permutation
    in_order = ranks_of(iknn, train, test, {}, tmp_path)
    shuffled = ranks_of(iknn, train.iloc[shuffle(len(train))], test.iloc[shuffle(len(test))], {}, tmp_path)
    pd.testing.assert_frame_equal(in_order, shuffled)
    assert as_tuples(in_order)[0][:3] == (7, 0, 2)


def test_unknown_parameters_are_refused(tmp_path):
    train = frame({1: [1, 2]})
    with pytest.raises(ValueError, match="unknown parameter"):
        ranks_of(iknn, train, train, {"lambda": 20}, tmp_path)
    with pytest.raises(ValueError, match="test split: missing column"):
        ranks_of(pop, train, train.rename(columns={"ItemId": "item"}), {}, tmp_path)


def test_registry_points_at_these_modules():
    assert resolve("pop") is pop.run and resolve("spop") is spop.run
    assert resolve("iknn") is iknn.run and resolve("bprmf") is bprmf.run


# --- POP ---------------------------------------------------------------------------------

# supports: item 10: 3 events, 20: 2, 30: 2, 40: 1, 50: 1
POP_TRAIN = frame({1: [10, 20, 30], 2: [10, 20], 3: [10, 30], 4: [40, 50]})


def test_pop_scores_the_top_items_by_support():
    model = pop.Pop(top_n=2).fit(POP_TRAIN)
    # 20 and 30 tie on support 2 at the cut: the smaller ItemId makes the list
    assert model.scores.tolist() == pytest.approx([3 / 4, 2 / 3, 0, 0, 0])


def test_pop_ties_under_the_three_policies(tmp_path):
    test = frame({9: [30, 40, 10]})
    ranks = ranks_of(pop, POP_TRAIN, test, {"top_n": 2}, tmp_path)
    # target 40 scores 0 like 30 and 50: two above it (10, 20), two tied with it;
    # target 10 is the most popular item
    assert as_tuples(ranks) == [(9, 0, 40, 2, 2), (9, 1, 10, 0, 0)]
    m = metrics_from_ranks(ranks, cutoffs=(1, 5))
    assert m["optimistic"]["mrr@5"] == pytest.approx((1 / 3 + 1) / 2)  # ranks 3, 1
    assert m["conservative"]["mrr@5"] == pytest.approx((1 / 5 + 1) / 2)  # ranks 5, 1
    assert m["median"]["mrr@5"] == pytest.approx((1 / 4 + 1) / 2)  # ranks 4, 1
    assert m["conservative"]["recall@1"] == pytest.approx(1 / 2)


def test_pop_with_the_default_top_100_scores_every_item_here(tmp_path):
    ranks = ranks_of(pop, POP_TRAIN, frame({9: [30, 40, 20]}), {}, tmp_path)
    # scores 3/4, 2/3, 2/3, 1/2, 1/2: target 40 ties with 50, target 20 with 30
    assert as_tuples(ranks) == [(9, 0, 40, 3, 1), (9, 1, 20, 1, 1)]


# --- S-POP -------------------------------------------------------------------------------

def test_spop_counts_the_session_so_far_with_popularity_as_tie_break(tmp_path):
    test = frame({8: [40, 30, 40, 50], 9: [30, 10, 20, 10]})
    ranks = ranks_of(spop, POP_TRAIN, test, {"top_n": 2}, tmp_path)
    # POP part: 10 -> 3/4, 20 -> 2/3, others 0
    assert as_tuples(ranks) == [
        (8, 0, 30, 3, 1),  # {40: 1}: 40=1, 10=.75, 20=.67 above; 30 ties with 50 at 0
        (8, 1, 40, 0, 1),  # {40: 1, 30: 1}: 40 and 30 tie at 1
        (8, 2, 50, 4, 0),  # {40: 2, 30: 1}: 50 is last
        (9, 0, 10, 1, 0),  # {30: 1}: 30=1 above 10=.75
        (9, 1, 20, 2, 0),  # {30: 1, 10: 1}: 10=1.75, 30=1 above 20=.67
        (9, 2, 10, 0, 0),  # {30, 10, 20 once each}: popularity orders them, 10 first
    ]


def test_spop_scores_by_hand():
    model = spop.SPop(top_n=2).fit(POP_TRAIN)
    events = PredictionEvents.from_test(frame({9: [30, 10, 20, 10]}), model.item_ids)
    scores = model.score_block(events, np.array([2]))
    assert scores[0].tolist() == pytest.approx([1 + 3 / 4, 1 + 2 / 3, 1, 0, 0])


# --- Item-KNN ----------------------------------------------------------------------------

# sessions of items A=1, B=2, C=3, D=4, E=5, F=6, G=7
# supports: A 3, B 3, C 2, D 1, E 2, F 1, G 1
# authors' cooc (events of the row item x presence of the column item):
#   cooc_AB = 1 (s1) + 1 (s2: one A, B present) = 2;  cooc_BA = 1 (s1) + 2 (s2: two B events) = 3
# symmetric cooc (product of counts): cooc_AB = cooc_BA = 1*1 + 1*2 = 3
# cooc_AC = cooc_CA = 1; cooc_CD = 1; cooc_EF = cooc_EG = 1 under both; BB is the diagonal (0)
KNN_TRAIN = frame({1: [1, 2], 2: [1, 2, 2], 3: [1, 3], 4: [3, 4], 5: [5, 6], 6: [5, 7]})


def sim(model, i, j):
    return model.sims[i - 1, j - 1]  # item ids 1..7 are item indices 0..6


def test_iknn_similarity_formula_with_lambda():
    model = iknn.ItemKNN(lmbd=20, alpha=0.5, neighbors=100).fit(KNN_TRAIN)
    assert model.cooc == "authors"
    assert sim(model, 1, 2) == pytest.approx(2 / math.sqrt(23 * 23))
    assert sim(model, 2, 1) == pytest.approx(3 / 23)
    assert sim(model, 1, 3) == pytest.approx(1 / math.sqrt(23 * 22))
    assert sim(model, 3, 4) == pytest.approx(1 / math.sqrt(22 * 21))
    assert sim(model, 1, 4) == 0 and sim(model, 2, 3) == 0
    # the item itself never counts, although it co-occurs with itself
    assert all(sim(model, i, i) == 0 for i in range(1, 8))


def test_iknn_symmetric_cooc_is_the_product_of_counts():
    model = iknn.ItemKNN(lmbd=20, alpha=0.5, cooc="symmetric").fit(KNN_TRAIN)
    assert sim(model, 1, 2) == pytest.approx(3 / 23) and sim(model, 2, 1) == pytest.approx(3 / 23)
    assert sim(model, 1, 3) == pytest.approx(1 / math.sqrt(23 * 22))
    with pytest.raises(ValueError, match="iknn: cooc must be one of"):
        iknn.ItemKNN(cooc="product")


def test_iknn_similarity_without_lambda_and_asymmetric_alpha():
    model = iknn.ItemKNN(lmbd=0, alpha=0.5).fit(KNN_TRAIN)
    assert sim(model, 1, 2) == pytest.approx(2 / 3)
    assert sim(model, 1, 3) == pytest.approx(1 / math.sqrt(3 * 2))
    model = iknn.ItemKNN(lmbd=20, alpha=0.25).fit(KNN_TRAIN)
    assert sim(model, 1, 3) == pytest.approx(1 / (23 ** 0.25 * 22 ** 0.75))
    assert sim(model, 3, 1) == pytest.approx(1 / (22 ** 0.25 * 23 ** 0.75))
    # the row item's support takes alpha: s_BA = 3 / (23^0.25 * 23^0.75) whatever alpha
    model = iknn.ItemKNN(lmbd=0, alpha=0.25).fit(frame({1: [1, 1, 1, 2], 2: [2]}))
    # supp 1: 3, supp 2: 2; cooc_12 = 3 (three events of 1, 2 present), cooc_21 = 1
    assert sim(model, 1, 2) == pytest.approx(3 / (3 ** 0.25 * 2 ** 0.75))
    assert sim(model, 2, 1) == pytest.approx(1 / (2 ** 0.25 * 3 ** 0.75))


def test_iknn_keeps_only_the_top_neighbours():
    model = iknn.ItemKNN(neighbors=1).fit(KNN_TRAIN)
    assert sim(model, 1, 2) == pytest.approx(2 / 23) and sim(model, 1, 3) == 0  # B beats C for A
    assert sim(model, 3, 4) > 0 and sim(model, 3, 1) == 0  # 1/sqrt(22*21) beats 1/sqrt(22*23)
    # E is equally similar to F and G: the smaller ItemId stays
    assert sim(model, 5, 6) == pytest.approx(1 / math.sqrt(22 * 21)) and sim(model, 5, 7) == 0
    assert np.diff(model.sims.indptr).max() == 1


def test_iknn_ranks_by_the_last_item_only(tmp_path):
    test = frame({9: [3, 1, 4]})
    ranks = ranks_of(iknn, KNN_TRAIN, test, {}, tmp_path)
    assert as_tuples(ranks) == [
        (9, 0, 1, 1, 0),  # row C: D (1/sqrt(462)) above A (1/sqrt(506))
        (9, 1, 4, 2, 4),  # row A: B and C above; D ties at 0 with A, E, F, G
    ]
    ranks = ranks_of(iknn, KNN_TRAIN, test, {"neighbors": 1}, tmp_path)
    assert as_tuples(ranks)[0] == (9, 0, 1, 1, 5)  # A is cut from C's row: 0 like 5 others


# repeats decide the order: P=1, Q=2, R=3, S=4; supports P 3, Q 4, R 2, S 1; lmbd 0, alpha 0.5
#   authors:   cooc_QP = 1 (one Q event in s1, P present), cooc_QR = 2, cooc_QS = 1, cooc_PQ = 3
#   symmetric: cooc_QP = 1 * 3 = 3, the others as above
REPEAT_TRAIN = frame({1: [1, 1, 1, 2], 2: [2, 3], 3: [2, 3], 4: [4, 2]})


def test_iknn_rank_record_with_repeats_matches_the_authors_definition_by_hand(tmp_path):
    """Row Q: authors s_QP = 1/sqrt(4*3) = 0.289, s_QR = 2/sqrt(4*2) = 0.707, s_QS = 1/sqrt(4*1) = 0.5;
    symmetric s_QP = 3/sqrt(12) = 0.866 instead. Row P: s_PQ = 3/sqrt(3*4) under both."""
    test = frame({9: [2, 1, 2, 3]})
    params = {"lmbd": 0, "alpha": 0.5}
    assert as_tuples(ranks_of(iknn, REPEAT_TRAIN, test, params, tmp_path)) == [
        (9, 0, 1, 2, 0),  # row Q: R 0.707 > S 0.5 > P 0.289
        (9, 1, 2, 0, 0),  # row P: only Q
        (9, 2, 3, 0, 0),  # row Q: R first
    ]
    assert as_tuples(ranks_of(iknn, REPEAT_TRAIN, test, {**params, "cooc": "symmetric"}, tmp_path)) == [
        (9, 0, 1, 0, 0),  # row Q: P 0.866 first
        (9, 1, 2, 0, 0),
        (9, 2, 3, 1, 0),  # P above R
    ]
    model = iknn.ItemKNN(lmbd=0, alpha=0.5).fit(REPEAT_TRAIN)
    assert sim(model, 1, 2) == pytest.approx(3 / math.sqrt(12)) and sim(model, 2, 1) == pytest.approx(1 / math.sqrt(12))
    # the same from the count matrix directly, which is left as it was (fit lets it be overwritten)
    x = iknn.session_item_counts(np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3]), np.array([0, 0, 0, 1, 1, 2, 1, 2, 3, 1]), 4, 4)
    before = x.toarray()
    sims = iknn.item_similarities(x, np.array([3, 4, 2, 1]), lmbd=0, alpha=0.5)
    assert np.array_equal(x.toarray(), before) and before.max() == 3
    assert np.array_equal(sims.toarray(), model.sims.toarray())


def authors_cooc_loop(train: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """The authors' loop, written out: for item i, for every event of i, add 1 to each
    distinct item of that event's session (``a[idx] += 1`` adds once per distinct index)."""
    index = {item: k for k, item in enumerate(item_ids)}
    sessions = {sid: [index[i] for i in g["ItemId"]] for sid, g in train.groupby("SessionId")}
    cooc = np.zeros((len(item_ids), len(item_ids)))
    for sid, items in sessions.items():
        for i in items:  # one pass per event of i
            for j in set(items):
                cooc[i, j] += 1
    return cooc


def reference_iknn_scores(train, item_ids, lmbd, alpha, neighbors):
    """Dense similarity rows from the loop above: s_ii = 0, top ``neighbors`` per row
    (ties: smaller ItemId first), every other entry 0."""
    cooc = authors_cooc_loop(train, item_ids)
    supp = np.array([(train["ItemId"] == item).sum() for item in item_ids], dtype=float)
    sims = np.zeros_like(cooc)
    for i in range(len(item_ids)):
        for j in range(len(item_ids)):
            if i != j and cooc[i, j] > 0:
                sims[i, j] = cooc[i, j] / ((supp[i] + lmbd) ** alpha * (supp[j] + lmbd) ** (1 - alpha))
        keep = sorted(np.flatnonzero(sims[i]), key=lambda j: (-sims[i, j], j))[:neighbors]
        row = np.zeros(len(item_ids))
        row[keep] = sims[i, keep]
        sims[i] = row
    return sims


@pytest.mark.parametrize("neighbors", [3, 100])
def test_iknn_rank_record_equals_a_brute_force_authors_loop(neighbors, tmp_path):
    rng = np.random.default_rng(11)
    # short sessions over 12 items with many repeats (a third of the clicks repeat an item of the session)
    def sessions(n, first):
        out = {}
        for s in range(n):
            items = list(rng.integers(0, 12, 1 + rng.integers(1, 6)))
            for _ in range(rng.integers(0, 4)):
                items.insert(rng.integers(0, len(items) + 1), items[rng.integers(0, len(items))])
            out[first + s] = [100 + 10 * i for i in items]
        return frame(out)
    train, test = sessions(60, 0), sessions(25, 1000)
    ranks = ranks_of(iknn, train, test, {"lmbd": 20, "alpha": 0.5, "neighbors": neighbors}, tmp_path)
    item_ids = np.unique(train["ItemId"])
    sims = reference_iknn_scores(train, item_ids, 20, 0.5, neighbors)
    assert not np.allclose(sims, sims.T)  # the repeats make it asymmetric
    expected = []
    for sid, g in test.groupby("SessionId"):
        items = [i for i in g["ItemId"] if i in set(item_ids)]
        for pos in range(len(items) - 1):
            row = sims[np.searchsorted(item_ids, items[pos])]
            target = row[np.searchsorted(item_ids, items[pos + 1])]
            expected.append((sid, pos, items[pos + 1], int(np.sum(row > target)), int(np.sum(row == target)) - 1))
    assert as_tuples(ranks) == expected
    sym = ranks_of(iknn, train, test, {"neighbors": neighbors, "cooc": "symmetric"}, tmp_path)
    assert as_tuples(sym) != expected  # the two definitions differ on these sessions


def test_iknn_definitions_agree_without_repeats():
    train = frame({1: [1, 2, 3], 2: [2, 3], 3: [1, 4, 3], 4: [4, 2]})
    a = iknn.ItemKNN().fit(train).sims.toarray()
    b = iknn.ItemKNN(cooc="symmetric").fit(train).sims.toarray()
    assert np.array_equal(a, b) and a.max() > 0


# --- BPR-MF ------------------------------------------------------------------------------

def grouped_sessions(n_sessions, first_id, seed):
    """Sessions that stay within one of two groups of 10 items (ids 0-9 and 10-19)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n_sessions)
    return frame({first_id + s: list(10 * group[s] + rng.integers(0, 10, 4)) for s in range(n_sessions)})


def test_bprmf_session_is_the_mean_of_its_item_factors():
    model = bprmf.BPRMF(factors=2, n_epochs=0).fit(frame({1: [0, 1, 2]}))
    model.item_factors = np.array([[1, 0], [0, 1], [2, 2]], dtype=np.float32)
    model.item_bias = np.array([0, 0.5, -1], dtype=np.float32)
    events = PredictionEvents.from_test(frame({9: [0, 0, 1, 2]}), model.item_ids)
    # the session so far at position 2 is [0, 0, 1]: vector (2/3, 1/3)
    assert model.session_vectors(events, np.array([2]))[0] == pytest.approx([2 / 3, 1 / 3])
    assert model.score_block(events, np.array([2]))[0] == pytest.approx([2 / 3, 1 / 3 + 0.5, (4 / 3 + 2 / 3) - 1])


def test_bprmf_score_shares_by_hand():
    # bias (0, 0.5, -1): mean -1/6, Var = (1/36 + 16/36 + 25/36) / 3 = 7/18
    # factor terms of one event (2/3, 1/3, 2): mean 1, Var = (1/9 + 4/9 + 1) / 3 = 14/27
    #   (item factors (1, 0), (0, 1), (2, 2), session vector (2/3, 1/3))
    # share of the bias: (7/18) / (7/18 + 14/27) = 3/7; a second event with v = 0, f = (0, 0, 0): share 1
    item_factors = np.array([[1, 0], [0, 1], [2, 2]], dtype=np.float32)
    shares = bprmf.ScoreShares(np.array([0, 0.5, -1], dtype=np.float32), item_factors)
    shares.add(np.array([[2 / 3, 1 / 3]], dtype=np.float32))
    shares.add(np.array([[0, 0]], dtype=np.float32))
    d = shares.result()
    assert d["score_share_bias"] == pytest.approx((3 / 7 + 1) / 2)
    assert d["score_share_factors"] == pytest.approx(1 - (3 / 7 + 1) / 2)
    assert d["sd_bias"] == pytest.approx(math.sqrt(7 / 18))
    assert d["mean_sd_factors"] == pytest.approx(math.sqrt(14 / 27) / 2)
    assert d["n_events"] == 2 and "Var_j(b_j)" in d["definition"]
    # no bias at all: every score comes from the factors; nothing to compare: no share
    none = bprmf.ScoreShares(np.zeros(3), item_factors)
    none.add(np.array([[0.0, 0.0]]))
    assert none.result()["score_share_bias"] is None


@pytest.mark.parametrize("quirks", [False, True])
def test_bprmf_writes_its_score_shares(quirks, tmp_path):
    train, test = grouped_sessions(200, 0, seed=1), grouped_sessions(20, 10_000, seed=2)
    ranks_of(bprmf, train, test, {"factors": 4, "n_epochs": 3, "quirks": quirks}, tmp_path)
    d = json.loads((tmp_path / "diagnostics.json").read_text())
    # recomputed from the saved weights, one event at a time
    w = np.load(tmp_path / "weights.npz")
    events = PredictionEvents.from_test(test, w["item_ids"])
    counts = events.history_counts(np.arange(len(events))).toarray()
    shares = []
    for row in counts:
        f = (row @ w["item_factors"]) / row.sum() @ w["item_factors"].T
        shares.append(np.var(w["item_bias"].astype(float)) / (np.var(w["item_bias"].astype(float)) + np.var(f)))
    assert d["n_events"] == len(events) == 60
    assert d["score_share_bias"] == pytest.approx(np.mean(shares), rel=1e-4)
    assert d["score_share_bias"] + d["score_share_factors"] == pytest.approx(1)
    if quirks:  # the bias is never learned
        assert d["score_share_bias"] == 0 and d["sd_bias"] == 0
    else:
        assert 0 < d["score_share_bias"] < 1


def test_bprmf_starts_uniform_within_init_scale_and_without_bias():
    model = bprmf.BPRMF(factors=50, n_epochs=0, init_scale=0.05).fit(grouped_sessions(60, 0, seed=0))
    assert model.item_factors.shape == (20, 50)
    assert -0.05 <= model.item_factors.min() < -0.04 and 0.04 < model.item_factors.max() < 0.05
    assert np.all(model.item_bias == 0)


def test_bprmf_is_deterministic_by_seed():
    train = grouped_sessions(60, 0, seed=0)
    a = bprmf.BPRMF(factors=8, n_epochs=2, seed=5).fit(train)
    b = bprmf.BPRMF(factors=8, n_epochs=2, seed=5).fit(train)
    c = bprmf.BPRMF(factors=8, n_epochs=2, seed=6).fit(train)
    assert np.array_equal(a.item_factors, b.item_factors) and np.array_equal(a.item_bias, b.item_bias)
    assert not np.array_equal(a.item_factors, c.item_factors)


def test_bprmf_learns_the_groups(tmp_path):
    train, test = grouped_sessions(400, 0, seed=1), grouped_sessions(50, 10_000, seed=2)
    params = {"factors": 8, "n_epochs": 20, "learning_rate": 0.05}
    ranks = ranks_of(bprmf, train, test, params, tmp_path)
    # random scores would put the target in the top 10 of 20 items half the time
    assert metrics_from_ranks(ranks)["conservative"]["recall@10"] > 0.9
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == list(range(1, 21))
    # scores start near 0, so the first epoch's BPR loss is near -log sigmoid(0) = log 2
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=0.05)
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    weights = np.load(tmp_path / "weights.npz")
    assert weights["item_factors"].shape == (20, 8)


def test_bprmf_quirk_item_bias_is_never_updated():
    train = grouped_sessions(60, 0, seed=0)
    proper = bprmf.BPRMF(factors=4, n_epochs=1, seed=1).fit(train)
    quirky = bprmf.BPRMF(factors=4, n_epochs=1, seed=1, quirks=True).fit(train)
    assert np.abs(proper.item_bias).max() > 0
    assert np.all(quirky.item_bias == 0)


def reference_bpr_sgd(train, factors, n_epochs, lr, reg, bias_reg, learn_bias, seed, init_scale=0.05):
    """Per-event BPR-SGD in float64, with the draws of BPRMF's documented order (init U, init I,
    then per epoch a permutation of the events and one uniform negative per event)."""
    item_ids, item_idx = index_items(train)
    session_idx = pd.factorize(train["SessionId"], sort=True)[0]
    rng = np.random.default_rng(seed)
    U = rng.random((session_idx.max() + 1, factors), dtype=np.float32) * 2 * init_scale - init_scale
    I = rng.random((len(item_ids), factors), dtype=np.float32) * 2 * init_scale - init_scale
    U, I, b = U.astype(float), I.astype(float), np.zeros(len(item_ids))
    for _ in range(n_epochs):
        order = rng.permutation(len(train))
        negatives = rng.integers(0, len(item_ids), len(train))
        for e, j in zip(order, negatives):
            u, i = session_idx[e], item_idx[e]
            x = U[u] @ (I[i] - I[j]) + b[i] - b[j]
            c = 1 - 1 / (1 + math.exp(-x))
            du, di, dj = c * (I[i] - I[j]) - reg * U[u], c * U[u] - reg * I[i], -c * U[u] - reg * I[j]
            dbi, dbj = c - bias_reg * b[i], -c - bias_reg * b[j]
            U[u] += lr * du
            I[i] += lr * di
            I[j] += lr * dj
            if learn_bias:
                b[i] += lr * dbi
                b[j] += lr * dbj
    return I, b


@pytest.mark.parametrize("bias, bias_reg", [(True, None), (True, 0.5), (False, None)])
def test_bprmf_with_chunk_1_is_per_event_sgd(bias, bias_reg):
    train = grouped_sessions(15, 0, seed=4)
    model = bprmf.BPRMF(factors=3, n_epochs=2, learning_rate=0.3, reg=0.01, chunk=1, seed=9,
                        bias=bias, bias_reg=bias_reg).fit(train)
    I, b = reference_bpr_sgd(train, 3, 2, 0.3, 0.01, 0.01 if bias_reg is None else bias_reg, bias, seed=9)
    assert model.item_factors == pytest.approx(I, abs=1e-5)
    assert model.item_bias == pytest.approx(b, abs=1e-5)
    assert (np.abs(b).max() > 0.1) == bias


def test_bprmf_bias_switches_are_checked():
    with pytest.raises(ValueError, match="bprmf: bias must be true or false"):
        bprmf.BPRMF(bias="no")
    with pytest.raises(ValueError, match="bprmf: bias_reg must be >= 0"):
        bprmf.BPRMF(bias_reg=-1)
    assert bprmf.BPRMF(quirks=True, bias=True).bias is False  # the quirk never updates the bias


def test_bprmf_quirk_negatives_come_from_the_first_n_items_rows():
    rng = np.random.default_rng(0)
    item_idx = np.array([0, 0, 0, 1, 1, 2, 3, 4, 4, 2])  # 5 items; first 5 rows hold items 0 and 1
    quirky = bprmf.sample_negatives(rng, item_idx, 5, 1000, quirks=True)
    assert set(quirky.tolist()) == {0, 1}
    assert np.mean(quirky == 0) == pytest.approx(3 / 5, abs=0.06)
    uniform = bprmf.sample_negatives(rng, item_idx, 5, 1000, quirks=False)
    assert set(uniform.tolist()) == {0, 1, 2, 3, 4}


# --- every baseline through the contract -------------------------------------------------

@pytest.mark.parametrize("module", [pop, spop, iknn, bprmf])
def test_every_baseline_writes_a_valid_rank_record(module, tmp_path):
    train, test = grouped_sessions(80, 0, seed=3), grouped_sessions(10, 500, seed=4)
    ranks = ranks_of(module, train, test, {"n_epochs": 1} if module is bprmf else {}, tmp_path)
    assert len(ranks) == 10 * 3 and dict(ranks.dtypes.astype(str)) == RANK_COLUMNS
    assert ((ranks["higher"] + ranks["ties"]) <= 19).all()
    assert (tmp_path / "train_log.jsonl").exists() and (tmp_path / "weights.npz").exists()
