"""The keras_port table: the faithful port, then each flaw alone: change vs the port."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import paper, stats
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _common_notes, _diff_ci, _dropped_note, _empty, _mean_sd, _p, _tests_note,
)


PORT_RUN = "keras-port"
FLAW_PREFIX = "keras-port-flaw-"


def keras_port_table(st: Study) -> Table:
    if not st.has(PORT_RUN):
        return _empty("keras_port", ["Variant", "Run"], st)
    flaws = [r for r in st.runs_config if r.startswith(FLAW_PREFIX)]
    pub = paper.published("keras_port", "GRU4Rec")
    rows, comps = [], []
    for i, run in enumerate([PORT_RUN] + flaws):
        d = {"variant": "faithful port" if run == PORT_RUN else "flaw: " + run[len(FLAW_PREFIX):],
             "run": run}
        for j, metric in enumerate(METRIC_LABELS):
            mean, sd, n = st.summary(run, metric)
            d.update({f"{metric}_mean": mean, f"{metric}_sd": sd, "n_seeds": n,
                      f"paper_{metric}": pub.get(metric) if run == PORT_RUN else float("nan")})
            if run == PORT_RUN:
                d.update({f"{metric}_change": float("nan"), f"{metric}_rel_change": float("nan"),
                          f"{metric}_ci_low": float("nan"), f"{metric}_ci_high": float("nan"),
                          f"{metric}_p": float("nan")})
                continue
            c = st.compare(run, PORT_RUN, metric, seed=1000 * i + j)
            comps.append((f"{run} {metric}", c))
            d.update({f"{metric}_change": c["diff"], f"{metric}_rel_change": c["rel_diff"],
                      f"{metric}_ci_low": c["ci95"][0], f"{metric}_ci_high": c["ci95"][1],
                      f"{metric}_p": c["p"]})
        rows.append(d)
    data = pd.DataFrame(rows)
    adjusted = stats.adjust(np.concatenate([data["recall_p"], data["mrr_p"]]), CORRECTION)
    data["recall_p_adj"], data["mrr_p_adj"] = adjusted[: len(data)], adjusted[len(data):]
    disp = {"Variant": data["variant"], "Run": data["run"]}
    for metric, lab in METRIC_LABELS.items():
        disp[f"{lab}@20"] = [_mean_sd(m, s, n) for m, s, n in
                             zip(data[f"{metric}_mean"], data[f"{metric}_sd"], data["n_seeds"])]
        disp[f"{lab}@20 change vs port [95% CI]"] = [
            "–" if math.isnan(r[f"{metric}_change"]) else
            _diff_ci(r[f"{metric}_change"], r[f"{metric}_rel_change"], (r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]))
            for _, r in data.iterrows()
        ]
        disp[f"{lab}@20 p ({CORRECTION_NAMES[CORRECTION]})"] = data[f"{metric}_p_adj"].map(_p)
    notes = _common_notes(st, _tests_note(st, "Change = flaw - faithful port"), [])
    notes.append(
        f"The tutorial's own port reported R@20 {pub.recall} / MRR@20 {pub.mrr} on RSC15 (SPEC.md "
        "section 8; section 5 quotes 0.63-0.66 / 0.26-0.28 after 1-2 epochs)"
        + ("." if st.is_paper_data else ", not comparable on this dataset.")
    )
    notes += _dropped_note(comps)
    return Table("keras_port", data, pd.DataFrame(disp), notes)


TABLES = {"keras_port": keras_port_table}
