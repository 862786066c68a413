"""What every table shares: the study's results (:class:`Study`, :class:`RunResults`),
the :class:`Table` a builder returns, and the formatting helpers.

Input of a :class:`Study`: ``results_dir`` = ``results/<dataset>`` holding
``runs/<run>/seed<seed>/{ranks.parquet, metrics.json, train_log.jsonl}``; the
study config as a dict (``runs:`` name -> {implementation, params, ...},
``seeds:``, ``study:`` with ``equivalence_margin`` and ``n_boot``; ``seeds``
and ``runs`` may also sit under ``study:``); the dataset name (the paper
columns are RSC15 numbers and only expected to match on ``rsc15``).

A configured run whose files are missing is an error naming the file. A run
uses whichever of the config's seeds have a folder (deterministic baselines
run one seed). ``train_log.jsonl`` is optional (seconds per epoch are then
missing).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper, stats
from ..contract import validate_ranks
from ..evaluation import DEFAULT_POLICY, per_event

log = logging.getLogger(__name__)

METRIC_LABELS = {"recall": "R", "mrr": "MRR"}
FRAMEWORKS = {"torch": "PyTorch", "keras": "Keras"}
CORRECTION = "holm"
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
PAPER_DATASET = "rsc15"


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


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.1%}"


