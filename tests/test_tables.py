"""The paper tables, built from a tiny hand-made results folder whose numbers are known.

The fake test set has 40 sessions (ids 100-139) with 2 predicted events each
(80 events). Every run is a constant conservative rank (higher + ties + 1)
over those events unless said otherwise, so Recall@20 and MRR@20 follow by hand.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest

from gru4rec_repro import atomic, tables
from gru4rec_repro.evaluation import metrics_from_ranks

SESSIONS = range(100, 140)


def ranks_of(rank, sessions=SESSIONS, events=2, targets=None, ties=0):
    """A rank record with the conservative rank rank(session, position) (callable or int)."""
    rows = []
    for s in sessions:
        for p in range(events):
            r = rank(s, p) if callable(rank) else rank
            t = min(ties, r - 1)
            target = targets(s, p) if targets else 1000 * s + p
            rows.append((s, p, target, r - 1 - t, t))
    return pd.DataFrame(rows, columns=["session_id", "position", "target", "higher", "ties"])


def write_run(root, run, seed, ranks, log=None):
    d = root / "runs" / run / f"seed{seed}"
    atomic.write_parquet(ranks, d / "ranks.parquet")
    atomic.write_json(metrics_from_ranks(ranks), d / "metrics.json")
    if log is not None:
        atomic.write_text("".join(json.dumps(e) + "\n" for e in log), d / "train_log.jsonl")


def epochs(seconds, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(seconds))]
    return [{"epoch": i + 1, "loss": l, "seconds": s, "events_per_s": 1.0, "threads": 1, "device": "cpu"}
            for i, (s, l) in enumerate(zip(seconds, losses))]


RUNS = {
    "pop": "pop", "iknn": "iknn", "torch-xe-2016": "gru4rec_torch", "torch-top1-2016": "gru4rec_torch",
    "torch-xe": "gru4rec_torch", "keras-xe": "gru4rec_keras",
    "torch-bprmax": "gru4rec_torch", "keras-bprmax": "gru4rec_keras",
    "torch-dwell75-train": "gru4rec_torch", "torch-dwell75-traintest": "gru4rec_torch",
    "keras-port": "gru4rec_keras", "keras-port-flaw-drop-tail": "gru4rec_keras",
}


def config(runs=RUNS, seeds=(1, 2)):
    return {"runs": {r: {"implementation": impl, "params": {}} for r, impl in runs.items()},
            "seeds": list(seeds), "study": {"equivalence_margin": 0.02, "n_boot": 200}}


def make_results(root):
    """Write the fake results folder under ``root`` (= results/<dataset>) and return it."""
    # POP: rank 1 at position 0 of the first 10 sessions, rank 50 elsewhere -> R = M = 10/80
    write_run(root, "pop", 1, ranks_of(lambda s, p: 1 if (s < 110 and p == 0) else 50),
              log=[{"epoch": 1, "loss": None, "seconds": 0.5}])
    # Item-KNN: nothing above, 4 ties -> conservative rank 5: R = 1, M = 0.2
    write_run(root, "iknn", 1, ranks_of(5, ties=4))
    # GRU4Rec 2016 xe: seed 1 rank 2, seed 2 rank 4 -> M per seed 0.5 and 0.25
    write_run(root, "torch-xe-2016", 1, ranks_of(2), epochs([1.0, 1.0]))
    write_run(root, "torch-xe-2016", 2, ranks_of(4), epochs([1.0, 1.0]))
    write_run(root, "torch-top1-2016", 1, ranks_of(3), epochs([1.0]))
    # torch-xe and keras-xe: the same records -> difference 0
    same = ranks_of(lambda s, p: 1 if s % 2 == 0 else 30)
    for seed, (ts, ks) in {1: ([2, 4], [6, 6]), 2: ([3, 3], [9, 9])}.items():
        write_run(root, "torch-xe", seed, same, epochs(ts))
        write_run(root, "keras-xe", seed, same, epochs(ks, [2.0, 1.5]))
    # bprmax: torch always first, keras never in the top 20
    for seed in (1, 2):
        write_run(root, "torch-bprmax", seed, ranks_of(1), epochs([1.0]))
        write_run(root, "keras-bprmax", seed, ranks_of(100), epochs([1.0]))
    # dwell: train-only on the original test set; train+test on a boosted one where
    # every session is [a, a, b] -> half of the targets after position 0 repeat their input
    write_run(root, "torch-dwell75-train", 1, ranks_of(2), epochs([1.0]))
    boosted = ranks_of(1, events=3, targets=lambda s, p: 7 * s if p < 2 else 7 * s + 1)
    write_run(root, "torch-dwell75-traintest", 1, boosted, epochs([1.0]))
    # Keras port: rank 10; the drop-tail flaw misses the last session and puts
    # sessions 120-138 at rank 1000
    for seed in (1, 2):
        write_run(root, "keras-port", seed, ranks_of(10), epochs([5.0]))
        flaw = ranks_of(lambda s, p: 10 if s < 120 else 1000, sessions=range(100, 139))
        write_run(root, "keras-port-flaw-drop-tail", seed, flaw, epochs([4.0]))
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results") / "tiny")


@pytest.fixture(scope="module")
def built(results):
    return tables.build_tables(results, config(), "tiny")


def row(df, **where):
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        mask &= df[k].to_numpy() == v
    assert mask.sum() == 1, where
    return df[mask].iloc[0]


def test_baselines_table_holds_paper_ours_and_difference(built):
    df = built["baselines"]
    assert list(df["method"]) == ["POP", "Item-KNN", "GRU4Rec"]  # S-POP and BPR-MF are not configured
    pop = row(df, method="POP")
    assert pop["recall_mean"] == pytest.approx(10 / 80) and pop["n_seeds"] == 1
    assert pop["paper_recall"] == 0.0050
    assert pop["recall_diff"] == pytest.approx(10 / 80 - 0.0050)
    assert math.isnan(pop["recall_sd"])
    knn = row(df, method="Item-KNN")
    assert knn["recall_mean"] == 1.0 and knn["mrr_mean"] == pytest.approx(0.2)  # conservative ties
    gru = row(df, method="GRU4Rec")
    assert gru["run"] == "torch-xe-2016" and gru["n_seeds"] == 2
    assert gru["mrr_mean"] == pytest.approx(0.375)
    assert gru["mrr_sd"] == pytest.approx(np.std([0.5, 0.25], ddof=1))
    assert gru["mrr_diff"] == pytest.approx(0.375 - 0.2375)


def test_losses_table_has_a_column_per_framework(built):
    df = built["losses"]
    assert list(df["loss"]) == ["cross-entropy", "BPR-max"]
    xe = row(df, loss="cross-entropy")
    assert xe["torch_recall_mean"] == 0.5 and xe["keras_recall_mean"] == 0.5
    assert xe["torch_recall_diff"] == pytest.approx(0.5 - 0.5781)
    bm = row(df, loss="BPR-max")
    assert bm["keras_mrr_mean"] == 0.0 and bm["torch_mrr_mean"] == 1.0


def test_frameworks_identical_runs_are_equivalent(built):
    df = built["frameworks"]
    assert list(df["setting"].unique()) == ["xe", "bprmax"]
    xe = row(df, setting="xe", metric="recall@20")
    assert xe["diff"] == 0 and (xe["ci_low"], xe["ci_high"]) == (0, 0)
    assert xe["p"] == 1 and xe["p_adj"] == 1 and xe["welch_p"] == 1
    assert xe["verdict"] == "equivalent"
    # seconds per epoch: torch seeds 3 and 3, keras 6 and 9
    assert xe["torch_s_per_epoch"] == 3 and xe["keras_s_per_epoch"] == 7.5
    assert xe["s_per_epoch_ratio"] == 2.5


def test_frameworks_large_gap_is_different(built):
    bm = row(built["frameworks"], setting="bprmax", metric="mrr@20")
    assert bm["diff"] == -1.0 and bm["rel_diff"] == -1.0
    assert bm["p_adj"] == 0 and bm["verdict"] == "different"
    assert bm["gap_exceeds_seed_spread"]


def test_dwell_table_shows_both_boostings_and_the_leak(built):
    df = built["dwell"]
    assert list(df["method"]) == ["GRU4Rec", "GRU4Rec, dwell threshold 75", "GRU4Rec with sampling"]
    d75 = row(df, method="GRU4Rec, dwell threshold 75")
    assert d75["train_mrr_mean"] == 0.5 and d75["traintest_mrr_mean"] == 1.0
    assert d75["traintest_mrr_diff"] == pytest.approx(1.0 - 0.5834)
    assert d75["train_repeat_share"] == 0.0 and d75["traintest_repeat_share"] == 0.5
    base = row(df, method="GRU4Rec")
    assert base["run_train"] == base["run_traintest"] == "torch-top1-2016"


def test_keras_port_changes_are_measured_on_common_events(built):
    df = built["keras_port"]
    assert list(df["run"]) == ["keras-port", "keras-port-flaw-drop-tail"]
    flaw = row(df, run="keras-port-flaw-drop-tail")
    assert flaw["recall_mean"] == pytest.approx(40 / 78)
    assert flaw["recall_change"] == pytest.approx(40 / 78 - 1)
    assert flaw["recall_ci_high"] < 0 and flaw["recall_p_adj"] < 0.05
    assert math.isnan(row(df, run="keras-port")["recall_change"])


def test_written_tables_carry_their_notes(results, tmp_path):
    tables.write_tables(results, config(), "tiny", tmp_path)
    for name in tables.TABLES:
        for ext in ("md", "csv", "tex", "notes.txt"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    md = (tmp_path / "frameworks.md").read_text()
    assert "| Setting" in md and "conservative tie policy" in md and "Holm" in md
    assert "not RSC15" in md and "mean ± sd" in md
    assert "\\toprule" in (tmp_path / "frameworks.tex").read_text()
    assert "leak" in (tmp_path / "dwell.md").read_text()
    csv = pd.read_csv(tmp_path / "baselines.csv")
    assert csv.loc[csv["method"] == "POP", "recall_mean"].item() == pytest.approx(0.125)


def test_paper_note_only_off_rsc15(results, tmp_path):
    tables.make_table("baselines", results, config(), "rsc15", tmp_path)
    assert "not RSC15" not in (tmp_path / "baselines.md").read_text()


def test_table_without_configured_runs_is_written_empty(results, tmp_path):
    df = tables.make_table("frameworks", results, config({"pop": "pop"}), "tiny", tmp_path)
    assert df.empty
    assert "No run of this table" in (tmp_path / "frameworks.md").read_text()


def test_configured_run_without_files_is_an_error(results, tmp_path):
    with pytest.raises(FileNotFoundError, match="spop"):
        tables.build_table("baselines", results, config({"spop": "spop"}), "tiny")
    broken = tmp_path / "broken"
    write_run(broken, "pop", 1, ranks_of(1))
    (broken / "runs" / "pop" / "seed1" / "ranks.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="ranks.parquet"):
        tables.build_table("baselines", broken, config({"pop": "pop"}), "tiny")


def test_stale_metrics_file_is_an_error(tmp_path):
    write_run(tmp_path, "pop", 1, ranks_of(1))
    atomic.write_json(metrics_from_ranks(ranks_of(50)), tmp_path / "runs/pop/seed1/metrics.json")
    with pytest.raises(ValueError, match="disagrees"):
        tables.build_table("baselines", tmp_path, config({"pop": "pop"}), "tiny")


def test_bad_train_log_names_the_line(tmp_path):
    write_run(tmp_path, "torch-xe", 1, ranks_of(1))
    (tmp_path / "runs/torch-xe/seed1/train_log.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ValueError, match="train_log.jsonl:2"):
        tables.Study(tmp_path, config({"torch-xe": "gru4rec_torch"}), "tiny").run("torch-xe")
