"""The dwell table: Bogina & Kuflik's table with train-only and train+test boosting."""
from __future__ import annotations

import pandas as pd

from .. import paper
from .common import (
    METRIC_LABELS, Study, Table, _common_notes, _diff_rel, _empty, _mean_sd, _num, _pct,
)


#: The dwell table: (row = published key, train-only run, train+test run).
DWELL_ROWS = (
    ("GRU4Rec", "torch-top1-2016", "torch-top1-2016"),
    ("GRU4Rec, dwell threshold 75", "torch-dwell75-train", "torch-dwell75-traintest"),
    ("GRU4Rec, dwell threshold 100", "torch-dwell100-train", "torch-dwell100-traintest"),
    ("GRU4Rec with sampling", "torch-bprmax", "torch-bprmax"),
    ("with sampling, dwell threshold 100", "torch-bprmax-dwell100-train", "torch-bprmax-dwell100-traintest"),
    ("with sampling, dwell threshold 75", "torch-bprmax-dwell75-train", "torch-bprmax-dwell75-traintest"),
)


def repeat_share(ranks: pd.DataFrame) -> float:
    """Share of predicted events whose target is the same item as their input.

    The input of the event at position p >= 1 is the target of position p - 1,
    so this is measured on events with p >= 1 (the first input is not in the
    record).
    """
    r = ranks.sort_values(["session_id", "position"], kind="stable")
    same_session = r["session_id"].to_numpy()[1:] == r["session_id"].to_numpy()[:-1]
    consecutive = r["position"].to_numpy()[1:] == r["position"].to_numpy()[:-1] + 1
    usable = same_session & consecutive
    if not usable.any():
        return float("nan")
    repeat = r["target"].to_numpy()[1:] == r["target"].to_numpy()[:-1]
    return float(repeat[usable].mean())


def dwell_table(st: Study) -> Table:
    rows, disp = [], []
    for label, run_train, run_tt in DWELL_ROWS:
        have = {"train": run_train if st.has(run_train) else None,
                "traintest": run_tt if st.has(run_tt) else None}
        if not any(have.values()):
            continue
        pub = paper.published("dwell", label)
        d = {"method": label, "run_train": have["train"] or "", "run_traintest": have["traintest"] or ""}
        v = {"Method": label, "Runs (train / train+test)": f"{have['train'] or '–'} / {have['traintest'] or '–'}"}
        for metric, lab in METRIC_LABELS.items():
            ref = pub.get(metric)
            d[f"paper_{metric}"] = ref
            v[f"{lab}@20 paper"] = _num(ref)
            for side, side_label in (("train", "train-only"), ("traintest", "train+test")):
                run = have[side]
                mean, sd, n = st.summary(run, metric) if run else (float("nan"), float("nan"), 0)
                d.update({f"{side}_{metric}_mean": mean, f"{side}_{metric}_sd": sd,
                          f"{side}_n_seeds": n, f"{side}_{metric}_diff": mean - ref})
                v[f"{lab}@20 {side_label}"] = _mean_sd(mean, sd, n)
                v[f"{lab}@20 {side_label} diff"] = _diff_rel(mean - ref, ref)
        for side in ("train", "traintest"):
            run = have[side]
            d[f"{side}_repeat_share"] = repeat_share(st.run(run).ranks[0]) if run else float("nan")
        v["Targets = input (train-only / train+test)"] = (
            f"{_pct(d['train_repeat_share'])} / {_pct(d['traintest_repeat_share'])}")
        rows.append(d)
        disp.append(v)
    if not rows:
        return _empty("dwell", ["Method"], st)
    notes = _common_notes(st, None, ["Bogina & Kuflik 2017 (RecTemp), dwell-time table"])
    notes += [
        "diff = ours - paper (relative to paper). Boosting with threshold t repeats an event "
        "1 + floor(dwell / t) times in place. Train-only boosts the training set, as the paper "
        "describes; train+test also boosts the test set and scores every repeated position.",
        "The leak: in a boosted test set many targets are the very item the session just showed "
        "(see 'Targets = input'), and predicting 'the same item again' is easy, so train+test "
        "boosting inflates Recall and above all MRR. That, not dwell time as a signal, is what "
        "can explain the paper's MRR@20 jump from 0.23 to 0.58. The two columns are scored on "
        "different test sets (boosted vs original), so they are not compared by a paired test.",
        "Rows without dwell time use the same run in both columns (nothing is boosted).",
    ]
    return Table("dwell", pd.DataFrame(rows), pd.DataFrame(disp), notes)


TABLES = {"dwell": dwell_table}
