"""The frameworks table on hand-made rank records: every pair of PyTorch and Keras on each
backend, the backend read from the run's params.

40 test sessions (ids 100-139) of 2 predicted events each. PyTorch, Keras on TensorFlow
and Keras on torch rank every target first (Recall@20 = MRR@20 = 1); Keras on JAX ranks
it first in even sessions and 100th in odd ones (Recall@20 = MRR@20 = 0.5).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from gru4rec_repro import atomic
from gru4rec_repro.tables.common import Study
from gru4rec_repro.tables.frameworks import frameworks_table
from gru4rec_repro.evaluation import metrics_from_ranks

SESSIONS = range(100, 140)


def ranks_of(rank) -> pd.DataFrame:
    rows = [(s, p, 1000 * s + p, rank(s) - 1, 0) for s in SESSIONS for p in range(2)]
    return pd.DataFrame(rows, columns=["session_id", "position", "target", "higher", "ties"])


def write_run(root, run, ranks, seconds):
    for seed in (1, 2):
        d = root / "runs" / run / f"seed{seed}"
        atomic.write_parquet(ranks, d / "ranks.parquet")
        atomic.write_json(metrics_from_ranks(ranks), d / "metrics.json")
        log = [{"epoch": 1, "loss": 1.0, "seconds": seconds, "events_per_s": 1.0, "threads": 1, "device": "cpu"}]
        atomic.write_text("".join(json.dumps(e) + "\n" for e in log), d / "train_log.jsonl")


XE = {"loss": "cross-entropy", "final_act": "linear", "n_sample": 2048}
RUNS = {
    # names that do not say the backend: the table must read it from the params
    "torch-xe": ("gru4rec_torch", XE, lambda s: 1, 2.0),
    "keras-xe": ("gru4rec_keras", XE, lambda s: 1, 4.0),
    "keras-j-xe": ("gru4rec_keras", {**XE, "backend": "jax"}, lambda s: 1 if s % 2 == 0 else 100, 3.0),
    "keras-t-xe": ("gru4rec_keras", {**XE, "backend": "torch"}, lambda s: 1, 8.0),
    # named like the setting, but another setting: left out with a note
    "keras-odd-xe": ("gru4rec_keras", {**XE, "loss": "bpr-max"}, lambda s: 1, 1.0),
    # the tutorial's port is another model
    "keras-port-xe": ("gru4rec_keras", {"variant": "port"}, lambda s: 1, 1.0),
    # a setting with PyTorch and Keras on TensorFlow only: one pair, as before
    "torch-bprmax": ("gru4rec_torch", {"loss": "bpr-max"}, lambda s: 1, 1.0),
    "keras-bprmax": ("gru4rec_keras", {"loss": "bpr-max"}, lambda s: 1, 1.0),
}


def config(runs):
    return {"runs": {r: {"implementation": impl, "params": params} for r, (impl, params, _, _) in runs.items()},
            "seeds": [1, 2], "study": {"equivalence_margin": 0.02, "n_boot": 200}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "tiny"
    for run, (_, _, rank, seconds) in RUNS.items():
        write_run(root, run, ranks_of(rank), seconds)
    return root


@pytest.fixture(scope="module")
def table(results):
    return frameworks_table(Study(results, config(RUNS), "tiny"))


def test_every_pair_of_frameworks_in_order(table):
    df = table.data
    xe = df[df.setting == "xe"]
    pairs = list(dict.fromkeys(zip(xe.framework_a, xe.framework_b)))
    assert pairs == [("PyTorch", "Keras on TensorFlow"), ("PyTorch", "Keras on JAX"), ("PyTorch", "Keras on torch"),
                     ("Keras on TensorFlow", "Keras on JAX"), ("Keras on TensorFlow", "Keras on torch"),
                     ("Keras on JAX", "Keras on torch")]
    assert list(dict.fromkeys(zip(xe.run_a, xe.run_b)))[3] == ("keras-xe", "keras-j-xe")
    assert len(xe) == 12 and set(xe.metric) == {"recall@20", "mrr@20"}
    bprmax = df[df.setting == "bprmax"]
    assert len(bprmax) == 2 and set(zip(bprmax.run_a, bprmax.run_b)) == {("torch-bprmax", "keras-bprmax")}
    assert list(df.setting.unique()) == ["xe", "bprmax"]


def test_differences_and_verdicts_per_pair(table):
    df = table.data.set_index(["framework_a", "framework_b", "metric"])
    same = df.loc[("PyTorch", "Keras on torch", "recall@20")]
    assert same["diff"] == 0 and same["verdict"] == "equivalent"
    jax = df.loc[("Keras on TensorFlow", "Keras on JAX", "recall@20")]
    assert jax["diff"] == pytest.approx(-0.5) and jax["rel_diff"] == pytest.approx(-0.5)
    assert jax["verdict"] == "different" and jax["p_adj"] < 0.05
    # B - A relative to A: JAX (0.5) is A against Keras on torch (1.0)
    back = df.loc[("Keras on JAX", "Keras on torch", "mrr@20")]
    assert back["diff"] == pytest.approx(0.5) and back["rel_diff"] == pytest.approx(1.0)
    assert (back["mean_a"], back["mean_b"]) == (pytest.approx(0.5), 1.0)
    # seconds per epoch of each side and their ratio B / A
    t = df.loc[("PyTorch", "Keras on torch", "mrr@20")]
    assert (t["s_per_epoch_a"], t["s_per_epoch_b"], t["s_per_epoch_ratio"]) == (2.0, 8.0, 4.0)


def test_runs_of_another_setting_or_model_are_left_out(table):
    runs = set(table.data.run_a) | set(table.data.run_b)
    assert "keras-odd-xe" not in runs and "keras-port-xe" not in runs
    assert any(n.startswith("keras-odd-xe is not compared with torch-xe: its settings differ (loss")
               for n in table.notes)


def test_display_names_the_frameworks(table):
    disp = table.display
    assert list(disp.columns[:4]) == ["Setting", "Metric", "A", "B"]
    assert "Keras on JAX" in set(disp["B"]) and table.label_columns == 4


def test_unknown_backend_is_an_error_naming_the_run(results):
    runs = {**RUNS, "keras-t-xe": ("gru4rec_keras", {**XE, "backend": "mxnet"}, None, None)}
    with pytest.raises(ValueError, match="run 'keras-t-xe': backend 'mxnet'"):
        frameworks_table(Study(results, config(runs), "tiny"))
