"""The study's five paper-style tables, built from a dataset's results folder.

Input: ``results_dir`` = ``results/<dataset>`` holding
``runs/<run>/seed<seed>/{ranks.parquet, metrics.json, train_log.jsonl}``; the
study config as a dict (``runs:`` name -> {implementation, params, ...},
``seeds:``, ``study:`` with ``equivalence_margin`` and ``n_boot``; ``seeds``
and ``runs`` may also sit under ``study:``); the dataset name (the paper
columns are RSC15 numbers and only expected to match on ``rsc15``).

Tables (SPEC.md section 8; statistics of section 9 via :mod:`gru4rec_repro.stats`):

* ``baselines``: POP, S-POP, Item-KNN, BPR-MF (proper, and with the authors'
  quirks), GRU4Rec: paper, ours, difference. The tutorial's GRU4Rec row
  (0.5781 / 0.2375) is the number of its own cross-entropy row; the table is
  the ICLR 2016 one (no extra samples), so its run is ``torch-xe-2016``.
* ``losses``: the five losses with 2048 extra samples, paper vs PyTorch and Keras.
* ``dwell``: Bogina & Kuflik's table with train-only and train+test boosting.
* ``frameworks``: PyTorch vs Keras per setting present in both (``torch-X`` and
  ``keras-X``): paired difference Keras - PyTorch with CI, Holm-adjusted p,
  Welch test on per-seed metrics, verdict, seconds per epoch.
* ``keras_port``: the faithful port, then each flaw alone: change vs the port.

A row whose runs are not in the config is skipped; a configured run whose
files are missing is an error naming the file. A run uses whichever of the
config's seeds have a folder (deterministic baselines run one seed).
``train_log.jsonl`` is optional (seconds per epoch are then missing).

Every table is written as ``<name>.md`` (tabulate "github"), ``<name>.tex``
(tabulate "latex_booktabs"), ``<name>.csv`` (numeric columns, pandas) and
``<name>.notes.txt``; the notes also sit below the table in the md and tex.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from . import atomic, paper, stats
from .contract import validate_ranks
from .evaluation import DEFAULT_POLICY, per_event

log = logging.getLogger(__name__)

TABLES = ("baselines", "losses", "dwell", "frameworks", "keras_port")
METRIC_LABELS = {"recall": "R", "mrr": "MRR"}
FRAMEWORKS = {"torch": "PyTorch", "keras": "Keras"}
CORRECTION = "holm"
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
PAPER_DATASET = "rsc15"

#: The baselines table: (row, run, key of the published number).
BASELINE_ROWS = (
    ("POP", "pop", "POP"),
    ("S-POP", "spop", "S-POP"),
    ("Item-KNN", "iknn", "Item-KNN"),
    ("BPR-MF", "bprmf", "BPR-MF"),
    ("BPR-MF (authors' quirks)", "bprmf-quirks", "BPR-MF"),
    ("GRU4Rec", "torch-xe-2016", "GRU4Rec"),
)
#: The losses table: (row = published key, setting suffix of the run names).
LOSS_ROWS = (
    ("cross-entropy", "xe"),
    ("TOP1", "top1"),
    ("BPR", "bpr"),
    ("TOP1-max", "top1max"),
    ("BPR-max", "bprmax"),
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
#: Order of the frameworks table's settings (others follow alphabetically).
SETTING_ORDER = ("xe", "top1", "bpr", "top1max", "bprmax", "xe-2016", "top1-2016", "bpr-2016")
PORT_RUN = "keras-port"
FLAW_PREFIX = "keras-port-flaw-"


# ---------------------------------------------------------------------- loading

@dataclass
class RunResults:
    """One run's per-seed outputs."""

    name: str
    seeds: list[int]
    ranks: list[pd.DataFrame]
    logs: list[pd.DataFrame]  # one per seed; empty when the run wrote no train log
    _values: dict = field(default_factory=dict, repr=False)

    def per_seed(self, metric: str, k: int, policy: str) -> np.ndarray:
        """The metric of each seed (the shared evaluation's per-event values, averaged)."""
        key = (metric, k, policy)
        if key not in self._values:
            column = stats.METRICS[metric]
            self._values[key] = np.array(
                [per_event(r, k=k, policy=policy)[column].mean() for r in self.ranks]
            )
        return self._values[key]

    def seconds_per_epoch(self) -> np.ndarray:
        """Mean of "seconds" over each seed's epochs (NaN for a seed without a log)."""
        out = []
        for lg in self.logs:
            s = pd.to_numeric(lg["seconds"], errors="coerce") if "seconds" in lg else pd.Series(dtype=float)
            out.append(float(s.mean()) if s.notna().any() else float("nan"))
        return np.array(out, dtype=np.float64)


def read_train_log(path: Path) -> pd.DataFrame:
    """``train_log.jsonl`` -> one row per epoch (later lines win for a repeated epoch)."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not a JSON object per line ({e.msg})") from None
        if not isinstance(entry, dict) or "epoch" not in entry:
            raise ValueError(f"{path}:{i}: each line must be a JSON object with an 'epoch'")
        rows.append(entry)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("loss", "seconds"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def _check_metrics_file(path: Path, ranks: pd.DataFrame) -> None:
    """metrics.json must agree with ranks.parquet (catches stale files)."""
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    value = saved.get(DEFAULT_POLICY, {}).get("recall@20") if isinstance(saved, dict) else None
    if value is None:
        return
    ours = float(per_event(ranks, 20, DEFAULT_POLICY)["hit"].mean()) if len(ranks) else 0.0
    if abs(ours - float(value)) > 1e-9:
        raise ValueError(
            f"{path}: recall@20 {value} disagrees with ranks.parquet next to it ({ours}); "
            "a stale file? Re-run the metrics step."
        )


class Study:
    """A dataset's results and the study config; loads runs once and keeps them."""

    def __init__(self, results_dir, config, dataset: str, progress: bool = False):
        self.results_dir = Path(results_dir)
        config = load_config(config)
        study = config.get("study") or {}
        self.runs_config: dict = config.get("runs") or study.get("runs") or {}
        if not isinstance(self.runs_config, dict):
            raise ValueError("config: 'runs' must map run names to their settings")
        selected = study.get("runs")
        if isinstance(selected, list) and selected:
            self.runs_config = {r: self.runs_config[r] for r in selected if r in self.runs_config}
        self.seeds = [int(s) for s in (config.get("seeds") or study.get("seeds") or [])]
        if not self.seeds:
            raise ValueError("config: no seeds (expected 'seeds:' or 'study.seeds')")
        self.dataset = dataset
        self.margin = float(study.get("equivalence_margin", stats.DEFAULT_MARGIN))
        self.n_boot = int(study.get("n_boot", stats.DEFAULT_N_BOOT))
        self.alpha = float(study.get("alpha", stats.DEFAULT_ALPHA))
        self.k = paper.PAPER_CUTOFF
        self.policy = DEFAULT_POLICY
        self.progress = progress
        self._runs: dict[str, RunResults] = {}

    @property
    def is_paper_data(self) -> bool:
        return self.dataset.lower() == PAPER_DATASET

    def has(self, run: str) -> bool:
        return run in self.runs_config

    def run(self, name: str) -> RunResults:
        if name not in self._runs:
            self._runs[name] = self._load(name)
        return self._runs[name]

    def _load(self, name: str) -> RunResults:
        run_dir = self.results_dir / "runs" / name
        seeds = [s for s in self.seeds if (run_dir / f"seed{s}").is_dir()]
        if not seeds:
            raise FileNotFoundError(
                f"{run_dir}: run {name!r} is in the config but has no seed folder "
                f"(looked for seed{{{','.join(map(str, self.seeds))}}})"
            )
        ranks, logs = [], []
        for s in seeds:
            d = run_dir / f"seed{s}"
            for required in ("ranks.parquet", "metrics.json"):
                if not (d / required).is_file():
                    raise FileNotFoundError(f"{d / required}: missing output of configured run {name!r}")
            r = validate_ranks(pd.read_parquet(d / "ranks.parquet"), where=str(d / "ranks.parquet"))
            _check_metrics_file(d / "metrics.json", r)
            ranks.append(r)
            lp = d / "train_log.jsonl"
            logs.append(read_train_log(lp) if lp.is_file() else pd.DataFrame())
        log.info("loaded %s: seeds %s, %d events", name, seeds, len(ranks[0]))
        return RunResults(name, seeds, ranks, logs)

    def summary(self, run: str, metric: str) -> tuple[float, float, int]:
        return stats.seed_summary(self.run(run).per_seed(metric, self.k, self.policy))

    def compare(self, run_a: str, run_b: str, metric: str, seed: int = 0) -> dict:
        """Paired comparison a - b (seeds averaged per event) plus the seed gap test."""
        a, b = self.run(run_a), self.run(run_b)
        c = stats.paired_comparison(
            a.ranks, b.ranks, metric, k=self.k, policy=self.policy,
            n_boot=self.n_boot, seed=seed, unit="session", align="intersect",
        )
        c["seed_gap"] = stats.seed_gap_test(
            a.per_seed(metric, self.k, self.policy), b.per_seed(metric, self.k, self.policy)
        )
        return c


def load_config(config) -> dict:
    """A config dict as is, or read from a JSON / YAML file path."""
    if isinstance(config, dict):
        return config
    path = Path(config)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


# --------------------------------------------------------------------- formatting

def _num(x: float, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _signed(x: float, digits: int = 4) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:+.{digits}f}"


def _mean_sd(mean: float, sd: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "–"
    if n == 1 or math.isnan(sd):
        return f"{mean:.4f} (n=1)"
    return f"{mean:.4f} ± {sd:.4f} (n={n})"


def _diff_rel(diff: float, ref: float) -> str:
    if math.isnan(diff):
        return "–"
    rel = diff / ref if ref else float("nan")
    return f"{diff:+.4f} ({rel:+.1%})" if not math.isnan(rel) else f"{diff:+.4f}"


def _diff_ci(diff: float, rel: float, ci: tuple[float, float]) -> str:
    rel_txt = "" if math.isnan(rel) else f" ({rel:+.1%})"
    return f"{diff:+.4f}{rel_txt} [{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<1e-300" if p == 0 else f"{p:.2g}"


def _seconds(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3g}"


# ------------------------------------------------------------------------- tables

@dataclass
class Table:
    """A table: numeric data (the CSV), its formatted view (md / tex) and notes."""

    name: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str]


def _common_notes(st: Study, tests: str | None, sources: list[str]) -> list[str]:
    notes = [
        f"Recall@{st.k} and MRR@{st.k} over all predicted test events, conservative tie policy "
        "(rank = items scoring higher + items tying + 1).",
        "Ours: mean ± sd over the n seeds shown (deterministic baselines run one seed).",
    ]
    if tests:
        notes.append(tests)
    else:
        notes.append("No hypothesis tests in this table (published values are single numbers), "
                     "so no multiple-comparison correction.")
    if sources:
        notes.append("Paper values: " + "; ".join(sources) + ".")
    if not st.is_paper_data:
        notes.append(
            f"Dataset '{st.dataset}' is not RSC15: the paper columns are RSC15 numbers, shown for "
            "layout only and not expected to match."
        )
    return notes


def _tests_note(st: Study, what: str) -> str:
    return (
        f"{what}: paired over the same test events (seeds averaged per event first); 95% CI by "
        f"paired bootstrap over test sessions (B = {st.n_boot}); p from a paired t-test on "
        f"per-session sums; p-values {CORRECTION_NAMES[CORRECTION]}-adjusted across this table."
    )


def _dropped_note(rows: list[tuple[str, dict]]) -> list[str]:
    out = []
    for label, c in rows:
        if c["dropped_a"] or c["dropped_b"]:
            label = label.rsplit(" ", 1)[0]  # one note per pair of runs, not per metric
            note = (
                f"{label}: the two runs are not on exactly the same test events; compared on the "
                f"{c['n_events']} events both have (left out: {c['dropped_a']} of the first run's, "
                f"{c['dropped_b']} of the second's)."
            )
            if note not in out:
                out.append(note)
    return out


def _empty(name: str, columns: list[str], st: Study) -> Table:
    notes = [f"No run of this table is in the study's config for dataset '{st.dataset}'."]
    return Table(name, pd.DataFrame(columns=columns), pd.DataFrame(columns=columns), notes)


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


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.1%}"


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
            comps.append((f"{setting} {metric}", c))
            mt, sdt, nt = st.summary(torch_run, metric)
            mk, sdk, nk = st.summary(keras_run, metric)
            g = c["seed_gap"]
            rows.append({
                "setting": setting, "metric": f"{metric}@{st.k}",
                "torch_run": torch_run, "keras_run": keras_run,
                "torch_mean": mt, "torch_sd": sdt, "torch_n": nt,
                "keras_mean": mk, "keras_sd": sdk, "keras_n": nk,
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
    data["p_adj"] = stats.adjust(data["p"], CORRECTION)
    data["welch_p_adj"] = stats.adjust(data["welch_p"], CORRECTION)
    verdicts = [
        stats.equivalence_verdict(
            c, margin=st.margin, alpha=st.alpha, p_adjusted=row.p_adj,
            seed_gap=c["seed_gap"], welch_p_adjusted=row.welch_p_adj,
        )
        for (_, c), row in zip(comps, data.itertuples())
    ]
    data["verdict"] = [v["verdict"] for v in verdicts]
    data["verdict_reason"] = [v["reason"] for v in verdicts]
    data["margin_band"] = [v["band"] for v in verdicts]
    disp = pd.DataFrame({
        "Setting": data["setting"],
        "Metric": [f"{METRIC_LABELS[m.split('@')[0]]}@{st.k}" for m in data["metric"]],
        "PyTorch": [_mean_sd(r.torch_mean, r.torch_sd, r.torch_n) for r in data.itertuples()],
        "Keras": [_mean_sd(r.keras_mean, r.keras_sd, r.keras_n) for r in data.itertuples()],
        "Keras - PyTorch [95% CI]": [_diff_ci(r.diff, r.rel_diff, (r.ci_low, r.ci_high))
                                     for r in data.itertuples()],
        f"p ({CORRECTION_NAMES[CORRECTION]})": data["p_adj"].map(_p),
        f"Welch p seeds ({CORRECTION_NAMES[CORRECTION]})": data["welch_p_adj"].map(_p),
        "gap > 2 sd seeds": data["gap_exceeds_seed_spread"].map(
            lambda x: "–" if x is None or (isinstance(x, float) and math.isnan(x)) else ("yes" if x else "no")),
        "Verdict": data["verdict"],
        "s/epoch PyTorch": data["torch_s_per_epoch"].map(_seconds),
        "s/epoch Keras": data["keras_s_per_epoch"].map(_seconds),
        "Keras / PyTorch time": data["s_per_epoch_ratio"].map(lambda x: "–" if math.isnan(x) else f"{x:.2f}x"),
    })
    notes = _common_notes(st, _tests_note(st, "Keras - PyTorch"), [])
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
    notes += _dropped_note(comps)
    return Table("frameworks", data, disp, notes)


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


BUILDERS = {
    "baselines": baselines_table,
    "losses": losses_table,
    "dwell": dwell_table,
    "frameworks": frameworks_table,
    "keras_port": keras_port_table,
}


# ------------------------------------------------------------------------ writing

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}", "±": r"$\pm$", "<": r"\textless{}", ">": r"\textgreater{}",
          "|": r"\textbar{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def render(table: Table) -> dict[str, str]:
    """The md, tex, csv and notes texts of a table."""
    headers = list(table.display.columns)
    rows = table.display.astype(str).values.tolist()
    md = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    tex = tabulate(rows, headers=headers, tablefmt="latex_booktabs", disable_numparse=True)
    notes_md = "\n".join(f"- {n}" for n in table.notes)
    notes_tex = "\n".join(f"\\par\\noindent {_latex_escape(n)}" for n in table.notes)
    return {
        "md": f"## {table.name}\n\n{md}\n\n{notes_md}\n",
        "tex": f"% table {table.name}\n{tex}\n\n{{\\footnotesize\n{notes_tex}\n}}\n",
        "csv": table.data.to_csv(index=False),
        "notes.txt": "\n".join(table.notes) + "\n",
    }


def write_table(table: Table, outdir) -> dict[str, Path]:
    """Write <outdir>/<name>.{md,tex,csv,notes.txt}, each atomically."""
    outdir = Path(outdir)
    paths = {}
    for ext, text in render(table).items():
        path = outdir / f"{table.name}.{ext}"
        atomic.write_text(text, path)
        paths[ext] = path
    log.info("wrote table %s to %s", table.name, outdir)
    return paths


def build_table(name: str, results_dir, config, dataset: str, study: Study | None = None) -> Table:
    """One table (numeric data, display and notes) from a results folder."""
    if name not in BUILDERS:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    st = study or Study(results_dir, config, dataset)
    return BUILDERS[name](st)


def make_table(name: str, results_dir, config, dataset: str, outdir=None) -> pd.DataFrame:
    """Build table ``name`` and write it under ``outdir`` (default results_dir/tables)."""
    table = build_table(name, results_dir, config, dataset)
    write_table(table, outdir if outdir is not None else Path(results_dir) / "tables")
    return table.data


def build_tables(results_dir, config, dataset: str) -> dict[str, pd.DataFrame]:
    """All five tables' numeric data, loading every run once."""
    st = Study(results_dir, config, dataset)
    return {name: BUILDERS[name](st).data for name in TABLES}


def write_tables(results_dir, config, dataset: str, outdir=None) -> dict[str, pd.DataFrame]:
    """Build and write all five tables; returns their numeric data."""
    st = Study(results_dir, config, dataset)
    outdir = outdir if outdir is not None else Path(results_dir) / "tables"
    out = {}
    for name in TABLES:
        table = BUILDERS[name](st)
        write_table(table, outdir)
        out[name] = table.data
    return out


__all__ = [
    "TABLES", "Study", "RunResults", "Table", "build_table", "make_table", "build_tables",
    "write_tables", "write_table", "render", "read_train_log", "repeat_share", "load_config",
    "framework_settings",
] + [f"{n}_table" for n in TABLES]
