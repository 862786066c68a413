"""The cost of a study before it is launched: jobs, CPU- and GPU-hours, wall time.

    python -m gru4rec_repro plan [--configfile FILE ...] [--gpus N] [--cores N] [--throughput FILE]

The jobs are the workflow's own: Snakemake builds the study's DAG (a dry run
of every job, ``--forceall``, with the config files merged over
config/config.yaml in order, as ``snakemake --configfile`` merges them) and
this module reads each job's rule, wildcards, outputs, threads and ``gpu``
resource from it. Only the cost is modelled here:

* a training job (a job with a ``run`` wildcard) costs, per seed it trains,
  ``train events x epochs / throughput`` plus ranking the test events. The
  throughput is a :class:`Figure` looked up by ``implementation/setting/device``
  (:func:`throughput_key`); a job's S seeds cost S times one seed divided by
  the figure's measured seeds-together gain at S (one batched model trains
  them), and a GPU job that shares its GPU with ``study.jobs_per_gpu - 1``
  others costs its GPU-hours divided by the measured jobs-per-GPU gain;
* a figure is *measured* when it names a benchmark log that exists
  (``benchmarks/logs/...``); every other figure, and every gain not measured
  (taken as no gain), is printed among the assumptions with the hours it
  accounts for, never on a training job's line;
* figures: :data:`THROUGHPUT` (built in), then every
  ``benchmarks/logs/*-throughput.yaml`` (what ``benchmarks/gpu_check.py``
  writes; later names win), then ``--throughput FILE`` (:func:`read_throughput`
  gives the format);
* a job of another rule costs :data:`OTHER_JOB_SECONDS` (per dataset size);
* events per dataset come from the data step's manifest when it has run
  (``results/<dataset>/data/manifest.json``), else from SPEC.md section 2 for
  RSC15; a synthetic dataset is generated and split in a temporary folder.

Wall time: the data jobs first, then the training jobs spread over the GPU
slots (GPUs x ``study.jobs_per_gpu``; a shared job lasts ``jobs_per_gpu /
gain`` times as long as alone) and the cores (CPU jobs), longest first, then
tables and figures.
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
LOGS = REPO / "benchmarks" / "logs"


@dataclass(frozen=True)
class Figure:
    """Events/s of one job (one thread on CPU, one GPU to itself), and where it comes from.

    ``log``: the benchmark log the figure was measured in (a path under the
    repository, e.g. ``benchmarks/logs/...``); None: not measured, an assumption.
    ``seeds_together``: {S: gain}, seed-events/s of S seeds trained together as
    one batched model over events/s of one seed alone (measured). ``jobs_per_gpu``:
    {N: gain}, events/s of N such processes at once on one GPU over one alone.
    """
    events_per_s: float
    log: str | None = None
    note: str = ""
    seeds_together: dict = field(default_factory=dict)
    jobs_per_gpu: dict = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.log is not None and log_path(self.log).is_file()


def log_path(log: str) -> Path:
    path = Path(log)
    return path if path.is_absolute() else REPO / path


_H100_GRAPH = "benchmarks/logs/2026-11-28-h100-gpu_check-graph.log"
_CPU_100K = "benchmarks/logs/2026-11-28-cpu-side-by-side-100k.log"
_CPU_KERAS = "benchmarks/logs/2026-12-04-cpu-keras-backends.log"

#: Built-in figures, keyed "implementation/setting/device" (:func:`throughput_key`).
#: Settings: ``xe`` and ``ranking`` (cross-entropy / BPR-max and the other ranking
#: losses with extra samples), ``onehot`` (the 2016 settings: no extra samples),
#: ``onehot-1000`` (the same with 1000 units), ``dwell`` (``onehot`` on dwell-boosted
#: data), ``port`` (the tutorial's Keras port), ``epoch`` (BPR-MF), ``fit`` (POP,
#: S-POP, Item-KNN: fitting over the training events), ``eval`` (ranking the test
#: set: test events/s). ``benchmarks/logs/*-throughput.yaml`` and ``--throughput``
#: override them.
THROUGHPUT: dict[str, Figure] = {
    # GPU, PyTorch, one H100: one whole epoch of 403,402 RSC15-shaped events (35,212
    # items), step replayed as a CUDA graph, capture and warm-up included.
    "gru4rec_torch/xe/gpu": Figure(90169.0, _H100_GRAPH, "H100, one epoch, CUDA graph, batch 32, 2048 samples"),
    "gru4rec_torch/ranking/gpu": Figure(86977.0, _H100_GRAPH, "H100, one epoch of BPR-max, CUDA graph"),
    # CPU, one thread, the same data, median events per CPU-second of 3 alternated runs (commit 11e1af2).
    "gru4rec_torch/xe/cpu": Figure(19331.0, _CPU_100K, "1 thread, one epoch, median of 3"),
    "gru4rec_torch/ranking/cpu": Figure(15531.0, _CPU_100K, "1 thread, one epoch of BPR-max, median of 3"),
    "gru4rec_keras/xe/cpu": Figure(13725.0, _CPU_100K, "TensorFlow, 1 thread, one epoch, median of 3"),
    "gru4rec_keras/ranking/cpu": Figure(11330.0, _CPU_100K, "TensorFlow, 1 thread, BPR-max, median of 3"),
    # The Keras GRU4Rec on JAX and on PyTorch (eager), CPU, one thread: bench_gru4rec_keras.py, 35,212
    # items, 400 steps after 100 of warm-up, median events per CPU-second of 3 alternated runs
    # (TensorFlow on the same bench: 3,725 XE, 3,553 BPR-max; the TensorFlow entries above are one epoch).
    "gru4rec_keras-jax/xe/cpu": Figure(5633.0, _CPU_KERAS, "JAX (XLA), 1 thread, median of 3"),
    "gru4rec_keras-jax/ranking/cpu": Figure(5227.0, _CPU_KERAS, "JAX (XLA), 1 thread, BPR-max, median of 3"),
    "gru4rec_keras-torch/xe/cpu": Figure(2120.0, _CPU_KERAS, "PyTorch eager, 1 thread, median of 3"),
    "gru4rec_keras-torch/ranking/cpu": Figure(1869.0, _CPU_KERAS, "PyTorch eager, 1 thread, BPR-max, median of 3"),
    # Not measured (no log): assumptions, printed as such with the hours they price.
    "gru4rec_torch/onehot/gpu": Figure(11300.0, None, "the eager step's speed with 2048 samples (H100)"),
    "gru4rec_torch/onehot-1000/gpu": Figure(11300.0, None, "the 100-unit eager step's speed (H100)"),
    "gru4rec_torch/dwell/gpu": Figure(11300.0, None, "the eager step's speed with 2048 samples (H100)"),
    "gru4rec_torch/onehot/cpu": Figure(15531.0, None, "the sampled BPR-max setting's CPU speed"),
    "gru4rec_torch/onehot-1000/cpu": Figure(1553.0, None, "a tenth of the 100-unit CPU speed"),
    "gru4rec_torch/dwell/cpu": Figure(15531.0, None, "the sampled BPR-max setting's CPU speed"),
    "gru4rec_keras/onehot/cpu": Figure(11330.0, None, "the sampled BPR-max setting's CPU speed"),
    "gru4rec_keras/port/cpu": Figure(13725.0, None, "the Keras GRU4Rec's cross-entropy CPU speed"),
    **{f"gru4rec_keras/{s}/gpu": Figure(37000.0, None, "the authors' Theano code on a GTX 1080Ti (SPEC.md section 4)")
       for s in ("xe", "ranking", "onehot", "port")},
    "bprmf/epoch/cpu": Figure(79196.0, None, "bench_baselines_scoring.py --scale 0.02 --bpr-epochs 1, no log kept"),
    "pop/fit/cpu": Figure(1e6, None, "counting; from the default study's job times"),
    "spop/fit/cpu": Figure(1e6, None, "counting; from the default study's job times"),
    "iknn/fit/cpu": Figure(1e5, None, "from the default study's job times, scaled by events"),
    # Ranking the test set: test events/s ("*": any implementation without its own).
    "*/eval/cpu": Figure(1000.0, None, "baselines rank 1,100-9,600 events/s at 7,496 items (bench_baselines_scoring.py)"),
    "*/eval/gpu": Figure(20000.0, None, "one matrix product per batch of 512 sessions"),
}

#: The committed measurements the plan reads after THROUGHPUT (gpu_check.py's files), in name order.
THROUGHPUT_FILES = "*-throughput.yaml"

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


# ---------------------------------------------------------------- figures
def read_throughput(path: str | Path) -> dict[str, Figure]:
    """The figures of a throughput file (YAML), as ``benchmarks/gpu_check.py`` writes it::

        log: benchmarks/logs/2026-12-04-h200-gpu_check.log   # where every figure below was measured
        command: python benchmarks/gpu_check.py ...
        commit: 7e1bf23
        gpu: NVIDIA H200
        figures:
          gru4rec_torch/xe/gpu:
            events_per_s: 120000.0
            seeds_together: {5: 3.9}      # S seeds as one batched model: seed-events/s / events/s alone
            jobs_per_gpu: {2: 1.4}        # N processes on one GPU: their events/s together / one alone
            note: batch 32, 2048 samples, CUDA graph
            # log: ...                    # an entry may name its own log

    A figure given as a bare number (``gru4rec_torch/xe/gpu: 120000``) or whose
    log does not exist is kept as an assumption. A log path is relative to the
    repository. Errors name the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"throughput file {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"throughput file {path}: not YAML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"throughput file {path}: not a mapping")
    entries = data.get("figures", None)
    default_log = data.get("log")
    if entries is None:  # a plain mapping of key: events/s
        entries, default_log = data, None
    if not isinstance(entries, dict):
        raise ValueError(f"throughput file {path}: `figures` must map keys to figures")
    out = {}
    for key, value in entries.items():
        where = f"throughput file {path}, {key}"
        if not isinstance(key, str) or key.count("/") != 2:
            raise ValueError(f"{where}: a key is implementation/setting/device")
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            raise ValueError(f"{where}: give events/s or a mapping with events_per_s")
        if not isinstance(value, dict):
            value = {"events_per_s": value, "log": None, "note": f"given in {path} without a log"}
        eps = value.get("events_per_s")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"{where}: events_per_s must be a positive number, got {eps!r}")
        gains = {}
        for name in ("seeds_together", "jobs_per_gpu"):
            g = value.get(name) or {}
            if not isinstance(g, dict) or not all(
                    str(k).isdigit() and int(k) >= 1 and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and v > 0 for k, v in g.items()):
                raise ValueError(f"{where}: {name} must map a count (1, 2, ...) to a positive gain, got {g!r}")
            gains[name] = {int(k): float(v) for k, v in g.items()}
        log = value.get("log", default_log)
        note = str(value.get("note", ""))
        if log is not None and not log_path(str(log)).is_file():
            note = f"{note}; its log {log} is not in the repository".lstrip("; ")
        out[key] = Figure(float(eps), None if log is None else str(log), note, **gains)
    return out


def committed_throughput(logs: Path = LOGS) -> tuple[dict[str, Figure], list[Path]]:
    """The figures of every committed ``benchmarks/logs/*-throughput.yaml``, later names winning."""
    files = sorted(logs.glob(THROUGHPUT_FILES))
    figures: dict[str, Figure] = {}
    for f in files:
        figures.update(read_throughput(f))
    return figures, files


def as_figures(throughput: dict | None) -> dict[str, Figure]:
    """Figures from a mapping of Figure or bare events/s (bare numbers: assumptions)."""
    return {k: v if isinstance(v, Figure) else Figure(float(v), None, "given without a log")
            for k, v in (throughput or {}).items()}


# ---------------------------------------------------------------- costs
def missing_params_file(params: dict, base_dir: str | Path = REPO) -> Path | None:
    """The run's ``params_file:`` when it is given but not found (relative paths: under ``base_dir``)."""
    if params.get("params_file") is None:
        return None
    path = Path(params["params_file"])
    path = path if path.is_absolute() else Path(base_dir) / path
    return None if path.is_file() else path


BASELINES = ("pop", "spop", "iknn")
#: Implementations that train a job's seeds together as one batched model (the gain is
#: applied where measured); the others train them one after another.
SEEDS_TOGETHER = ("gru4rec_torch", "gru4rec_keras")


def setting_of(implementation: str, params: dict, base_dir: str | Path = REPO, dwell: bool = False) -> str:
    """The throughput class of a run: xe, ranking, onehot, dwell, port, epoch (BPR-MF) or fit (baselines).

    GRU4Rec settings are the ones the run trains with (:func:`gru4rec_params.resolve`:
    the official defaults, ``params_file:``, ``ps:``, the other keys); a relative
    ``params_file`` is read under ``base_dir``, the workflow's working directory (where
    each job reads it). A ``params_file`` not found there is left out (the other keys
    over the defaults; :func:`make_plan` lists it under the assumptions). Layers other
    than one of 100 units add their sizes (``onehot-1000``); ``dwell``: the run trains
    on dwell-boosted data (a one-hot run is then ``dwell``).
    """
    from . import gru4rec_params

    if implementation == "bprmf":
        return "epoch"
    if implementation in BASELINES:
        return "fit"
    if params.get("variant", "gru4rec") == "port":
        return "port"
    known = set(gru4rec_params.known_keys())
    given = {k: v for k, v in params.items() if k in known}  # an implementation's own keys aside
    if missing_params_file(given, base_dir) is not None:
        del given["params_file"]
    p = gru4rec_params.resolve(given, base_dir=base_dir)
    if not p["n_sample"]:
        setting = "dwell" if dwell else "onehot"
    else:
        setting = "xe" if p["loss"] == "cross-entropy" else "ranking"
    layers = [int(x) for x in p["layers"]]
    return setting if layers == [100] else f"{setting}-{'x'.join(map(str, layers))}"


def implementation_label(implementation: str, params: dict) -> str:
    """The implementation part of a throughput key: the Keras GRU4Rec names its backend
    when the run sets one other than TensorFlow (``gru4rec_keras-jax``), and ``-jit`` when
    it compiles its step where that is a choice (``jit_compile: true``: XLA on TensorFlow,
    ``torch.compile`` on torch; JAX compiles always): ``gru4rec_keras-torch-jit``."""
    if implementation != "gru4rec_keras":
        return implementation
    backend = params.get("backend") or "tensorflow"
    label = "gru4rec_keras" if backend == "tensorflow" else f"gru4rec_keras-{backend}"
    if params.get("jit_compile") and backend in ("tensorflow", "torch"):
        label += "-jit"
    return label


def throughput_key(implementation: str, params: dict, device: str, base_dir: str | Path = REPO,
                   dwell: bool = False) -> str:
    return (f"{implementation_label(implementation, params)}/"
            f"{setting_of(implementation, params, base_dir, dwell)}/{device}")


def epochs_of(config: dict, run: str) -> int:
    """Epochs a run trains, as the workflow passes them (study.epochs over GRU4Rec runs but the port)."""
    return int(run_params(config, run).get("n_epochs", 10))


@dataclass
class Cost:
    job: Job
    seconds: float          # device-seconds: GPU-seconds of a GPU job (its share of a GPU), wall of a CPU job
    device: str             # "gpu" or "cpu"
    note: str = ""
    wall: float | None = None   # seconds in its slot (a shared GPU job runs longer); None: = seconds
    #: (figure key, what, device-seconds it prices, Figure or None) of every figure behind the cost
    parts: list = field(default_factory=list)

    def __post_init__(self):
        if self.wall is None:
            self.wall = self.seconds


def job_cost(job: Job, config: dict, sizes: dict, throughput: dict, gpus: int,
             jobs_per_gpu: int = 1) -> Cost:
    """Seconds of one job, on a GPU when it asks for one and the plan has GPUs."""
    throughput = as_figures(throughput)
    dataset = job.wildcards.get("dataset")
    events = sizes.get((dataset, job.wildcards.get("run")), sizes.get((dataset, None), {}))
    study = config["study"]
    train_split, test_split = (("train_full", "test") if study.get("eval_split", "test") == "test"
                               else ("train_tr", "train_valid"))
    n_train = events.get(train_split, 0)
    if "run" not in job.wildcards:
        rule = OTHER_JOB_SECONDS.get(job.rule, OTHER_JOB_SECONDS["*"])
        s = max(rule["minimum"], rule["per_million"] * n_train / 1e6)
        return Cost(job, s, "cpu", parts=[("other jobs (data, tables, figures)", "other", s, None)])
    run = job.wildcards["run"]
    spec = config["runs"][run]
    impl = spec["implementation"]
    params = spec.get("params", {})
    seeds = max(1, sum(o.endswith("ranks.parquet") for o in job.outputs))
    device = "gpu" if job.gpu > 0 and gpus > 0 and impl not in (*BASELINES, "bprmf") else "cpu"
    key = throughput_key(impl, params, device, dwell=bool(spec.get("dwell")))
    if key not in throughput:
        raise ValueError(f"no throughput for {key} (run {run}); give it in --throughput")
    fig = throughput[key]
    epochs = 1 if impl in BASELINES else epochs_of(config, run)
    label = key.split("/")[0]
    eval_key = f"{label}/eval/{device}" if f"{label}/eval/{device}" in throughput else f"*/eval/{device}"
    eval_fig = throughput[eval_key]
    together = fig.seeds_together.get(seeds, 1.0) if seeds > 1 else 1.0
    share = max(1, int(jobs_per_gpu)) if device == "gpu" else 1
    shared = fig.jobs_per_gpu.get(share, 1.0) if share > 1 else 1.0
    train_s = seeds * n_train * epochs / fig.events_per_s / together / shared
    eval_s = seeds * events.get(test_split, 0) / eval_fig.events_per_s / shared
    parts = [(key, "training", train_s, fig), (eval_key, "ranking the test set", eval_s, eval_fig)]
    if seeds > 1 and seeds not in fig.seeds_together and impl in SEEDS_TOGETHER:
        parts.append((key, f"seeds-together gain at {seeds} seeds", train_s, None))
    if share > 1 and share not in fig.jobs_per_gpu:
        parts.append((key, f"jobs-per-GPU gain at {share} jobs", train_s + eval_s, None))
    variant = sizes.get("__estimated__", {}).get((dataset, run))
    if variant:
        parts.append((f"events of {variant}", "event count", train_s + eval_s, None))
    gains = (f", seeds together x{together:g}" if together != 1 else "") + \
            (f", {share} per GPU x{shared:g}" if shared != 1 else "")
    note = f"{key}: {seeds} seed(s) x {epochs} epochs{gains}"
    total = train_s + eval_s
    return Cost(job, total, device, note, wall=total * share, parts=parts)


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
    jobs_per_gpu: int = 1
    throughput: dict = field(default_factory=dict)   # the figures used (key -> Figure)
    files: list = field(default_factory=list)        # throughput files read, in order

    def assumed_hours(self) -> dict:
        """(what, figure key) -> (GPU-hours, CPU-hours) priced by a figure that was not measured."""
        out: dict = {}
        for c in self.costs:
            for key, what, seconds, fig in c.parts:
                if fig is not None and fig.measured:
                    continue
                hours = out.setdefault((what, key), [0.0, 0.0])
                threads = 1 if c.device == "gpu" else c.job.threads
                hours[c.device == "cpu"] += seconds * threads / 3600
        return out


def make_plan(config: dict, jobs: list[Job], gpus: int, cores: int, throughput: dict | None = None,
              results: str | Path = "results", jobs_per_gpu: int | None = None, committed: bool = False) -> Plan:
    """Jobs per rule, CPU-/GPU-hours and wall time of ``jobs`` on ``gpus`` GPUs and ``cores`` cores.

    Figures: :data:`THROUGHPUT`, then (``committed``) the committed throughput files,
    then ``throughput``. ``jobs_per_gpu``: default ``study.jobs_per_gpu`` of the config.
    """
    figures = dict(THROUGHPUT)
    files: list = []
    if committed:
        extra, files = committed_throughput()
        figures.update(extra)
    figures.update(as_figures(throughput))
    if jobs_per_gpu is None:
        jobs_per_gpu = int(config["study"].get("jobs_per_gpu", 1))
    results = Path(results)
    sizes: dict = {"__estimated__": {}}
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
            if not (results / d / "data" / variant / "manifest.json").is_file():
                sizes["__estimated__"][(d, run)] = f"{d}/{variant}"
    costs = [job_cost(j, config, sizes, figures, gpus, jobs_per_gpu) for j in jobs]
    notes = []
    for run in sorted({j.wildcards["run"] for j in jobs if "run" in j.wildcards}):
        spec = config["runs"][run]
        params = spec.get("params", {})
        missing = missing_params_file(params)
        if (missing is not None and spec["implementation"] not in (*BASELINES, "bprmf")
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
    gpu_slots = gpus * max(1, jobs_per_gpu)
    gpu_threads = max((c.job.threads for c in costs if c.device == "gpu"), default=0)
    cpu_slots = max(1, cores - min(gpu_slots, sum(c.device == "gpu" for c in costs)) * gpu_threads)
    data = [c for c in costs if c.job.rule in DATA_ROLES]
    training = [c for c in costs if "run" in c.job.wildcards]
    rest = [c for c in costs if c not in data and c not in training]
    wall = (schedule([c.wall for c in data], cores)
            + max(schedule([c.wall for c in training if c.device == "gpu"], gpu_slots),
                  schedule([c.wall for c in training if c.device == "cpu"], cpu_slots))
            + schedule([c.wall for c in rest], cores))
    return Plan(per_rule, cpu_s / 3600, gpu_s / 3600, wall / 3600, gpus, cores, sources, costs, notes,
                max(1, jobs_per_gpu), figures, files)


def _fmt(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _hours(gpu_h: float, cpu_h: float) -> str:
    return ", ".join(s for s in ((f"{gpu_h:,.1f} GPU-hours" if gpu_h else ""),
                                 (f"{cpu_h:,.1f} CPU-hours" if cpu_h else ""))
                     if s) or "0.0 hours"


def format_plan(plan: Plan, configfiles, throughput: dict | None = None) -> str:
    figures = plan.throughput or as_figures(throughput)
    lines = [f"Study plan ({' + '.join(['config/config.yaml', *map(str, configfiles)])}),"
             f" on {plan.gpus} GPU(s) ({plan.jobs_per_gpu} job(s) per GPU) and {plan.cores} core(s)"]
    if plan.files:
        lines.append("measured figures read from: " + ", ".join(_rel(f) for f in plan.files))
    lines += ["", "jobs per rule:"]
    width = max(map(len, plan.jobs_per_rule), default=4)
    for rule, n in plan.jobs_per_rule.items():
        lines.append(f"  {rule:<{width}}  {n:>5}")
    lines.append(f"  {'total':<{width}}  {sum(plan.jobs_per_rule.values()):>5}")
    train = [c for c in plan.costs if "run" in c.job.wildcards]
    n_gpu = sum(c.device == "gpu" for c in train)
    assumed = plan.assumed_hours()
    priced = {k: h for k, h in assumed.items() if k[0] in ("training", "ranking the test set", "other")}
    a_gpu = sum(h[0] for h in priced.values())
    a_cpu = sum(h[1] for h in priced.values())
    lines += ["", f"training jobs: {len(train)} ({n_gpu} on a GPU, {len(train) - n_gpu} on the CPU)",
              f"GPU-hours:  {plan.gpu_hours:10,.1f}   (of which priced by assumed figures: {a_gpu:,.1f})",
              f"CPU-hours:  {plan.cpu_hours:10,.1f}   (of which priced by assumed figures: {a_cpu:,.1f})",
              f"wall time:  {plan.wall_hours:10,.1f} h  "
              f"(= {plan.wall_hours / 24:,.1f} days; data first, training spread longest first, tables last)"]
    # training jobs by the figure that prices them: measured ones here, the others under assumptions
    by_key: dict = {}
    for c in train:
        key, _, _, fig = c.parts[0]
        row = by_key.setdefault(key, {"fig": fig, "jobs": 0, "gpu": 0.0, "cpu": 0.0, "gains": set()})
        row["jobs"] += 1
        row["gpu" if c.device == "gpu" else "cpu"] += c.seconds * (1 if c.device == "gpu" else c.job.threads) / 3600
        row["gains"].add(c.note.partition(" epochs")[2].lstrip(", "))
    measured = {k: r for k, r in by_key.items() if r["fig"].measured}
    lines += ["", "training jobs by measured throughput (events/s of one job; log it was measured in):"]
    for key, r in sorted(measured.items()):
        fig = r["fig"]
        gains = "; ".join(sorted(g for g in r["gains"] if g)) or "no gain applied"
        lines.append(f"  {key}: {r['jobs']} job(s), {_hours(r['gpu'], r['cpu'])}; {fig.events_per_s:,.0f} "
                     f"events/s ({gains}); {fig.log}")
    if not measured:
        lines.append("  (none)")
    lines += ["", "largest jobs:"]
    for c in sorted(train, key=lambda c: (-round(c.seconds), c.job.wildcards["dataset"], c.job.wildcards["run"]))[:5]:
        flag = "" if c.parts[0][3].measured else "  [ASSUMED figure, see below]"
        lines.append(f"  {c.job.wildcards.get('dataset')}/{c.job.wildcards['run']}: "
                     f"{c.seconds / 3600:,.1f} {c.device.upper()}-hours ({c.note}){flag}")
    lines += ["", "assumptions (not measured; the hours each accounts for):"]
    for (what, key), (gpu_h, cpu_h) in sorted(assumed.items(), key=lambda kv: (-sum(kv[1]), kv[0])):
        fig = figures.get(key)
        if what in ("training", "ranking the test set"):
            lines.append(f"  {key}: {fig.events_per_s:,.0f} events/s ({fig.note or 'no log'}): "
                         f"{_hours(gpu_h, cpu_h)} of {what}")
        elif what.startswith(("seeds-together", "jobs-per-GPU")):
            lines.append(f"  {key}: {what} not measured, priced as none (an upper bound): "
                         f"its {_hours(gpu_h, cpu_h)}")
        elif what == "event count":
            lines.append(f"  {key}: boosted size unknown until its data step runs, priced at the dataset's "
                         f"own size (boosting adds events: an underestimate): {_hours(gpu_h, cpu_h)}")
        else:
            lines.append(f"  {key}: seconds per job assumed (OTHER_JOB_SECONDS): {_hours(gpu_h, cpu_h)}")
    estimated = {k for _, k in assumed if k.startswith("events of ")}
    for d, src in sorted(plan.sources.items()):
        if f"events of {d}" not in estimated:
            lines.append(f"  events of {d}: {src}")
    lines += [f"  {note}" for note in plan.notes]
    lines += ["  one thread per CPU training job (study.threads); a GPU job holds its share of a GPU and its threads",
              "  no queueing, no failures, no time lost to job start or data reading",
              "  figures: gru4rec_repro/plan.py (THROUGHPUT), benchmarks/logs/*-throughput.yaml, "
              "--throughput FILE (benchmarks/gpu_check.py writes one)"]
    return "\n".join(lines)


def _rel(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(configfiles=(), gpus: int = 0, cores: int | None = None, throughput_file=None,
         results: str | Path = "results") -> str:
    import os

    cores = cores or os.cpu_count() or 1
    extra = read_throughput(throughput_file) if throughput_file else {}
    config = load_config(configfiles)
    jobs = study_jobs(configfiles)
    plan = make_plan(config, jobs, gpus, cores, extra, results, committed=True)
    if throughput_file:
        plan.files.append(Path(throughput_file))
    return format_plan(plan, configfiles)
