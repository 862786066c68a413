"""The keras_port table: the tutorial's Keras port, faithful (no flaw on), as
published (run ``keras-port-as-published``: the flaws of the port's latest public
version all on at once; the notes list them from the run's own params) and with
each flaw alone (runs ``keras-port-flaw-*``), each against the faithful port.

Per row: Recall@20 / MRR@20 with a 95% CI; the change against the faithful port
with its CI and Holm-adjusted p, paired over the same test events; and the
seed-level gap as the frameworks table tests it (Welch t-test on the per-seed
metrics, Holm-adjusted, and whether the gap exceeds 2 pooled sd of the seeds).
A flaw that changes which test events are scored (e.g. the evaluation dropping
tail sessions) cannot be paired: that row is compared unpaired and the notes
say so. The port publishes no exact numbers (SPEC.md section 5), so the table
has no paper column.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import stats
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _ci_text, _common_notes, _diff_ci,
    _empty, _p, _tests_note, _unpaired_note, _yes_no, ci_note,
)

PORT_RUN = "keras-port"
AS_PUBLISHED_RUN = "keras-port-as-published"
FLAW_PREFIX = "keras-port-flaw-"


def switched_on(st: Study, run: str) -> list[str]:
    """What a port run changes against the faithful port: its ``flaw_*`` switches that are on
    and any other parameter whose value differs (e.g. the code's dropout 0.25), from the config."""
    base = st.runs_config[PORT_RUN].get("params") or {}
    params = st.runs_config[run].get("params") or {}
    out = [k[len("flaw_"):].replace("_", "-") for k, v in params.items() if k.startswith("flaw_") and v]
    out += [f"{k} {params[k]} (faithful: {base.get(k, 'default')})" for k in params
            if not k.startswith("flaw_") and params[k] != base.get(k)]
    return out


def keras_port_table(st: Study) -> Table:
    if not st.has(PORT_RUN):
        return _empty("keras_port", ["Variant", "Run"], st)
    others = ([AS_PUBLISHED_RUN] if st.has(AS_PUBLISHED_RUN) else []) + [
        r for r in st.runs_config if r.startswith(FLAW_PREFIX)]
    rows, comps = [], []
    for i, run in enumerate([PORT_RUN] + others):
        if run == PORT_RUN:
            variant = "faithful port (no flaw)"
        elif run == AS_PUBLISHED_RUN:
            variant = "as published (latest public version)"
        else:
            variant = "flaw: " + run[len(FLAW_PREFIX):]
        d = {"variant": variant, "run": run}
        for j, metric in enumerate(METRIC_LABELS):
            mean, sd, n = st.summary(run, metric)
            ci = st.ci(run, metric)
            d.update({f"{metric}_mean": mean, f"{metric}_sd": sd, "n_seeds": n,
                      f"{metric}_ci_low": ci["low"], f"{metric}_ci_high": ci["high"]})
            if run == PORT_RUN:
                for key in ("change", "rel_change", "change_ci_low", "change_ci_high", "p",
                            "welch_p", "seed_pooled_sd"):
                    d[f"{metric}_{key}"] = float("nan")
                d[f"{metric}_gap_exceeds_seed_spread"] = None
                d["paired"] = None
                continue
            c = st.compare(run, PORT_RUN, metric, seed=1000 * i + j, unpaired_ok=True)
            comps.append((f"{run} vs {PORT_RUN} {metric}", c))
            g = c["seed_gap"]
            d.update({f"{metric}_change": c["diff"], f"{metric}_rel_change": c["rel_diff"],
                      f"{metric}_change_ci_low": c["ci95"][0], f"{metric}_change_ci_high": c["ci95"][1],
                      f"{metric}_p": c["p"], f"{metric}_welch_p": g["welch_p"],
                      f"{metric}_seed_pooled_sd": g["pooled_sd"],
                      f"{metric}_gap_exceeds_seed_spread": g["exceeds_spread"],
                      "paired": c["paired"]})
        rows.append(d)
    data = pd.DataFrame(rows)
    n = len(data)
    for col in ("p", "welch_p"):
        adjusted = stats.adjust(np.concatenate([data[f"recall_{col}"], data[f"mrr_{col}"]]), CORRECTION)
        data[f"recall_{col}_adj"], data[f"mrr_{col}_adj"] = adjusted[:n], adjusted[n:]
    holm = CORRECTION_NAMES[CORRECTION]
    disp = {"Variant": data["variant"], "Run": data["run"], "Seeds": data["n_seeds"].astype(str)}
    for metric, lab in METRIC_LABELS.items():
        disp[f"{lab}@20 [95% CI]"] = [_ci_text(r[f"{metric}_mean"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"])
                                      for _, r in data.iterrows()]
        disp[f"{lab}@20 change vs port [95% CI]"] = [
            "–" if math.isnan(r[f"{metric}_change"]) else
            _diff_ci(r[f"{metric}_change"], r[f"{metric}_rel_change"],
                     (r[f"{metric}_change_ci_low"], r[f"{metric}_change_ci_high"]))
            for _, r in data.iterrows()
        ]
        disp[f"{lab}@20 p ({holm})"] = data[f"{metric}_p_adj"].map(_p)
        disp[f"{lab}@20 Welch p seeds ({holm})"] = data[f"{metric}_welch_p_adj"].map(_p)
        disp[f"{lab}@20 gap > 2 sd seeds"] = data[f"{metric}_gap_exceeds_seed_spread"].map(_yes_no)
    notes = _common_notes(st, _tests_note(st, "Change = variant - faithful port"),
                          "Seeds: number of seeds of the run (sd over seeds in the CSV).")
    notes += [
        f"Welch p seeds: Welch t-test on the per-seed metrics of the variant and the faithful port, "
        f"{holm}-adjusted across this table (needs >= 2 seeds on both sides); 'gap > 2 sd seeds': "
        "|gap of seed means| > 2 x pooled seed sd, as in the frameworks table.",
        ci_note(st, list(data["run"])),
        "The tutorial's Keras port publishes no exact numbers (its repository calls its results "
        "'comparable' to the original; SPEC.md section 5), so there is no paper column.",
    ]
    if st.has(AS_PUBLISHED_RUN):
        flaw_runs = {r[len(FLAW_PREFIX):] for r in st.runs_config if r.startswith(FLAW_PREFIX)}
        on = switched_on(st, AS_PUBLISHED_RUN)
        off = sorted(flaw_runs - {x.split(" ")[0] for x in on})
        notes.append(f"As published ({AS_PUBLISHED_RUN}): the port's latest public code, with "
                     f"{', '.join(on) or 'nothing'} switched on at once"
                     + (f"; left off: {', '.join(off)}" if off else "")
                     + " (implementations/gru4rec_keras/README.md says why).")
    else:
        notes.append(f"Run {AS_PUBLISHED_RUN} (the port as its users ran it) is not in this study's config.")
    notes += _unpaired_note(comps, "the variant scores different test events than the faithful port")
    return Table("keras_port", data, pd.DataFrame(disp), notes,
                 caption="The tutorial's Keras port: faithful, as published and with each flaw "
                         "alone, against the faithful port.",
                 label_columns=3)


TABLES = {"keras_port": keras_port_table}
