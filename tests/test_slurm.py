"""The study on a real SLURM cluster, through profiles/slurm.

tools/slurm-cluster.sh brings up a single-node SLURM cluster on this machine
(Debian's packages, installed with apt-get; needs root). Then:

* the tiny study (config/test.yaml, as tests/test_workflow.py runs it) through
  ``--workflow-profile profiles/slurm`` gives the same rank records and metrics
  as the same study run locally (deterministic baselines and GRU4Rec with the
  same seeds on the same CPU: equal, not close);
* a training job cancelled with ``scancel`` after its first epoch, run again,
  resumes from its checkpoint and ends with the weights and rank record of an
  uninterrupted run with the same seed.

Every Snakemake run is under ``timeout``, so a hang fails the test instead of CI.
"""
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tools" / "slurm-cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")

pytestmark = pytest.mark.slow
#: Seconds a tiny-study run may take before `timeout` ends it (measured: about 3 minutes
#: through SLURM on a 2-core machine shared with other work; far less when quiet).
STUDY_TIMEOUT = 900


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "ok installed" in out.stdout


def skip_reason() -> str | None:
    """Why this machine cannot run a SLURM cluster (None: it can)."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -r requirements.txt)"
    if not sys.platform.startswith("linux") or shutil.which("dpkg-query") is None:
        return "the single-node SLURM cluster needs a Debian-like Linux (dpkg, apt-get)"
    if os.geteuid() != 0:
        return "tools/slurm-cluster.sh needs root (it installs packages and runs the SLURM daemons)"
    if shutil.which("apt-get") is None and not all(_installed(p) for p in PACKAGES):
        return f"no apt-get to install {', '.join(PACKAGES)}"
    return None


def cluster_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["timeout", str(timeout), "bash", str(CLUSTER), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def cluster():
    """A running single-node cluster; stopped afterwards if this fixture started it."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    status = cluster_script("status", timeout=60).stdout
    was_up = "slurmctld: running" in status and "slurmd: running" in status
    up = cluster_script("up")
    assert up.returncode == 0, f"tools/slurm-cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
    yield
    if not was_up:
        down = cluster_script("down", timeout=120)
        assert down.returncode == 0, f"tools/slurm-cluster.sh down failed:\n{down.stdout}\n{down.stderr}"


def snakemake_cmd(workdir: Path, *args: str, timeout: int) -> list[str]:
    link = workdir / "config"
    workdir.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(REPO / "config")
    return ["timeout", "-k", "20", str(timeout), sys.executable, "-m", "snakemake",
            "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def snakemake(workdir: Path, *args: str, timeout: int, check: bool = True) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, *args, timeout=timeout)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        what = "timed out" if proc.returncode == 124 else f"failed (exit {proc.returncode})"
        raise AssertionError(f"{' '.join(cmd)} {what}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def slurm_job_ids(text: str) -> list[str]:
    """The SLURM job ids a Snakemake run reports having submitted."""
    return [line.rsplit(" ", 1)[-1].strip(".") for line in text.splitlines() if "SLURM jobid" in line]


def rank_records(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.glob("results/*/runs/*/seed*/ranks.parquet"))}


def test_tiny_study_on_slurm_equals_local_run(cluster, tmp_path):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    # the local run goes on next to the cluster run (it mostly waits for status checks)
    local_log = tmp_path / "local.log"
    with open(local_log, "w") as console:
        local_run = subprocess.Popen(snakemake_cmd(local, "--cores", "2", "--configfile", "config/test.yaml",
                                                   timeout=STUDY_TIMEOUT),
                                     cwd=local, stdout=console, stderr=subprocess.STDOUT)
        proc = snakemake(slurm, "--workflow-profile", str(PROFILE), "--configfile", "config/test.yaml",
                         timeout=STUDY_TIMEOUT, check=False)
        local_run.wait()
    assert local_run.returncode == 0, f"the local run failed:\n{local_log.read_text()[-4000:]}"
    assert proc.returncode == 0, f"the SLURM run failed:\n{(proc.stdout + proc.stderr)[-6000:]}"
    log = proc.stdout + proc.stderr
    # every job but `all` went through sbatch (the workflow has no local rules)
    steps = int(re.search(r"(\d+) of \1 steps \(100%\) done", log).group(1))
    assert len(set(slurm_job_ids(log))) == steps - 1, log[-3000:]
    assert "Falling back to 'sacct'" not in log

    want, got = rank_records(local), rank_records(slurm)
    assert want and list(got) == list(want)
    for name, path in want.items():
        pd.testing.assert_frame_equal(pd.read_parquet(got[name]), pd.read_parquet(path), check_exact=True, obj=name)
        metrics = path.with_name("metrics.json")
        assert json.loads(got[name].with_name("metrics.json").read_text()) == json.loads(metrics.read_text()), name
    assert {p.name for p in (slurm / "results" / "tiny" / "tables").glob("*.md")} == \
        {p.name for p in (local / "results" / "tiny" / "tables").glob("*.md")}


RESUME_CONFIG = """\
datasets:
  resume:
    source: synthetic
    seed: 3
    n_sessions: 6000
    n_items: 400
    n_days: 3
study:
  datasets: [resume]
  runs: [torch-xe]
  seeds: [5]
  epochs: 5
runs:
  torch-xe:
    params: {n_sample: 512}
"""
RUN_DIR = Path("results/resume/runs/torch-xe/seed5")
TARGET = str(RUN_DIR / "ranks.parquet")


def _epochs_logged(run_dir: Path) -> list[str]:
    path = run_dir / "train_log.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_cancelled_training_job_resumes_from_its_checkpoint(cluster, tmp_path):
    config = tmp_path / "resume.yaml"
    config.write_text(RESUME_CONFIG)
    args = ("--configfile", "config/test.yaml", str(config), "--retries", "0")

    # the reference: the same seed trained without interruption (same machine, CPU)
    reference = tmp_path / "reference"
    snakemake(reference, "--cores", "1", *args, TARGET, timeout=300)
    epochs = len(_epochs_logged(reference / RUN_DIR))
    assert epochs == 5

    # on the cluster (the data step's output copied from the reference): cancel the
    # training job once its first epoch is logged and checkpointed
    work = tmp_path / "cluster"
    shutil.copytree(reference / "results" / "resume" / "data", work / "results" / "resume" / "data")
    cmd = snakemake_cmd(work, "--workflow-profile", str(PROFILE), *args, TARGET, timeout=300)
    console = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, cwd=work, stdout=console, stderr=subprocess.STDOUT)
    run_dir = work / RUN_DIR
    deadline = time.monotonic() + 240
    while not (_epochs_logged(run_dir) and glob.glob(str(run_dir / "checkpoint*"))):
        assert first.poll() is None, \
            f"snakemake ended before the first epoch:\n{(tmp_path / 'first.log').read_text()[-4000:]}"
        assert time.monotonic() < deadline, "no epoch logged within 240 s"
        time.sleep(0.1)
    running = subprocess.run(["squeue", "-h", "-t", "running", "-o", "%i"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert len(running) == 1, f"expected the one training job running, squeue says {running}"
    subprocess.run(["scancel", running[0]], check=True)
    before = _epochs_logged(run_dir)
    first.wait(timeout=300)
    console.close()
    assert first.returncode not in (0, 124), \
        f"the cancelled run did not fail:\n{(tmp_path / 'first.log').read_text()[-4000:]}"
    assert len(before) < epochs, "training finished before scancel: make its epochs longer"
    assert not (run_dir / "ranks.parquet").exists()

    # run again: it resumes (the epochs logged before the cancel are kept as they were)
    snakemake(work, "--workflow-profile", str(PROFILE), *args, TARGET, timeout=300)
    after = _epochs_logged(run_dir)
    assert len(after) == epochs
    assert after[0] == before[0], "epoch 1 was trained again instead of resumed from the checkpoint"

    with np.load(reference / RUN_DIR / "weights.npz") as want, np.load(run_dir / "weights.npz") as got:
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "ranks.parquet"),
                                  pd.read_parquet(reference / TARGET), check_exact=True)
