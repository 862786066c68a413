"""The protocols table: for every run of the study, Recall@20 and MRR@20 under
each evaluation protocol of :mod:`gru4rec_repro.evaluation` (conservative,
median, random tie-break, optimistic, the 2016-2017 cut with optimistic ranks
and with a random tie-break), all from the same rank records, and the largest
relative gap between them: how much the protocol alone moves each model.
"""
from __future__ import annotations

import math

import pandas as pd

from ..evaluation import POLICY_DESCRIPTIONS
from .common import METRIC_LABELS, POLICY_SHORT, Study, Table, _empty, _epochs_text, _num, setting_text

#: Column order: today's protocols from the strictest, then the 2016-2017 cut.
PROTOCOLS = ("conservative", "median", "random", "optimistic", "paper2016", "paper2016_random")


def largest_gap(values: list[float]) -> float:
    """(max - min) / min over the protocols' values; NaN when min is 0 or a value is missing."""
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    lo, hi = min(values), max(values)
    return (hi - lo) / lo if lo > 0 else float("nan")


def largest_gap_note(data: list[dict], k: int) -> str:
    """Which runs the protocol moves most in this study, per metric (from the rows' largest_gap)."""
    parts = []
    for metric, lab in METRIC_LABELS.items():
        rows = [d for d in data if d["metric"] == f"{metric}@{k}" and not math.isnan(d["largest_gap"])]
        if not rows:
            parts.append(f"{lab}@{k}: none defined")
            continue
        top = max(d["largest_gap"] for d in rows)
        if top == 0:
            parts.append(f"{lab}@{k}: no run (the protocols give every run the same value)")
            continue
        runs = [d["run"] for d in rows if d["largest_gap"] == top]
        parts.append(f"{lab}@{k}: {', '.join(runs)} ({top:+.1%})")
    return "The protocol moves most (largest gap in this study) at " + "; ".join(parts) + "."


def protocols_table(st: Study) -> Table:
    runs = list(st.runs_config)
    if not runs:
        return _empty("protocols", ["Run", "Metric"], st)
    data, disp = [], []
    for run in runs:
        for metric, lab in METRIC_LABELS.items():
            values = {p: st.summary(run, metric, p)[0] for p in PROTOCOLS}
            gap = largest_gap(list(values.values()))
            lo = min(values, key=values.get)
            hi = max(values, key=values.get)
            n = len(st.run(run).seeds)
            data.append({"run": run, "metric": f"{metric}@{st.k}", "n_seeds": n,
                         "n_epochs": st.epochs(run), "setting": setting_text(st.resolved(run)),
                         **{p: v for p, v in values.items()},
                         "largest_gap": gap, "lowest": lo, "highest": hi})
            disp.append({"Run": run, "Metric": f"{lab}@{st.k}", "Epochs": _epochs_text(st.epochs(run)),
                         **{POLICY_SHORT[p]: _num(v) for p, v in values.items()},
                         "Largest gap": "–" if math.isnan(gap) else f"{gap:+.1%}"})
    notes = [
        "Every value is the mean over the run's seeds, computed from the same rank records "
        f"(higher, ties) at cut-off {st.k}:",
        *[f"{POLICY_SHORT[p]}: {POLICY_DESCRIPTIONS[p]}." for p in PROTOCOLS],
        "Largest gap = (largest - smallest) / smallest over the six protocols (the CSV names "
        "which protocols they are); '–' when the smallest is 0.",
        largest_gap_note(data, st.k) + " A number published under one protocol can only be "
        "compared with ours under the same one.",
        "Epochs: each run's resolved n_epochs ('–': a model without epochs); the CSV column setting "
        "holds its whole resolved setting, and the tables with published numbers print every "
        "published parameter a run sets otherwise.",
    ]
    return Table("protocols", pd.DataFrame(data), pd.DataFrame(disp), notes,
                 caption="Recall@20 and MRR@20 of every run under each evaluation protocol, from "
                         "the same rank records.",
                 label_columns=3)


TABLES = {"protocols": protocols_table}
