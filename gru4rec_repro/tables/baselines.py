"""The baselines table: POP, S-POP, Item-KNN, BPR-MF (proper and with the
authors' quirks) and GRU4Rec against ICLR 2016 Table 1."""
from __future__ import annotations

import pandas as pd

from .. import paper
from .common import (
    METRIC_LABELS, Study, Table, _common_notes, _diff_rel, _empty, _mean_sd, _num,
)


#: The baselines table: (row, run, key of the published number).
BASELINE_ROWS = (
    ("POP", "pop", "POP"),
    ("S-POP", "spop", "S-POP"),
    ("Item-KNN", "iknn", "Item-KNN"),
    ("BPR-MF", "bprmf", "BPR-MF"),
    ("BPR-MF (authors' quirks)", "bprmf-quirks", "BPR-MF"),
    ("GRU4Rec", "torch-xe-2016", "GRU4Rec"),
)


def baselines_table(st: Study) -> Table:
    rows, disp = [], []
    for label, run, key in BASELINE_ROWS:
        if not st.has(run):
            continue
        pub = paper.published("baselines", key)
        d = {"method": label, "run": run}
        v = {"Method": label, "Run": run}
        for metric, lab in METRIC_LABELS.items():
            mean, sd, n = st.summary(run, metric)
            ref = pub.get(metric)
            d.update({f"paper_{metric}": ref, f"{metric}_mean": mean, f"{metric}_sd": sd,
                      f"{metric}_diff": mean - ref, f"{metric}_rel_diff": (mean - ref) / ref})
            d["n_seeds"] = n
            v.update({f"{lab}@20 paper": _num(ref), f"{lab}@20 ours": _mean_sd(mean, sd, n),
                      f"{lab}@20 diff": _diff_rel(mean - ref, ref)})
        rows.append(d)
        disp.append(v)
    if not rows:
        return _empty("baselines", ["Method", "Run"], st)
    notes = _common_notes(st, None, ["tutorial baselines table, from ICLR 2016"])
    notes.append("diff = ours - paper (relative to paper). The GRU4Rec row is run torch-xe-2016: "
                 "the tutorial's 0.5781 / 0.2375 is the number of its own cross-entropy row, and the "
                 "table is the ICLR 2016 one (no extra negative samples).")
    return Table("baselines", pd.DataFrame(rows), pd.DataFrame(disp), notes)


TABLES = {"baselines": baselines_table}
