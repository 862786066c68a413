"""The losses table: the five losses with 2048 extra samples, paper vs PyTorch and Keras."""
from __future__ import annotations

import pandas as pd

from .. import paper
from .common import (
    FRAMEWORKS, METRIC_LABELS, Study, Table, _common_notes, _diff_rel, _empty, _mean_sd, _num,
)


#: The losses table: (row = published key, setting suffix of the run names).
LOSS_ROWS = (
    ("cross-entropy", "xe"),
    ("TOP1", "top1"),
    ("BPR", "bpr"),
    ("TOP1-max", "top1max"),
    ("BPR-max", "bprmax"),
)


def losses_table(st: Study) -> Table:
    rows, disp = [], []
    for label, setting in LOSS_ROWS:
        runs = {fw: f"{fw}-{setting}" for fw in FRAMEWORKS if st.has(f"{fw}-{setting}")}
        if not runs:
            continue
        pub = paper.published("losses", label)
        d = {"loss": label, "runs": " ".join(runs.values())}
        v = {"Loss": label}
        for metric, lab in METRIC_LABELS.items():
            ref = pub.get(metric)
            d[f"paper_{metric}"] = ref
            v[f"{lab}@20 paper"] = _num(ref)
            for fw, fw_label in FRAMEWORKS.items():
                if fw in runs:
                    mean, sd, n = st.summary(runs[fw], metric)
                else:
                    mean, sd, n = float("nan"), float("nan"), 0
                d.update({f"{fw}_{metric}_mean": mean, f"{fw}_{metric}_sd": sd,
                          f"{fw}_n_seeds": n, f"{fw}_{metric}_diff": mean - ref})
                v[f"{lab}@20 {fw_label}"] = _mean_sd(mean, sd, n)
                v[f"{lab}@20 {fw_label} diff"] = _diff_rel(mean - ref, ref)
        rows.append(d)
        disp.append(v)
    if not rows:
        return _empty("losses", ["Loss"], st)
    notes = _common_notes(st, None, ["tutorial loss-function table (CIKM 2018, 2048 extra negative samples)"])
    notes.append("Runs torch-<loss> / keras-<loss> (2048 extra samples); diff = ours - paper "
                 "(relative to paper).")
    return Table("losses", pd.DataFrame(rows), pd.DataFrame(disp), notes)


TABLES = {"losses": losses_table}
