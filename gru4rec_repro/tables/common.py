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

from .. import gru4rec_params, paper, stats
from ..contract import REGISTRY, run_params, validate_ranks
from ..evaluation import DEFAULT_POLICY, POLICIES, per_event

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


def _read_json_object(path: Path, what: str = "a JSON object") -> dict:
    """A JSON file holding one object; an error naming the file otherwise."""
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected {what}")
    return d


def _check_metrics_file(path: Path, ranks: pd.DataFrame) -> None:
    """metrics.json must agree with ranks.parquet (catches stale files).

    Checked at cut-off 20 for every protocol the file holds.
    """
    saved = _read_json_object(path, "a JSON object of protocols")
    for policy in POLICIES:
        value = (saved.get(policy) or {}).get("recall@20")
        if value is None:
            continue
        ours = float(per_event(ranks, 20, policy)["hit"].mean()) if len(ranks) else 0.0
        if abs(ours - float(value)) > 1e-9:
            raise ValueError(
                f"{path}: {policy} recall@20 {value} disagrees with ranks.parquet next to it "
                f"({ours}); a stale file? Re-run the metrics step."
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
        self.study_config = study
        self.dataset = dataset
        self.margin = float(study.get("equivalence_margin", stats.DEFAULT_MARGIN))
        self.n_boot = int(study.get("n_boot", stats.DEFAULT_N_BOOT))
        self.alpha = float(study.get("alpha", stats.DEFAULT_ALPHA))
        self.k = paper.PAPER_CUTOFF
        self.policy = DEFAULT_POLICY
        self.progress = progress
        self._runs: dict[str, RunResults] = {}
        self._cache: dict = {}

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
        for s, r in zip(seeds[1:], ranks[1:]):
            if not stats.same_events(ranks[0], r):
                raise ValueError(
                    f"{run_dir}: run {name!r} seed {s} is not on the same test events as seed "
                    f"{seeds[0]} ({len(r)} vs {len(ranks[0])} events); seeds are averaged per event")
        log.info("loaded %s: seeds %s, %d events", name, seeds, len(ranks[0]))
        return RunResults(name, seeds, ranks, logs)

    def summary(self, run: str, metric: str, policy: str | None = None,
                k: int | None = None) -> tuple[float, float, int]:
        """Mean, sd and number of the run's per-seed metric (default: conservative, @20)."""
        return stats.seed_summary(self.run(run).per_seed(metric, k or self.k, policy or self.policy))

    def ci(self, run: str, metric: str, policy: str | None = None, k: int | None = None) -> dict:
        """:func:`gru4rec_repro.stats.run_ci` of the run (cached)."""
        key = ("ci", run, metric, policy or self.policy, k or self.k)
        if key not in self._cache:
            self._cache[key] = stats.run_ci(self.run(run).ranks, metric, k or self.k, policy or self.policy)
        return self._cache[key]

    def same_events(self, run_a: str, run_b: str) -> bool:
        """Whether two runs were scored on the same test events (first seeds compared)."""
        return stats.same_events(self.run(run_a).ranks[0], self.run(run_b).ranks[0])

    def compare(self, run_a: str, run_b: str, metric: str, seed: int = 0,
                policy: str | None = None, unpaired_ok: bool = False,
                policy_b: str | None = None) -> dict:
        """Comparison a - b (seeds averaged per event) plus the seed gap test.

        Paired over the same test events; records on different events are an
        error naming both runs, unless ``unpaired_ok`` (a comparison whose test
        sets legitimately differ), which then runs
        :func:`gru4rec_repro.stats.unpaired_comparison` (result ``paired`` False).
        ``policy_b``: b's protocol when it differs from a's (default ``policy``).
        """
        a, b = self.run(run_a), self.run(run_b)
        policy = policy or self.policy
        policy_b = policy_b or policy
        if unpaired_ok and not self.same_events(run_a, run_b):
            c = stats.unpaired_comparison(a.ranks, b.ranks, metric, k=self.k, policy=policy,
                                          n_boot=self.n_boot, seed=seed, policy_b=policy_b)
        else:
            c = stats.paired_comparison(
                a.ranks, b.ranks, metric, k=self.k, policy=policy,
                n_boot=self.n_boot, seed=seed, unit="session", names=(run_a, run_b),
                policy_b=policy_b,
            )
        c["seed_gap"] = stats.seed_gap_test(
            a.per_seed(metric, self.k, policy), b.per_seed(metric, self.k, policy_b)
        )
        return c

    def params(self, run: str) -> dict:
        """The run's params as its implementation gets them
        (:func:`gru4rec_repro.contract.run_params`: ``study.epochs`` applied)."""
        return run_params({"runs": self.runs_config, "study": self.study_config}, run)

    def resolved(self, run: str) -> dict:
        """The settings the run trains with: GRU4Rec runs through
        :func:`gru4rec_repro.gru4rec_params.resolve` (official defaults, ``params_file``,
        ``ps``; an implementation's own keys kept as given), the baselines over their
        module's ``DEFAULTS``, anything else its params as given (cached)."""
        key = ("resolved", run)
        if key not in self._cache:
            self._cache[key] = resolved_params(self.runs_config[run].get("implementation", ""),
                                               self.params(run), run)
        return self._cache[key]

    def epochs(self, run: str) -> int | None:
        """Epochs the run trains (its resolved ``n_epochs``); None for a model without epochs."""
        n = self.resolved(run).get("n_epochs")
        return None if n is None else int(n)

    def seed_json(self, run: str, filename: str) -> list[dict]:
        """The JSON object ``filename`` of each of the run's seeds that has one, in seed order
        (empty list when none)."""
        out = []
        for s in self.run(run).seeds:
            path = self.results_dir / "runs" / run / f"seed{s}" / filename
            if path.is_file():
                out.append(_read_json_object(path))
        return out

    def diagnostics(self, run: str) -> list[dict]:
        """The run's ``diagnostics.json`` of each seed that has one (empty list when none)."""
        return self.seed_json(run, "diagnostics.json")


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


# ------------------------------------------------------------------- settings

#: Our GRU4Rec implementations (their params go through gru4rec_params.resolve).
GRU4REC_IMPLEMENTATIONS = ("gru4rec_torch", "gru4rec_keras")


def implementation_defaults(implementation: str) -> dict:
    """The ``DEFAULTS`` dict literal of a registered implementation's module, read from its
    source without importing it (BPR-MF's module imports torch); {} when it has none."""
    import ast
    import importlib.util

    module = REGISTRY[implementation].split(":")[0]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"implementation {implementation!r}: module {module} not found")
    tree = ast.parse(Path(spec.origin).read_text(), filename=spec.origin)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "DEFAULTS"):
            try:
                return dict(ast.literal_eval(node.value))
            except ValueError as e:
                raise ValueError(f"{spec.origin}: DEFAULTS is not a literal ({e})") from None
    return {}


def resolved_params(implementation: str, params: dict, run: str = "run") -> dict:
    """The settings a run trains with (see :meth:`Study.resolved`); a bad setting is an error
    naming the run."""
    params = dict(params or {})
    if implementation in GRU4REC_IMPLEMENTATIONS and params.get("variant", "gru4rec") == "gru4rec":
        known = set(gru4rec_params.known_keys())
        try:
            p = gru4rec_params.resolve({k: v for k, v in params.items() if k in known})
        except (ValueError, OSError) as e:
            raise ValueError(f"config: run {run!r}: {e}") from None
        return {**p, **{k: v for k, v in params.items() if k not in known}}
    if implementation in REGISTRY and implementation not in GRU4REC_IMPLEMENTATIONS:
        return {**implementation_defaults(implementation), **params}
    return params


def _act_text(p: dict) -> str:
    act = p.get("final_act") or "linear"
    if act == "elu":
        act = f"ELU({p.get('elu_param', 0):g})"
    if p.get("loss") == "cross-entropy":
        return "softmax output" if act == "linear" else f"{act} then softmax"
    return f"{act} output"


def setting_text(p: dict) -> str:
    """A run's resolved settings in words: for GRU4Rec the loss and output, layers, input,
    batch, samples, dropout, learning rate, momentum, session order and epochs; for any
    other model its parameters."""
    if "loss" not in p or "layers" not in p:
        return ", ".join(f"{k} {v}" for k, v in p.items() if k != "chunk") or "no parameters"
    if p["embedding"]:
        inp = f"embedding {p['embedding']}"
    else:
        inp = "constrained embedding" if p["constrained_embedding"] else "one-hot input"
    samples = (f"{p['n_sample']} extra samples (sample_alpha {p['sample_alpha']:g})" if p["n_sample"]
               else "no extra samples")
    if p["loss"] == "cross-entropy" and p["logq"]:
        samples += f", logq {p['logq']:g}"
    parts = [f"{p['loss']}, {_act_text(p)}", "x".join(map(str, p["layers"])) + " units", inp,
             f"batch {p['batch_size']}", samples,
             f"dropout {p['dropout_p_embed']:g}/{p['dropout_p_hidden']:g}",
             f"lr {p['learning_rate']:g}", f"momentum {p['momentum']:g}"]
    if p["loss"] == "bpr-max":
        parts.append(f"bpreg {p['bpreg']:g}")
    parts.append("time order" if p["time_sort"] else "SessionId order")
    parts.append(f"{p['n_epochs']} epoch" + ("" if p["n_epochs"] == 1 else "s"))
    return ", ".join(parts)


def short_setting_text(p: dict) -> str:
    """A GRU4Rec run's loss and output, batch and session order (the settings ICLR 2016's
    rows differ in); '–' for any other model."""
    if "loss" not in p or "layers" not in p:
        return "–"
    return (f"{p['loss']}, {_act_text(p)}, batch {p['batch_size']}, "
            + ("time order" if p["time_sort"] else "SessionId order"))


def differences(published: dict, ours: dict) -> list[tuple[str, object, object]]:
    """(key, ours, published) for each published parameter the run sets otherwise (a key the
    run does not have counts as different)."""
    out = []
    for key, pub in published.items():
        mine = ours.get(key, "not set")
        same = (list(mine) == list(pub) if isinstance(pub, (list, tuple)) and isinstance(mine, (list, tuple))
                else mine == pub)
        if not same:
            out.append((key, mine, pub))
    return out


def differences_text(diff: list[tuple[str, object, object]]) -> str:
    return ", ".join(f"{k} {ours} (published {pub})" for k, ours, pub in diff) or "none"


def run_setting_cells(st: "Study", run: str, pub: paper.Published | None) -> dict:
    """The CSV columns of a run's settings: n_epochs, setting (:func:`setting_text`) and
    differs_from_published (:func:`differences` against ``pub.params``)."""
    p = st.resolved(run)
    diff = differences(pub.params, p) if pub is not None else []
    return {"n_epochs": st.epochs(run), "setting": setting_text(p),
            "differs_from_published": differences_text(diff)}


def _epochs_text(n) -> str:
    return "–" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n))


def settings_note(st: "Study", rows: list[dict], what: str = "run") -> str:
    """One note: each row's run with its resolved setting and what differs from the published
    setting (``rows``: data rows with run, n_epochs, setting, differs_from_published)."""
    seen: dict[str, str] = {}
    for d in rows:
        text = f"{d['run']}: {d['setting']}; differs from the published setting: {d['differs_from_published']}"
        if d.get("row") or d.get("method"):
            text = f"{d.get('row') or d.get('method')} ({text})"
        seen.setdefault(text, text)
    return (f"Settings each {what} trains with (its resolved parameters, study.epochs applied) and "
            "every published parameter it sets otherwise: " + "; ".join(seen) + ".")


# --------------------------------------------------------------------- formatting

def _num(x: float, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mean_sd(mean: float, sd: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "–"
    if n == 1 or math.isnan(sd):
        return f"{mean:.4f} (n=1)"
    return f"{mean:.4f} ± {sd:.4f} (n={n})"


def _diff_ci(diff: float, rel: float, ci: tuple[float, float]) -> str:
    rel_txt = "" if math.isnan(rel) else f" ({rel:+.1%})"
    return f"{diff:+.4f}{rel_txt} [{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<1e-300" if p == 0 else f"{p:.2g}"


def _seconds(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3g}"


def _ratio(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2f}x"


def _yes_no(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "yes" if x else "no"


# ------------------------------------------------------------------------- tables

@dataclass
class Table:
    """A table: numeric data (the CSV), its formatted view (md / tex), notes and a caption.

    ``caption``: one sentence for the LaTeX caption (default: the table's name).
    ``label_columns``: how many leading display columns are labels (left-aligned
    in LaTeX); the others are right-aligned numbers.
    """

    name: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str]
    caption: str = ""
    label_columns: int = 1


#: |relative difference| at or below which ours is "the same level" as the published value
#: (the authors' own yardstick, SPEC.md section 9).
SAME_LEVEL = 0.05
#: Relative differences are printed only against published values at least this large.
MIN_RELATIVE_BASE = 0.01
#: Short names of the protocols for column headers.
POLICY_SHORT = {
    "conservative": "conservative", "optimistic": "optimistic", "median": "median",
    "random": "random ties", "paper2016": "2016 cut", "paper2016_random": "2016 cut, random ties",
}


def protocol_label(pub: paper.Published) -> str:
    """The protocol of a published number, short (for a table cell)."""
    if pub.protocol == paper.PROTOCOL_TUTORIAL:
        return "tutorial as printed"
    if pub.policy == "paper2016":
        return "2016-17 (rank<20)"
    if pub.policy == "conservative":
        return "2018+ conservative"
    return POLICY_SHORT.get(pub.policy, pub.policy)


def _ci_text(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def relative_difference(ours: float, ref: float) -> float:
    """(ours - ref) / ref, NaN when ref < MIN_RELATIVE_BASE (or missing)."""
    if ref is None or math.isnan(ref) or ref < MIN_RELATIVE_BASE or math.isnan(ours):
        return float("nan")
    return (ours - ref) / ref


def _rel_text(rel: float) -> str:
    if math.isnan(rel):
        return "–"
    return f"{rel:+.1%}" + (" ≈" if abs(rel) <= SAME_LEVEL else "")


def published_cells(st: Study, run: str, pub: paper.Published, metric: str,
                    also: tuple = (), conservative: bool = True) -> tuple[dict, dict]:
    """The per-row columns of a published number next to ours (data dict, display dict).

    Data keys (``m`` = metric): paper_m, paper_protocol, m_ours (mean over seeds under the
    paper's protocol), m_ours_sd, m_ci_low / m_ci_high (95%, :meth:`Study.ci`), m_ours_<p> for
    each protocol in ``also``, m_ours_conservative, m_rel_diff (NaN when the paper's value
    < 0.01), m_same_level (|rel diff| <= 5%), n_seeds. Display: paper, ours under the
    paper's protocol with its CI, ours under each ``also`` protocol, ours conservative
    (when ``conservative``), relative difference with "≈" for the same level.
    """
    lab = f"{METRIC_LABELS[metric]}@{st.k}"
    ref = pub.get(metric, st.k)
    d = {f"paper_{metric}": ref}
    v = {f"{lab} paper": _num(ref)}
    mean, sd, n = st.summary(run, metric, pub.policy)
    ci = st.ci(run, metric, pub.policy)
    low, high = ci["low"], ci["high"]
    rel = relative_difference(mean, ref)
    d.update({f"{metric}_ours": mean, f"{metric}_ours_sd": sd, f"{metric}_ci_low": low,
              f"{metric}_ci_high": high, "n_seeds": n})
    v[f"{lab} ours, paper's protocol [95% CI]"] = _ci_text(mean, low, high)
    for alt in also:
        m_alt = st.summary(run, metric, alt)[0]
        d[f"{metric}_ours_{alt}"] = m_alt
        v[f"{lab} ours, {POLICY_SHORT[alt]}"] = _num(m_alt)
    m_cons = st.summary(run, metric, "conservative")[0]
    d[f"{metric}_ours_conservative"] = m_cons
    if conservative:
        v[f"{lab} ours, conservative"] = _num(m_cons)
    d[f"{metric}_rel_diff"] = rel
    d[f"{metric}_same_level"] = bool(not math.isnan(rel) and abs(rel) <= SAME_LEVEL)
    v[f"{lab} rel. diff"] = _rel_text(rel)
    return d, v


def comparison_notes(st: Study, pubs: dict[str, paper.Published], runs: list[str],
                     conservative: bool = True, data: list[dict] | None = None) -> list[str]:
    """Notes of a table that puts published numbers next to ours: sources, protocols, CIs and,
    with ``data`` (rows holding :func:`run_setting_cells`), each run's settings
    (:func:`settings_note`).

    ``conservative``: whether the table shows the 'ours, conservative' column
    (:func:`published_cells`); the notes describe it only then.
    """
    notes = [
        "Paper: the published value with its protocol (column Protocol). 'Ours, paper's protocol' "
        "is our result measured the way the published number was (2016-17 cut: optimistic rank "
        f"= higher + 1, a hit only when rank < {st.k}; 2018+: conservative ties, rank <= {st.k})"
        + ("; 'ours, conservative' is today's conservative protocol (rank = higher + ties + 1 <= "
           f"{st.k}), so the gap the protocol alone makes is visible." if conservative else "."),
        f"Rel. diff = (ours under the paper's protocol - paper) / paper, printed only when the "
        f"paper's value is >= {MIN_RELATIVE_BASE}; '≈' marks |rel. diff| <= {SAME_LEVEL:.0%}, "
        "the level the original authors call 'the same'.",
        ci_note(st, runs),
        "Sources: " + "; ".join(f"{', '.join(rows)}: {cite}" for cite, rows in _by_source(pubs).items())
        + ".",
    ]
    if data:
        notes.append(settings_note(st, data))
    if not st.is_paper_data:
        notes.append(
            f"Dataset '{st.dataset}' is not RSC15: the paper columns are RSC15 numbers, shown for "
            "layout only and not expected to match."
        )
    return notes


def _by_source(pubs: dict[str, paper.Published]) -> dict[str, list[str]]:
    """Citation text -> the rows citing it (rows sharing a published number are listed once)."""
    out: dict[str, list[str]] = {}
    for row, pub in pubs.items():
        out.setdefault(pub.cite(), []).append(row)
    return out


def ci_note(st: Study, runs: list[str]) -> str:
    """What the 95% CI of ours covers, naming the one-seed runs."""
    one = [r for r in dict.fromkeys(runs) if r and len(st.run(r).seeds) == 1]
    text = ("95% CI of ours: mean over seeds +- sqrt((1.96 SE_sessions)^2 + (t(n-1) sd_seeds / "
            "sqrt(n))^2), n the number of seeds, covering test sessions and seeds together "
            "(SE_sessions: linearisation SE of the seed-averaged metric over test sessions; t(n-1): "
            "Student's 97.5% quantile, 4.30 for 3 seeds)")
    if one:
        text += f"; runs with one seed ({', '.join(one)}): test sessions only"
    return text + "."


def _common_notes(st: Study, tests: str, seeds: str) -> list[str]:
    """The first notes of a table comparing our runs with each other (no paper columns):
    the protocol, what the seed columns show (``seeds``) and the tests (``tests``)."""
    return [
        f"Recall@{st.k} and MRR@{st.k} over all predicted test events, conservative tie "
        "policy (rank = items scoring higher + items tying + 1).",
        seeds,
        tests,
    ]


def add_verdicts(st: Study, data: pd.DataFrame, comps: list[dict], band: bool = False) -> None:
    """Adjust the table's p and Welch p (columns p_adj, welch_p_adj) and add the equivalence
    verdict of each comparison in ``comps`` (one per row of ``data``): columns verdict,
    verdict_reason and, with ``band``, margin_band."""
    data["p_adj"] = stats.adjust(data["p"], CORRECTION)
    data["welch_p_adj"] = stats.adjust(data["welch_p"], CORRECTION)
    verdicts = [
        stats.equivalence_verdict(
            c, margin=st.margin, alpha=st.alpha, p_adjusted=row.p_adj,
            seed_gap=c["seed_gap"], welch_p_adjusted=row.welch_p_adj,
        )
        for c, row in zip(comps, data.itertuples())
    ]
    data["verdict"] = [v["verdict"] for v in verdicts]
    data["verdict_reason"] = [v["reason"] for v in verdicts]
    if band:
        data["margin_band"] = [v["band"] for v in verdicts]


def _tests_note(st: Study, what: str) -> str:
    return (
        f"{what}: paired over the same test events (seeds averaged per event first); 95% CI by "
        f"paired bootstrap over test sessions (B = {st.n_boot}); p from a paired t-test on "
        f"per-session sums; p-values {CORRECTION_NAMES[CORRECTION]}-adjusted across this table."
    )


def _unpaired_note(rows: list[tuple[str, dict]], why: str) -> list[str]:
    """One note per pair of runs compared unpaired, with the event counts of each side."""
    out = []
    for label, c in rows:
        if c.get("paired", True):
            continue
        label = label.rsplit(" ", 1)[0]
        note = (f"{label}: UNPAIRED ({why}; {c['n_events_a']} vs {c['n_events_b']} test events): "
                "95% CI by independent bootstrap of each side's sessions, p from a z-test with the "
                "two sides' linearisation SEs.")
        if note not in out:
            out.append(note)
    return out


def _empty(name: str, columns: list[str], st: Study) -> Table:
    notes = [f"No run of this table is in the study's config for dataset '{st.dataset}'."]
    return Table(name, pd.DataFrame(columns=columns), pd.DataFrame(columns=columns), notes)


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.1%}"


def published_rows(st: Study, table: str, rows, also: tuple = (), conservative: bool = True,
                   extra=None, setting_column: bool = False) -> tuple[list[dict], list[dict], dict, list[str]]:
    """Rows of a table comparing published numbers with ours.

    ``rows``: (label, run, key of :func:`gru4rec_repro.paper.published` in ``table``);
    rows whose run is not in the config are skipped. Every row carries the run's settings
    (:func:`run_setting_cells`; display column Epochs, and with ``setting_column`` the
    loss and output, batch and session order, :func:`short_setting_text`). ``extra(label, run, key, pub) -> (data, display)`` adds columns after the
    published cells (``pub``: the row's Published). Returns (data rows, display rows,
    {label: Published}, runs).
    """
    data, disp, pubs, runs = [], [], {}, []
    for label, run, key in rows:
        if not st.has(run):
            continue
        pub = paper.published(table, key)
        if pub is None:
            raise KeyError(f"gru4rec_repro/paper.py: no published value for ({table!r}, {key!r})")
        pubs[label] = pub
        runs.append(run)
        d = {"row": label, "run": run, "paper_protocol": pub.policy, **run_setting_cells(st, run, pub)}
        v = {"Row": label, "Run": run, "Protocol": protocol_label(pub), "Epochs": _epochs_text(d["n_epochs"])}
        if setting_column:
            v["Setting (ours)"] = short_setting_text(st.resolved(run))
        for metric in METRIC_LABELS:
            dd, vv = published_cells(st, run, pub, metric, also=also, conservative=conservative)
            d.update(dd)
            v.update(vv)
        if extra is not None:
            dd, vv = extra(label, run, key, pub)
            d.update(dd)
            v.update(vv)
        data.append(d)
        disp.append(v)
    return data, disp, pubs, runs
