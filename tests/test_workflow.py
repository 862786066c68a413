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
    for table in ("baselines", "losses", "dwell", "frameworks", "keras_port"):
        for ext in ("md", "csv", "tex"):
            assert (res / "tables" / f"{table}.{ext}").stat().st_size > 0
    for fig in ("training_loss", "metric_bars", "epoch_seconds"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 1000
    metrics = json.loads((res / "runs" / "torch-xe" / "seed1" / "metrics.json").read_text())
    assert set(metrics) >= {"events", "conservative", "optimistic", "median"}
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
