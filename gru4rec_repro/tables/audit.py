"""The audit table: implementations we did not write against the authors' code and ours.

Runs are paired by name, as in the frameworks table: an external run
``<prefix>-<setting>`` (its ``implementation`` one of
:data:`gru4rec_repro.contract.EXTERNAL`, e.g. ``recbole-xe``) is compared with
our PyTorch run ``torch-<setting>`` (always) and with the authors' code on the
same setting (the run of implementation ``authors`` named ``*-<setting>``)
where one is configured. Each comparison: R@20 and MRR@20 (mean ± sd over
seeds), the paired difference with its 95% CI, the equivalence verdict of the
frameworks table (:func:`gru4rec_repro.stats.equivalence_verdict`), seconds per
epoch and their ratio, the parameters the library cannot express
(``adapter_info.json``), and the library's feature checklist
(``implementations/external/<name>/features.yaml``) in the notes.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from .. import stats
from ..contract import EXTERNAL
from ..external import (
    AUTHORS, AUTHORS_NOTE_KEY, EXTERNAL_DIR, OURS_PREFIX, comparison_run, format_differences, resolved_setting,
    setting_differences, setting_of,
)
from ..gru4rec_params import describe
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _common_notes, _diff_ci, _empty,
    _mean_sd, _p, _ratio, _seconds, _tests_note, add_verdicts, ci_note,
)

#: The checklist's items, in the order of INTERFACES.md section 5.
FEATURES = ("session_parallel_minibatches", "hidden_state_reset_per_session",
            "negative_sampling_popularity_exponent", "in_batch_negatives", "bpr_max", "top1_max",
            "cross_entropy_logq", "constrained_embedding", "adagrad_momentum_sparse",
            "eval_all_items_with_ties")


def external_runs(st: Study) -> list[str]:
    """Runs of the study whose implementation is external, in the config's order."""
    return [r for r, spec in st.runs_config.items() if (spec or {}).get("implementation") in EXTERNAL]


def authors_run(st: Study, setting: str) -> str | None:
    for r in external_runs(st):
        if st.runs_config[r]["implementation"] == AUTHORS and setting_of(r) == setting:
            return r
    return None


def adapter_info(st: Study, run: str) -> dict:
    """The first seed's adapter_info.json of a run (empty when it has none)."""
    return next(iter(st.seed_json(run, "adapter_info.json")), {})


def run_setting(st: Study, run: str) -> tuple[dict, str]:
    """The resolved GRU4Rec settings a run trained with (:func:`gru4rec_repro.external.resolved_setting`)
    and where they were read: each seed's ``adapter_info.json`` (``params_resolved``, external runs)
    or ``run_info.json`` (``params``, ours), else the config's params. Seeds that recorded different
    settings are refused."""
    for filename, key in (("adapter_info.json", "params_resolved"), ("run_info.json", "params")):
        recorded = [r[key] for r in st.seed_json(run, filename) if isinstance(r.get(key), dict)]
        if recorded:
            settings = [resolved_setting(p) for p in recorded]
            for other in settings[1:]:
                diff = setting_differences(settings[0], other)
                if diff:
                    raise ValueError(f"audit: the seeds of {run} recorded different settings in {filename}: "
                                     f"{format_differences(diff)}")
            return settings[0], f"{filename} {key}"
    return resolved_setting((st.runs_config[run] or {}).get("params")), "the config's params"


def same_setting(st: Study, run: str, ref: str) -> tuple[dict, str]:
    """The setting ``run`` and ``ref`` both trained with, and where each was read; refuses (ValueError
    naming the keys and values) when their resolved settings differ: the audit compares
    implementations on one setting, never two settings."""
    a, where_a = run_setting(st, run)
    b, where_b = run_setting(st, ref)
    diff = setting_differences(a, b)
    if diff:
        raise ValueError(
            f"audit: {run} and {ref} trained different settings, so the table does not compare them: "
            f"{format_differences(diff)} ({run} vs {ref}; read from {where_a} and {where_b}). "
            "Set external.params_from_ours: true (config/audit.yaml) so that every external run takes "
            f"the params of the run it is compared with ({OURS_PREFIX}<setting>).")
    return a, f"{run}: {where_a}; {ref}: {where_b}"


def read_features(implementation: str, folder: Path = EXTERNAL_DIR) -> dict:
    """``features.yaml`` of an implementation, checked: every item with value, where, note."""
    path = folder / implementation / "features.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the feature checklist of {implementation!r} is missing")
    data = yaml.safe_load(path.read_text()) or {}
    missing = [f for f in FEATURES if f not in data]
    if missing:
        raise ValueError(f"{path}: missing checklist item(s) {missing}")
    for f in FEATURES:
        item = data[f]
        if not isinstance(item, dict) or str(item.get("value")) not in ("yes", "no", "partial") \
                or not item.get("where"):
            raise ValueError(f"{path}: {f} needs value (yes/no/partial) and where (file:line), got {item!r}")
    return data


def _label(st: Study, run: str, info: dict | None = None) -> str:
    """Short name of a run's implementation: "authors' code", "<library> <version>", "ours (PyTorch)".

    ``info``: the run's :func:`adapter_info` when already read (read here otherwise).
    """
    impl = st.runs_config[run]["implementation"]
    if impl == AUTHORS:
        return "authors' code"
    if impl in EXTERNAL:
        if info is None:
            info = adapter_info(st, run)
        version = f" {info['version']}" if info.get("version") else ""
        return f"{info.get('library', impl)}{version}"
    return "ours (PyTorch)"


def authors_note(st: Study, runs: list[str]) -> str:
    """Why ``runs`` are compared with ours only: the authors' code is not configured, or it is but the
    study has no ``authors-<setting>`` run of their setting (as the workflow recorded it,
    :data:`gru4rec_repro.external.AUTHORS_NOTE_KEY`), or, without that record, no such run is here."""
    verb = "is" if len(runs) == 1 else "are"
    settings = ", ".join(dict.fromkeys(setting_of(r) for r in runs))
    record = st.study_config.get(AUTHORS_NOTE_KEY)
    if isinstance(record, dict) and record.get("checkout"):
        return (f"The authors' official code is configured (external.authors.checkout), but the study has no "
                f"run of it ('authors-<setting>') for setting(s) {settings}, so {', '.join(runs)} {verb} compared "
                "with ours only (add an 'authors-<setting>' run to external.panel; see docs/AUDIT.md).")
    if isinstance(record, dict):
        left = record.get("left_out") or []
        left_text = f"; left out: {', '.join(left)}" if left else ""
        return (f"The authors' official code is not configured in this study (external.authors.checkout is "
                f"not set{left_text}), so {', '.join(runs)} {verb} compared with ours only (set "
                "external.authors.checkout and add an 'authors-<setting>' run; see docs/AUDIT.md).")
    return (f"No run of the authors' official code ('authors-<setting>') for setting(s) {settings} is in this "
            f"study's config, so {', '.join(runs)} {verb} compared with ours only (set "
            "external.authors.checkout and add an 'authors-<setting>' run; see docs/AUDIT.md).")


def _value(v) -> str:
    return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else f"{v:g}" if isinstance(v, float) else str(v)


def audit_table(st: Study) -> Table:
    runs = external_runs(st)
    if not runs:
        return _empty("audit", ["Implementation", "Against", "Metric"], st)
    rows, comps, notes_extra, used = [], [], [], []
    missing_authors = []
    checked: dict[str, tuple[dict, list]] = {}  # setting -> (its resolved params, the pairs checked)
    for i, run in enumerate(runs):
        setting = setting_of(run)
        impl = st.runs_config[run]["implementation"]
        refs = []
        if impl != AUTHORS:
            a = authors_run(st, setting)
            if a is not None:
                refs.append(a)
            else:
                missing_authors.append(run)
        ours = comparison_run(run)
        if st.has(ours):
            refs.append(ours)
        else:
            notes_extra.append(f"{run}: no run {ours!r} in the config, so no comparison with ours.")
        info = adapter_info(st, run)
        label = _label(st, run, info)
        not_expressed = ", ".join(sorted(info.get("not_expressed", {}))) or "none"
        sec_e = stats.seed_summary(st.run(run).seconds_per_epoch())
        for j, ref in enumerate(refs):
            params, where = same_setting(st, run, ref)
            checked.setdefault(setting, (params, []))[1].append(f"{run} = {ref} ({where})")
            sec_r = stats.seed_summary(st.run(ref).seconds_per_epoch())
            used += [run, ref]
            for m, metric in enumerate(METRIC_LABELS):
                c = st.compare(run, ref, metric, seed=10_000 * i + 100 * j + m)
                comps.append(c)
                me, sde, ne = st.summary(run, metric)
                mr, sdr, nr = st.summary(ref, metric)
                cie, cir = st.ci(run, metric), st.ci(ref, metric)
                g = c["seed_gap"]
                rows.append({
                    "run": run, "implementation": impl, "library": label,
                    "version": info.get("version", ""), "setting": setting,
                    "reference": ref, "reference_label": _label(st, ref), "metric": f"{metric}@{st.k}",
                    "mean": me, "sd": sde, "n": ne, "ref_mean": mr, "ref_sd": sdr, "ref_n": nr,
                    "ci_low_run": cie["low"], "ci_high_run": cie["high"],
                    "ref_ci_low": cir["low"], "ref_ci_high": cir["high"],
                    "diff": c["diff"], "rel_diff": c["rel_diff"],
                    "ci_low": c["ci95"][0], "ci_high": c["ci95"][1],
                    "ci90_low": c["ci90"][0], "ci90_high": c["ci90"][1],
                    "p": c["p"], "welch_p": g["welch_p"], "gap_exceeds_seed_spread": g["exceeds_spread"],
                    "n_events": c["n_events"],
                    "s_per_epoch": sec_e[0], "ref_s_per_epoch": sec_r[0],
                    "s_per_epoch_ratio": sec_e[0] / sec_r[0] if sec_r[0] else float("nan"),
                    "not_expressed": not_expressed,
                })
    if not rows:
        return _empty("audit", ["Implementation", "Against", "Metric"], st)
    data = pd.DataFrame(rows)
    add_verdicts(st, data, comps)
    disp = pd.DataFrame({
        "Implementation": [f"{r.library} ({r.run})" for r in data.itertuples()],
        "Against": [f"{r.reference_label} ({r.reference})" for r in data.itertuples()],
        "Metric": [f"{METRIC_LABELS[m.split('@')[0]]}@{st.k}" for m in data["metric"]],
        "Implementation, mean ± sd": [_mean_sd(r.mean, r.sd, r.n) for r in data.itertuples()],
        "Against, mean ± sd": [_mean_sd(r.ref_mean, r.ref_sd, r.ref_n) for r in data.itertuples()],
        "Difference [95% CI]": [_diff_ci(r.diff, r.rel_diff, (r.ci_low, r.ci_high)) for r in data.itertuples()],
        f"p ({CORRECTION_NAMES[CORRECTION]})": data["p_adj"].map(_p),
        "Verdict": data["verdict"],
        "s/epoch": data["s_per_epoch"].map(_seconds),
        "s/epoch against": data["ref_s_per_epoch"].map(_seconds),
        "Time ratio": data["s_per_epoch_ratio"].map(_ratio),
        "Not expressed": data["not_expressed"],
    })
    notes = _common_notes(st, _tests_note(st, "Implementation - against"),
                          "Mean ± sd over the n seeds shown; the 95% CIs of each run alone are in the CSV.")
    notes += [
        f"Verdict (margin {st.margin:.0%} of the reference value, alpha {st.alpha}), as in the "
        "frameworks table: equivalent = the 90% bootstrap CI of the difference lies inside +-margin "
        "(TOST) and, with >= 2 seeds on both sides, so does the Welch 90% CI of the seed gap; "
        "different = the 95% CI lies entirely outside +-margin and the adjusted p-values < alpha; "
        "otherwise inconclusive.",
        "Every implementation trains on the same split with the run's GRU4Rec parameters translated "
        "by its adapter (implementations/external/<name>/adapter.py); 'Not expressed' lists the "
        "parameters the library has no setting for and, as <parameter>.<aspect> or a name of its own, "
        "what it does differently although translated (reasons below, from each seed's adapter_info.json). "
        "All are ranked against all training items with ties counted the same way.",
        "Seconds per epoch: as each implementation reports them (its own epoch loop), mean over "
        "epochs and seeds; time ratio = implementation / against. Timings depend on the machine "
        "and on what ran beside them.",
    ]
    if missing_authors:
        notes.append(authors_note(st, missing_authors))
    for setting, (params, pairs) in checked.items():
        notes.append(
            f"Same setting '{setting}' on both sides of every row, checked: the resolved GRU4Rec parameters "
            f"each run recorded are equal ({'; '.join(pairs)}): {describe(params)}; "
            + ", ".join(f"{k} {_value(v)}" for k, v in params.items() if k not in ("loss", "final_act"))
            + ". Two runs of different settings are refused, naming the keys.")
    notes += notes_extra
    notes.append(ci_note(st, used))
    for impl in dict.fromkeys(st.runs_config[r]["implementation"] for r in runs):
        first = next(r for r in runs if st.runs_config[r]["implementation"] == impl)
        info = adapter_info(st, first)
        label = _label(st, first, info)
        version = info.get("version", "")
        if impl == AUTHORS and version:
            label += f" ({version})"
        reasons = info.get("not_expressed") or {}
        if reasons:
            notes.append(f"Not expressed by {label} ({first}, from its adapter_info.json): "
                         + "; ".join(f"{k}: {v}" for k, v in reasons.items()) + ".")
        feats = read_features(impl)
        items = "; ".join(f"{f}: {feats[f]['value']} ({feats[f]['where']})" for f in FEATURES)
        notes.append(f"Feature checklist of {label} (implementations/external/{impl}/features.yaml, "
                     f"read from its code at the pinned version): {items}.")
    return Table("audit", data, disp, notes,
                 caption="GRU4Rec implementations we did not write, against the authors' code and ours "
                         "on the same split and setting.",
                 label_columns=3)


TABLES = {"audit": audit_table}
