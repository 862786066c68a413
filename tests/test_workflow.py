"""The workflow as a user runs it: config validation, the DAG, and a tiny study end to end."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in ``workdir`` (which links the repo's config/)."""
    link = workdir / "config"
    if not link.exists():
        link.symlink_to(REPO / "config")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def default_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_dry_run_shows_the_whole_study(tmp_path):
    out = snakemake(tmp_path, "-n", "-p", "--cores", "2").stdout
    for rule in ("prepare_data", "dwell_variant", "train", "train_once", "table", "figure"):
        assert f"rule {rule}:" in out
    for run in ("torch-xe", "torch-bprmax", "keras-xe", "keras-bprmax", "keras-port", "pop", "spop", "iknn", "bprmf"):
        assert f"runs/{run}/seed1/ranks.parquet" in out
    # one training job per run (all its seeds), none per seed, no job per metrics file
    assert "rule metrics:" not in out and "rule run_model:" not in out
    assert out.count("rule train:") + out.count("rule train_once:") == len(default_config()["runs"])
    assert "--seeds 1 2 3 --out results/synthetic/runs/torch-xe " in out
    assert "--seeds 1 --out results/synthetic/runs/pop " in out


@pytest.mark.parametrize(
    "override, message",
    [
        ("study:\n  seedz: [1]\n", "'seedz' was unexpected"),
        ("runs:\n  pop:\n    implementation: popp\n", "'popp' is not one of"),
        ("study:\n  runs: [no-such-run]\n", "no-such-run"),
        ("datasets:\n  x:\n    source: clicks\n", "'path' is a required property"),
        ("study:\n  equivalence_margin: -1\n", "equivalence_margin"),
        ("datasets:\n  synthetic:\n    n_sesions: 5\n", "unknown synthetic generator key(s) ['n_sesions']"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path):
    snakemake(tmp_path, "--cores", "2", "--configfile", "config/test.yaml")
    res = tmp_path / "results" / "tiny"
    manifest = json.loads((res / "data" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["events"] > 0
    from gru4rec_repro.tables import TABLES

    assert {"protocols", "iclr2016", "authors_current", "claims"} <= set(TABLES)
    for table in TABLES:
        for ext in ("md", "csv", "tex"):
            assert (res / "tables" / f"{table}.{ext}").stat().st_size > 0, table
    for fig in ("training_loss", "metric_bars", "epoch_seconds"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 1000
    # every run's metrics.json: the 2016 protocol and the random tie-break equal what its
    # rank record gives when recomputed here, event by event, from the definitions
    for metrics_path in sorted(res.glob("runs/*/seed*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        assert set(metrics) >= {"events", "conservative", "optimistic", "median", "random", "paper2016"}
        expected = _protocols_by_hand(metrics_path.parent / "ranks.parquet")
        for protocol, values in expected.items():
            for key, value in values.items():
                assert metrics[protocol][key] == pytest.approx(value, abs=1e-12), (metrics_path, protocol, key)
    # every model was ranked on the same test events
    import pandas as pd

    keys = None
    for run in ("pop", "iknn", "torch-xe", "keras-xe", "keras-port"):
        r = pd.read_parquet(res / "runs" / run / "seed1" / "ranks.parquet")
        k = sorted(zip(r.session_id, r.position))
        keys = keys or k
        assert k == keys, run
    # a second run has nothing to do
    again = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


def _protocols_by_hand(ranks_path) -> dict:
    """Recall@K / MRR@K under "paper2016" and "random", one event at a time (SPEC.md section 7).

    paper2016: rank = higher + 1, a hit only when rank < K. random: the target's rank is
    uniform over higher + 1 .. higher + ties + 1, so each possible rank has weight 1 / (ties + 1).
    """
    import pandas as pd

    r = pd.read_parquet(ranks_path)
    out = {"paper2016": {}, "random": {}}
    for k in (1, 5, 10, 20):
        hits16 = rr16 = hits_random = rr_random = 0.0
        for higher, ties in zip(r["higher"].tolist(), r["ties"].tolist()):
            rank = higher + 1
            if rank < k:
                hits16 += 1
                rr16 += 1 / rank
            for rank in range(higher + 1, min(higher + ties + 1, k) + 1):
                hits_random += 1 / (ties + 1)
                rr_random += 1 / rank / (ties + 1)
        n = len(r)
        out["paper2016"].update({f"recall@{k}": hits16 / n, f"mrr@{k}": rr16 / n})
        out["random"].update({f"recall@{k}": hits_random / n, f"mrr@{k}": rr_random / n})
    return out


@pytest.mark.parametrize(
    "configfiles",
    [[], ["config/rsc15.yaml"], ["config/audit.yaml"], ["config/test.yaml"], ["config/test.yaml", "config/audit.yaml"]],
    ids=["default", "rsc15", "audit", "test", "test+audit"],
)
def test_every_shipped_config_validates_and_plans(tmp_path, configfiles):
    """Each config file the README names passes the schema and gives a complete DAG."""
    args = ["--configfile", *configfiles] if configfiles else []
    out = snakemake(tmp_path, "-n", "--cores", "2", *args).stdout
    assert "rule train:" in out and "rule table:" in out
    if "config/audit.yaml" in configfiles:
        assert "rule train_external:" in out


# --------------------------------------------------------------------------
# the training job: every seed of a run in one process, each seed resumable


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    """The tiny study's data (config/test.yaml), made by the data step's own function."""
    from gru4rec_repro.data.sources import prepare_dataset
    from gru4rec_repro.run import read_split_file

    out = tmp_path_factory.mktemp("tiny") / "data"
    spec = {"source": "synthetic", "seed": 7, "n_sessions": 700, "n_items": 120, "n_days": 4}
    prepare_dataset("tiny", spec, out, progress=False)
    return read_split_file(out / "train_full.parquet"), read_split_file(out / "test.parquet")


def test_a_complete_seed_is_skipped_and_other_settings_run_again(tiny_split, tmp_path, monkeypatch):
    import gru4rec_repro.run as run
    from implementations.baselines import pop

    calls = []

    def counting(train, test, params, seed, ctx):
        calls.append(seed)
        return pop.run(train, test, params, seed, ctx)

    monkeypatch.setattr(run, "resolve", lambda name: counting)
    folders = run.run_seeds("pop", *tiny_split, {}, [1, 2], tmp_path, progress=False)
    assert calls == [1, 2] and folders == [tmp_path / "seed1", tmp_path / "seed2"]
    for folder in folders:
        assert {p.name for p in folder.iterdir()} >= {"ranks.parquet", "metrics.json", "run_info.json"}
    # same implementation, params, seeds and data: nothing to do
    run.run_seeds("pop", *tiny_split, {}, [1, 2], tmp_path, progress=False)
    assert calls == [1, 2]
    # a seed whose rank record is gone (Snakemake deletes a failed job's outputs) runs again
    (tmp_path / "seed2" / "ranks.parquet").unlink()
    run.run_seeds("pop", *tiny_split, {}, [1, 2], tmp_path, progress=False)
    assert calls == [1, 2, 2]
    # other params or other data: both seeds run again
    run.run_seeds("pop", *tiny_split, {"top_n": 50}, [1, 2], tmp_path, progress=False)
    assert calls == [1, 2, 2, 1, 2]
    train, test = tiny_split
    run.run_seeds("pop", train.iloc[2:], test, {"top_n": 50}, [1], tmp_path, progress=False)
    assert calls == [1, 2, 2, 1, 2, 1]


def _same_seed_results(a, b):
    import numpy as np
    import pandas as pd

    assert pd.read_parquet(a / "ranks.parquet").equals(pd.read_parquet(b / "ranks.parquet"))
    wa, wb = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    assert sorted(wa.files) == sorted(wb.files)
    for k in wa.files:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("implementation", ["gru4rec_torch", "gru4rec_keras"])
def test_seeds_sharing_a_process_give_what_each_seed_gives_alone(implementation, tiny_split, tmp_path):
    """Grouping seeds in one job must not change a result: no state leaks from seed to seed."""
    pytest.importorskip("torch" if implementation == "gru4rec_torch" else "tensorflow")
    from gru4rec_repro.run import run_seeds

    params = {"loss": "cross-entropy", "layers": [16], "batch_size": 8, "n_sample": 16,
              "dropout_p_hidden": 0.3, "n_epochs": 2}
    run_seeds(implementation, *tiny_split, params, [1, 2], tmp_path / "both", progress=False)
    run_seeds(implementation, *tiny_split, params, [2], tmp_path / "alone", progress=False)
    _same_seed_results(tmp_path / "both" / "seed2", tmp_path / "alone" / "seed2")


@pytest.mark.slow
def test_a_finished_seed_whose_outputs_were_removed_is_not_trained_again(tiny_split, tmp_path, caplog):
    """What a failed job leaves for the next try: Snakemake removes its declared outputs
    (rank records, metrics), the per-epoch checkpoints stay."""
    pytest.importorskip("torch")
    import logging

    from gru4rec_repro.run import run_seeds

    params = {"loss": "bpr-max", "layers": [16], "batch_size": 8, "n_sample": 16, "n_epochs": 2}
    run_seeds("gru4rec_torch", *tiny_split, params, [1], tmp_path / "a", progress=False)
    shutil.copytree(tmp_path / "a" / "seed1", tmp_path / "first")
    for name in ("ranks.parquet", "metrics.json"):
        (tmp_path / "a" / "seed1" / name).unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_seeds("gru4rec_torch", *tiny_split, params, [1], tmp_path / "a", progress=False)
    messages = [r.getMessage() for r in caplog.records]
    assert any("resuming after epoch 2" in m for m in messages), messages
    assert not any(m.startswith("epoch ") for m in messages), messages  # no epoch trained again
    _same_seed_results(tmp_path / "a" / "seed1", tmp_path / "first")
    assert (tmp_path / "a" / "seed1" / "metrics.json").read_text() == (tmp_path / "first" / "metrics.json").read_text()


# --------------------------------------------------------------------------
# bring-your-own split without a validation day


def write_one_day_split(folder: Path) -> tuple[Path, Path]:
    """A prepared split whose training part is one day (no validation day to cut) and a test day."""
    import numpy as np

    rng = np.random.default_rng(0)

    def sessions(first_id, n, day):
        rows = []
        for s in range(first_id, first_id + n):
            item, t = int(rng.integers(30)), day * 86400.0 + float(rng.uniform(0, 80000))
            for _ in range(int(rng.integers(2, 7))):
                rows.append(f"{s}\t{item}\t{t:.1f}\n")
                item, t = (item + int(rng.choice([1, 1, 1, 2, 7]))) % 30, t + float(rng.uniform(5, 200))
        return "SessionId\tItemId\tTime\n" + "".join(rows)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(sessions(1, 300, 0))
    (folder / "test.tsv").write_text(sessions(1000, 60, 1))
    return folder / "train.tsv", folder / "test.tsv"


@pytest.mark.slow
def test_one_day_prepared_split_runs_through_the_study(tmp_path):
    train, test = write_one_day_split(tmp_path / "mine")
    study = tmp_path / "oneday.yaml"
    study.write_text(
        f"datasets:\n  oneday:\n    source: prepared\n    train: {train}\n    test: {test}\n"
        "study:\n  datasets: [oneday]\n  runs: [pop, iknn, torch-xe, torch-dwell75-traintest]\n"
        "  seeds: [1]\n  eval_split: test\n"
    )
    snakemake(tmp_path, "--cores", "2", "--configfile", "config/test.yaml", str(study))
    res = tmp_path / "results" / "oneday"
    manifest = json.loads((res / "data" / "manifest.json").read_text())
    assert manifest["validation"]["available"] is False
    assert manifest["splits"]["train_valid"]["events"] == 0
    for table in ("baselines", "losses", "dwell", "frameworks", "keras_port"):
        assert (res / "tables" / f"{table}.md").stat().st_size > 0
    for fig in ("training_loss", "metric_bars", "epoch_seconds"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 1000
    for run in ("pop", "iknn", "torch-xe", "torch-dwell75-traintest"):
        assert json.loads((res / "runs" / run / "seed1" / "metrics.json").read_text())["events"] > 0

    # the same data evaluated on the validation split: the training job stops and says what to give
    valid = tmp_path / "valid.yaml"
    valid.write_text("study:\n  runs: [pop]\n  eval_split: valid\n")
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", "config/test.yaml", str(study), str(valid),
                     check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "oneday" / "runs" / "pop.log").read_text()
    assert "dataset 'oneday' has no validation split" in log
    assert "datasets.oneday.train_tr and datasets.oneday.train_valid" in log
