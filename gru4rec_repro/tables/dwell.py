"""The dwell table: Bogina & Kuflik's dwell-time table next to ours, with the
training set boosted ("train-only", as the paper describes) and with the test
set boosted too ("train+test"), one row each.

Boosting with threshold t repeats an event 1 + floor(dwell / t) times in place.
A boosted test set holds many targets that are the very item the session just
showed; the column "targets = input" measures that share on each run's own
test events (:func:`repeat_share`), and the notes print it with the MRR it goes
with.
"""
from __future__ import annotations

import math

import pandas as pd

from .. import paper
from .common import Study, Table, _empty, _pct, comparison_notes, published_rows

#: (row = published key, train-only run, train+test run); rows without dwell time use
#: one run for both.
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


def _rows():
    for key, train, traintest in DWELL_ROWS:
        if train == traintest:
            yield (key, train, key)
        else:
            yield (f"{key}, train-only boosting", train, key)
            yield (f"{key}, train+test boosting", traintest, key)


def dwell_table(st: Study) -> Table:
    def leak(label: str, run: str, key: str, pub: paper.Published) -> tuple[dict, dict]:
        share = repeat_share(st.run(run).ranks[0])
        return ({"repeat_share": share, "n_events": len(st.run(run).ranks[0])},
                {"Targets = input": _pct(share)})

    data, disp, pubs, runs = published_rows(st, "dwell", list(_rows()), extra=leak)
    if not data:
        return _empty("dwell", ["Row", "Run"], st)
    notes = comparison_notes(st, pubs, runs, data=data)
    notes.append(
        "Boosting with threshold t repeats an event 1 + floor(dwell / t) times in place. "
        "Train-only boosts the training set, as the paper describes; train+test also boosts the "
        "test set and scores every repeated position, so those rows are on a different test set "
        "(a comparison with the unboosted run is unpaired, see the claims table).")
    by_run = {d["run"]: d for d in data}
    for key, train, traintest in DWELL_ROWS:
        if train == traintest or train not in by_run or traintest not in by_run:
            continue
        a, b = by_run[train], by_run[traintest]
        if math.isnan(a["repeat_share"]) or math.isnan(b["repeat_share"]):
            continue
        notes.append(
            f"Measured ({key}): targets equal to the input item {_pct(a['repeat_share'])} of "
            f"{a['n_events']} test events with train-only boosting ({train}) vs "
            f"{_pct(b['repeat_share'])} of {b['n_events']} with train+test boosting ({traintest}); "
            f"MRR@{st.k} (2016 cut) {a['mrr_ours']:.4f} vs {b['mrr_ours']:.4f}, "
            f"Recall@{st.k} {a['recall_ours']:.4f} vs {b['recall_ours']:.4f}.")
    return Table("dwell", pd.DataFrame(data), pd.DataFrame(disp), notes,
                 caption="Bogina and Kuflik's dwell-time table (2017) next to ours, boosting the "
                         "training set only and the test set too.",
                 label_columns=4)


TABLES = {"dwell": dwell_table}
