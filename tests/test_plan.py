"""`python -m gru4rec_repro plan`: config merging, the DAG it reads, and its arithmetic by hand."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec_repro import plan

REPO = Path(__file__).resolve().parents[1]

DRY_RUN = """\
Building DAG of jobs...
Job stats:
job      count
-----  -------
total        3

[Fri Nov 27 23:00:17 2026]
rule train:
    input: results/d/data/train_full.parquet, results/d/data/test.parquet
    output: results/d/runs/torch-xe/seed1/ranks.parquet, results/d/runs/torch-xe/seed2/ranks.parquet, results/d/runs/torch-xe/seed1/metrics.json, results/d/runs/torch-xe/seed2/metrics.json
    log: results/logs/d/runs/torch-xe.log
    jobid: 6
    reason: Forced execution
    wildcards: dataset=d, run=torch-xe
    threads: 2
    resources: tmpdir=/tmp, gpu=1, runtime=120, mem_mb=4000, mem=4 GB, mem_mib=3815

[Fri Nov 27 23:00:17 2026]
localrule prepare_data:
    output: results/d/data/manifest.json
    jobid: 1
    wildcards: dataset=d
    resources: tmpdir=/tmp, mem_mb=8000

[Fri Nov 27 23:00:17 2026]
rule all:
    input: results/d/runs/torch-xe/seed1/metrics.json
    jobid: 0
"""


def test_parse_dry_run_reads_rule_wildcards_outputs_threads_and_gpu():
    jobs = plan.parse_dry_run(DRY_RUN)
    assert [j.rule for j in jobs] == ["train", "prepare_data"]  # `all` is no job of its own
    train, prep = jobs
    assert train.wildcards == {"dataset": "d", "run": "torch-xe"}
    assert len(train.outputs) == 4 and train.threads == 2 and train.gpu == 1
    assert prep.wildcards == {"dataset": "d"} and prep.threads == 1 and prep.gpu == 0


def test_config_files_merge_in_order_over_the_default_config(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("study:\n  seeds: [7, 8]\n  epochs: 4\n")
    second.write_text("study:\n  epochs: 6\nruns:\n  torch-bprmax: {params: {learning_rate: 0.3}}\n")
    config = plan.load_config([first, second])
    assert config["study"]["seeds"] == [7, 8]          # from the first file
    assert config["study"]["epochs"] == 6              # the second file wins
    assert config["study"]["datasets"] == ["synthetic"]  # untouched keys stay
    params = config["runs"]["torch-bprmax"]["params"]
    assert params["learning_rate"] == 0.3 and params["momentum"] == 0.1  # merged key by key, as Snakemake
    assert config["study"]["mem_mb"] == 4000           # schema default filled


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        plan.load_config([tmp_path / "nope.yaml"])


def test_schedule_longest_first():
    # 3,3 on two slots, then 2,2,2 onto the least loaded: 3+2+2 = 7 and 3+2 = 5
    assert plan.schedule([2, 3, 2, 3, 2], 2) == 7
    assert plan.schedule([5, 1, 1, 1], 4) == 5
    assert plan.schedule([], 3) == 0
    assert plan.schedule([1.0], 0) == float("inf")


def _study(tmp_path, epochs=None):
    """A config with dataset `d` (1,000,000 training and 10,000 test events, from its manifest)."""
    config = plan.load_config([])
    config["datasets"] = {"d": {"source": "synthetic"}}
    config["study"].update(datasets=["d"], seeds=[1, 2], epochs=epochs, eval_split="test")
    manifest = tmp_path / "d" / "data" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"splits": {
        "train_full": {"events": 1_000_000}, "test": {"events": 10_000},
        "train_tr": {"events": 900_000}, "train_valid": {"events": 9_000}}}))
    return config


def _train(run, gpu, seeds=2, threads=1):
    outs = [f"results/d/runs/{run}/seed{s}/ranks.parquet" for s in range(1, seeds + 1)]
    return plan.Job("train", {"dataset": "d", "run": run}, outs, threads, gpu)


def test_training_job_cost_by_hand(tmp_path):
    config = _study(tmp_path)  # torch-xe: published n_epochs 10
    tp = {"gru4rec_torch/xe/gpu": 50_000.0, "gru4rec_torch/xe/cpu": 5_000.0}
    p = plan.make_plan(config, [_train("torch-xe", gpu=1)], gpus=1, cores=4, throughput=tp, results=tmp_path)
    # per seed: 1e6 events x 10 epochs / 50,000 = 200 s, + 10,000 test events / 20,000 = 0.5 s; 2 seeds
    assert p.costs[0].device == "gpu"
    assert p.costs[0].seconds == pytest.approx(2 * 200.5)
    assert p.gpu_hours == pytest.approx(401 / 3600) and p.cpu_hours == 0
    # no GPU in the plan: the same job on the CPU: 1e6 x 10 / 5,000 = 2000 s + 10,000 / 1,000 = 10 s
    p = plan.make_plan(config, [_train("torch-xe", gpu=1)], gpus=0, cores=4, throughput=tp, results=tmp_path)
    assert p.costs[0].device == "cpu" and p.costs[0].seconds == pytest.approx(2 * 2010)
    # study.epochs cuts GRU4Rec runs: 3 epochs -> 1e6 x 3 / 5,000 = 600 s + 10 s per seed
    p = plan.make_plan(_study(tmp_path / "e", epochs=3), [_train("torch-xe", gpu=0)], gpus=0, cores=4,
                       throughput=tp, results=tmp_path / "e")
    assert p.costs[0].seconds == pytest.approx(2 * 610)


def test_plan_totals_and_wall_time_by_hand(tmp_path):
    config = _study(tmp_path)
    tp = {"gru4rec_torch/xe/gpu": 50_000.0, "gru4rec_torch/ranking/gpu": 25_000.0,
          "gru4rec_keras/xe/cpu": 10_000.0}
    jobs = [
        plan.Job("prepare_data", {"dataset": "d"}),
        _train("torch-xe", gpu=1),        # 2 x (200 + 0.5)   = 401 s GPU
        _train("torch-bprmax", gpu=1),    # 2 x (400 + 0.5)   = 801 s GPU
        _train("keras-xe", gpu=0, threads=2),  # 2 x (1000 + 10) = 2020 s CPU, 2 threads
        plan.Job("table", {"dataset": "d"}),
        plan.Job("table", {"dataset": "d"}),
    ]
    p = plan.make_plan(config, jobs, gpus=1, cores=4, throughput=tp, results=tmp_path)
    assert p.jobs_per_rule == {"prepare_data": 1, "train": 3, "table": 2}
    assert p.gpu_hours == pytest.approx((401 + 801) / 3600)
    # CPU: keras 2020 s x 2 threads + prepare_data max(5, 20 x 1.0) = 20 s + 2 tables x 15 s
    assert p.cpu_hours == pytest.approx((2 * 2020 + 20 + 30) / 3600)
    # wall: data 20 s, then max(GPU: 401 + 801 on one GPU, CPU: 2020) = 2020, then 2 tables on 4 cores: 15
    assert p.wall_hours == pytest.approx((20 + 2020 + 15) / 3600)
    # two GPUs do not help: the CPU job is the longest
    assert plan.make_plan(config, jobs, gpus=2, cores=4, throughput=tp,
                          results=tmp_path).wall_hours == pytest.approx(p.wall_hours)


def test_unknown_throughput_names_the_key(tmp_path):
    config = _study(tmp_path)
    config["runs"]["x"] = {"implementation": "gru4rec_torch", "params": {"loss": "bpr-max"}}
    with pytest.raises(ValueError, match="no throughput for gru4rec_torch/ranking/cpu"):
        plan.job_cost(_train("x", gpu=0), config, {("d", None): {"train_full": 1}},
                      {"gru4rec_torch/xe/cpu": 1.0}, gpus=0)


def test_settings_classes():
    assert plan.setting_of("gru4rec_torch", {"loss": "cross-entropy", "n_sample": 2048}) == "xe"
    assert plan.setting_of("gru4rec_keras", {"loss": "bpr-max"}) == "ranking"
    assert plan.setting_of("gru4rec_torch", {"loss": "top1", "n_sample": 0}) == "onehot"
    assert plan.setting_of("gru4rec_keras", {"variant": "port"}) == "port"
    assert plan.setting_of("bprmf", {}) == "epoch"


@pytest.mark.slow
def test_plan_command_on_rsc15_with_8_gpus(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gru4rec_repro", "plan", "--configfile", "config/rsc15.yaml",
                          "--gpus", "8", "--cores", "16", "--results", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "on 8 GPU(s) (1 job(s) per GPU) and 16 core(s)" in text and "GPU-hours" in text and "wall time" in text
    assert "events of rsc15: SPEC.md section 2" in text
    counts = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith("  ") and len(line.split()) == 2 and line.split()[1].isdigit()}

    config = plan.load_config([REPO / "config" / "rsc15.yaml"])
    runs = config["study"]["runs"] or list(config["runs"])
    from gru4rec_repro.contract import DETERMINISTIC

    once = sum(config["runs"][r]["implementation"] in DETERMINISTIC for r in runs)
    assert counts["train"] == len(runs) - once and counts["train_once"] == once
    assert counts["prepare_data"] == 1 and counts["total"] == sum(v for k, v in counts.items() if k != "total")

    jobs = plan.study_jobs([REPO / "config" / "rsc15.yaml"])
    # the command reads the committed benchmarks/logs/*-throughput.yaml (the H200 gpu_check of
    # 2026-12-04): the Keras backends on a GPU have no built-in figure
    full = plan.make_plan(config, jobs, gpus=8, cores=16, results=tmp_path, committed=True)
    xe = next(c for c in full.costs if c.job.wildcards.get("run") == "torch-xe")
    # by hand: 31,637,239 events x 10 epochs x 5 seeds / (101,948.4 events/s x 1.9, the gain of 5
    # seeds together) = 8,166.474 s + 5 x 71,222 test events / 288,683.9 events/s = 1.234 s
    assert xe.device == "gpu" and xe.seconds == pytest.approx(8_167.71, abs=0.01)
    assert xe.parts[0][3].log == "benchmarks/logs/2026-12-04-h200-gpu_check.log"
    assert f"GPU-hours:  {full.gpu_hours:10,.1f}" in text


# ---------------------------------------------------------------- measured figures, gains, assumptions
def _throughput_file(tmp_path, figures, log="benchmarks/logs/2026-11-28-h100-gpu_check-graph.log"):
    import yaml

    path = tmp_path / "tp.yaml"
    path.write_text(yaml.safe_dump({"log": log, "command": "python benchmarks/gpu_check.py", "commit": "abc",
                                    "gpu": "X", "figures": figures}))
    return path


def test_throughput_file_is_read_with_its_log_and_gains(tmp_path):
    path = _throughput_file(tmp_path, {
        "gru4rec_torch/xe/gpu": {"events_per_s": 100000, "seeds_together": {5: 4.0}, "jobs_per_gpu": {2: 1.5}},
        "gru4rec_torch/onehot/gpu": 50000,                                          # a bare number: no log
        "gru4rec_torch/ranking/gpu": {"events_per_s": 80000, "log": "benchmarks/logs/nope.log"}})
    figs = plan.read_throughput(path)
    xe = figs["gru4rec_torch/xe/gpu"]
    assert xe.events_per_s == 100000 and xe.seeds_together == {5: 4.0} and xe.jobs_per_gpu == {2: 1.5}
    assert xe.measured and xe.log.endswith("h100-gpu_check-graph.log")
    assert not figs["gru4rec_torch/onehot/gpu"].measured                  # no log: an assumption
    assert not figs["gru4rec_torch/ranking/gpu"].measured                 # a log not in the repository
    assert "not in the repository" in figs["gru4rec_torch/ranking/gpu"].note


@pytest.mark.parametrize("figures, message", [
    ({"gru4rec_torch/xe": 1.0}, "gru4rec_torch/xe: a key is implementation/setting/device"),
    ({"a/b/gpu": -3}, "a/b/gpu: events_per_s must be a positive number"),
    ({"a/b/gpu": "fast"}, "a/b/gpu: give events/s"),
    ({"a/b/gpu": {"events_per_s": 5, "seeds_together": {0: 2.0}}}, "a/b/gpu: seeds_together must map"),
    ({"a/b/gpu": {"events_per_s": 5, "jobs_per_gpu": {2: 0}}}, "a/b/gpu: jobs_per_gpu must map"),
])
def test_bad_throughput_file_names_file_and_key(tmp_path, figures, message):
    path = _throughput_file(tmp_path, figures)
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        plan.read_throughput(path)


def test_seeds_together_and_jobs_per_gpu_gains_by_hand(tmp_path):
    config = _study(tmp_path)  # dataset d: 1,000,000 training, 10,000 test events; torch-xe: 10 epochs
    log = "benchmarks/logs/2026-11-28-h100-gpu_check-graph.log"
    tp = {"gru4rec_torch/xe/gpu": plan.Figure(50_000.0, log, seeds_together={2: 1.6}, jobs_per_gpu={2: 1.25})}
    job = _train("torch-xe", gpu=1)  # 2 seeds
    alone = plan.make_plan(config, [job], gpus=1, cores=4, throughput=tp, results=tmp_path, jobs_per_gpu=1)
    # 2 seeds together: 2 x 200 s / 1.6 = 250 s of training + 2 x 0.5 s of ranking = 251 s
    assert alone.costs[0].seconds == pytest.approx(251.0) and alone.costs[0].wall == pytest.approx(251.0)
    shared = plan.make_plan(config, [job, _train("torch-xe", gpu=1)], gpus=1, cores=4, throughput=tp,
                            results=tmp_path, jobs_per_gpu=2)
    # two jobs on the one GPU: each 251 / 1.25 = 200.8 GPU-seconds, in its slot 2 x 200.8 = 401.6 s
    c = shared.costs[0]
    assert c.seconds == pytest.approx(200.8) and c.wall == pytest.approx(401.6)
    assert shared.gpu_hours == pytest.approx(2 * 200.8 / 3600)
    assert shared.wall_hours == pytest.approx(401.6 / 3600)  # both at once on the GPU's two slots
    # jobs_per_gpu comes from the config by default; a count without a measured gain is priced as none
    config["study"]["jobs_per_gpu"] = 3
    p3 = plan.make_plan(config, [job], gpus=1, cores=4, throughput=tp, results=tmp_path)
    assert p3.jobs_per_gpu == 3 and p3.costs[0].seconds == pytest.approx(251.0)
    assert p3.costs[0].wall == pytest.approx(3 * 251.0)
    assert ("jobs-per-GPU gain at 3 jobs", "gru4rec_torch/xe/gpu") in p3.assumed_hours()


def test_assumed_figures_are_listed_apart_with_their_hours(tmp_path):
    config = _study(tmp_path)
    log = "benchmarks/logs/2026-11-28-h100-gpu_check-graph.log"
    tp = {"gru4rec_torch/xe/gpu": plan.Figure(50_000.0, log, seeds_together={2: 2.0}),
          "gru4rec_torch/ranking/gpu": plan.Figure(25_000.0, None, "a guess"),
          "gru4rec_torch/eval/gpu": plan.Figure(10_000.0, log)}
    jobs = [_train("torch-xe", gpu=1), _train("torch-bprmax", gpu=1)]
    p = plan.make_plan(config, jobs, gpus=1, cores=4, throughput=tp, results=tmp_path)
    text = plan.format_plan(p, [])
    measured, _, assumptions = text.partition("\nassumptions")
    # the measured figure prices its job on a line naming its log; the guess is not on a training line
    assert f"gru4rec_torch/xe/gpu: 1 job(s), {2 * (200 / 2 + 1) / 3600:,.1f} GPU-hours; 50,000 events/s" in measured
    assert log in measured
    training = measured.split("training jobs by measured throughput")[1].split("largest jobs")[0]
    assert "ranking/gpu" not in training
    # torch-bprmax: 2 seeds x 1e6 x 10 / 25,000 = 800 GPU-seconds of training priced by the guess,
    # and its seeds-together gain at 2 seeds is not measured either
    assert p.assumed_hours()[("training", "gru4rec_torch/ranking/gpu")][0] == pytest.approx(800 / 3600)
    assert "gru4rec_torch/ranking/gpu: 25,000 events/s (a guess): 0.2 GPU-hours of training" in assumptions
    assert "seeds-together gain at 2 seeds not measured" in assumptions
    assert "(of which priced by assumed figures: 0.2)" in text


def test_setting_classes_for_1000_units_and_dwell():
    top1 = {"loss": "top1", "n_sample": 0, "final_act": "tanh"}
    assert plan.setting_of("gru4rec_torch", {**top1, "layers": [1000]}) == "onehot-1000"
    assert plan.setting_of("gru4rec_torch", top1, dwell=True) == "dwell"
    assert plan.setting_of("gru4rec_torch", {"loss": "bpr-max"}, dwell=True) == "ranking"
    assert plan.setting_of("iknn", {}) == "fit"
    assert plan.throughput_key("gru4rec_keras", {"backend": "jax", "loss": "bpr-max"}, "gpu") == \
        "gru4rec_keras-jax/ranking/gpu"
    assert plan.throughput_key("gru4rec_keras", {"backend": "tensorflow"}, "cpu") == "gru4rec_keras/xe/cpu"
    # a compiled step is priced by its own figure (torch.compile, XLA on TensorFlow); JAX compiles always
    assert plan.throughput_key("gru4rec_keras", {"backend": "torch", "jit_compile": True}, "gpu") == \
        "gru4rec_keras-torch-jit/xe/gpu"
    assert plan.throughput_key("gru4rec_keras", {"jit_compile": True}, "gpu") == "gru4rec_keras-jit/xe/gpu"
    assert plan.throughput_key("gru4rec_keras", {"backend": "jax", "jit_compile": True}, "gpu") == \
        "gru4rec_keras-jax/xe/gpu"
    assert plan.throughput_key("gru4rec_torch", {"jit_compile": True}, "gpu") == "gru4rec_torch/xe/gpu"


def test_gpu_check_smoke_on_cpu_writes_the_file_the_plan_reads(tmp_path):
    """benchmarks/gpu_check.py --device cpu --quick: every torch path, jobs at once, the baselines."""
    out = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick", "--out",
                          str(tmp_path), "--name", "smoke", "--frameworks", "torch", "baselines",
                          "--jobs", "2"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = (tmp_path / "smoke.log").read_text()
    assert "FAILED" not in log and "SKIPPED" not in log, log[-3000:]
    figs = plan.read_throughput(tmp_path / "smoke-throughput.yaml")
    for key in ("gru4rec_torch/onehot/cpu", "gru4rec_torch/onehot-1000/cpu", "gru4rec_torch/xe/cpu",
                "gru4rec_torch/dwell/cpu", "gru4rec_torch/eval/cpu", "bprmf/epoch/cpu", "iknn/fit/cpu",
                "pop/eval/cpu"):
        assert figs[key].events_per_s > 0, key
        assert figs[key].log == "benchmarks/logs/smoke.log"
    # a gain is written only for seeds trained as one batched model, not stepped one after another
    together = "2 seeds together" in log
    assert together or "2 seeds sequential" in log
    assert any(f.seeds_together for f in figs.values()) == together
    assert "2 jobs" in log and any(f.jobs_per_gpu for f in figs.values())
