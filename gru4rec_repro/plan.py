"""The cost of a study before it is launched: jobs, CPU- and GPU-hours, wall time.

    python -m gru4rec_repro plan [--configfile FILE ...] [--gpus N] [--cores N] [--throughput FILE]

The jobs are the workflow's own: Snakemake builds the study's DAG (a dry run
of every job, ``--forceall``, with the config files merged over
config/config.yaml in order, as ``snakemake --configfile`` merges them) and
this module reads each job's rule, wildcards, outputs, threads and ``gpu``
resource from it. Only the cost is modelled here:

* a training job (a job with a ``run`` wildcard) costs, per seed it trains,
  ``train events x epochs / throughput`` plus ranking the test events;
  the throughput (events/s) is looked up per implementation, setting and
  device in :data:`THROUGHPUT` (numbers the project measured, each with its
  source; or your own, ``--throughput FILE``);
* a job of another rule costs :data:`OTHER_JOB_SECONDS` (per dataset size);
* events per dataset come from the data step's manifest when it has run
  (``results/<dataset>/data/manifest.json``), else from SPEC.md section 2 for
  RSC15; a synthetic dataset is generated and split in a temporary folder.

Wall time: the data jobs first, then the training jobs spread over the GPUs
(GPU jobs) and the cores (CPU jobs), longest first, then tables and figures.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .contract import run_params

REPO = Path(__file__).resolve().parents[1]

#: Training throughput in events/s of one job (one thread on CPU; one GPU),
#: keyed "implementation/setting/device". Settings: ``xe`` and ``ranking``
#: (cross-entropy / BPR-max and the other ranking losses, batch 32 with 2048
#: extra samples), ``onehot`` (the 2016 settings: no extra samples),
#: ``port`` (the tutorial's Keras port), and the BPR-MF baseline.
THROUGHPUT: dict[str, float] = {
    # Measured on real RSC15 data (37,483 items), one thread, side by side with the
    # authors' code (issue 11: ours 4,460 / 3,600 events/s; theirs 3,240 / 2,780;
    # Keras 0.89x / 0.90x of theirs). Measured before the hand-differentiated
    # step and the fused CPU kernel, which made ours 2-3x faster on RSC15-shaped
    # data (benchmarks/README.md): an upper bound on cost until remeasured on RSC15.
    "gru4rec_torch/xe/cpu": 4460.0,
    "gru4rec_torch/ranking/cpu": 3600.0,
    "gru4rec_keras/xe/cpu": 2884.0,
    "gru4rec_keras/ranking/cpu": 2502.0,
    # The 2016 settings score only the mini-batch's own items (no 2048 samples):
    # not measured; taken as the sampled settings' speed (an upper bound on cost).
    "gru4rec_torch/onehot/cpu": 3600.0,
    "gru4rec_keras/onehot/cpu": 2502.0,
    # The Keras port (batch 512, softmax over every item): not measured here;
    # assumed at the Keras GRU4Rec's cross-entropy speed.
    "gru4rec_keras/port/cpu": 2884.0,
    # GPU, PyTorch: measured on one H100 (benchmarks/logs/2026-11-28-h100-gpu_check-graph.log,
    # one run each): one whole epoch of 403,402 RSC15-shaped events (35,212 items) with
    # the step replayed as a CUDA graph, capture and warm-up included: 90,169 events/s
    # (cross-entropy) and 86,977 (BPR-max). (The step alone on other, flatter data of
    # 33,471 items: 117,171 / 106,789.)
    # The 2016 settings (TOP1/BPR, no extra samples) were not measured: their
    # steps replay as a graph too since their losses got closed forms, after that
    # run. Taken at the eager step's 11,328 events/s (batch 32, 2048 samples):
    # an upper bound on cost until gpu_check.py measures them.
    "gru4rec_torch/xe/gpu": 90000.0,
    "gru4rec_torch/ranking/gpu": 87000.0,
    "gru4rec_torch/onehot/gpu": 11300.0,
    # GPU, Keras: not measured (the GPU machine lent had no TensorFlow). The
    # authors' Theano code on a GTX 1080Ti at batch 32 with 2048 samples: about
    # 37,000 events/s (SPEC.md section 4); replace with your own (--throughput).
    "gru4rec_keras/xe/gpu": 37000.0,
    "gru4rec_keras/ranking/gpu": 37000.0,
    "gru4rec_keras/onehot/gpu": 37000.0,
    "gru4rec_keras/port/gpu": 37000.0,
    # BPR-MF (numpy, one thread), one epoch of SGD: 79,196 events/s measured with
    # benchmarks/bench_baselines_scoring.py --scale 0.02 --bpr-epochs 1 (RSC15-shaped,
    # 7,496 items, a shared 2-core machine).
    "bprmf/epoch/cpu": 79196.0,
}

#: Ranking the test set: events/s (every item scored for each test event). CPU: the
#: baselines rank RSC15's 55,898 test events against 7,496 items at 1,100-9,600 events/s
#: (bench_baselines_scoring.py, as above); 37,483 items and a GRU step cost more: assumed
#: 1,000. GPU: assumed (scoring is one matrix product per batch of 512 sessions).
EVAL_THROUGHPUT = {"cpu": 1000.0, "gpu": 20000.0}

#: Seconds of one job of a rule without a training run, per million training events
#: of its dataset (and at least ``minimum``). Assumed from the default study's benchmarks
#: (results/benchmarks/) scaled linearly by events; measure at scale and adjust.
OTHER_JOB_SECONDS = {
    "prepare_data": {"per_million": 20.0, "minimum": 5.0},
    "dwell_variant": {"per_million": 5.0, "minimum": 3.0},
    "table": {"per_million": 0.0, "minimum": 15.0},
    "figure": {"per_million": 0.0, "minimum": 10.0},
    "*": {"per_million": 0.0, "minimum": 10.0},
}
#: Baselines without epochs: seconds per million training events (Item-KNN fit
#: dominates; POP and S-POP are counts).
BASELINE_SECONDS_PER_MILLION = {"pop": 1.0, "spop": 1.0, "iknn": 10.0}

#: Official split sizes of the real RSC15 (SPEC.md section 2).
RSC15_SPLITS = {
    "train_full": 31_637_239, "test": 71_222, "train_tr": 31_579_006, "train_valid": 58_233,
}
DATA_ROLES = ("prepare_data", "dwell_variant")


# ---------------------------------------------------------------- configuration
def load_config(configfiles=(), base: str | Path | None = None) -> dict:
    """config/config.yaml with ``configfiles`` merged over it in order, validated (defaults filled).

    Merged as ``snakemake --configfile`` merges: mappings key by key, all else replaced.
    """
    from snakemake.utils import update_config, validate

    base = Path(base) if base else REPO / "config" / "config.yaml"
    config = yaml.safe_load(base.read_text())
    for f in configfiles:
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path}: no such file")
        extra = yaml.safe_load(path.read_text()) or {}
        if not isinstance(extra, dict):
            raise ValueError(f"config file {path}: not a mapping of keys")
        update_config(config, extra)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


# ---------------------------------------------------------------- the DAG
@dataclass
class Job:
    rule: str
    wildcards: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    threads: int = 1
    gpu: int = 0


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake --dry-run`` output (rule, wildcards, outputs, threads, gpu)."""
    jobs: list[Job] = []
    job = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line)
        if m:
            job = Job(m.group(1))
            jobs.append(job)
            continue
        if job is None or not line.startswith("    "):
            if line.strip() == "":
                job = None
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            job.wildcards = dict(kv.split("=", 1) for kv in value.split(", "))
        elif key == "output":
            job.outputs = value.split(", ")
        elif key == "threads":
            job.threads = int(value)
        elif key == "resources":
            m = re.search(r"(?:^|, )gpu=(\d+)", value)
            job.gpu = int(m.group(1)) if m else 0
    return [j for j in jobs if j.rule != "all"]


def study_jobs(configfiles=(), workdir: str | Path | None = None) -> list[Job]:
    """Every job of the study as Snakemake plans it (a dry run of all jobs)."""
    workdir = Path(workdir) if workdir else REPO
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--dry-run", "--forceall", "--nolock", "--cores", "1", "--workflow-profile", "none"]
    if configfiles:
        cmd += ["--configfile", *[str(Path(f).resolve()) for f in configfiles]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if proc.returncode != 0:
        raise ValueError(f"snakemake could not plan the study:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return parse_dry_run(proc.stdout)


# ---------------------------------------------------------------- sizes
def dataset_events(name: str, spec: dict, results: Path) -> tuple[dict, str]:
    """Events per split of dataset ``name`` and where the numbers come from."""
    manifest = results / name / "data" / "manifest.json"
    if manifest.is_file():
        splits = json.loads(manifest.read_text())["splits"]
        return {k: v["events"] for k, v in splits.items()}, f"{manifest}"
    if spec["source"] == "rsc15":
        return dict(RSC15_SPLITS), "SPEC.md section 2 (official split of RSC15)"
    if spec["source"] == "synthetic":
        from .data.sources import prepare_dataset

        with tempfile.TemporaryDirectory() as tmp:
            prepare_dataset(name, spec, Path(tmp) / "data", workdir=Path(tmp) / "raw")
            splits = json.loads((Path(tmp) / "data" / "manifest.json").read_text())["splits"]
        return {k: v["events"] for k, v in splits.items()}, "generated and split to count (not yet run)"
    raise ValueError(f"dataset {name!r} ({spec['source']}): run its data step first "
                     f"(snakemake results/{name}/data/manifest.json) so its manifest gives the sizes")


def variant_events(dataset: str, variant: str, base: dict, results: Path) -> tuple[dict, str]:
    manifest = results / dataset / "data" / variant / "manifest.json"
    if manifest.is_file():
        splits = json.loads(manifest.read_text())["splits"]
        return {k: v["events"] for k, v in splits.items()}, str(manifest)
    return dict(base), "the dataset's own sizes (boosting adds events: an underestimate)"


# ---------------------------------------------------------------- costs
def missing_params_file(params: dict, base_dir: str | Path = REPO) -> Path | None:
    """The run's ``params_file:`` when it is given but not found (relative paths: under ``base_dir``)."""
    if params.get("params_file") is None:
        return None
    path = Path(params["params_file"])
    path = path if path.is_absolute() else Path(base_dir) / path
    return None if path.is_file() else path


def setting_of(implementation: str, params: dict, base_dir: str | Path = REPO) -> str:
    """The throughput class of a run: xe, ranking, onehot, port or epoch (BPR-MF).

    GRU4Rec settings are the ones the run trains with (:func:`gru4rec_params.resolve`:
    the official defaults, ``params_file:``, ``ps:``, the other keys); a relative
    ``params_file`` is read under ``base_dir``, the workflow's working directory (where
    each job reads it). A ``params_file`` not found there is left out (the other keys
    over the defaults; :func:`make_plan` lists it under the assumptions).
    """
    from . import gru4rec_params

    if implementation == "bprmf":
        return "epoch"
    if params.get("variant", "gru4rec") == "port":
        return "port"
    known = set(gru4rec_params.known_keys())
    given = {k: v for k, v in params.items() if k in known}  # an implementation's own keys aside
    if missing_params_file(given, base_dir) is not None:
        del given["params_file"]
    p = gru4rec_params.resolve(given, base_dir=base_dir)
    if not p["n_sample"]:
        return "onehot"
    return "xe" if p["loss"] == "cross-entropy" else "ranking"


def epochs_of(config: dict, run: str) -> int:
    """Epochs a run trains, as the workflow passes them (study.epochs over GRU4Rec runs but the port)."""
    return int(run_params(config, run).get("n_epochs", 10))


@dataclass
class Cost:
    job: Job
    seconds: float          # wall seconds of the job on its device
    device: str             # "gpu" or "cpu"
    note: str = ""


def job_cost(job: Job, config: dict, sizes: dict, throughput: dict, gpus: int) -> Cost:
    """Seconds of one job, on a GPU when it asks for one and the plan has GPUs."""
    dataset = job.wildcards.get("dataset")
    events = sizes.get((dataset, job.wildcards.get("run")), sizes.get((dataset, None), {}))
    study = config["study"]
    train_split, test_split = (("train_full", "test") if study.get("eval_split", "test") == "test"
                               else ("train_tr", "train_valid"))
    n_train = events.get(train_split, 0)
    if "run" not in job.wildcards:
        rule = OTHER_JOB_SECONDS.get(job.rule, OTHER_JOB_SECONDS["*"])
        return Cost(job, max(rule["minimum"], rule["per_million"] * n_train / 1e6), "cpu")
    run = job.wildcards["run"]
    spec = config["runs"][run]
    impl = spec["implementation"]
    seeds = max(1, sum(o.endswith("ranks.parquet") for o in job.outputs))
    device = "gpu" if job.gpu > 0 and gpus > 0 else "cpu"
    if impl in BASELINE_SECONDS_PER_MILLION:
        per_seed = BASELINE_SECONDS_PER_MILLION[impl] * n_train / 1e6
        return Cost(job, seeds * per_seed, "cpu", "baseline")
    setting = setting_of(impl, spec.get("params", {}))
    key = f"{impl}/{setting}/{device}"
    if key not in throughput:
        raise ValueError(f"no throughput for {key} (run {run}); give it in --throughput")
    epochs = epochs_of(config, run)
    train_s = n_train * epochs / throughput[key]
    eval_s = events.get(test_split, 0) / EVAL_THROUGHPUT[device]
    return Cost(job, seeds * (train_s + eval_s), device, f"{key}: {seeds} seed(s) x {epochs} epochs")


def schedule(durations: list[float], slots: int) -> float:
    """Makespan of ``durations`` on ``slots`` parallel slots, longest first onto the least loaded."""
    if not durations:
        return 0.0
    if slots <= 0:
        return math.inf
    loads = [0.0] * slots
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


@dataclass
class Plan:
    jobs_per_rule: dict
    cpu_hours: float
    gpu_hours: float
    wall_hours: float
    gpus: int
    cores: int
    sources: dict
    costs: list
    notes: list = field(default_factory=list)  # further assumptions (params files not found)


def make_plan(config: dict, jobs: list[Job], gpus: int, cores: int, throughput: dict | None = None,
              results: str | Path = "results") -> Plan:
    """Jobs per rule, CPU-/GPU-hours and wall time of ``jobs`` on ``gpus`` GPUs and ``cores`` cores."""
    throughput = dict(THROUGHPUT, **(throughput or {}))
    results = Path(results)
    sizes: dict = {}
    sources: dict = {}
    for job in jobs:
        d = job.wildcards.get("dataset")
        if d is None or (d, None) in sizes:
            continue
        sizes[(d, None)], sources[d] = dataset_events(d, config["datasets"][d], results)
    for job in jobs:
        d, run = job.wildcards.get("dataset"), job.wildcards.get("run")
        dwell = config["runs"][run].get("dwell") if run else None
        if dwell:
            variant = f"dwell{_fmt(dwell['threshold'])}-{dwell['apply_to'].replace('+', '')}"
            sizes[(d, run)], sources[f"{d}/{variant}"] = variant_events(d, variant, sizes[(d, None)], results)
    costs = [job_cost(j, config, sizes, throughput, gpus) for j in jobs]
    notes = []
    for run in sorted({j.wildcards["run"] for j in jobs if "run" in j.wildcards}):
        spec = config["runs"][run]
        params = spec.get("params", {})
        missing = missing_params_file(params)
        if (missing is not None and spec["implementation"] not in (*BASELINE_SECONDS_PER_MILLION, "bprmf")
                and params.get("variant", "gru4rec") != "port"):
            notes.append(f"run {run}: params_file {missing} not found; its setting class is taken from "
                         "the run's other keys over the official defaults")
    per_rule: dict = {}
    stage = {j.rule: (0 if j.rule in DATA_ROLES else 1 if "run" in j.wildcards else 2) for j in jobs}
    for j in sorted(jobs, key=lambda j: (stage[j.rule], j.rule)):  # data, training, the rest
        per_rule[j.rule] = per_rule.get(j.rule, 0) + 1
    gpu_s = sum(c.seconds for c in costs if c.device == "gpu")
    cpu_s = sum(c.seconds * c.job.threads for c in costs if c.device == "cpu")
    # GPU jobs also hold their threads' cores; the rest of the cores run the CPU jobs.
    gpu_threads = max((c.job.threads for c in costs if c.device == "gpu"), default=0)
    cpu_slots = max(1, cores - min(gpus, sum(c.device == "gpu" for c in costs)) * gpu_threads)
    data = [c for c in costs if c.job.rule in DATA_ROLES]
    training = [c for c in costs if "run" in c.job.wildcards]
    rest = [c for c in costs if c not in data and c not in training]
    wall = (schedule([c.seconds for c in data], cores)
            + max(schedule([c.seconds for c in training if c.device == "gpu"], gpus),
                  schedule([c.seconds for c in training if c.device == "cpu"], cpu_slots))
            + schedule([c.seconds for c in rest], cores))
    return Plan(per_rule, cpu_s / 3600, gpu_s / 3600, wall / 3600, gpus, cores, sources, costs, notes)


def _fmt(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def format_plan(plan: Plan, configfiles, throughput: dict) -> str:
    lines = [f"Study plan ({' + '.join(['config/config.yaml', *map(str, configfiles)])}),"
             f" on {plan.gpus} GPU(s) and {plan.cores} core(s)", "", "jobs per rule:"]
    width = max(map(len, plan.jobs_per_rule), default=4)
    for rule, n in plan.jobs_per_rule.items():
        lines.append(f"  {rule:<{width}}  {n:>5}")
    lines.append(f"  {'total':<{width}}  {sum(plan.jobs_per_rule.values()):>5}")
    train = [c for c in plan.costs if "run" in c.job.wildcards]
    n_gpu = sum(c.device == "gpu" for c in train)
    lines += ["", f"training jobs: {len(train)} ({n_gpu} on a GPU, {len(train) - n_gpu} on the CPU)",
              f"GPU-hours:  {plan.gpu_hours:10,.1f}",
              f"CPU-hours:  {plan.cpu_hours:10,.1f}",
              f"wall time:  {plan.wall_hours:10,.1f} h  "
              f"(= {plan.wall_hours / 24:,.1f} days; data first, training spread longest first, tables last)",
              "", "largest jobs:"]
    for c in sorted(train, key=lambda c: (-round(c.seconds), c.job.wildcards["dataset"], c.job.wildcards["run"]))[:5]:
        lines.append(f"  {c.job.wildcards.get('dataset')}/{c.job.wildcards['run']}: "
                     f"{c.seconds / 3600:,.1f} h on {c.device.upper()} ({c.note})")
    lines += ["", "assumptions:"]
    for d, src in sorted(plan.sources.items()):
        lines.append(f"  events of {d}: {src}")
    lines += [f"  {note}" for note in plan.notes]
    used = sorted({c.note.split(":")[0] for c in train if "/" in c.note})
    for key in used:
        lines.append(f"  {key}: {throughput[key]:,.0f} events/s per job")
    lines += [f"  ranking the test set: {EVAL_THROUGHPUT['gpu']:,.0f} events/s (GPU), "
              f"{EVAL_THROUGHPUT['cpu']:,.0f} events/s (CPU)",
              "  one thread per CPU training job (study.threads); a GPU job holds one GPU and its threads",
              "  no queueing, no failures, no time lost to job start or data reading",
              "  numbers and sources: gru4rec_repro/plan.py (THROUGHPUT); your own: --throughput FILE.yaml"]
    return "\n".join(lines)


def main(configfiles=(), gpus: int = 0, cores: int | None = None, throughput_file=None,
         results: str | Path = "results") -> str:
    import os

    cores = cores or os.cpu_count() or 1
    extra = {}
    if throughput_file:
        extra = yaml.safe_load(Path(throughput_file).read_text()) or {}
        bad = {k: v for k, v in extra.items() if not isinstance(v, (int, float)) or v <= 0}
        if bad:
            raise ValueError(f"{throughput_file}: throughput must be positive events/s: {bad}")
    config = load_config(configfiles)
    jobs = study_jobs(configfiles)
    plan = make_plan(config, jobs, gpus, cores, extra, results)
    return format_plan(plan, configfiles, dict(THROUGHPUT, **extra))
