"""The frameworks table: PyTorch vs Keras per setting present in both (``torch-X``
and ``keras-X``): paired difference Keras - PyTorch with CI, Holm-adjusted p,
Welch test on per-seed metrics, verdict, seconds per epoch."""
from __future__ import annotations

import pandas as pd

from .. import stats
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _ci_text, _common_notes, _diff_ci,
    _empty, _p, _ratio, _seconds, _tests_note, _yes_no, add_verdicts, ci_note,
)


#: Order of the frameworks table's settings (others follow alphabetically).
SETTING_ORDER = ("xe-best", "xe", "top1", "bpr", "top1max", "bprmax", "bprmax-noemb", "xe-noemb-2018",
                 "xe-2016", "top1-2016", "bpr-2016")


def framework_settings(st: Study) -> list[str]:
    """Settings X with both torch-X and keras-X in the config, in table order."""
    both = [r[len("torch-"):] for r in st.runs_config
            if r.startswith("torch-") and st.has("keras-" + r[len("torch-"):])]
    known = [s for s in SETTING_ORDER if s in both]
    return known + sorted(s for s in both if s not in SETTING_ORDER)


def frameworks_table(st: Study) -> Table:
    settings = framework_settings(st)
    if not settings:
        return _empty("frameworks", ["Setting", "Metric"], st)
    rows, comps = [], []
    for i, setting in enumerate(settings):
        torch_run, keras_run = f"torch-{setting}", f"keras-{setting}"
        sec_t = stats.seed_summary(st.run(torch_run).seconds_per_epoch())
        sec_k = stats.seed_summary(st.run(keras_run).seconds_per_epoch())
        for j, metric in enumerate(METRIC_LABELS):
            c = st.compare(keras_run, torch_run, metric, seed=1000 * i + j)
            comps.append(c)
            mt, sdt, nt = st.summary(torch_run, metric)
            mk, sdk, nk = st.summary(keras_run, metric)
            cit, cik = st.ci(torch_run, metric), st.ci(keras_run, metric)
            g = c["seed_gap"]
            rows.append({
                "setting": setting, "metric": f"{metric}@{st.k}",
                "torch_run": torch_run, "keras_run": keras_run,
                "torch_mean": mt, "torch_sd": sdt, "torch_n": nt,
                "keras_mean": mk, "keras_sd": sdk, "keras_n": nk,
                "torch_ci_low": cit["low"], "torch_ci_high": cit["high"],
                "keras_ci_low": cik["low"], "keras_ci_high": cik["high"],
                "diff": c["diff"], "rel_diff": c["rel_diff"],
                "ci_low": c["ci95"][0], "ci_high": c["ci95"][1],
                "ci90_low": c["ci90"][0], "ci90_high": c["ci90"][1],
                "ci_t_low": c["ci95_t"][0], "ci_t_high": c["ci95_t"][1],
                "p": c["p"], "welch_p": g["welch_p"], "seed_pooled_sd": g["pooled_sd"],
                "gap_exceeds_seed_spread": g["exceeds_spread"],
                "n_events": c["n_events"], "n_sessions": c["n_units"],
                "torch_s_per_epoch": sec_t[0], "keras_s_per_epoch": sec_k[0],
                "s_per_epoch_ratio": sec_k[0] / sec_t[0] if sec_t[0] else float("nan"),
            })
    data = pd.DataFrame(rows)
    add_verdicts(st, data, comps, band=True)
    disp = pd.DataFrame({
        "Setting": data["setting"],
        "Metric": [f"{METRIC_LABELS[m.split('@')[0]]}@{st.k}" for m in data["metric"]],
        "PyTorch [95% CI]": [_ci_text(r.torch_mean, r.torch_ci_low, r.torch_ci_high)
                             for r in data.itertuples()],
        "Keras [95% CI]": [_ci_text(r.keras_mean, r.keras_ci_low, r.keras_ci_high)
                           for r in data.itertuples()],
        "Seeds": [f"{r.torch_n} / {r.keras_n}" for r in data.itertuples()],
        "Keras - PyTorch [95% CI]": [_diff_ci(r.diff, r.rel_diff, (r.ci_low, r.ci_high))
                                     for r in data.itertuples()],
        f"p ({CORRECTION_NAMES[CORRECTION]})": data["p_adj"].map(_p),
        f"Welch p seeds ({CORRECTION_NAMES[CORRECTION]})": data["welch_p_adj"].map(_p),
        "gap > 2 sd seeds": data["gap_exceeds_seed_spread"].map(_yes_no),
        "Verdict": data["verdict"],
        "s/epoch PyTorch": data["torch_s_per_epoch"].map(_seconds),
        "s/epoch Keras": data["keras_s_per_epoch"].map(_seconds),
        "Keras / PyTorch time": data["s_per_epoch_ratio"].map(_ratio),
    })
    notes = _common_notes(st, _tests_note(st, "Keras - PyTorch"),
                          "Seeds: number of seeds of the PyTorch / Keras run (sd over seeds in the CSV).")
    notes += [
        f"Welch p: Welch t-test on the per-seed metrics, {CORRECTION_NAMES[CORRECTION]}-adjusted "
        "across this table. 'gap > 2 sd seeds': |gap of seed means| > 2 x pooled seed sd.",
        f"Verdict (margin {st.margin:.0%} of the PyTorch value, alpha {st.alpha}): equivalent = the 90% "
        "bootstrap CI of the difference lies inside +-margin (TOST) and, with >= 2 seeds on both "
        "sides, so does the Welch 90% CI of the seed gap; different = the 95% CI lies entirely "
        "outside +-margin, the adjusted p < alpha and (>= 2 seeds each) the adjusted Welch p < alpha; "
        "otherwise inconclusive.",
        "Seconds per epoch: mean over epochs of train_log.jsonl, then over seeds; timings depend on "
        "the machine and on what ran beside them.",
    ]
    notes.append(ci_note(st, [r for s in settings for r in (f"torch-{s}", f"keras-{s}")]))
    return Table("frameworks", data, disp, notes,
                 caption="PyTorch and Keras GRU4Rec on the same settings: Keras - PyTorch, paired "
                         "over test events, and the seed-level gap.",
                 label_columns=2)


TABLES = {"frameworks": frameworks_table}
