"""Smoke tests of benchmarks/bench_vs_authors.py (no timing asserted, no authors' code needed)."""
import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_vs_authors as bva  # noqa: E402
from rsc15_like import SETTINGS, synthetic_sessions  # noqa: E402

#: the fields of a worker's result that compare() and summary() read
RESULT_FIELDS = {"events_per_s", "mbatches_per_s", "seconds", "loss", "events", "cpu_seconds", "seeds"}


def _result(program, setting, cpu_rate, wall_rate, items=3000):
    return {"program": program, "setting": setting, "items": items,
            "events_per_cpu_s": cpu_rate, "events_per_s": wall_rate}


def test_keras_becomes_one_program_per_backend():
    assert bva.expand(["authors", "torch", "keras"], ["tensorflow", "jax"]) == \
        ["authors", "torch", "keras-tensorflow", "keras-jax"]
    assert [bva.family(p) for p in ("authors", "torch", "keras-jax")] == ["authors", "torch", "keras"]


def test_summary_ratios_and_goal_marks():
    results = [_result("authors", "xe", 1000, 900), _result("authors", "xe", 1200, 1000),
               _result("authors", "xe", 800, 800),
               _result("torch", "xe", 2500, 2000), _result("torch", "xe", 2400, 2100),
               _result("torch", "xe", 9000, 9000),
               _result("keras-jax", "xe", 1400, 1500), _result("keras-jax", "xe", 1400, 1500),
               _result("keras-jax", "xe", 1400, 1500)]
    table = bva.summary(results)
    row = [ln for ln in table.splitlines() if "| xe |" in ln][0]
    # medians: authors 1000 / 900, torch 2500 / 2100, keras-jax 1400 / 1500
    assert "| 1,000 |" in row
    assert "2,500 (2.50x, wall 2.33x)" in row  # at least 2x: no mark
    assert "1,400 (1.40x, wall 1.67x below goal)" in row  # under 1.5x for Keras
    assert "(1 cell(s) below)" in table


def test_sessions_must_match_the_catalogues():
    with pytest.raises(SystemExit):
        bva.main(["--programs", "torch", "--items", "3000", "37000", "--sessions", "10", "20", "30"])


def test_torch_worker_one_seed_and_seeds_together(tmp_path):
    """The torch worker in process on tiny data; S seeds together count S seeds' events."""
    df = synthetic_sessions(300, 60, seed=0)
    path = tmp_path / "train.tsv"
    df.to_csv(path, sep="\t", index=False)
    params = {**SETTINGS["bprmax"], "n_sample": 16}
    one = bva.run_torch(str(path), params, "cpu", 1)
    assert one["seeds"] == 1 and one["events"] > 0 and one["cpu_seconds"] > 0
    three = bva.run_torch(str(path), params, "cpu", 1, seeds=(1, 2, 3))
    assert three["seeds"] == 3 and three["events"] == 3 * one["events"]
    assert set(three) == set(one) == RESULT_FIELDS


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow")),
                    reason="needs Keras and TensorFlow")
def test_keras_worker_two_seeds_together(tmp_path):
    """The Keras worker on TensorFlow, in its own process as the benchmark runs it: 2 seeds
    trained together in one epoch, both seeds' events counted, the fields the report reads."""
    df = synthetic_sessions(300, 60, seed=0)
    path = tmp_path / "train.tsv"
    df.to_csv(path, sep="\t", index=False)
    transitions = len(df) - df["SessionId"].nunique()  # one seed's events (n_sample > 0: every lane steps)
    args = SimpleNamespace(threads=1, device="cpu", seeds=2)
    two = bva.spawn("keras-tensorflow", "bprmax", {**SETTINGS["bprmax"], "n_sample": 16}, str(path), args)
    assert set(two) == RESULT_FIELDS
    assert two["seeds"] == 2 and two["events"] == 2 * transitions
    assert two["events_per_s"] == pytest.approx(two["events"] / two["seconds"])
    assert two["cpu_seconds"] > 0 and math.isfinite(two["loss"]) and two["loss"] > 0


def test_seeds_report_says_together_against_sequential_runs():
    results = [{**_result(p, "xe", 1000, 1000), "seeds": 5} for p in ("authors", "torch", "keras-tensorflow")]
    table = bva.summary(results)
    assert ("each cell: the events of 5 seeds; authors: 5 sequential runs of the authors' code, "
            "torch: 5 seeds together, keras-tensorflow: 5 seeds together") in table
    assert "seeds together" not in bva.summary([_result("authors", "xe", 1, 1), _result("keras-jax", "xe", 1, 1)])
