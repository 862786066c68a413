"""The workflow profiles (profiles/) and the GPU slots of profiles/local-gpu (gru4rec_repro/gpuslot.py)."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gru4rec_repro import gpuslot
from gru4rec_repro.plan import parse_dry_run

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"


def snakemake(workdir: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    """snakemake on the repo's Snakefile in ``workdir``; profiles/default applies unless args say otherwise."""
    link = workdir / "config"
    if not link.exists():
        link.symlink_to(REPO / "config")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=600)


@pytest.mark.parametrize("name", ["default", "local-gpu", "slurm"])
def test_profile_parses_into_snakemake_options(name):
    from snakemake.cli import get_argument_parser
    from snakemake.utils import available_cpu_count

    profile = PROFILES / name
    parser = get_argument_parser(profiles=[profile])
    args = parser.parse_args(["-n"])  # an unknown key in the profile fails here
    all_cores = available_cpu_count()
    if name == "default":
        assert args.cores == all_cores and args.show_failed_logs
    if name == "local-gpu":
        assert args.cores == all_cores and "gpu=1" in args.resources.args
    if name == "slurm":
        assert args.executor == "slurm"
        assert args.slurm_status_command == "squeue"
        assert args.slurm_init_seconds_before_status_checks == 5


def test_slurm_profile_keeps_partition_and_account_in_one_place():
    text = (PROFILES / "slurm" / "config.yaml").read_text()
    assert text.count("slurm_partition") == 1 and text.count("slurm_account") == 1
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert "slurm_partition" not in rules and "slurm_account" not in rules


def test_slurm_profile_maps_rule_resources_to_sbatch(tmp_path):
    """config/rsc15.yaml's training jobs ask SLURM for one GPU, their memory, time and threads."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    proc = snakemake(tmp_path, "-n", "--forceall", "--workflow-profile", str(PROFILES / "slurm"),
                     "--configfile", "config/rsc15.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {j.wildcards.get("run"): j for j in parse_dry_run(proc.stdout) if "run" in j.wildcards}
    resources = {}
    for line in proc.stdout.split("rule train:")[1:]:
        run = line.split("run=")[1].split()[0].strip(",")
        res = line.split("resources: ")[1].splitlines()[0]
        resources[run] = dict(kv.split("=", 1) for kv in res.split(", "))
    xe = resources["torch-xe"]
    # study: gpu_per_job 1, mem_mb 16000, runtime 600 per seed x 5 seeds (config/rsc15.yaml)
    assert xe["gpu"] == "1" and xe["mem_mb"] == "16000" and xe["runtime"] == "3000"
    assert jobs["torch-xe"].gpu == 1 and jobs["iknn"].gpu == 0

    def sbatch(res: dict, threads: int) -> str:
        values = {"gpu": int(res["gpu"]), "mem_mb": int(res["mem_mb"]), "runtime": int(res["runtime"])}
        job = SimpleNamespace(resources=SimpleNamespace(get=lambda k, d=None: values.get(k, d), **values),
                              threads=threads)
        params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "x", "account": "",
                  "partition": "", "workdir": "."}
        return get_submit_command(job, params) + set_gres_string(job)

    call = sbatch(xe, threads=1)
    for flag in ("--gpus=1", "--mem 16000", "-t 3000", "--cpus-per-task=1"):
        assert flag in call, call
    assert "--gpus" not in sbatch(resources["keras-xe"] | {"gpu": "0"}, threads=1)


def test_plain_snakemake_uses_the_default_profile(tmp_path):
    """No --cores: the default profile gives all cores (without it, Snakemake refuses to start)."""
    target = "results/tiny/data/manifest.json"
    bare = snakemake(tmp_path, target, "--workflow-profile", "none", "--configfile", "config/test.yaml")
    assert bare.returncode != 0 and "cores" in (bare.stdout + bare.stderr).lower()
    plain = snakemake(tmp_path, target, "--configfile", "config/test.yaml")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert f"profile {PROFILES / 'default'}" in plain.stderr
    assert (tmp_path / target).is_file()


def test_failed_job_log_on_the_console(tmp_path):
    """A malformed input's message (file, line, column) reaches the console, not only the rule's log."""
    bad = tmp_path / "bad.dat"
    bad.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:52:09.277Z,21453x502,0\n")
    config = tmp_path / "bad.yaml"
    config.write_text(f"datasets:\n  mine:\n    source: clicks\n    path: {bad}\nstudy:\n  datasets: [mine]\n")
    proc = snakemake(tmp_path, "results/mine/data/manifest.json", "--configfile", str(config))
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    assert f"{bad}, line 2, column 3 (ItemID)" in console, console[-3000:]


# ---------------------------------------------------------------- GPU slots
HOLD = textwrap.dedent("""
    import os, sys, time
    from gru4rec_repro import gpuslot
    gpu = gpuslot.pin_gpu("gru4rec_torch", "auto")
    print(gpu, os.environ.get("CUDA_VISIBLE_DEVICES"), time.monotonic(), flush=True)
    time.sleep(float(sys.argv[1]))
""")


def _env(tmp_path, visible):
    env = dict(os.environ, GRU4REC_GPU_LOCK_DIR=str(tmp_path / "locks"), CUDA_VISIBLE_DEVICES=visible)
    env.pop("SLURM_JOB_ID", None)
    env.pop("GRU4REC_GPU_SLOTS", None)
    return env


def test_each_job_gets_its_own_gpu_and_a_third_waits(tmp_path):
    env = _env(tmp_path, "0,1")
    holders = [subprocess.Popen([sys.executable, "-c", HOLD, "3"], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    first = [p.stdout.readline().split() for p in holders]
    assert sorted(f[0] for f in first) == ["0", "1"]  # two different GPUs, lowest first
    assert all(f[0] == f[1] for f in first)           # CUDA_VISIBLE_DEVICES = the slot
    start = time.monotonic()
    third = subprocess.run([sys.executable, "-c", HOLD, "0"], env=env, capture_output=True, text=True)
    waited = time.monotonic() - start
    gpu = third.stdout.split()[0]
    assert gpu in ("0", "1")
    assert waited > 1.0, "the third job should wait until a GPU came free"
    for p in holders:
        p.wait()


def test_several_jobs_per_gpu_spread_over_the_gpus_first(tmp_path):
    """2 GPUs, 2 jobs per GPU: GPUs 0 and 1 once each, then each again; a fifth job waits."""
    env = dict(_env(tmp_path, "0,1"), GRU4REC_JOBS_PER_GPU="2")
    holders = []
    for _ in range(4):  # one after another, so each takes the lowest free slot
        holders.append(subprocess.Popen([sys.executable, "-c", HOLD, "4"], env=env, stdout=subprocess.PIPE,
                                        text=True))
        holders[-1].first = holders[-1].stdout.readline().split()
    assert [h.first[0] for h in holders] == ["0", "1", "0", "1"]
    assert all(h.first[0] == h.first[1] for h in holders)  # CUDA_VISIBLE_DEVICES = the slot's GPU
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [
        "gpu-0.1.lock", "gpu-0.lock", "gpu-1.1.lock", "gpu-1.lock"]
    with pytest.raises(TimeoutError, match=r"2 per GPU"):
        gpuslot.acquire(["0", "1"], tmp_path / "locks", poll_seconds=0.1, timeout=0.5, per_gpu=2)
    for p in holders:
        p.kill()
        p.wait()


def test_jobs_per_gpu_from_the_environment(monkeypatch):
    monkeypatch.delenv("GRU4REC_JOBS_PER_GPU", raising=False)
    assert gpuslot.jobs_per_gpu() == 1
    monkeypatch.setenv("GRU4REC_JOBS_PER_GPU", "3")
    assert gpuslot.jobs_per_gpu() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("GRU4REC_JOBS_PER_GPU", bad)
        with pytest.raises(ValueError, match="GRU4REC_JOBS_PER_GPU.*study.jobs_per_gpu"):
            gpuslot.jobs_per_gpu()


def test_no_slot_for_cpu_jobs_slurm_jobs_or_no_gpus(tmp_path, monkeypatch):
    for key, value in _env(tmp_path, "3,5").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpuslot.pin_gpu("iknn", "auto") is None           # a baseline: CPU only
    assert gpuslot.pin_gpu("gru4rec_torch", "cpu") is None   # asked for the CPU
    monkeypatch.setenv("SLURM_JOB_ID", "17")                 # SLURM assigned the GPUs
    assert gpuslot.pin_gpu("gru4rec_torch", "auto") is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")         # every GPU hidden
    assert gpuslot.pin_gpu("gru4rec_torch", "auto") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    try:
        assert gpuslot.pin_gpu("gru4rec_keras", "auto") == "3"  # the first of the visible GPUs
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        gpuslot.release_all()


def test_visible_gpus_parsing(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 0 ,GPU-8f1c")
    assert gpuslot.visible_gpus() == ["2", "0", "GPU-8f1c"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")  # CUDA stops at an invalid entry
    assert gpuslot.visible_gpus() == ["1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpuslot.visible_gpus() == []


def test_acquire_times_out_naming_the_gpus(tmp_path):
    locks = tmp_path / "locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "5"], env=_env(tmp_path, "7"),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().split()[0] == "7"
    with pytest.raises(TimeoutError, match=r"\['7'\]"):
        gpuslot.acquire(["7"], locks, poll_seconds=0.1, timeout=0.5)
    holder.kill()
    holder.wait()
    assert gpuslot.acquire(["7"], locks, timeout=5) == "7"  # a killed job's slot is free again
    gpuslot.release_all()


@pytest.mark.slow
def test_local_gpu_profile_pins_each_training_job(tmp_path):
    """Two (pretend) GPUs: every GRU4Rec training job names its GPU slot in its log; baselines none."""
    config = tmp_path / "gpu.yaml"
    config.write_text("study:\n  runs: [pop, torch-xe, torch-bprmax]\n  seeds: [1]\n  gpu_per_job: 1\n")
    env = _env(tmp_path, "0,1")
    targets = [f"results/tiny/runs/{r}/seed1/ranks.parquet" for r in ("pop", "torch-xe", "torch-bprmax")]
    proc = snakemake(tmp_path, *targets, "--workflow-profile", str(PROFILES / "local-gpu"), "--resources", "gpu=2",
                     "--cores", "2", "--configfile", "config/test.yaml", str(config), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = tmp_path / "results" / "logs" / "tiny" / "runs"
    for run in ("torch-xe", "torch-bprmax"):
        text = (logs / f"{run}.log").read_text()
        assert "GPU slot: CUDA_VISIBLE_DEVICES=0" in text or "GPU slot: CUDA_VISIBLE_DEVICES=1" in text, text[-2000:]
    assert "GPU slot" not in (logs / "pop.log").read_text()


@pytest.mark.slow
def test_local_gpu_profile_puts_two_jobs_on_one_gpu(tmp_path):
    """study.jobs_per_gpu: 2 and one (pretend) GPU: both GRU4Rec jobs take a slot on GPU 0."""
    config = tmp_path / "gpu.yaml"
    config.write_text("study:\n  runs: [torch-xe, torch-bprmax]\n  seeds: [1]\n  gpu_per_job: 1\n"
                      "  jobs_per_gpu: 2\n")
    env = _env(tmp_path, "0")
    targets = [f"results/tiny/runs/{r}/seed1/ranks.parquet" for r in ("torch-xe", "torch-bprmax")]
    proc = snakemake(tmp_path, *targets, "--workflow-profile", str(PROFILES / "local-gpu"), "--resources", "gpu=2",
                     "--cores", "2", "--configfile", "config/test.yaml", str(config), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = tmp_path / "results" / "logs" / "tiny" / "runs"
    for run in ("torch-xe", "torch-bprmax"):
        text = (logs / f"{run}.log").read_text()
        assert "GPU slot: CUDA_VISIBLE_DEVICES=0 (of 0; 2 job(s) per GPU" in text, text[-2000:]
