"""The frameworks table: every pair of frameworks that trained the same setting.

A setting X is a PyTorch run ``torch-X``; its Keras runs are the Keras GRU4Rec
runs (not the tutorial's port) named ``keras-X`` or ``keras-<word>-X`` (e.g.
``keras-jax-xe``) whose settings equal the PyTorch run's: the resolved GRU4Rec
parameters (:meth:`Study.resolved`, without the Keras-only keys such as
``backend``) and the dwell-time variant. A run named like that whose settings
differ is left out, with a note naming the first differing key. Each Keras
run's framework is read from its resolved ``backend`` (default tensorflow),
not from its name: PyTorch, Keras on TensorFlow, Keras on JAX, Keras on torch.

Every pair (A, B) of a setting's runs, A before B in that order, is one row
per metric: the paired difference B - A over test events with its CI, the
Holm-adjusted p, the Welch test on per-seed metrics, the equivalence verdict
(TOST within the margin of A's value) and seconds per epoch.
"""
from __future__ import annotations

from itertools import combinations

import pandas as pd

from .. import gru4rec_params, stats
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _ci_text, _common_notes, _diff_ci,
    _empty, _p, _ratio, _seconds, _tests_note, _yes_no, add_verdicts, ci_note,
)

#: Order of the frameworks table's settings (others follow alphabetically).
SETTING_ORDER = ("xe-best", "xe", "top1", "bpr", "top1max", "bprmax", "bprmax-noemb", "xe-noemb-2018",
                 "xe-2016", "top1-2016", "bpr-2016")
#: The frameworks, in the order a pair's sides take (A before B): PyTorch, then Keras per backend.
PYTORCH = "PyTorch"
KERAS_BACKENDS = {"tensorflow": "Keras on TensorFlow", "jax": "Keras on JAX", "torch": "Keras on torch"}
FRAMEWORK_ORDER = (PYTORCH, *KERAS_BACKENDS.values())
#: The Keras runs' default backend (implementations/gru4rec_keras: ``backend`` left out).
DEFAULT_BACKEND = "tensorflow"


def framework_of(st: Study, run: str) -> str:
    """The framework a GRU4Rec run trains on, from its implementation and its resolved ``backend``."""
    spec = st.runs_config[run]
    if spec.get("implementation") == "gru4rec_torch":
        return PYTORCH
    backend = st.resolved(run).get("backend") or DEFAULT_BACKEND
    if backend not in KERAS_BACKENDS:
        raise ValueError(f"config: run {run!r}: backend {backend!r} is not one of {sorted(KERAS_BACKENDS)}")
    return KERAS_BACKENDS[backend]


def _settings(st: Study, run: str) -> dict:
    """What must be equal for two runs to be one setting: the resolved GRU4Rec parameters
    (an implementation's own keys left out) and the dwell-time variant."""
    known = set(gru4rec_params.known_keys())
    p = {k: v for k, v in st.resolved(run).items() if k in known}
    return {**p, "dwell": st.runs_config[run].get("dwell")}


def _named_for(run: str, setting: str) -> bool:
    """``keras-<setting>`` or ``keras-<word>-<setting>`` (one word without a hyphen)."""
    if run == f"keras-{setting}":
        return True
    middle = run[len("keras-"):-len(setting) - 1] if run.endswith(f"-{setting}") else ""
    return run.startswith("keras-") and bool(middle) and "-" not in middle


def _first_difference(a: dict, b: dict) -> str:
    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"{key} {a.get(key)!r} vs {b.get(key)!r}"


def framework_groups(st: Study) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
    """[(setting, [(framework, run), ...] in framework order)] for every setting trained by at
    least two frameworks' runs, in table order; and one note per Keras run left out."""
    keras_runs = [r for r, spec in st.runs_config.items() if spec.get("implementation") == "gru4rec_keras"
                  and (spec.get("params") or {}).get("variant", "gru4rec") == "gru4rec"]
    groups, left_out = {}, []
    for torch_run, spec in st.runs_config.items():
        if spec.get("implementation") != "gru4rec_torch" or not torch_run.startswith("torch-"):
            continue
        setting = torch_run[len("torch-"):]
        members = [(PYTORCH, torch_run)]
        for run in keras_runs:
            if not _named_for(run, setting):
                continue
            ours, theirs = _settings(st, run), _settings(st, torch_run)
            if ours != theirs:
                left_out.append(f"{run} is not compared with {torch_run}: its settings differ "
                                f"({_first_difference(ours, theirs)}).")
                continue
            members.append((framework_of(st, run), run))
        if len(members) > 1:
            members.sort(key=lambda m: (FRAMEWORK_ORDER.index(m[0]), m[1]))
            groups[setting] = members
    order = [s for s in SETTING_ORDER if s in groups] + sorted(s for s in groups if s not in SETTING_ORDER)
    return [(s, groups[s]) for s in order], left_out


def _labels(members: list[tuple[str, str]]) -> dict[str, str]:
    """Display label per run: its framework, with the run's name where a framework repeats."""
    count = pd.Series([f for f, _ in members]).value_counts()
    return {run: f if count[f] == 1 else f"{f} ({run})" for f, run in members}


def frameworks_table(st: Study) -> Table:
    groups, left_out = framework_groups(st)
    if not groups:
        table = _empty("frameworks", ["Setting", "Metric"], st)
        table.notes += left_out
        return table
    rows, comps = [], []
    seconds = {}
    n_pair = 0
    for setting, members in groups:
        labels = _labels(members)
        for run in labels:
            seconds[run] = stats.seed_summary(st.run(run).seconds_per_epoch())[0]
        for (_, run_a), (_, run_b) in combinations(members, 2):
            for j, metric in enumerate(METRIC_LABELS):
                c = st.compare(run_b, run_a, metric, seed=1000 * n_pair + j)
                comps.append(c)
                ma, sda, na = st.summary(run_a, metric)
                mb, sdb, nb = st.summary(run_b, metric)
                cia, cib = st.ci(run_a, metric), st.ci(run_b, metric)
                g = c["seed_gap"]
                sa, sb = seconds[run_a], seconds[run_b]
                rows.append({
                    "setting": setting, "metric": f"{metric}@{st.k}",
                    "framework_a": labels[run_a], "framework_b": labels[run_b],
                    "run_a": run_a, "run_b": run_b,
                    "mean_a": ma, "sd_a": sda, "n_a": na, "mean_b": mb, "sd_b": sdb, "n_b": nb,
                    "ci_low_a": cia["low"], "ci_high_a": cia["high"],
                    "ci_low_b": cib["low"], "ci_high_b": cib["high"],
                    "diff": c["diff"], "rel_diff": c["rel_diff"],
                    "ci_low": c["ci95"][0], "ci_high": c["ci95"][1],
                    "ci90_low": c["ci90"][0], "ci90_high": c["ci90"][1],
                    "ci_t_low": c["ci95_t"][0], "ci_t_high": c["ci95_t"][1],
                    "p": c["p"], "welch_p": g["welch_p"], "seed_pooled_sd": g["pooled_sd"],
                    "gap_exceeds_seed_spread": g["exceeds_spread"],
                    "n_events": c["n_events"], "n_sessions": c["n_units"],
                    "s_per_epoch_a": sa, "s_per_epoch_b": sb,
                    "s_per_epoch_ratio": sb / sa if sa else float("nan"),
                })
            n_pair += 1
    data = pd.DataFrame(rows)
    add_verdicts(st, data, comps, band=True)
    disp = pd.DataFrame({
        "Setting": data["setting"],
        "Metric": [f"{METRIC_LABELS[m.split('@')[0]]}@{st.k}" for m in data["metric"]],
        "A": data["framework_a"],
        "B": data["framework_b"],
        "A [95% CI]": [_ci_text(r.mean_a, r.ci_low_a, r.ci_high_a) for r in data.itertuples()],
        "B [95% CI]": [_ci_text(r.mean_b, r.ci_low_b, r.ci_high_b) for r in data.itertuples()],
        "Seeds": [f"{r.n_a} / {r.n_b}" for r in data.itertuples()],
        "B - A [95% CI]": [_diff_ci(r.diff, r.rel_diff, (r.ci_low, r.ci_high)) for r in data.itertuples()],
        f"p ({CORRECTION_NAMES[CORRECTION]})": data["p_adj"].map(_p),
        f"Welch p seeds ({CORRECTION_NAMES[CORRECTION]})": data["welch_p_adj"].map(_p),
        "gap > 2 sd seeds": data["gap_exceeds_seed_spread"].map(_yes_no),
        "Verdict": data["verdict"],
        "s/epoch A": data["s_per_epoch_a"].map(_seconds),
        "s/epoch B": data["s_per_epoch_b"].map(_seconds),
        "B / A time": data["s_per_epoch_ratio"].map(_ratio),
    })
    notes = _common_notes(st, _tests_note(st, "B - A"),
                          "Seeds: number of seeds of run A / run B (sd over seeds in the CSV).")
    notes += [
        "Runs: setting X is the PyTorch run torch-X and the Keras runs keras-X and keras-<word>-X "
        "with the same resolved GRU4Rec settings and dwell variant; a Keras run's framework is its "
        f"resolved backend (default {DEFAULT_BACKEND}), not its name; A comes before B in the order "
        f"{', '.join(FRAMEWORK_ORDER)}. Run names per row in the CSV (run_a, run_b).",
        f"Welch p: Welch t-test on the per-seed metrics, {CORRECTION_NAMES[CORRECTION]}-adjusted "
        "across this table. 'gap > 2 sd seeds': |gap of seed means| > 2 x pooled seed sd.",
        f"Verdict (margin {st.margin:.0%} of A's value, alpha {st.alpha}): equivalent = the 90% "
        "bootstrap CI of the difference lies inside +-margin (TOST) and, with >= 2 seeds on both "
        "sides, so does the Welch 90% CI of the seed gap; different = the 95% CI lies entirely "
        "outside +-margin, the adjusted p < alpha and (>= 2 seeds each) the adjusted Welch p < alpha; "
        "otherwise inconclusive.",
        "Seconds per epoch: mean over epochs of train_log.jsonl, then over seeds; timings depend on "
        "the machine and on what ran beside them.",
    ]
    notes += left_out
    notes.append(ci_note(st, [run for _, members in groups for _, run in members]))
    return Table("frameworks", data, disp, notes,
                 caption="GRU4Rec on the same settings in PyTorch and in Keras on each backend: B - A per "
                         "pair of frameworks, paired over test events, and the seed-level gap.",
                 label_columns=4)


TABLES = {"frameworks": frameworks_table}
